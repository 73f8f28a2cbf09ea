"""End-to-end messages per second through RabbitMQ with pika: plain client vs letterlock.

    .venv/bin/python benchmarks/rabbitmq.py [--messages 20000] [--rounds 3] [--size 1024]

A producer process publishes ``--messages`` payloads to a fresh queue while a consumer process
consumes them with manual acks (prefetch 500). "plain" sends the payload as is; "sealed" seals
each one with a warm :class:`letterlock.Sealer` (``--suite``, default p256; one recipient) and
the consumer acks only after a warm :class:`letterlock.Opener` opened it. The rate is messages
divided by the time from the first publish to the last ack. Rounds alternate plain and
sealed; the median is reported.
Needs RabbitMQ on localhost:5672 (guest/guest) and pika (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection

import pika

import letterlock
from letterlock import hazmat

TOPIC = "bench.orders"


def _channel() -> tuple[pika.BlockingConnection, pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    return connection, connection.channel()


def consume(queue: str, count: int, keys: tuple[bytes, bytes] | None, done: Connection) -> None:
    """Consume ``count`` messages (opening each if ``keys``); send the time of the last ack."""
    opener = None
    if keys is not None:
        sender = hazmat.public_identity_from_bytes(keys[0])
        reader = hazmat.identity_from_private_bytes(keys[1])
        pins = letterlock.Pins()
        pins.pin("producer", sender)
        opener = letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow())
    connection, channel = _channel()
    channel.basic_qos(prefetch_count=500)
    done.send("ready")
    deliveries = channel.consume(queue, inactivity_timeout=60)
    for received, (method, _properties, body) in enumerate(deliveries, start=1):
        if method is None:
            raise SystemExit("consumer: no message for 60 s")
        if opener is not None:
            opener.open(body, topic=TOPIC)
        channel.basic_ack(method.delivery_tag)
        if received == count:
            break
    done.send(time.time())
    channel.cancel()
    connection.close()


def one_round(mode: str, count: int, size: int, suite: letterlock.Suite) -> float:
    connection, channel = _channel()
    queue = channel.queue_declare(queue="", exclusive=False, auto_delete=False).method.queue
    sealer, recipient, keys = None, None, None
    if mode == "sealed":
        producer, reader = letterlock.Identity.generate(suite), letterlock.Identity.generate(suite)
        sealer, recipient = letterlock.Sealer(producer), reader.public
        keys = (producer.public.to_bytes(), hazmat.identity_to_private_bytes(reader))
    parent, child = multiprocessing.Pipe()
    worker = multiprocessing.Process(target=consume, args=(queue, count, keys, child))
    worker.start()
    assert parent.recv() == "ready"
    payload = os.urandom(size)
    started = time.time()
    for _ in range(count):
        body = payload
        if sealer is not None and recipient is not None:
            body = sealer.seal(payload, recipients=[recipient], topic=TOPIC)
        channel.basic_publish(exchange="", routing_key=queue, body=body)
    finished: float = parent.recv()
    worker.join()
    channel.queue_delete(queue)
    connection.close()
    return count / (finished - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--suite", default="p256", choices=[s.label for s in letterlock.Suite])
    args = parser.parse_args()
    suite = letterlock.Suite.from_label(args.suite)
    rates: dict[str, list[float]] = {"plain": [], "sealed": []}
    for _ in range(args.rounds):
        for mode, values in rates.items():
            values.append(one_round(mode, args.messages, args.size, suite))
    plain, sealed = (statistics.median(rates[m]) for m in ("plain", "sealed"))
    print(
        f"RabbitMQ via pika, {args.messages} messages of {args.size} B, suite {suite}, "
        f"median of {args.rounds} rounds, {os.cpu_count()} cores"
    )
    for mode, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{mode:<7} {statistics.median(values):>9,.0f} msg/s   (rounds: {shown})")
    verdict = "PASS" if sealed >= 0.7 * plain else "MISS"
    print(f"sealed / plain = {sealed / plain:.2f}  (target >= 0.70: {verdict})")


if __name__ == "__main__":
    main()
