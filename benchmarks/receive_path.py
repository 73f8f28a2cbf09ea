"""CPU time per received message: the crypto floor, Opener.open, SealedConsumer.handle.

    PYTHONPATH=src .venv/bin/python benchmarks/receive_path.py [--messages 2000] [--rounds 7]
        [--rows floor open-memory ...]

What a broker benchmark's ``letterlock`` row pays on top of its ``plain+floor`` row, without
a broker: per message, CPU time (``time.process_time``) of

* ``floor``: one pyca ECDSA P-256 verification and one AES-256-GCM decryption of 1 KiB of
  pre-made data (what ``benchmarks/broker_*.py`` add per message in ``plain+floor``);
* ``open-memory``, ``open-sqlite``: a warm :class:`letterlock.Opener` (P-256, one recipient,
  1 KiB) opening and recording, with a memory or a SQLite replay store;
* ``claim-memory``, ``claim-sqlite``: what a consumer does with the opener: open without
  recording, then claim and finish the id;
* ``handle-null``: :meth:`letterlock.transports.SealedConsumer.handle` with a memory replay
  store and a broker whose settle does nothing (the consumer's own cost);
* ``handle-memory``: the same over :class:`letterlock.transports.memory.MemoryBroker`
  (deliveries leased before the clock starts, acked inside it).

Envelopes are sealed once by a warm :class:`letterlock.Sealer`; each round opens them with a
new opener and replay window (warmed with one other message first). Rows alternate over
rounds; each row shows its best round (CPU time is what a shared machine disturbs least, and
the best round the least disturbed) and its ratio to the floor (floor / row: 1.0 is the floor,
the broker benchmarks' target is 0.85).

Each item goes through its row's step in one ``map`` call from C, so an instruction count of the
steps alone, undisturbed by other work on the machine, is::

    PYTHONPATH=src valgrind --tool=callgrind --toggle-collect=map_next \
        .venv/bin/python benchmarks/receive_path.py --messages 200 --rounds 1 --rows open-memory

(the total ``Collected`` instructions divided by ``--messages`` is one message's; only the rows
named run, and ratios are printed when ``floor`` is one of them).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock.stores import SQLiteReplayStore
from letterlock.transports import SealedConsumer
from letterlock.transports.base import Delivery
from letterlock.transports.decide import Settlement
from letterlock.transports.memory import MemoryBroker

TOPIC = "bench.orders"
HOLDER = b"bench-consumer-1"
ROWS = (
    "floor",
    "open-memory",
    "open-sqlite",
    "claim-memory",
    "claim-sqlite",
    "handle-null",
    "handle-memory",
)


class _NullBroker:
    """A push broker whose settlements cost nothing: the consumer's own cost, alone."""

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> object:
        return None

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        pass

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        pass


Step = Callable[[Any], object]


def _floor(messages: int, size: int) -> Callable[[], tuple[Step, list[Any]]]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)
    ciphertext = aead.encrypt(nonce, os.urandom(size), None)
    signature = key.sign(ciphertext, ec.ECDSA(hashes.SHA256()))
    algorithm = ec.ECDSA(hashes.SHA256())
    verify, decrypt = public.verify, aead.decrypt

    def step(data: bytes) -> None:
        verify(signature, data, algorithm)
        decrypt(nonce, data, None)

    return lambda: (step, [ciphertext] * messages)


class _Setup:
    def __init__(self, messages: int, size: int, folder: Path) -> None:
        self.sender = letterlock.Identity.generate(letterlock.Suite.P256)
        self.reader = letterlock.Identity.generate(letterlock.Suite.P256)
        self.pins = letterlock.Pins()
        self.pins.pin("sender", self.sender.public)
        sealer = letterlock.Sealer(self.sender)
        payload = os.urandom(size)
        seal = sealer.seal
        self.bodies = [
            seal(payload, recipients=[self.reader.public], topic=TOPIC) for _ in range(messages + 1)
        ]
        self.folder = folder
        self.rounds = 0

    def opener(self, store: str) -> letterlock.Opener:
        """A new opener and window; warmed (decapsulation and labels cached) with body 0."""
        self.rounds += 1
        replay_store: letterlock.ReplayStore
        if store == "sqlite":
            replay_store = SQLiteReplayStore(self.folder / f"replay-{self.rounds}.db")
        else:
            replay_store = letterlock.MemoryReplayStore()
        window = letterlock.ReplayWindow(replay_store)
        opener = letterlock.Opener(self.reader, trust=self.pins, replay=window)
        opener.open(self.bodies[0], topic=TOPIC)
        return opener


