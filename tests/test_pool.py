"""The consumer pool: worker processes share one group, and the application sees each message
once, through crashes, handler errors and stops.

Every test runs on each endpoint of :data:`test_endpoints.ENDPOINTS` (the spool here; broker
adapters join when they are added there), with a short broker lease (``lease=1``) and a short
claim lease, so a killed worker's message comes back within seconds. The workers' handler is
:func:`pool_support.record`, which leaves one file per message it took.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import pool_support
from letterlock import Opened, UsageError, hazmat
from letterlock.transports import Ack, DeadLetterReason, OnHandlerError, RetryPolicy
from letterlock.transports.pool import (
    ONE_CONSUMER_PER_GROUP,
    WORKER_FAILED,
    WORKER_REPLACED,
    ConsumerPool,
    PoolFailed,
    _Consuming,
)
from letterlock.transports.urls import connect
from services import require
from test_endpoints import CAST, ENDPOINTS, IDLE, Bench

LEASE = 1.0  #: the broker's lease and the consumers' claim lease, in seconds


@dataclass
class Setup:
    """One endpoint under test, the URL the workers connect to, and where they record."""

    bench: Bench
    url: str  #: with a short lease
    out: Path
    replay: Path

    def publish(self, *payloads: bytes) -> dict[bytes, bytes]:
        """Seal and publish each payload; the sealed bytes -> the payload."""
        sealed = {self.bench.seal(payload, "jobs"): payload for payload in payloads}
        for body in sealed:
            self.bench.endpoint.publish(self.bench.topic("jobs"), body)
        return sealed

    def only_duplicates_dead(self, sealed: Mapping[bytes, bytes]) -> None:
        """Nothing was dead-lettered but copies of messages the application saw: a broker may
        deliver a copy again after its ack (an ack lost as a connection closes), and the
        consumer refuses it as a replay."""
        seen = self.seen()
        for dead in self.bench.endpoint.dead_letters(self.bench.group):
            assert dead.body in sealed
            assert seen[sealed[dead.body]] == 1

    def pool(
        self,
        *,
        workers: int = 2,
        shared: bool = True,
        handler: str | None = None,
        **options: object,
    ) -> ConsumerPool:
        keys = {"alice": CAST.alice.public.to_bytes()}
        reader = hazmat.identity_to_private_bytes(CAST.bob)
        replay = str(self.replay) if shared else None
        return ConsumerPool(
            self.url, self.bench.topics("jobs"), group=self.bench.group,
            opener=functools.partial(pool_support.opener, reader, keys, replay),
            handler=handler or functools.partial(pool_support.record, str(self.out)),
            workers=workers, claim_lease=LEASE, **options,  # type: ignore[arg-type]
        )  # fmt: skip

    def seen(self) -> Counter[bytes]:
        return Counter(pool_support.seen(self.out))


def _pooled(name: str) -> bool:
    """Whether a pool of several workers serves this kind of endpoint. Not ZeroMQ (at most
    once: nothing comes back after a crash or a drain, as tests/test_endpoints.py asserts) and
    not MQTT (one consumer per group: several workers are refused, as
    ``test_what_goes_to_a_worker_must_pickle`` asserts)."""
    kind = ENDPOINTS[name]
    scheme = urlsplit(kind.url(Path("/nonexistent"))).scheme
    return kind.durable_groups and scheme not in ONE_CONSUMER_PER_GROUP


@pytest.fixture(params=sorted(filter(_pooled, ENDPOINTS)))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    kind = ENDPOINTS[request.param]
    if kind.service is not None:
        require(kind.service)
    url = kind.url(tmp_path)
    if "lease=" not in url:
        url += ("&" if "?" in url else "?") + f"lease={LEASE:g}"
    endpoint = connect(url)
    bench = Bench(endpoint, url=url)
    out = tmp_path / "out"
    out.mkdir()
    try:
        bench.endpoint.subscribe(bench.topics("jobs"), group=bench.group).close()  # the group
        yield Setup(bench, url, out, tmp_path / "replay.db")
    finally:
        try:
            for close in bench.closing:
                close()
            kind.cleanup(bench)
        finally:
            endpoint.close()


def when(condition: Callable[[], bool], action: Callable[[], object]) -> threading.Thread:
    """A thread that calls ``action`` once ``condition()`` holds (or after 30 s)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def when_seen(setup: Setup, count: int, action: Callable[[], object]) -> threading.Thread:
    """A thread that calls ``action`` once the workers recorded ``count`` messages."""
    return when(lambda: len(pool_support.seen(setup.out)) >= count, action)


