"""A pool of consumer processes: opening and handling spread over the cores, for one group.

Why processes and not threads: pyca/cryptography holds the GIL while it verifies and decrypts.
``benchmarks/gil.py`` (pyca/cryptography 50.0.2, CPython 3.11, 2 cores, total rate of 2 threads
over 1 thread; the least loaded of three runs, load average about 2) measured ECDSA P-256 verify
1.16x, Ed25519 verify 1.07x, ECDH P-256 0.55x, AES-128-GCM decrypt 1.02x (1 KiB) and 0.98x (1 MiB);
only ML-DSA-87 verify ran outside the GIL (1.96x). :meth:`letterlock.Opener.open` of a 1 KiB p256
message went 0.47x to 0.79x with 2 threads (they take turns, and pay for switching), and 1.28x to
1.53x with 2 processes (on a machine shared with other work: the second core was not all ours).
Threads would therefore add nothing but contention, and every worker here is a process.

What a pool cannot spread is work done one at a time outside its workers: the broker, and the write
transactions each message costs in the spool (lease and ack) and in a SQLiteReplayStore file (claim
and finish), one writer per file at a time. ``benchmarks/pool.py`` measured 2 workers over 1
between 0.72x and 1.86x on the spool and on RabbitMQ (in seven runs), on a 2-core machine whose
load average was 4 to 10 at the time: a second worker helps by as much as a second core is free,
and by overlapping the waits for the disk.

Each worker is a ``spawn``-ed process with everything of its own: its connection (it connects the
pool's URL itself: a connection, or a spool handle, never crosses a fork), its
:class:`~letterlock.transports.SealedConsumer`, its own subscription to the group (so the broker
spreads the group's messages over the workers, each to one), and its :class:`~letterlock.Opener`,
built in the worker by the ``opener`` factory (an Identity cannot be pickled: the factory loads it
there, from a keystore file for instance). What goes to a worker is pickled, so ``opener`` and
``handler`` are each a ``"module:function"`` string or a picklable callable (a module-level
function, or a :func:`functools.partial` of one over picklable arguments); the pool refuses others
at once. A worker takes half a second to a second to start (a fresh interpreter imports letterlock,
connects and subscribes); none consumes before all have started.

A factory that needs a secret to load its identity (a key file's passphrase, a PKCS#11 token's
PIN) holds a :class:`WorkerSecret`, never the secret itself: the secret stays in an anonymous
in-memory file of the pool's process, and each worker, as it is spawned, inherits a descriptor
of that file, which the factory reads when it calls the secret. The secret is never pickled, so
it is in no pipe, no pickled spec and no log record. Keys on a token are so used in every worker
through a session of its own: a PKCS#11 session does not survive into another process (see
:mod:`letterlock.keystore.pkcs11`), and each worker's factory logs in to the token itself.

The workers' openers must share one replay store (an :class:`~letterlock.SQLiteReplayStore` file,
which is safe across processes, or a store on a server): a broker may deliver a message to two
workers (a lease ran out, a worker died), and the claims in the shared store let one of them handle
it. A pool of several workers whose opener keeps its replay window in memory is refused. A pool
adds no durability: on ZeroMQ (at most once) what a killed or drained worker held is lost, as with
a single consumer. On MQTT a group is one persistent session, which one consumer holds at a time: a
pool of more than one worker is refused there.

Stopping. :meth:`ConsumerPool.run` returns after ``count`` messages were handled (exactly: a worker
reserves one of the ``count`` slots for each delivery it holds, and frees it if the delivery was
refused; a delivery taken when no slot is left goes back unopened), once the whole pool was idle
for ``idle_timeout`` seconds, or on :meth:`stop`, SIGTERM or SIGINT (the first drains: each worker
finishes and settles the message in its handler, takes no other, and exits; the second, or
``drain_timeout`` running out, kills the workers, whose unsettled messages the broker delivers
again). A delivery taken while stopping is given back unopened (a retry without delay; where the
broker cannot, it is left unsettled and comes back). Workers ignore SIGINT (a terminal sends it to
them too: the pool decides); a SIGTERM sent to one worker drains that worker alone, and the pool
replaces it. Workers whose pool process died (even by SIGKILL) drain and exit as well: no orphan
keeps consuming.

A worker that ends while the pool runs (killed, a broker error it cannot get past, a SIGTERM of its
own) is reported (a warning on this module's logger, ``worker_replaced`` in
:attr:`~ConsumerPool.metrics`) and replaced; the broker delivers its unsettled message again, and
the claim it held in the replay store is taken over after the consumer's ``claim_lease``. One that
ends in an error while the pool drains is reported as ``worker_failed``. More than ``max_restarts``
ends within a minute mean something is wrong that a new process will not fix: the pool then stops
and raises :class:`PoolFailed`, as it does at once when a worker cannot start (a bad URL, a factory
or a handler that fails).

:attr:`~ConsumerPool.metrics` adds up the workers' consumer metrics (``acked``,
``dead_lettered:<reason>``...), reported by each at most every 0.2 s and when it exits (a
killed worker's last fraction of a second is not counted), and the pool's own counts. Workers'
log records (at the level the ``letterlock`` logger has in the parent) are re-emitted in the
parent process.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import importlib
import logging
import mmap
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import time
import traceback
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import DupFd
from types import FrameType, MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from letterlock._api import Opener
from letterlock.core.replay import MemoryReplayStore
from letterlock.core.topics import Topics
from letterlock.errors import LetterlockError, UsageError
from letterlock.transports.base import Delivery, Endpoint, Subscription
from letterlock.transports.consumer import Handler, SealedConsumer
from letterlock.transports.decide import Retry, RetryPolicy
from letterlock.transports.urls import connect

__all__ = ["ConsumerPool", "PoolFailed", "WorkerSecret"]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

WORKER_REPLACED: Final = "worker_replaced"  #: workers that ended while the pool ran
WORKER_FAILED: Final = "worker_failed"  #: workers that ended in an error while draining
GIVEN_BACK: Final = "given_back"  #: deliveries taken while stopping and given back unopened
_TICK: Final = 0.25  #: how often an idle worker looks at the stop flag (seconds)
_REPORT_EVERY: Final = 0.2  #: how often a busy worker reports its metrics (seconds)
_RESTART_WINDOW: Final = 60.0  #: ``max_restarts`` counts deaths within this many seconds
_SETUP_FAILED: Final = 3  #: a worker's exit code when it could not start
#: Schemes whose group is one session, held by one consumer at a time (MQTT's persistent
#: session: a second connection with its client id takes it over), so a pool has one worker.
ONE_CONSUMER_PER_GROUP: Final = frozenset({"mqtt", "mqtts"})


class PoolFailed(LetterlockError):
    """The pool stopped because a worker could not start, or its workers kept dying."""


class WorkerSecret:
    """A secret for the opener factories of a pool's workers, handed over without pickling it.

    Calling it returns the secret's bytes (a :data:`~letterlock.keystore.base.Secret`). It is
    kept in an anonymous in-memory file (``memfd_create``; an unlinked temporary file where the
    system has none). Pickled while a process is being spawned (the pool starting a worker), it
    carries only a read-only descriptor of that file, which the new process inherits and reads.
    The file is sealed (Linux 5.1 or later: no writes, no resizing, no new writable mappings,
    no further seals), so a compromised worker cannot change what later workers read, neither
    through its descriptor nor by reopening the file read-write; only the mapping this object
    keeps can write it, to overwrite it on :meth:`close`. Pickled any
    other way (to a queue, a file, another host) it carries nothing, and the copy raises
    :class:`~letterlock.errors.UsageError` when called. :meth:`close` (or leaving a ``with``
    block) overwrites the file and closes it; keep it open while the pool runs, since a
    replaced worker reads it again. No repr shows it.
    """

    __slots__ = ("__weakref__", "_closer", "_fd", "_size")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or not secret:
            raise UsageError("a worker secret is non-empty bytes")
        fd, view = _sealed_file(secret)
        self._fd: int | None = fd
        self._size = len(secret)
        self._closer: weakref.finalize[Any, Any] | None = weakref.finalize(
            self, _wipe_and_close, fd, view
        )

    @classmethod
    def _inherited(cls, fd: int | None, size: int) -> WorkerSecret:
        """A worker's copy: it reads the file, and closes only its own descriptor (the pool's
        process, which made the file, is the one that overwrites it)."""
        inherited = cls.__new__(cls)
        inherited._fd, inherited._size = fd, size
        inherited._closer = None if fd is None else weakref.finalize(inherited, os.close, fd)
        return inherited

    def __call__(self) -> bytes:
        if self._fd is None:
            raise UsageError("this secret was pickled outside a spawning pool: it holds nothing")
        if self._closer is not None and not self._closer.alive:
            raise UsageError("this worker secret is closed")
        return os.pread(self._fd, self._size, 0)

    def close(self) -> None:
        """Overwrite the secret's file and close it; in a worker, close the worker's copy."""
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> WorkerSecret:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<WorkerSecret>"

    def __reduce__(self) -> tuple[Any, ...]:
        popen = multiprocessing.context.get_spawning_popen()
        if popen is None or self._fd is None or self._closer is None or not self._closer.alive:
            return (_withheld, ())
        return (_inherit, (DupFd(self._fd), self._size))


#: Linux's F_SEAL_FUTURE_WRITE (5.1): no writes and no new writable mappings, while the
#: writable mappings made before it still write (Python's fcntl module does not name it).
_F_SEAL_FUTURE_WRITE: Final = 0x0010
_SEALS: Final = (
    getattr(fcntl, "F_SEAL_SHRINK", 0)
    | getattr(fcntl, "F_SEAL_GROW", 0)
    | _F_SEAL_FUTURE_WRITE
    | getattr(fcntl, "F_SEAL_SEAL", 0)
)


def _sealed_file(secret: bytes) -> tuple[int, mmap.mmap]:
    """A read-only, close-on-exec descriptor of a new anonymous file holding ``secret``, and a
    writable shared mapping of it: after the seals, the only way left to write it (the wipe)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("letterlock-worker-secret", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        sealing = True
    else:  # pragma: no cover - systems without memfd: an unlinked file, not sealed
        with tempfile.TemporaryFile() as file:
            fd, sealing = os.dup(file.fileno()), False
    try:
        written = os.write(fd, secret)
        if written != len(secret):  # pragma: no cover - a short write to a new memory file
            raise OSError(f"wrote {written} of {len(secret)} bytes of the worker secret")
        view = mmap.mmap(fd, len(secret))
        try:
            if sealing:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            return _read_only(fd), view
        except BaseException:
            view.close()
            raise
    finally:
        os.close(fd)


def _read_only(fd: int) -> int:
    """A new read-only close-on-exec descriptor of the file behind ``fd``."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # pragma: no cover - no /proc: /dev/fd (BSD, macOS), where
        # opening it may duplicate the descriptor with its write access (no seals there either)
        return os.open(f"/dev/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)


def _wipe_and_close(fd: int, view: mmap.mmap) -> None:
    with contextlib.suppress(OSError, ValueError):
        view[:] = bytes(len(view))
        view.close()
    with contextlib.suppress(OSError):
        os.close(fd)


def _inherit(duplicated: Any, size: int) -> WorkerSecret:
    """In the spawned worker: the secret behind the descriptor it inherited, close-on-exec
    again (spawning made it inheritable to pass it; no program the worker runs gets it)."""
    fd = duplicated.detach()
    os.set_inheritable(fd, False)
    return WorkerSecret._inherited(fd, size)


def _withheld() -> WorkerSecret:
    return WorkerSecret._inherited(None, 0)


#: How a pool is told to build a worker's Opener: a picklable factory, or "module:function".
OpenerFactory = Callable[[], Opener]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spec:
    """Everything a worker needs, pickled into it."""

    url: str
    topics: Topics | tuple[str, ...]  #: a tuple: patterns in the endpoint's own dialect
    group: str
    opener: OpenerFactory | str
    handler: Handler | str
    retry: RetryPolicy
    claim_lease: float
    shared_replay: bool  #: refuse an opener whose replay window is in memory
    log_level: int


@dataclass(frozen=True, slots=True)
class _Shared:
    """State the parent and its workers share. Each worker writes its own slot of ``busy``
    and ``last``; ``remaining`` and ``reserved`` change under ``lock`` only."""

    stop: Any  #: multiprocessing Event: drain and exit
    go: Any  #: multiprocessing Event: every first worker is ready, start consuming
    lock: Any
    remaining: Any  #: Value('q'): messages still to handle; -1 for no limit
    reserved: Any  #: Array('b'): worker i holds one of ``remaining``'s slots
    busy: Any  #: Array('b'): worker i is handling a delivery
    last: Any  #: Array('d'): time.monotonic() of worker i's last delivery


def _resolve(target: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
    """``"package.module:function"`` imported (in the worker), or the callable itself."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import the {what} {target!r}: {exc}") from None
    if not callable(found):
        raise UsageError(f"the {what} {target!r} is not callable")
    return found  # type: ignore[no-any-return]