def _open(setup: _Setup, store: str) -> Callable[[], tuple[Step, list[Any]]]:
    def prepare() -> tuple[Step, list[Any]]:
        open_ = setup.opener(store).open
        return partial(open_, topic=TOPIC), setup.bodies[1:]

    return prepare


def _claim(setup: _Setup, store: str) -> Callable[[], tuple[Step, list[Any]]]:
    def prepare() -> tuple[Step, list[Any]]:
        opener = setup.opener(store)
        open_, window = opener.open, opener.replay
        topics = letterlock.Topics.of(TOPIC)

        def step(body: bytes) -> None:
            now = time.time()
            opened = open_(body, topic=topics, now=now, record=False)
            key_id, message_id = opened.sender.key_id, opened.message_id
            window.claim(
                sender=key_id, message_id=message_id, created=opened.created, now=now,
                holder=HOLDER, until=now + 60,
            )  # fmt: skip
            window.finish(sender=key_id, message_id=message_id, holder=HOLDER)

        return step, setup.bodies[1:]

    return prepare


def _handle_null(setup: _Setup) -> Callable[[], tuple[Step, list[Any]]]:
    def prepare() -> tuple[Step, list[Any]]:
        opener = setup.opener("memory")
        consumer = SealedConsumer(_NullBroker(), "q", opener=opener, topics=TOPIC)
        deliveries = [
            Delivery(tag=str(n), queue="q", topic=TOPIC, body=body, attempts=1, ref=str(n))
            for n, body in enumerate(setup.bodies[1:])
        ]
        return partial(consumer.handle, handler=_handler), deliveries

    return prepare


def _handle_memory(setup: _Setup) -> Callable[[], tuple[Step, list[Any]]]:
    def prepare() -> tuple[Step, list[Any]]:
        opener = setup.opener("memory")
        broker = MemoryBroker(lease_seconds=3600)
        for body in setup.bodies[1:]:
            broker.put("q", TOPIC, body)
        deliveries = []
        while (delivery := broker.get("q")) is not None:
            deliveries.append(delivery)
        consumer = SealedConsumer(broker, "q", opener=opener, topics=TOPIC)
        return partial(consumer.handle, handler=_handler), deliveries

    return prepare


def _timed(prepare: Callable[[], tuple[Step, list[Any]]]) -> float:
    """CPU seconds of one round: every item through its step (map: one C call per item)."""
    step, items = prepare()
    gc.collect()
    start = time.process_time()
    deque(map(step, items), maxlen=0)
    return time.process_time() - start


def _handler(opened: letterlock.Opened) -> None:
    pass


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if r in args.rows]
    with tempfile.TemporaryDirectory() as folder:
        setup = _Setup(args.messages, args.size, Path(folder))
        runs: dict[str, Callable[[], tuple[Step, list[Any]]]] = {
            "floor": _floor(args.messages, args.size),
            "open-memory": _open(setup, "memory"),
            "open-sqlite": _open(setup, "sqlite"),
            "claim-memory": _claim(setup, "memory"),
            "claim-sqlite": _claim(setup, "sqlite"),
            "handle-null": _handle_null(setup),
            "handle-memory": _handle_memory(setup),
        }
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for row in rows:
                seconds = _timed(runs[row])
                best[row] = min(best.get(row, seconds), seconds)
    floor = best.get("floor")
    print(f"{'row':<14} {'us/msg':>8} {'floor/row':>9}   ({args.messages} x {args.size} B, "
          f"best of {args.rounds} rounds, process CPU time)")  # fmt: skip
    for row in rows:
        per = best[row] / args.messages * 1e6
        ratio = f"{floor / best[row]:9.2f}" if floor else f"{'-':>9}"
        print(f"{row:<14} {per:8.1f} {ratio}")


if __name__ == "__main__":
    main()
