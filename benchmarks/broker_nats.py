"""Messages per second through NATS JetStream, end to end: plain nats-py, plain + the raw crypto
floor, and letterlock, in one run.

    .venv/bin/python benchmarks/broker_nats.py [--messages 10000] [--size 1024] [--rounds 3]
        [--durable [--store-dir DIR]]

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
Rows, ``--durable`` (a row ``letterlock+sqlite``: the replay store on disk, as ``letterlock
listen`` keeps it) and the report: ``benchmarks/broker_common.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time
from multiprocessing.connection import Connection

import broker_common as bench
import nats
import nats.errors

import letterlock
from letterlock.transports import AsyncSealedConsumer
from letterlock.transports.nats import NatsBroker

URL = "nats://127.0.0.1:4222"
BATCH = 256


def _publisher(subject: str, count: int, size: int, keys: tuple[bytes, bytes] | None,
               pipe: Connection) -> None:  # fmt: skip
    """Make every body first, say so, wait for "go", then publish them all, pipelined."""
    sent = bench.bodies(count, size, subject, keys)

    async def publish() -> None:
        nc = await nats.connect(URL)
        js = nc.jetstream()
        pipe.send("ready")
        pipe.recv()
        for start in range(0, count, 1000):
            acks = [await js.publish_async(subject, b) for b in sent[start : start + 1000]]
            await asyncio.gather(*acks)
        await nc.close()

    asyncio.run(publish())


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
    keys = consumer = receiver = None
    if row.startswith(bench.LETTERLOCK):
        writer, reader, keys = bench.key_pair()
        receiver = bench.opener(reader, writer.public, row)
        consumer = AsyncSealedConsumer(broker, group, opener=receiver, topics=topics)
    floor = bench.floor_for(row, size)
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
        if receiver is not None:
            bench.discard(receiver)
        worker.join()
        await nc.flush()
        for name in (stream, f"{stream}-dead"):
            await js.delete_stream(name)
        await nc.close()
    return count / (finished - started), cpu / count * 1e6


def run(messages: int, size: int, *, durable: bool = False) -> dict[str, float]:
    """One round: each row's msgs/s, and ``<row> cpu_us`` (the consumer's CPU microseconds per
    message). ConnectionError if NATS does not answer."""
    return bench.collect(durable, lambda row: asyncio.run(_round(row, messages, size)))


if __name__ == "__main__":
    bench.main(__doc__, run, "NATS JetStream via nats-py, P-256, one consumer", messages=10_000)
