"""End-to-end messages per second through Mosquitto: plain paho, plain + crypto floor, letterlock.

    PYTHONPATH=src .venv/bin/python benchmarks/broker_mqtt.py [--messages 5000] [--size 1024]
        [--rounds 3] [--version 5|3.1.1] [--threaded-floor] [--durable [--store-dir DIR]]

Three rows per round, interleaved, one consumer each (in this process), a publisher in its own
process (spawned) that publishes at QoS 1 while the consumer drains:

* ``plain``: paho with ``manual_ack=True``; ``on_message`` acks each message (``client.ack``).
  It asks for the in-flight window :class:`MqttEndpoint` asks for (MQTT 5 Receive Maximum).
* ``plain+floor``: the same consumer code, plus per message one pyca ECDSA P-256 verify and one
  AES-256-GCM decrypt of pre-made data (a ciphertext of ``--size`` bytes and its signature):
  the least cryptography a signed, encrypted message needs.
* ``letterlock``: the publisher seals with a warm :class:`letterlock.Sealer` (suite p256, one
  recipient) before its clock starts; the consumer is :class:`MqttEndpoint` +
  :class:`SealedConsumer` (a warm :class:`letterlock.Opener`, an in-memory replay window):
  ``subscription.deliveries()`` and ``consumer.handle`` per message, acked after the handler.

``--threaded-floor`` adds a fourth row, ``plain+floor, threaded``: ``on_message`` puts each
message on a queue and a thread does the floor's work and acks, as the letterlock consumer does
(its network reads then overlap the cryptography, as letterlock's do).

The rate is messages over the time from the publisher's first publish to the consumer's last
ack. The publisher keeps at most ``WINDOW`` messages ahead of the consumer, so Mosquitto's
per-session queue limit (``max_queued_messages``, 1000 by default) never drops one. Needs
Mosquitto on 127.0.0.1:1883. ``run(messages, size)`` returns the three rates and the ratio
``letterlock / plain+floor`` (target >= 0.85).
Rows, ``--durable`` (a row ``letterlock+sqlite``: the replay store on disk, as ``letterlock
listen`` keeps it) and the report: ``benchmarks/broker_common.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import broker_common as bench
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import letterlock
from letterlock.transports import SealedConsumer
from letterlock.transports.mqtt import MqttEndpoint

HOST, PORT = "127.0.0.1", 1883
WINDOW = 500  #: messages the publisher may be ahead of the consumer
THREADED = "plain+floor, threaded"  #: with --threaded-floor: the floor's work in a thread
VERSIONS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    """What the publisher is to send: ``count`` payloads of ``size`` bytes on ``topic``."""

    topic: str
    count: int
    size: int
    version: str
    keys: tuple[bytes, bytes] | None  #: sealed by this sender for this recipient, if given


def _publisher(
    job: _Job, consumed: Synchronized[int], report: multiprocessing.connection.Connection
) -> None:
    """Publish ``count`` messages at QoS 1 (sealed first, off the clock, if ``keys``)."""
    topic, count, keys, version = job.topic, job.count, job.keys, job.version
    messages = bench.bodies(count, job.size, topic, keys)
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=VERSIONS[version])
    client.max_inflight_messages_set(100)
    client.connect(HOST, PORT)
    client.loop_start()
    report.send("ready")
    report.recv()  # go
    started = time.time()
    info = None
    for sent, body in enumerate(messages):
        while sent - consumed.value >= WINDOW:
            time.sleep(0.0005)
        info = client.publish(topic, body, qos=1)
    if info is not None:
        info.wait_for_publish(60)
    report.send(started)
    client.disconnect()
    client.loop_stop()


def _plain_consumer(
    job: _Job, consumed: Synchronized[int], floor: bench.Floor | None, *, threaded: bool
) -> tuple[paho.Client, threading.Event, list[float]]:
    """A plain paho consumer: on_message (does the floor's work and) acks, in paho's thread;
    or, ``threaded``, hands each message through a queue to a thread that does (as the
    letterlock consumer does)."""
    done, finished = threading.Event(), [0.0]
    seen = 0
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-{secrets.token_hex(4)}",
        protocol=VERSIONS[job.version], manual_ack=True,
    )  # fmt: skip

    def take(message: paho.MQTTMessage) -> None:
        nonlocal seen
        if floor is not None:
            floor()
        client.ack(message.mid, message.qos)
        seen += 1
        if seen % 100 == 0 or seen == job.count:
            consumed.value = seen
        if seen == job.count:
            finished[0] = time.time()
            done.set()

    inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()

    def work() -> None:
        for _ in range(job.count):
            take(inbox.get())

    if threaded:
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
    subscribed = threading.Event()
    client.on_message = lambda client, userdata, message: (inbox.put if threaded else take)(message)
    client.on_subscribe = lambda *args: subscribed.set()
    properties = None
    if VERSIONS[job.version] is MQTTProtocolVersion.MQTTv5:  # as MqttEndpoint asks
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = 65_535
    client.connect(HOST, PORT, properties=properties)
    client.loop_start()
    client.subscribe(job.topic, qos=1)
    if not subscribed.wait(10):
        raise SystemExit("plain consumer: no SUBACK")
    return client, done, finished


def _one(row: str, count: int, size: int, version: str) -> tuple[float, float]:
    """One row: messages per second end to end, and this (consuming) process's CPU seconds per
    message from "go" to the last ack."""
    topic = f"bench/{secrets.token_hex(4)}/orders"
    context = multiprocessing.get_context("spawn")
    consumed: Synchronized[int] = context.Value("q", 0, lock=False)
    keys = None
    if row.startswith(bench.LETTERLOCK):
        sender, reader, keys = bench.key_pair()
    here, there = context.Pipe()
    job = _Job(topic=topic, count=count, size=size, version=version, keys=keys)
    publisher = context.Process(target=_publisher, args=(job, consumed, there))
    publisher.start()
    if not here.poll(60) or here.recv() != "ready":
        publisher.kill()
        raise SystemExit("the publisher did not start")
    if row.startswith(bench.LETTERLOCK):
        assert keys is not None
        receiver = bench.opener(reader, sender.public, row)
        try:
            finished, cpu = _letterlock_consumer(job, consumed, here, receiver)
        finally:
            bench.discard(receiver)
    else:
        floor = bench.Floor(size) if row.startswith(bench.FLOOR) else None
        threaded = row == THREADED
        client, done, ends = _plain_consumer(job, consumed, floor, threaded=threaded)
        cpu = time.process_time()
        here.send("go")
        if not done.wait(600):
            raise SystemExit(f"{row}: the consumer did not get every message")
        cpu = time.process_time() - cpu
        client.disconnect()
        client.loop_stop()
        finished = ends[0]
    if not here.poll(60):
        publisher.kill()
        raise SystemExit("the publisher did not finish")
    started: float = here.recv()
    publisher.join()
    return count / (finished - started), cpu / count * 1e6


def _letterlock_consumer(
    job: _Job,
    consumed: Synchronized[int],
    go: multiprocessing.connection.Connection,
    receiver: letterlock.Opener,
) -> tuple[float, float]:
    """MqttEndpoint + SealedConsumer; the time of the last ack, and the CPU seconds since "go"."""
    topic, count, version = job.topic, job.count, job.version
    endpoint = MqttEndpoint.from_url(f"mqtt://{HOST}:{PORT}?version={version}")
    group = f"bench-{secrets.token_hex(4)}"
    topics = letterlock.Topics.mqtt(topic)
    try:
        subscription = endpoint.subscribe(topics, group=group)
        consumer = SealedConsumer(endpoint, group, opener=receiver, topics=topics)
        cpu = time.process_time()
        go.send("go")
        seen = 0
        ignore: Any = None

        def handler(opened: letterlock.Opened) -> None:
            nonlocal ignore
            ignore = opened.payload

        for delivery in subscription.deliveries(idle_timeout=60):
            seen += consumer.handle(delivery, handler)
            if seen % 100 == 0 or seen == count:
                consumed.value = seen
            if seen == count:
                break
        finished = time.time()
        cpu = time.process_time() - cpu
        if seen != count or consumer.metrics != {"acked": count}:
            raise SystemExit(f"letterlock: {seen} of {count}, {dict(consumer.metrics)}")
        subscription.close()
    finally:
        endpoint.forget(group)
        endpoint.close()
    return finished, cpu


def run(
    messages: int, size: int, *, durable: bool = False, version: str = "5",
    threaded_floor: bool = False,
) -> dict[str, float]:  # fmt: skip
    """One round: each row's messages per second, ``<row> cpu_us`` (the consumer's CPU
    microseconds per message), and ``ratio`` = letterlock / plain+floor. ConnectionError if
    Mosquitto does not answer (``benchmarks/brokers.py`` reports it so)."""
    socket.create_connection((HOST, PORT), timeout=2).close()
    rates = bench.collect(durable, lambda row: _one(row, messages, size, version))
    if threaded_floor:
        rates[THREADED], rates[f"{THREADED} cpu_us"] = _one(THREADED, messages, size, version)
    rates["ratio"] = rates["letterlock"] / rates["plain+floor"]
    return rates


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", default="5", choices=sorted(VERSIONS))
    parser.add_argument(
        "--threaded-floor", action="store_true",
        help="a row more: the floor's work in a thread fed by on_message, as letterlock's",
    )  # fmt: skip


if __name__ == "__main__":
    bench.main(__doc__, run, "Mosquitto via paho (QoS 1), P-256, one consumer", options=_options)
