"""End-to-end messages per second through RabbitMQ: plain pika, plain pika plus the raw crypto
floor, and letterlock (AmqpEndpoint + SealedConsumer), in one run.

    .venv/bin/python benchmarks/broker_rabbitmq.py [--messages 10000] [--rounds 3] [--size 1024]

Every row uses the same topology (:func:`letterlock.transports.amqp.declare`: a topic exchange
and a durable group queue) and the same publisher, in a process of its own: pika's
``basic_publish`` of persistent messages, without confirms. The consumer runs in this process
with manual acks and the same prefetch:

* ``plain``: a pika ``basic_consume`` callback acks the messages, ``--ack-batch`` per write
  (``basic_ack(tag, multiple=True)``, and the rest at the end), as letterlock does;
* ``plain+floor``: the same callback first does what any signed, encrypted message costs, on
  pre-made data: one pyca ECDSA P-256 verification and one AES-256-GCM decryption of
  ``--size`` bytes;
* ``letterlock``: the publisher seals each payload with a warm :class:`letterlock.Sealer`
  (P-256, one recipient) before the clock starts, since the floor row has no sender-side work
  either (on two cores, signing while publishing takes the consumer's CPU; the sender's cost is
  what ``benchmarks/rates.py`` measures). The consumer reads an ``AmqpEndpoint`` subscription
  and hands each delivery to a ``SealedConsumer`` (open, replay claim, handler, ack). Its acks
  go out 64 per write (``AmqpEndpoint``'s ``ack_batch``); ``--ack-batch 1`` writes each one.
  Every row batches its acks alike, so the ratio compares the consumers' work, not their
  writes.

A row's rate is messages divided by the time from the publisher's first publish to the last
ack: the consumer is the bottleneck, so this is its work per message. Rounds interleave the
rows; the median is reported, with ``letterlock / (plain+floor)`` (target >= 0.85).
:func:`run` is one round, for ``benchmarks/brokers.py`` to import. Needs RabbitMQ on 127.0.0.1:5672
(guest/guest).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

import pika
import pika.exceptions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock import hazmat
from letterlock.transports import SealedConsumer
from letterlock.transports.amqp import ACK_BATCH, AmqpEndpoint, Topology, declare

URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
TOPIC: Final = "bench.orders"
PREFETCH: Final = 500
ROWS: Final = ("plain", "plain+floor", "letterlock")


def _channel() -> Any:
    try:
        return pika.BlockingConnection(pika.URLParameters(URL)).channel()
    except pika.exceptions.AMQPConnectionError as exc:
        raise ConnectionError(f"RabbitMQ does not answer at {URL}: {exc!r}") from exc


def _publish(
    exchange: str, count: int, size: int, keys: tuple[bytes, bytes] | None, pipe: Connection
) -> None:
    """The publisher process: seal ``count`` messages (if ``keys``), wait for "go", send the
    start time, publish them."""
    payload = os.urandom(size)
    bodies = [payload] * count
    if keys is not None:
        sealer = letterlock.Sealer(hazmat.identity_from_private_bytes(keys[0]))
        recipient = hazmat.public_identity_from_bytes(keys[1])
        bodies = [sealer.seal(payload, recipients=[recipient], topic=TOPIC) for _ in bodies]
    channel = _channel()
    properties = pika.BasicProperties(delivery_mode=2)
    assert pipe.recv() == "go"
    pipe.send(time.time())
    for body in bodies:
        channel.basic_publish(exchange, TOPIC, body, properties)
    channel.connection.close()


class _Floor:
    """The least any signed, encrypted message costs to open, on pre-made data."""

    def __init__(self, size: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.public = key.public_key()
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.nonce = secrets.token_bytes(12)
        self.ciphertext = self.aead.encrypt(self.nonce, os.urandom(size), None)
        self.signature = key.sign(self.ciphertext, ec.ECDSA(hashes.SHA256()))

    def __call__(self) -> None:
        self.public.verify(self.signature, self.ciphertext, ec.ECDSA(hashes.SHA256()))
        self.aead.decrypt(self.nonce, self.ciphertext, None)


def _plain(
    group: str, count: int, work: Callable[[], None] | None, ack_batch: int
) -> Callable[[], float]:
    """A pika consumer of ``group``, ready: calling it consumes ``count`` messages and returns
    the time of the last ack (acks ``ack_batch`` per write)."""
    channel = _channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    received = 0

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        nonlocal received
        if work is not None:
            work()
        received += 1
        if received % ack_batch == 0 or received == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if received == count:
            ch.stop_consuming()

    channel.basic_consume(group, on_message_callback=on_message)

    def consume() -> float:
        channel.start_consuming()
        finished = time.time()
        channel.connection.close()
        return finished

    return consume


def _letterlock(
    exchange: str, group: str, count: int, reader: letterlock.Identity, sender: Any,
    *, ack_batch: int,
) -> Callable[[], float]:  # fmt: skip
    """An AmqpEndpoint subscription and a SealedConsumer, ready (as :func:`_plain`)."""
    pins = letterlock.Pins()
    pins.pin("producer", sender)
    opener = letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow())
    endpoint = AmqpEndpoint(
        pika.URLParameters(URL), exchange=exchange, prefetch=PREFETCH, ack_batch=ack_batch
    )
    subscription = endpoint.subscribe(letterlock.Topics(TOPIC), group=group)
    consumer = SealedConsumer(endpoint, group, opener=opener, topics=TOPIC)
    handled = 0

    def handler(opened: letterlock.Opened) -> None:
        nonlocal handled
        handled += 1

    def consume() -> float:
        for delivery in subscription.deliveries(idle_timeout=60):
            consumer.handle(delivery, handler)
            if handled == count:
                break
        finished = time.time()
        if handled != count:
            raise SystemExit(f"letterlock: {handled} of {count} handled; {consumer.metrics}")
        subscription.close()
        endpoint.close()
        return finished

    return consume


def one_round(row: str, count: int, size: int, ack_batch: int = ACK_BATCH) -> float:
    """Messages per second for ``row`` (one of :data:`ROWS`)."""
    exchange, group = f"bench-{secrets.token_hex(4)}", f"bench-{secrets.token_hex(4)}"
    channel = _channel()
    declare(channel, group, TOPIC, exchange=exchange)
    keys = None
    try:
        if row == "letterlock":
            producer = letterlock.Identity.generate(letterlock.Suite.P256)
            reader = letterlock.Identity.generate(letterlock.Suite.P256)
            keys = (hazmat.identity_to_private_bytes(producer), reader.public.to_bytes())
            consume = _letterlock(
                exchange, group, count, reader, producer.public, ack_batch=ack_batch
            )
        else:
            consume = _plain(
                group, count, _Floor(size) if row == "plain+floor" else None, ack_batch
            )
        parent, child = multiprocessing.Pipe()
        publisher = multiprocessing.Process(
            target=_publish, args=(exchange, count, size, keys, child), daemon=True
        )
        publisher.start()
        parent.send("go")  # the publisher seals first, then publishes and sends the time
        started: float = parent.recv()
        finished = consume()
        publisher.join(timeout=60)
    finally:
        names = Topology.of(group, exchange=exchange)
        for queue in (names.queue, names.dead_letter_queue, names.delay_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(names.exchange)
        channel.exchange_delete(names.dead_letter_exchange)
        channel.connection.close()
    return count / (finished - started)


def run(messages: int, size: int, *, ack_batch: int = ACK_BATCH) -> dict[str, float]:
    """One round: each row's msgs/s (the rows one after another), for a runner such as
    ``benchmarks/brokers.py``. ConnectionError if RabbitMQ does not answer."""
    return {row: one_round(row, messages, size, ack_batch) for row in ROWS}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--ack-batch", type=int, default=ACK_BATCH,
        help="acks letterlock's subscription sends per write (1: one write per ack, as plain)",
    )  # fmt: skip
    args = parser.parse_args()
    rounds: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(args.rounds):
        for row, rate in run(args.messages, args.size, ack_batch=args.ack_batch).items():
            rounds[row].append(rate)
    result = {row: statistics.median(rates) for row, rates in rounds.items()}
    result["ratio"] = result["letterlock"] / result["plain+floor"]
    print(
        f"RabbitMQ {args.messages} messages of {args.size} B, one consumer (prefetch "
        f"{PREFETCH}, letterlock's acks {args.ack_batch} per write), median of {args.rounds} "
        f"rounds, {os.cpu_count()} cores"
    )
    for row in ROWS:
        shown = ", ".join(f"{v:,.0f}" for v in rounds[row])
        print(f"{row:<12} {result[row]:>9,.0f} msg/s   (rounds: {shown})")
    verdict = "PASS" if result["ratio"] >= 0.85 else "MISS"
    print(f"letterlock / (plain+floor) = {result['ratio']:.2f}  (target >= 0.85: {verdict})")


if __name__ == "__main__":
    main()
