"""End-to-end messages per second through RabbitMQ: plain pika, plain pika plus the raw crypto
floor, and letterlock (AmqpEndpoint + SealedConsumer), in one run.

    .venv/bin/python benchmarks/broker_rabbitmq.py [--messages 10000] [--rounds 3] [--size 1024]
        [--ack-batch 64] [--durable [--store-dir DIR]]

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
Rows, ``--durable`` (a row ``letterlock+sqlite``: the replay store on disk, as ``letterlock
listen`` keeps it) and the report: ``benchmarks/broker_common.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

import broker_common as bench
import pika
import pika.exceptions

import letterlock
from letterlock.transports import SealedConsumer
from letterlock.transports.amqp import ACK_BATCH, AmqpEndpoint, Topology, declare

URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
TOPIC: Final = "bench.orders"
PREFETCH: Final = 500


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
    sent = bench.bodies(count, size, TOPIC, keys)
    channel = _channel()
    properties = pika.BasicProperties(delivery_mode=2)
    assert pipe.recv() == "go"
    pipe.send(time.time())
    for body in sent:
        channel.basic_publish(exchange, TOPIC, body, properties)
    channel.connection.close()


def _plain(
    group: str, count: int, work: Callable[[], object] | None, ack_batch: int
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
    exchange: str, group: str, count: int, receiver: letterlock.Opener, *, ack_batch: int
) -> Callable[[], float]:
    """An AmqpEndpoint subscription and a SealedConsumer, ready (as :func:`_plain`)."""
    endpoint = AmqpEndpoint(
        pika.URLParameters(URL), exchange=exchange, prefetch=PREFETCH, ack_batch=ack_batch
    )
    subscription = endpoint.subscribe(letterlock.Topics(TOPIC), group=group)
    consumer = SealedConsumer(endpoint, group, opener=receiver, topics=TOPIC)
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


def one_round(row: str, count: int, size: int, ack_batch: int = ACK_BATCH) -> tuple[float, float]:
    """Messages per second for ``row``, and the consumer's CPU microseconds per message."""
    exchange, group = f"bench-{secrets.token_hex(4)}", f"bench-{secrets.token_hex(4)}"
    channel = _channel()
    declare(channel, group, TOPIC, exchange=exchange)
    keys = receiver = None
    try:
        if row.startswith(bench.LETTERLOCK):
            producer, reader, keys = bench.key_pair()
            receiver = bench.opener(reader, producer.public, row)
            consume = _letterlock(exchange, group, count, receiver, ack_batch=ack_batch)
        else:
            consume = _plain(group, count, bench.floor_for(row, size), ack_batch)
        parent, child = multiprocessing.Pipe()
        publisher = multiprocessing.Process(
            target=_publish, args=(exchange, count, size, keys, child), daemon=True
        )
        publisher.start()
        cpu = time.process_time()
        parent.send("go")  # the publisher seals first, then publishes and sends the time
        started: float = parent.recv()
        finished = consume()
        cpu = time.process_time() - cpu
        publisher.join(timeout=60)
    finally:
        if receiver is not None:
            bench.discard(receiver)
        names = Topology.of(group, exchange=exchange)
        for queue in (names.queue, names.dead_letter_queue, names.delay_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(names.exchange)
        channel.exchange_delete(names.dead_letter_exchange)
        channel.connection.close()
    return count / (finished - started), cpu / count * 1e6


def run(
    messages: int, size: int, *, durable: bool = False, ack_batch: int = ACK_BATCH
) -> dict[str, float]:
    """One round: each row's msgs/s and ``<row> cpu_us`` (the rows one after another), for a
    runner such as ``benchmarks/brokers.py``. ConnectionError if RabbitMQ does not answer."""
    return bench.collect(durable, lambda row: one_round(row, messages, size, ack_batch))


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ack-batch", type=int, default=ACK_BATCH,
        help="acks each consumer sends per write (1: one write per ack)",
    )  # fmt: skip


if __name__ == "__main__":
    bench.main(
        __doc__, run, f"RabbitMQ via pika, one consumer (prefetch {PREFETCH})",
        messages=10_000, options=_options,
    )  # fmt: skip
