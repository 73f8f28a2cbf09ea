"""Messages per second through Redis Streams: plain redis-py, plus the crypto floor, letterlock.

    PYTHONPATH=src .venv/bin/python benchmarks/broker_redis.py [--messages 5000] [--size 1024]
        [--rounds 3]

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
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any, cast

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock.transports import SealedConsumer
from letterlock.transports.redis import DEFAULT_BATCH, RedisEndpoint

URL = "redis://127.0.0.1:6379/0"
TOPIC = "bench.orders"
ROWS = ("plain", "plain+floor", "letterlock")


def _floor() -> Callable[[], None]:
    """One ECDSA P-256 verification and one AES-256-GCM decryption of pre-made data."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)
    ciphertext = aead.encrypt(nonce, os.urandom(1024), None)
    signature = key.sign(ciphertext, ec.ECDSA(hashes.SHA256()))
    algorithm = ec.ECDSA(hashes.SHA256())

    def work() -> None:
        public.verify(signature, ciphertext, algorithm)
        aead.decrypt(nonce, ciphertext, None)

    return work


def _publish(
    *,
    stream: str,
    row: str,
    messages: int,
    size: int,
    keys: tuple[Any, Any],
    ready: Event,
    go: Event,
) -> None:
    """The publisher process: ``messages`` entries, sealed for the letterlock row."""
    payload = os.urandom(size)
    if row == "letterlock":
        sender, reader = keys
        sealer = letterlock.Sealer(sender)
        bodies = [sealer.seal(payload, recipients=[reader], topic=TOPIC) for _ in range(messages)]
        endpoint = RedisEndpoint.from_url(f"{URL}?stream={stream}")
        ready.set()
        go.wait()
        for body in bodies:
            endpoint.publish(TOPIC, body)
        endpoint.close()
        return
    ready.set()
    go.wait()
    client = redis.Redis.from_url(URL)
    for _ in range(messages):
        client.xadd(stream, {"topic": TOPIC, "body": payload})
    client.close()


def _consume_plain(stream: str, messages: int, work: Callable[[], None] | None) -> float:
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
    endpoint: RedisEndpoint, subscription: Any, messages: int, reader: letterlock.Identity,
    sender: letterlock.PublicIdentity,
) -> float:  # fmt: skip
    pins = letterlock.Pins()
    pins.pin("producer", sender)
    opener = letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow())
    consumer = SealedConsumer(endpoint, "g", opener=opener, topics=TOPIC)
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
    sender, reader = (letterlock.Identity.generate(letterlock.Suite.P256) for _ in range(2))
    endpoint = RedisEndpoint.from_url(f"{URL}?stream={stream}")
    subscription = endpoint.subscribe(letterlock.Topics(TOPIC), group="g")
    context = multiprocessing.get_context("fork")
    ready, go = context.Event(), context.Event()
    keys = (sender, reader.public)
    publisher = context.Process(
        target=_publish,
        kwargs={"stream": stream, "row": row, "messages": messages, "size": size, "keys": keys,
                "ready": ready, "go": go},
    )  # fmt: skip
    publisher.start()
    if not ready.wait(600):  # the child is up, and has sealed what it sends
        raise SystemExit("publisher: not ready in 600 s")
    started, cpu = time.time(), time.process_time()
    go.set()
    try:
        if row == "letterlock":
            finished = _consume_letterlock(endpoint, subscription, messages, reader, sender.public)
        else:
            finished = _consume_plain(stream, messages, _floor() if row == "plain+floor" else None)
    finally:
        publisher.join()
        subscription.close()
        endpoint.client.delete(stream, endpoint.dead_stream("g"))
        endpoint.close()
    cpu = time.process_time() - cpu  # the consumer's, ack or settle included
    return messages / (finished - started), cpu / messages * 1e6


def run(messages: int, size: int) -> dict[str, float]:
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
    measured = {row: one_row(row, messages, size) for row in ROWS}
    rates = {row: rate for row, (rate, _cpu) in measured.items()}
    cpu = {f"{row} cpu_us": cpu for row, (_rate, cpu) in measured.items()}
    return {**rates, **cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = [run(args.messages, args.size) for _ in range(args.rounds)]
    print(
        f"Redis Streams via redis-py, {args.messages} messages of {args.size} B, P-256, "
        f"one consumer, median of {args.rounds} rounds, {os.cpu_count()} cores"
    )
    for row in ROWS:
        values = [r[row] for r in results]
        shown = ", ".join(f"{v:,.0f}" for v in values)
        cpu = statistics.median(r[f"{row} cpu_us"] for r in results)
        print(
            f"{row:<11} {statistics.median(values):>9,.0f} msg/s   consumer CPU {cpu:>5,.0f} us/msg"
            f"   (rounds: {shown})"
        )
    ratio = statistics.median(r["letterlock"] / r["plain+floor"] for r in results)
    verdict = "PASS" if ratio >= 0.85 else "MISS"
    print(f"letterlock / plain+floor = {ratio:.2f}  (target >= 0.85: {verdict})")


if __name__ == "__main__":
    main()