def _check_target(target: object, what: str) -> None:
    if isinstance(target, str):
        module_name, colon, attribute = target.partition(":")
        if not (module_name and colon and attribute):
            raise UsageError(f"a {what} named by a string is 'module:function', not {target!r}")
    elif not callable(target):
        raise UsageError(f"the {what} is a callable or a 'module:function' string")


class ConsumerPool:
    """Consumes one group of one broker in ``workers`` processes (see the module)."""

    def __init__(
        self,
        url: str,
        topics: str | Iterable[str] | Topics,
        *,
        group: str,
        opener: OpenerFactory | str,
        handler: Handler | str,
        workers: int | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen: one shared default is safe
        claim_lease: float = 60.0,
        max_restarts: int = 5,
        drain_timeout: float = 30.0,
    ) -> None:
        """A pool for ``group`` at ``url`` (see :func:`letterlock.transports.urls.connect`).

        ``topics`` are what the consumers serve, as for
        :class:`~letterlock.transports.SealedConsumer`: a :class:`~letterlock.Topics`, or
        patterns read in the broker's own dialect. ``opener`` builds each worker's Opener and
        ``handler`` takes each opened message: picklable, or ``"module:function"`` (see the
        module). ``workers`` defaults to the number of cores. ``retry`` and ``claim_lease``
        are each worker's consumer's. ``max_restarts`` bounds the workers replaced within a
        minute; ``drain_timeout`` is how long a stop waits for handlers to finish before it
        kills their workers.
        """
        workers = (os.cpu_count() or 1) if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise UsageError("workers must be a positive whole number")
        if max_restarts < 0 or not drain_timeout > 0:
            raise UsageError("max_restarts must not be negative, drain_timeout must be positive")
        if workers > 1 and urlsplit(url).scheme in ONE_CONSUMER_PER_GROUP:
            raise UsageError(
                f"{urlsplit(url).scheme}:// serves one consumer per group at a time (a second "
                "takes the first one's session over): run one worker"
            )
        _check_target(opener, "opener factory")
        _check_target(handler, "handler")
        if not isinstance(retry, RetryPolicy) or not claim_lease > 0:
            raise UsageError("retry must be a RetryPolicy and claim_lease positive")
        patterns: Topics | tuple[str, ...]
        if isinstance(topics, Topics):
            patterns = topics
        else:
            patterns = (topics,) if isinstance(topics, str) else tuple(topics)
            if not patterns or not all(isinstance(p, str) for p in patterns):
                raise UsageError("name the topics the pool serves (topics='#' serves all)")
        self.url = url
        self.workers = workers
        self.max_restarts = max_restarts
        self.drain_timeout = drain_timeout
        self._spec = _Spec(
            url=url, topics=patterns, group=group, opener=opener, handler=handler, retry=retry,
            claim_lease=claim_lease, shared_replay=workers > 1,
            log_level=logging.getLogger("letterlock").getEffectiveLevel(),
        )  # fmt: skip
        try:
            pickle.dumps(self._spec)
        except Exception as exc:
            raise UsageError(
                "a pool's opener factory and handler go to worker processes: give each as "
                f"'module:function' or a module-level function (or a partial of one): {exc}"
            ) from None
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._killing = False
        self._counts: Counter[str] = Counter()
        self._reports: dict[int, Mapping[str, int]] = {}  #: pid -> its last report
        self.elapsed = 0.0  #: seconds from the start signal to the decision to stop
        #: The signal that stopped the last run (SIGTERM, SIGINT), or None: a caller's exit
        #: status may tell an interrupted listener from one that ran out of work.
        self.signalled: signal.Signals | None = None

    @property
    def metrics(self) -> Mapping[str, int]:
        """The workers' consumer metrics added up, and the pool's own counts (a snapshot)."""
        total: Counter[str] = Counter(self._counts)
        for report in self._reports.values():
            total.update(report)
        total.pop("handled", None)
        return MappingProxyType(dict(total))

    def stop(self) -> None:
        """Drain and return from :meth:`run` (from a signal handler or another thread)."""
        self._stopping = True

    def run(self, *, count: int | None = None, idle_timeout: float | None = None) -> int:
        """Consume until ``count`` messages were handled, the pool was idle ``idle_timeout``
        seconds, or :meth:`stop` / SIGTERM / SIGINT; return how many were handled.

        Raises :class:`PoolFailed` if a worker could not start or workers kept dying.
        """
        if count is not None and (isinstance(count, bool) or count < 0):
            raise UsageError("count must not be negative")
        if idle_timeout is not None and idle_timeout < 0:
            raise UsageError("idle_timeout must not be negative")
        run = _Run(self, count, idle_timeout)
        self.signalled = None
        with self._signals():
            try:
                run.start()
                run.watch()
            finally:
                try:
                    run.finish()
                finally:
                    self._stopping = self._killing = False  # the next run starts afresh
        return run.handled()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT drain (the second kills), while :meth:`run` runs in the main
        thread; elsewhere the caller stops the pool with :meth:`stop`."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self.signalled is not None:
                self._killing = True
            self.signalled = signal.Signals(signum)
            self._stopping = True

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@dataclass
class _Child:
    """A worker process, as the pool sees it."""

    slot: int
    process: BaseProcess
    pipe: Connection
    ready: bool = False
    killed: bool = False  #: by the pool, when draining took too long


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by signal {-exitcode}"
    return f"exited with {exitcode}"


