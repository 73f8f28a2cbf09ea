"""What every ``benchmarks/broker_*.py`` shares: the rows, the crypto floor, the receiver's opener
(and its replay store), and the report of medians.

Rows, each consumed by the same kind of consumer from the same kind of publisher:

* ``plain``: the broker's client library alone;
* ``plain+floor``: the same consumer code, plus per message :class:`Floor`;
* ``letterlock``: the broker's letterlock endpoint and consumer, the receiver's replay window in
  memory (:class:`letterlock.MemoryReplayStore`): like for like with the plain rows, which keep
  no record of what they handled either;
* ``letterlock+sqlite`` (with ``--durable``): the same, with the replay store
  ``letterlock listen`` keeps by default, a :class:`letterlock.SQLiteReplayStore` file on disk
  (``--store-dir``; a claim and a finish per message, each a ``synchronous=FULL`` commit, so an
  fsync each): the whole product's cost, which the plain rows do not pay.

A row's rate is messages over the time from the publisher's start to the last ack; beside it,
the consuming process's CPU time per message (``time.process_time``: what a machine shared with
other work disturbs least). Ratios are ``letterlock / plain+floor`` by rate (the issue's target
is 0.85) and ``plain+floor / letterlock`` by consumer CPU per message.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock import hazmat

PLAIN, FLOOR, LETTERLOCK, DURABLE = "plain", "plain+floor", "letterlock", "letterlock+sqlite"
ROWS = (PLAIN, FLOOR, LETTERLOCK)
TARGET = 0.85
#: Where ``letterlock+sqlite`` keeps its replay store files (a folder on disk, as a user's home).
STORE_DIR = Path(tempfile.gettempdir())

Run = Callable[..., dict[str, float]]


class Floor:
    """The least any signed, encrypted message costs to open, on pre-made data: one pyca ECDSA
    P-256 verification of a signature over the ciphertext, and one AES-256-GCM decryption of
    ``size`` bytes (the suite p256's algorithms, as letterlock's ``_crypto`` calls them)."""

    def __init__(self, size: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self._algorithm = ec.ECDSA(hashes.SHA256())
        self._public = key.public_key()
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._nonce = os.urandom(12)
        self._ciphertext = self._aead.encrypt(self._nonce, os.urandom(size), None)
        self._signature = key.sign(self._ciphertext, self._algorithm)

    def __call__(self) -> bytes:
        """Verify (InvalidSignature if it did not: it always does) and decrypt."""
        self._public.verify(self._signature, self._ciphertext, self._algorithm)
        return self._aead.decrypt(self._nonce, self._ciphertext, None)


def bodies(count: int, size: int, topic: str, keys: tuple[bytes, bytes] | None) -> list[bytes]:
    """What a publisher sends: ``count`` copies of a random payload of ``size`` bytes, or with
    ``keys`` (the sender's private key bytes, the reader's public key bytes) that payload
    sealed for the reader on ``topic`` by a warm :class:`letterlock.Sealer` (P-256, one
    recipient), made before the clock starts: the floor row does no sender-side work either."""
    payload = os.urandom(size)
    if keys is None:
        return [payload] * count
    sealer = letterlock.Sealer(hazmat.identity_from_private_bytes(keys[0]))
    reader = hazmat.public_identity_from_bytes(keys[1])
    return [sealer.seal(payload, recipients=[reader], topic=topic) for _ in range(count)]


def key_pair() -> tuple[letterlock.Identity, letterlock.Identity, tuple[bytes, bytes]]:
    """A letterlock row's sender and reader (P-256), and the keys its publisher seals with."""
    sender = letterlock.Identity.generate(letterlock.Suite.P256)
    reader = letterlock.Identity.generate(letterlock.Suite.P256)
    return sender, reader, (hazmat.identity_to_private_bytes(sender), reader.public.to_bytes())


def forked(target: Callable[..., None], **kwargs: Any) -> tuple[BaseProcess, Event]:
    """Start ``target(**kwargs, ready=, go=)`` in a forked process and wait until it has set
    ``ready`` (it has made what it sends); it starts sending once ``go`` is set."""
    context = multiprocessing.get_context("fork")
    ready, go = context.Event(), context.Event()
    process = context.Process(target=target, kwargs={**kwargs, "ready": ready, "go": go})
    process.start()
    if not ready.wait(600):
        process.kill()
        raise SystemExit("publisher: not ready in 600 s")
    return process, go


def floor_for(row: str, size: int) -> Floor | None:
    """The floor's work for a plain row: ``plain+floor`` does it, ``plain`` does not."""
    return Floor(size) if row == FLOOR else None


