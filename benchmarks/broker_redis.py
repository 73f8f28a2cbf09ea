"""Messages per second through Redis Streams: plain redis-py, plus the crypto floor, letterlock.

    PYTHONPATH=src .venv/bin/python benchmarks/broker_redis.py [--messages 5000] [--size 1024]
        [--rounds 3] [--durable [--store-dir DIR]]

Three rows in one run, each on a fresh stream and consumer group, the publisher in its own
process (``XADD`` one entry at a time) while this process consumes:

* ``plain``: ``XREADGROUP`` (``COUNT 16``, as the endpoint reads) and one ``XACK`` per entry;
* ``plain+floor``: the same consumer code, plus per entry one pyca ECDSA P-256 verification and one
  AES-256-GCM decryption of pre-made data: the least any signed, encrypted message costs;
* ``letterlock``: a warm :class:`letterlock.Sealer` seals each payload (P-256, one recipient;
  before the clock starts, as the floor row adds the consumer's crypto only: a publisher
  sealing live would take CPU from the consumer on a small machine, which no other row pays)
  and publishes through :class:`~letterlock.transports.redis.RedisEndpoint`; this process
  consumes through its subscription and a :class:`~letterlock.transports.SealedConsumer`
  (open, claim in a memory replay window, handler, checked ``XACK`` by script).

A rate is messages divided by the time from the publisher's start to the last ack. The ratio
is letterlock / plain+floor (target >= 0.85). Beside each rate: the consumer process's CPU time per
message, which a machine shared with other work disturbs far less than the rate. Rows
alternate over ``--rounds``; medians are printed.
Needs Redis on 127.0.0.1:6379.
Rows, ``--durable`` (a row ``letterlock+sqlite``: the replay store on disk, as ``letterlock
listen`` keeps it) and the report: ``benchmarks/broker_common.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any, cast

import broker_common as bench
import redis

import letterlock
from letterlock.transports import SealedConsumer
from letterlock.transports.redis import DEFAULT_BATCH, RedisEndpoint

URL = "redis://127.0.0.1:6379/0"
TOPIC = "bench.orders"


def _publish(
    *, stream: str, messages: int, size: int, keys: tuple[bytes, bytes] | None, ready: Event,
    go: Event,
) -> None:  # fmt: skip
    """The publisher process: ``messages`` entries (sealed with ``keys``, for a letterlock row,
    and then sent by the letterlock endpoint)."""
    sent = bench.bodies(messages, size, TOPIC, keys)
    if keys is not None:
        endpoint = RedisEndpoint.from_url(f"{URL}?stream={stream}")
        ready.set()
        go.wait()
        for body in sent:
            endpoint.publish(TOPIC, body)
        endpoint.close()
        return
    client = redis.Redis.from_url(URL)
    ready.set()
    go.wait()
    for body in sent:
        client.xadd(stream, {"topic": TOPIC, "body": body})
    client.close()


def _consume_plain(stream: str, messages: int, work: Callable[[], object] | None) -> float:
    client = redis.Redis.from_url(URL)
    seen = 0
    while seen < messages:
        got = client.xreadgroup("g", "c", {stream: ">"}, count=DEFAULT_BATCH, block=10_000)
        if not got:
            raise SystemExit("consumer: no entry for 10 s")
        for entry_id, _fields in cast(list[Any], got)[0][1]:
            if work is not None:
                work()
            client.xack(stream, "g", entry_id)
            seen += 1
    finished = time.time()
    client.close()
    return finished


def _consume_letterlock(
    endpoint: RedisEndpoint, subscription: Any, messages: int, receiver: letterlock.Opener
) -> float:
    consumer = SealedConsumer(endpoint, "g", opener=receiver, topics=TOPIC)
    seen = 0
    for delivery in subscription.deliveries(idle_timeout=10):
        seen += consumer.handle(delivery, lambda opened: None)
        if seen == messages:
            return time.time()
    raise SystemExit(f"consumer: {seen} of {messages} handled; metrics {consumer.metrics}")


def one_row(row: str, messages: int, size: int) -> tuple[float, float]:
    """Messages per second, and the consumer's CPU microseconds per message, for one row
    (a fresh stream, deleted afterwards)."""
    stream = f"ll-bench-{os.urandom(4).hex()}"
    endpoint = RedisEndpoint.from_url(f"{URL}?stream={stream}")
    subscription = endpoint.subscribe(letterlock.Topics(TOPIC), group="g")
    receiver = keys = None
    if row.startswith(bench.LETTERLOCK):
        sender, reader, keys = bench.key_pair()
        receiver = bench.opener(reader, sender.public, row)
    work = bench.floor_for(row, size)
    publisher, go = bench.forked(_publish, stream=stream, messages=messages, size=size, keys=keys)
    started, cpu = time.time(), time.process_time()
    go.set()
    try:
        if receiver is not None:
            finished = _consume_letterlock(endpoint, subscription, messages, receiver)
        else:
            finished = _consume_plain(stream, messages, work)
    finally:
        if receiver is not None:
            bench.discard(receiver)
        publisher.join()
        subscription.close()
        endpoint.client.delete(stream, endpoint.dead_stream("g"))
        endpoint.close()
    cpu = time.process_time() - cpu  # the consumer's, ack or settle included
    return messages / (finished - started), cpu / messages * 1e6


def run(messages: int, size: int, *, durable: bool = False) -> dict[str, float]:
    """One round: each row's msgs/s, and ``<row> cpu_us`` (the consumer's CPU microseconds
    per message: steadier where the machine is shared). For ``benchmarks/brokers.py``;
    ConnectionError if Redis does not answer."""
    probe = redis.Redis.from_url(URL, socket_connect_timeout=2)
    try:
        probe.ping()
    except redis.exceptions.ConnectionError as exc:
        raise ConnectionError(f"Redis does not answer at {URL}: {exc}") from exc
    finally:
        probe.close()
    return bench.collect(durable, lambda row: one_row(row, messages, size))


if __name__ == "__main__":
    bench.main(__doc__, run, "Redis Streams via redis-py, P-256, one consumer")