class _Run:
    """One :meth:`ConsumerPool.run`: starts, watches, replaces and stops the workers."""

    def __init__(self, pool: ConsumerPool, count: int | None, idle_timeout: float | None) -> None:
        self.pool = pool
        self.count = count
        self.idle_timeout = idle_timeout
        context = pool._context
        n = pool.workers
        self.shared = _Shared(
            stop=context.Event(), go=context.Event(), lock=context.Lock(),
            remaining=context.Value("q", -1 if count is None else count, lock=False),
            reserved=context.Array("b", n, lock=False), busy=context.Array("b", n, lock=False),
            last=context.Array("d", n, lock=False),
        )  # fmt: skip
        self.workers: dict[int, _Child] = {}
        self.pids: set[int] = set()  #: every worker this run started
        self.deaths: collections.deque[float] = collections.deque()
        self.failure: PoolFailed | None = None
        self.started = 0.0

    def start(self) -> None:
        for slot in range(self.pool.workers):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        context = self.pool._context
        mine, theirs = context.Pipe(duplex=False)
        process = context.Process(
            target=_work, args=(self.pool._spec, slot, self.shared, theirs),
            name=f"letterlock-pool-{slot}", daemon=True,
        )  # fmt: skip
        process.start()
        theirs.close()
        self.shared.last[slot] = time.monotonic()
        self.workers[slot] = _Child(slot, process, mine)
        self.pids.add(process.pid or -1)

    def watch(self) -> None:
        """Until it is time to stop: read the workers' reports, replace the dead."""
        pool = self.pool
        while not pool._stopping and self.failure is None:
            waitables: list[Any] = [w.pipe for w in self.workers.values()]
            waitables += [w.process.sentinel for w in self.workers.values()]
            wait(waitables, timeout=0.1)
            self._read_all()
            self._bury_the_dead()
            if not self.shared.go.is_set() and all(w.ready for w in self.workers.values()):
                self.started = time.monotonic()
                for slot in range(self.pool.workers):
                    self.shared.last[slot] = self.started  # idle from now on
                self.shared.go.set()
            if self.shared.go.is_set() and (self._all_handled() or self._idle()):
                break
        if self.started:
            self.pool.elapsed = time.monotonic() - self.started

    def _all_handled(self) -> bool:
        if self.count is None:
            return False
        with self.shared.lock:
            return bool(self.shared.remaining.value == 0 and not any(self.shared.reserved))

    def _idle(self) -> bool:
        if self.idle_timeout is None or any(self.shared.busy):
            return False
        return bool(time.monotonic() - max(self.shared.last) >= self.idle_timeout)

    def _read_all(self) -> None:
        for worker in list(self.workers.values()):
            self._read(worker)

    def _read(self, worker: _Child) -> None:
        try:
            while worker.pipe.poll():
                self._take(worker, worker.pipe.recv())
        except (EOFError, OSError):
            pass  # the worker is gone (its death is seen by its sentinel)

    def _take(self, worker: _Child, message: tuple[Any, ...]) -> None:
        match message:
            case ("ready",):
                worker.ready = True
            case ("report", Mapping() as counts):
                self.pool._reports[worker.process.pid or -1] = dict(counts)
            case ("log", Mapping() as fields):
                record = logging.makeLogRecord(dict(fields))
                logger = logging.getLogger(record.name)
                if logger.isEnabledFor(record.levelno):
                    logger.handle(record)
            case ("failed", str() as why):
                self.failure = PoolFailed(f"pool worker {worker.slot} could not start: {why}")
            case _:
                pass  # not from our worker code: ignored

    def _bury_the_dead(self) -> None:
        for slot, worker in list(self.workers.items()):
            if worker.process.exitcode is None:
                continue
            self._read(worker)
            worker.pipe.close()
            del self.workers[slot]
            self._release(slot)
            if self.failure is not None or self.pool._stopping:
                continue
            how = _how(worker.process.exitcode)
            self.pool._counts[WORKER_REPLACED] += 1
            now = time.monotonic()
            self.deaths.append(now)
            while self.deaths and self.deaths[0] < now - _RESTART_WINDOW:
                self.deaths.popleft()
            if len(self.deaths) > self.pool.max_restarts:
                self.failure = PoolFailed(
                    f"pool workers died {len(self.deaths)} times within "
                    f"{_RESTART_WINDOW:.0f} s (the last, worker {slot}, {how}); stopping"
                )
                continue
            _log.warning(
                "pool worker %d (pid %s) %s; its unsettled message comes back from the "
                "broker; starting a new worker", slot, worker.process.pid, how,
            )  # fmt: skip
            self._spawn(slot)
            if self.shared.go.is_set():
                self.workers[slot].ready = True  # the others are running: no need to wait

    def _release(self, slot: int) -> None:
        """A dead worker's reserved slot is free again (its message comes back)."""
        with self.shared.lock:
            if self.shared.reserved[slot]:
                self.shared.reserved[slot] = 0
                self.shared.remaining.value += 1
        self.shared.busy[slot] = 0

    def finish(self) -> None:
        """Tell the workers to drain, wait up to ``drain_timeout``, then kill what is left."""
        self.shared.stop.set()
        self.shared.go.set()  # a worker still waiting for the start goes straight to stop
        deadline = time.monotonic() + self.pool.drain_timeout
        while self.workers:
            if self.pool._killing or time.monotonic() >= deadline:
                for worker in self.workers.values():
                    worker.process.kill()
                    worker.killed = True
                    _log.warning(
                        "pool worker %d (pid %s) killed while stopping; its unsettled message "
                        "comes back from the broker", worker.slot, worker.process.pid,
                    )  # fmt: skip
                deadline = float("inf")
            waitables: list[Any] = [w.pipe for w in self.workers.values()]
            waitables += [w.process.sentinel for w in self.workers.values()]
            wait(waitables, timeout=0.1)
            self._read_all()
            for slot, worker in list(self.workers.items()):
                if (code := worker.process.exitcode) is not None:
                    self._read(worker)
                    worker.pipe.close()
                    worker.process.join()
                    del self.workers[slot]
                    if code != 0 and not worker.killed and self.failure is None:
                        self.pool._counts[WORKER_FAILED] += 1
                        _log.warning(
                            "pool worker %d (pid %s) %s while stopping; its unsettled message "
                            "comes back from the broker", slot, worker.process.pid, _how(code),
                        )  # fmt: skip
        if self.failure is not None:
            raise self.failure

    def handled(self) -> int:
        """How many messages this run's workers handled."""
        if self.count is not None:
            with self.shared.lock:
                return self.count - int(self.shared.remaining.value)
        reports = self.pool._reports
        return sum(reports[pid].get("handled", 0) for pid in self.pids if pid in reports)