def opener(
    reader: letterlock.Identity, sender: letterlock.PublicIdentity, row: str
) -> letterlock.Opener:
    """The receiver of a letterlock row: ``sender`` pinned, a warm Opener, the row's replay
    store (memory, or with ``letterlock+sqlite`` a fresh SQLite file in :data:`STORE_DIR`)."""
    pins = letterlock.Pins()
    pins.pin("producer", sender)
    store: letterlock.ReplayStore = letterlock.MemoryReplayStore()
    if row == DURABLE:
        handle, path = tempfile.mkstemp(prefix="ll-bench-replay-", suffix=".db", dir=STORE_DIR)
        os.close(handle)
        os.unlink(path)  # the store creates its file (and refuses a foreign one)
        store = letterlock.SQLiteReplayStore(path)
    return letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow(store))


def discard(receiver: letterlock.Opener) -> None:
    """Close a row's replay store and delete its file, if it has one."""
    store = receiver.replay.store
    if isinstance(store, letterlock.SQLiteReplayStore):
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)


def rows(durable: bool) -> tuple[str, ...]:
    """The rows of a run: :data:`ROWS`, and ``letterlock+sqlite`` if ``durable``."""
    return (*ROWS, DURABLE) if durable else ROWS


def collect(durable: bool, measure: Callable[[str], tuple[float, float]]) -> dict[str, float]:
    """One round: ``measure(row)`` is (msgs/s, consumer CPU microseconds per message) of each
    row, one after another; the result has each row's rate and ``<row> cpu_us``."""
    result = {}
    for row in rows(durable):
        result[row], result[f"{row} cpu_us"] = measure(row)
    return result


def medians(rounds: Iterable[dict[str, float]]) -> dict[str, float]:
    """The median of every key over the rounds that have it."""
    samples: dict[str, list[float]] = {}
    for result in rounds:
        for key, value in result.items():
            samples.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in samples.items()}


def verdicts(result: dict[str, float]) -> tuple[float, float | None]:
    """``letterlock / plain+floor`` by rate, and ``plain+floor / letterlock`` by consumer CPU
    per message (None if the broker's benchmark does not measure it)."""
    by_rate = result[LETTERLOCK] / result[FLOOR]
    cpu = (f"{FLOOR} cpu_us", f"{LETTERLOCK} cpu_us")
    by_cpu = result[cpu[0]] / result[cpu[1]] if all(k in result for k in cpu) else None
    return by_rate, by_cpu


def names(result: dict[str, float]) -> list[str]:
    """The rows of a round's result, in order (not their ``cpu_us`` keys nor a ``ratio``)."""
    return [key for key in result if not key.endswith(" cpu_us") and key != "ratio"]


def report(title: str, rounds: Sequence[dict[str, float]]) -> None:
    """Print each row's median rate, its rounds and its consumer CPU, then the ratios."""
    result = medians(rounds)
    print(f"{title}, median of {len(rounds)} rounds, {os.cpu_count()} cores")
    for row in names(rounds[0]):
        shown = ", ".join(f"{r[row]:,.0f}" for r in rounds if row in r)
        cpu = result.get(f"{row} cpu_us")
        used = "" if cpu is None else f"   consumer CPU {cpu:>6,.0f} us/msg"
        print(f"{row:<21} {result[row]:>9,.0f} msg/s{used}   (rounds: {shown})")
    by_rate, by_cpu = verdicts(result)
    verdict = "PASS" if by_rate >= TARGET else "MISS"
    print(f"letterlock / (plain+floor) = {by_rate:.2f}  (target >= {TARGET}: {verdict})")
    if by_cpu is not None:
        print(f"by consumer CPU per message, plain+floor / letterlock = {by_cpu:.2f}")


_COMMON = frozenset({"messages", "size", "rounds", "durable", "store_dir"})


def main(
    doc: str | None,
    run: Run,
    title: str,
    *,
    messages: int = 5000,
    size: int = 1024,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """A broker benchmark's command line: ``--messages``, ``--size``, ``--rounds``,
    ``--durable``, ``--store-dir`` and the broker's own ``options``, each passed to ``run``
    by its name (``run(messages, size, durable=..., <option>=...)``), once per round."""
    global STORE_DIR  # noqa: PLW0603 - one setting of the process, read by opener()
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=messages)
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--durable", action="store_true",
        help="a row letterlock+sqlite: the replay store on disk, as `letterlock listen` keeps it",
    )  # fmt: skip
    parser.add_argument("--store-dir", type=Path, default=STORE_DIR, help="for --durable")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    STORE_DIR = args.store_dir
    extra = {key: value for key, value in vars(args).items() if key not in _COMMON}
    rounds = [
        run(args.messages, args.size, durable=args.durable, **extra) for _ in range(args.rounds)
    ]
    report(f"{title}, {args.messages} messages of {args.size} B", rounds)
    return args