def workers() -> list[int]:
    pids = [child.pid for child in multiprocessing.active_children()]
    return [pid for pid in pids if pid is not None]


def test_every_message_is_handled_once_across_the_workers(setup: Setup) -> None:
    payloads = [b"slow %d" % n for n in range(20)]  # slow: both workers get a share
    sealed = setup.publish(payloads[0])  # the rest once both listen (a broker may prefetch)
    thread = when_seen(setup, 1, lambda: sealed.update(setup.publish(*payloads[1:])))
    pool = setup.pool()
    assert pool.run(count=20) == 20
    thread.join()
    assert setup.seen() == Counter(payloads)
    assert len(pool_support.pids(setup.out)) == 2  # the broker spread them
    # one metrics view of both workers (a lease of 1 s may run out on a loaded machine: a
    # copy then waits for the claim, and the late ack is counted as a lost lease)
    metrics = pool.metrics
    assert metrics["acked"] + metrics.get("lease_lost", 0) == 20
    setup.only_duplicates_dead(sealed)


def test_a_worker_killed_in_its_handler_is_replaced_and_its_message_handled_once(
    setup: Setup,
) -> None:
    payloads = [b"die", *(b"job %d" % n for n in range(6))]
    setup.publish(*payloads)
    pool = setup.pool()
    assert pool.run(count=len(payloads)) == len(payloads)
    assert setup.seen() == Counter(payloads)  # "die" too, once, after its worker died
    metrics = pool.metrics
    assert metrics[WORKER_REPLACED] == 1
    assert metrics["acked"] == len(payloads)
    assert (out := setup.out / f"{b'die'.hex()}.first").exists(), out


def test_workers_that_keep_dying_fail_the_pool_loudly(setup: Setup) -> None:
    setup.publish(b"always-die")
    pool = setup.pool(workers=1, max_restarts=0)
    with pytest.raises(PoolFailed, match="died 1 times"):
        pool.run(idle_timeout=10)
    assert setup.seen() == Counter()


def counts_attempts(setup: Setup) -> bool:
    """Whether the broker counts deliveries (a probe message, taken and acked)."""
    bench = setup.bench
    subscription = bench.endpoint.subscribe(bench.topics("jobs"), group=bench.group)
    setup.publish(b"probe")
    probe = next(iter(subscription.deliveries(idle_timeout=IDLE)))
    bench.endpoint.settle(probe, Ack())
    subscription.close()
    return probe.attempts is not None


@pytest.mark.parametrize("choice", [OnHandlerError.DEAD_LETTER, OnHandlerError.RETRY])
def test_a_handler_that_raises_follows_the_retry_policy(
    setup: Setup, choice: OnHandlerError
) -> None:
    retried = choice is OnHandlerError.RETRY and counts_attempts(setup)
    setup.publish(b"fail", b"fail-once", b"ok")
    retry = RetryPolicy(max_attempts=3, delay=0.1, on_handler_error=choice)
    pool = setup.pool(retry=retry)
    handled = pool.run(idle_timeout=1.5)
    dead = setup.bench.endpoint.dead_letters(setup.bench.group)
    if not retried:  # each failure is dead-lettered at once (as where a broker cannot count)
        assert handled == 1
        assert setup.seen() == Counter([b"ok"])
        assert sorted(d.reason for d in dead) == [DeadLetterReason.HANDLER_ERROR.value] * 2
    else:  # retried: fail-once then works; fail runs out of attempts
        assert handled == 2
        assert setup.seen() == Counter([b"ok", b"fail-once"])
        assert [d.reason for d in dead] == [DeadLetterReason.HANDLER_ERROR.value]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_pool_and_nothing_is_lost_or_doubled(
    setup: Setup, signum: signal.Signals
) -> None:
    payloads = [b"slow %d" % n for n in range(12)]  # 0.2 s each
    sealed = setup.publish(*payloads)
    pool = setup.pool()

    def interrupt() -> None:
        if signum == signal.SIGINT:  # as a terminal's ^C: to the workers too, which ignore it
            for pid in workers():
                os.kill(pid, signum)
        os.kill(os.getpid(), signum)

    thread = when_seen(setup, 2, interrupt)
    first = pool.run()  # no count, no timeout: only the signal stops it
    thread.join()
    assert 2 <= first < 12
    assert sum(setup.seen().values()) == first  # each in-flight message finished and acked
    assert WORKER_FAILED not in pool.metrics
    assert WORKER_REPLACED not in pool.metrics
    assert pool.signalled == signum
    rest = setup.pool().run(count=12 - first, idle_timeout=5)
    assert first + rest == 12
    assert setup.seen() == Counter(payloads)
    setup.only_duplicates_dead(sealed)