# the worker process ---------------------------------------------------------------------


class _PipeLog(logging.Handler):
    """Sends a worker's log records to the parent, formatted (their args may not pickle)."""

    def __init__(self, pipe: Connection) -> None:
        super().__init__()
        self._pipe = pipe

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "name": record.name, "levelno": record.levelno,
                "levelname": record.levelname, "msg": record.getMessage(), "args": None,
                "created": record.created, "process": record.process,
                "processName": record.processName, "pathname": record.pathname,
                "lineno": record.lineno, "funcName": record.funcName,
                "exc_text": self.format(record) if record.exc_info else None,
            }  # fmt: skip
            self._pipe.send(("log", fields))
        except Exception:
            self.handleError(record)


def _checked(opener: object, *, shared: bool) -> Opener:
    if not isinstance(opener, Opener):
        raise UsageError("the pool's opener factory must return a letterlock.Opener")
    if shared and isinstance(opener.replay.store, MemoryReplayStore):
        raise UsageError(
            "a pool of several workers needs a replay store they share (a SQLiteReplayStore "
            "file, or one on a server): in memory, each worker would have its own, and a "
            "message delivered twice could be handled twice"
        )
    return opener


class _Consuming:
    """One worker process's consumer loop (everything here runs in the worker)."""

    def __init__(self, spec: _Spec, slot: int, shared: _Shared, pipe: Connection) -> None:
        self.spec, self.slot, self.shared, self.pipe = spec, slot, shared, pipe
        self.stopping = False  #: SIGTERM to this worker alone
        self.parent = os.getppid()
        self.handled = 0
        self.given_back = 0
        self.reported = 0.0
        self.raised: BaseException | None = None

    def setup(self) -> tuple[Endpoint, SealedConsumer, Subscription, Handler]:
        spec = self.spec
        endpoint = connect(spec.url)
        try:
            opener = _checked(_resolve(spec.opener, "opener factory")(), shared=spec.shared_replay)
            handler = _resolve(spec.handler, "handler")
            topics = spec.topics
            if not isinstance(topics, Topics):
                topics = Topics(*topics, dialect=endpoint.dialect)
            consumer = SealedConsumer(
                endpoint, spec.group, opener=opener, topics=topics, retry=spec.retry,
                claim_lease=spec.claim_lease,
            )  # fmt: skip
            subscription = endpoint.subscribe(topics, group=spec.group)
        except BaseException:
            endpoint.close()
            raise
        return endpoint, consumer, subscription, handler

    def told_to_stop(self) -> bool:
        """By the pool, by a SIGTERM of its own, or by the pool's death (no orphans)."""
        return self.shared.stop.is_set() or self.stopping or os.getppid() != self.parent

    def left(self) -> bool:
        """Whether any message is left to handle (``count`` not reached, or no count)."""
        return bool(self.shared.remaining.value != 0)

    def reserve(self) -> bool:
        """Take one of the messages still to handle, for the delivery in hand; False if none
        is left. Only a worker holding a delivery reserves: one waiting for a delivery must
        not hold the last slot while another worker holds the last message (a broker that
        prefetches gives each worker messages of its own)."""
        shared = self.shared
        if shared.remaining.value < 0:
            return True
        with shared.lock:
            if shared.remaining.value == 0:
                return False
            shared.remaining.value -= 1
            shared.reserved[self.slot] = 1
            return True

    def settle_reservation(self, *, used: bool) -> None:
        shared = self.shared
        if shared.remaining.value < 0:
            return
        with shared.lock:
            if shared.reserved[self.slot]:
                shared.reserved[self.slot] = 0
                if not used:
                    shared.remaining.value += 1

    def report(self, consumer: SealedConsumer, *, now: float, force: bool = False) -> None:
        if force or now - self.reported >= _REPORT_EVERY:
            counts = dict(consumer.metrics)
            counts["handled"] = self.handled
            if self.given_back:
                counts[GIVEN_BACK] = self.given_back
            self.pipe.send(("report", counts))
            self.reported = now

    def loop(
        self, endpoint: Endpoint, consumer: SealedConsumer, sub: Subscription, handler: Handler
    ) -> None:
        shared, slot = self.shared, self.slot

        def watched(opened: Any) -> object:
            try:
                return handler(opened)
            except BaseException as exc:
                self.raised = exc
                raise

        deliveries: Iterator[Delivery] | None = None
        while not self.told_to_stop():
            if not self.left():
                time.sleep(0.05)  # all taken: the pool stops once the last is handled
                continue
            if deliveries is None:
                deliveries = sub.deliveries(idle_timeout=_TICK)
            delivery = next(deliveries, None)
            now = time.monotonic()
            if delivery is None:
                deliveries = None
                self.report(consumer, now=now)
                continue
            shared.last[slot] = now
            if self.told_to_stop():
                self.give_back(endpoint, delivery)
                break
            if not self.reserve():  # another worker took the last one meanwhile
                self.give_back(endpoint, delivery)
                continue
            shared.busy[slot] = 1
            handled = False
            try:
                handled = consumer.handle(delivery, watched)
            except Exception as exc:
                if exc is not self.raised:
                    raise  # the broker failed, not the handler: this worker is done
                _log.warning(
                    "pool worker %d: the handler raised %s; settled as the retry policy says",
                    slot, type(exc).__name__, exc_info=True,
                )  # fmt: skip
            finally:
                self.raised = None
                self.handled += handled
                self.settle_reservation(used=handled)
                shared.last[slot] = time.monotonic()
                shared.busy[slot] = 0
            self.report(consumer, now=time.monotonic())

    def give_back(self, endpoint: Endpoint, delivery: Delivery) -> None:
        """A delivery taken while stopping, or past ``count``, goes back unopened; if the
        broker cannot take it back now, it is left unsettled, and comes back when the
        subscription closes."""
        with contextlib.suppress(LetterlockError):
            endpoint.settle(delivery, Retry(delay=0.0))
            self.given_back += 1


def _work(spec: _Spec, slot: int, shared: _Shared, pipe: Connection) -> None:
    """A worker process: set up, wait for the start, consume until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when a terminal's ^C stops
    worker = _Consuming(spec, slot, shared, pipe)

    def on_term(signum: int, frame: FrameType | None) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    root = logging.getLogger("letterlock")
    root.setLevel(spec.log_level)
    root.addHandler(_PipeLog(pipe))
    root.propagate = False
    try:
        endpoint, consumer, subscription, handler = worker.setup()
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, LetterlockError):
            why += "\n" + "".join(traceback.format_exception(exc))
        pipe.send(("failed", why))
        os._exit(_SETUP_FAILED)
    try:
        pipe.send(("ready",))
        while not shared.go.wait(_TICK):
            if worker.told_to_stop():
                return
        worker.loop(endpoint, consumer, subscription, handler)
    finally:
        try:
            with contextlib.suppress(OSError):  # the pool may be gone
                worker.report(consumer, now=time.monotonic(), force=True)
        finally:
            subscription.close()
            endpoint.close()
            pipe.close()
