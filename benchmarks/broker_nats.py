"""Messages per second through NATS JetStream, end to end: plain nats-py, plain + the raw crypto
floor, and letterlock, in one run.

    .venv/bin/python benchmarks/broker_nats.py [--messages 10000] [--size 1024] [--rounds 3]

Each row consumes ``--messages`` messages from a fresh stream (interest retention, one durable
pull consumer, explicit acks, fetched in batches of 256) while a publisher in its own process
publishes them (``publish_async``, pipelined; every body is made before the clock starts, so
the publisher is the same for every row):

* ``plain``: nats-py ``psub.fetch`` + ``msg.ack()``, payload as is;
* ``plain+floor``: the same consumer code, plus per message one pyca ECDSA P-256 verify and one
  AES-256-GCM decrypt of pre-made data of the message's size: the least any sign-then-encrypt
  scheme costs;
* ``letterlock``: sealed with a warm :class:`letterlock.Sealer` (P-256, one recipient),
  consumed through :class:`letterlock.transports.nats.NatsBroker` and
  :class:`letterlock.transports.AsyncSealedConsumer` (open, claim in the replay window, hand
  over, ack).

The rate is messages divided by the time from the publisher's start to the last ack; rounds
alternate the rows and the median is reported, with letterlock / plain+floor (target >= 0.85),
and each row's consumer CPU time per message (steadier than wall time on a busy machine). Needs
NATS with JetStream on 127.0.0.1:4222. :func:`run` is one round, for ``benchmarks/brokers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import time
from multiprocessing.connection import Connection

import nats
import nats.errors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock import hazmat
from letterlock.transports import AsyncSealedConsumer
from letterlock.transports.nats import NatsBroker

URL = "nats://127.0.0.1:4222"
BATCH = 256
ROWS = ("plain", "plain+floor", "letterlock")


def _publisher(subject: str, count: int, size: int, keys: tuple[bytes, bytes] | None,
               pipe: Connection) -> None:  # fmt: skip
    """Make every body first, say so, wait for "go", then publish them all, pipelined."""
    payload = os.urandom(size)
    if keys is None:
        bodies = [payload] * count
    else:
        sealer = letterlock.Sealer(hazmat.identity_from_private_bytes(keys[0]))
        reader = hazmat.public_identity_from_bytes(keys[1])
        bodies = [sealer.seal(payload, recipients=[reader], topic=subject) for _ in range(count)]

    async def publish() -> None:
        nc = await nats.connect(URL)
        js = nc.jetstream()
        pipe.send("ready")
        pipe.recv()
        for start in range(0, count, 1000):
            acks = [await js.publish_async(subject, b) for b in bodies[start : start + 1000]]
            await asyncio.gather(*acks)
        await nc.close()

    asyncio.run(publish())


class _Floor:
    """One ECDSA P-256 verify and one AES-256-GCM decrypt of pre-made data, per message."""

    def __init__(self, size: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.public = key.public_key()
        self.signed = os.urandom(size + 200)
        self.signature = key.sign(self.signed, ec.ECDSA(hashes.SHA256()))
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.nonce = os.urandom(12)
        self.sealed = self.aead.encrypt(self.nonce, os.urandom(size), b"header")

    def __call__(self) -> None:
        self.public.verify(self.signature, self.signed, ec.ECDSA(hashes.SHA256()))
        self.aead.decrypt(self.nonce, self.sealed, b"header")


async def _round(row: str, count: int, size: int) -> tuple[float, float]:
    """(msgs/s, CPU seconds per message of this consuming process) of one row."""
    stream = f"bench-{secrets.token_hex(4)}"
    subject = f"{stream}.orders"
    group = "bench"
    try:
        nc = await asyncio.wait_for(nats.connect(URL), 5)
    except (TimeoutError, nats.errors.Error) as exc:
        raise ConnectionError(f"NATS does not answer on {URL}: {exc!r}") from exc
    js = nc.jetstream()
    broker = NatsBroker(js, dead=f"{stream}-dead", batch=BATCH, fetch_timeout=1.0, lease=60)
    topics = letterlock.Topics.nats(subject)
    psub = await broker.subscribe(topics, group=group)
    keys = None
    consumer = None
    if row == "letterlock":
        writer = letterlock.Identity.generate(letterlock.Suite.P256)
        reader = letterlock.Identity.generate(letterlock.Suite.P256)
        keys = (hazmat.identity_to_private_bytes(writer), reader.public.to_bytes())
        pins = letterlock.Pins()
        pins.pin("producer", writer.public)
        opener = letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow())
        consumer = AsyncSealedConsumer(broker, group, opener=opener, topics=topics)
    floor = _Floor(size) if row == "plain+floor" else None
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    worker = context.Process(target=_publisher, args=(subject, count, size, keys, child))
    worker.start()
    assert parent.recv() == "ready"
    received = 0
    cpu = time.process_time()
    started = time.perf_counter()
    parent.send("go")
    try:
        if consumer is not None:
            while received < count:  # as the plain rows: stop at the last message, not after
                # a fetch that waited fetch_timeout in vain for one more
                received += await consumer.poll(lambda opened: None, max_messages=count - received)
        else:
            while received < count:
                try:
                    msgs = await psub.fetch(BATCH, timeout=1.0)
                except TimeoutError:
                    continue
                for msg in msgs:
                    if floor is not None:
                        floor()
                    await msg.ack()
                    received += 1
        finished = time.perf_counter()
        cpu = time.process_time() - cpu
    finally:
        worker.join()
        await nc.flush()
        for name in (stream, f"{stream}-dead"):
            await js.delete_stream(name)
        await nc.close()
    return count / (finished - started), cpu / count


def run(messages: int, size: int) -> dict[str, float]:
    """One round: each row's msgs/s, and ``<row> cpu_us`` (the consumer's CPU microseconds per
    message). ConnectionError if NATS does not answer."""
    result: dict[str, float] = {}
    for row in ROWS:
        rate, cpu = asyncio.run(_round(row, messages, size))
        result[row] = rate
        result[f"{row} cpu_us"] = cpu * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for key, value in run(args.messages, args.size).items():
            samples.setdefault(key, []).append(value)
    result = {key: statistics.median(values) for key, values in samples.items()}
    ratio = result["letterlock"] / result["plain+floor"]
    cpu_ratio = result["plain+floor cpu_us"] / result["letterlock cpu_us"]
    print(
        f"NATS JetStream via nats-py, {args.messages} messages of {args.size} B, P-256, "
        f"median of {args.rounds} rounds, {os.cpu_count()} cores"
    )
    for row in ROWS:
        print(
            f"{row:<11} {result[row]:>9,.0f} msg/s  ({result[row] / result['plain']:.2f}x plain)"
            f"  consumer CPU {result[row + ' cpu_us']:>6,.0f} us/msg"
        )
    verdict = "PASS" if ratio >= 0.85 else "MISS"
    print(f"letterlock / plain+floor = {ratio:.2f}  (target >= 0.85: {verdict})")
    print(f"by consumer CPU per message, plain+floor / letterlock = {cpu_ratio:.2f}")


if __name__ == "__main__":
    main()