@pytest.mark.parametrize("how", ["drain_timeout", "second signal"])
def test_a_drain_cut_short_kills_the_workers_and_their_messages_come_back(
    setup: Setup, how: str
) -> None:
    payloads = [b"slow 0", b"hang 1", b"slow 2", b"slow 3"]  # hang: 5 s, the first time
    setup.publish(*payloads)
    pool = setup.pool(workers=1, drain_timeout=0.05 if how == "drain_timeout" else 30)

    def interrupt() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        if how == "second signal":
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGTERM)

    hanging = setup.out / f"{b'hang 1'.hex()}.first"
    thread = when(hanging.exists, interrupt)  # "hang 1" is in its handler
    started = time.monotonic()
    assert pool.run() == 1
    assert time.monotonic() - started < 4.5  # "hang 1" was not waited for
    thread.join()
    assert setup.seen() == Counter([b"slow 0"])
    assert WORKER_FAILED not in pool.metrics  # the pool killed it: no failure of the worker
    assert setup.pool().run(count=3, idle_timeout=5) == 3  # hang 1 again, after the leases
    assert setup.seen() == Counter(payloads)


def test_a_worker_sent_sigterm_alone_drains_and_is_replaced(setup: Setup) -> None:
    payloads = [b"slow %d" % n for n in range(12)]
    setup.publish(*payloads)
    pool = setup.pool()
    thread = when_seen(setup, 2, lambda: os.kill(workers()[0], signal.SIGTERM))
    assert pool.run(count=12) == 12
    thread.join()
    assert setup.seen() == Counter(payloads)
    assert pool.metrics[WORKER_REPLACED] == 1


def test_count_is_exact_and_the_rest_waits(setup: Setup) -> None:
    payloads = [b"job %d" % n for n in range(10)]
    setup.publish(*payloads)
    assert setup.pool().run(count=4) == 4
    assert sum(setup.seen().values()) == 4
    assert setup.pool().run(count=6) == 6
    assert setup.seen() == Counter(payloads)


def test_stop_from_another_thread_drains(setup: Setup) -> None:
    setup.publish(*(b"slow %d" % n for n in range(10)))
    pool = setup.pool(workers=1)
    thread = when_seen(setup, 1, pool.stop)
    handled = pool.run()
    thread.join()
    assert 1 <= handled < 10
    assert sum(setup.seen().values()) == handled
    assert pool.signalled is None
    assert pool.run(idle_timeout=1) == 10 - handled  # the same pool runs again, and counts anew
    assert setup.seen() == Counter(b"slow %d" % n for n in range(10))


def test_an_idle_pool_stops_after_idle_timeout(setup: Setup) -> None:
    pool = setup.pool()
    assert pool.run(idle_timeout=0.5) == 0
    assert pool.elapsed < 3


def test_workers_logs_reach_the_parent(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    forged = setup.bench.seal(b"forged", "jobs", sender=CAST.mallory)
    setup.bench.endpoint.publish(setup.bench.topic("jobs"), forged)
    with caplog.at_level(logging.INFO, logger="letterlock"):
        assert setup.pool(retry=RetryPolicy(max_attempts=1)).run(idle_timeout=1) == 0
    refusals = [r for r in caplog.records if r.name == "letterlock.transports.consumer"]
    assert any("unknown_sender" in r.getMessage() for r in refusals)
    assert all(r.process != os.getpid() for r in refusals)  # logged by a worker


def test_several_workers_need_a_shared_replay_store(setup: Setup) -> None:
    with pytest.raises(PoolFailed, match="replay store they share"):
        setup.pool(shared=False).run(idle_timeout=1)
    setup.publish(b"ok")  # one worker may keep its window in memory
    assert setup.pool(workers=1, shared=False).run(count=1) == 1


def test_a_handler_that_cannot_be_imported_fails_the_pool_at_start(setup: Setup) -> None:
    pool = setup.pool(handler="pool_support:no_such_handler")
    with pytest.raises(PoolFailed, match="could not start: UsageError: cannot import"):
        pool.run(idle_timeout=1)


def test_no_worker_consumes_before_all_have_started(setup: Setup, tmp_path: Path) -> None:
    setup.publish(*(b"job %d" % n for n in range(5)))
    keys = {"alice": CAST.alice.public.to_bytes()}
    reader = hazmat.identity_to_private_bytes(CAST.bob)
    pool = ConsumerPool(
        setup.url, setup.bench.topics("jobs"), group=setup.bench.group, workers=2,
        opener=functools.partial(
            pool_support.opener_once, str(tmp_path), reader, keys, str(setup.replay)
        ),
        handler=functools.partial(pool_support.record, str(setup.out)),
    )  # fmt: skip
    with pytest.raises(PoolFailed, match="cannot be built"):
        pool.run(idle_timeout=5)
    assert setup.seen() == Counter()  # the worker that started waited for the other
    assert setup.pool().run(count=5) == 5


def _inline(opened: Opened) -> None:
    """A handler the workers can import by reference."""


def test_what_goes_to_a_worker_must_pickle(setup: Setup) -> None:
    with pytest.raises(UsageError, match="module:function"):
        ConsumerPool(setup.url, "#", group="g", opener="pool_support:opener", handler=lambda o: o)
    with pytest.raises(UsageError, match="module:function"):
        ConsumerPool(setup.url, "#", group="g", opener="pool_support", handler=_inline)
    with pytest.raises(UsageError, match="RetryPolicy"):
        ConsumerPool(setup.url, "#", group="g", opener="m:f", handler=_inline, retry=3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="one consumer per group"):
        ConsumerPool("mqtt://127.0.0.1:1883", "#", group="g", opener="m:f", handler=_inline)
    ConsumerPool("mqtt://127.0.0.1:1883", "#", group="g", opener="m:f", handler=_inline, workers=1)
    with pytest.raises(UsageError, match="workers"):
        ConsumerPool(setup.url, "#", group="g", opener="m:f", handler=_inline, workers=0)


def test_a_delivery_taken_while_stopping_goes_back_unopened(setup: Setup) -> None:
    setup.publish(b"late")
    bench = setup.bench
    subscription = bench.endpoint.subscribe(bench.topics("jobs"), group=bench.group)
    delivery = next(iter(subscription.deliveries(idle_timeout=IDLE)))
    worker = _Consuming.__new__(_Consuming)  # only its give_back
    worker.given_back = 0
    worker.give_back(bench.endpoint, delivery)
    if worker.given_back:  # taken back: delivered again now, not after the lease
        again = next(iter(subscription.deliveries(idle_timeout=LEASE / 2)), None)
        assert again is not None
        assert again.body == delivery.body
    subscription.close()


#: A pool in a process of its own, serving string patterns (read in the broker's dialect):
#: url, pattern, group, out, replay, bob's private key (hex), alice's public key (hex).
_POOL = """
import functools, sys
import pool_support
from letterlock.transports.pool import ConsumerPool
url, pattern, group, out, replay, reader, alice = sys.argv[1:]
opener = functools.partial(
    pool_support.opener, bytes.fromhex(reader), {"alice": bytes.fromhex(alice)}, replay
)
handler = functools.partial(pool_support.record, out)
ConsumerPool(url, pattern, group=group, opener=opener, handler=handler, workers=2).run()
"""


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited, not yet reaped by its new parent


def test_workers_do_not_outlive_a_killed_pool(setup: Setup) -> None:
    setup.publish(*(b"slow %d" % n for n in range(40)))
    keys = (hazmat.identity_to_private_bytes(CAST.bob).hex(), CAST.alice.public.to_bytes().hex())
    arguments = (setup.url, setup.bench.topic("jobs"), setup.bench.group, str(setup.out))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    pool = subprocess.Popen(
        [sys.executable, "-c", _POOL, *arguments, str(setup.replay), *keys], env=environment
    )
    try:
        when_seen(setup, 2, lambda: None).join()
        workers = {int(pid) for pid in pool_support.pids(setup.out)}
        assert workers
    finally:
        pool.kill()
        pool.wait()
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in workers)
    handled = sum(setup.seen().values())
    time.sleep(0.5)
    assert sum(setup.seen().values()) == handled  # nobody consumes any more
