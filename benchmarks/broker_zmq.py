"""Messages per second through ZeroMQ PUSH/PULL: plain pyzmq, plus the crypto floor, letterlock.

    PYTHONPATH=src .venv/bin/python benchmarks/broker_zmq.py [--messages 5000] [--size 1024]
        [--rounds 3] [--durable [--store-dir DIR]]

Three rows in one run, each on a fresh ipc socket; this process binds a ``PULL`` socket and
the publisher, in its own process, connects a ``PUSH`` socket and sends ``[topic, body]``
(PUSH/PULL, not PUB/SUB: a ``PUSH`` waits at its high-water mark where a ``PUB`` would drop, so
every row counts every message):

* ``plain``: a blocking ``recv_multipart`` per message;
* ``plain+floor``: the same consumer code, plus per message one pyca ECDSA P-256 verification and
  one AES-256-GCM decryption of pre-made data: the least any signed, encrypted message costs;
* ``letterlock``: a warm :class:`letterlock.Sealer` seals each payload (P-256, one recipient;
  before the clock starts, as the floor row adds the consumer's crypto only: a publisher
  sealing live would take CPU from the consumer on a small machine, which no other row pays)
  and sends through a :class:`~letterlock.transports.zmq.ZmqEndpoint`; this process consumes
  through its subscription and a :class:`~letterlock.transports.SealedConsumer` (open, claim in
  a memory replay window, handler; ZeroMQ has nothing to ack).

A rate is messages divided by the time from the publisher's start to the last message handled.
The ratio is letterlock / plain+floor (target >= 0.85). Beside each rate: the consumer process's CPU
time per message, which a machine shared with other work disturbs far less than the rate. Rows
alternate over ``--rounds``; medians are printed. Needs no server.
Rows, ``--durable`` (a row ``letterlock+sqlite``: the replay store on disk, as ``letterlock
listen`` keeps it) and the report: ``benchmarks/broker_common.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import broker_common as bench
import zmq

import letterlock
from letterlock.transports import SealedConsumer
from letterlock.transports.zmq import ZmqEndpoint

TOPIC = "bench.orders"


def _publish(
    *, url: str, messages: int, size: int, keys: tuple[bytes, bytes] | None, ready: Event,
    go: Event,
) -> None:  # fmt: skip
    """The publisher process: ``messages`` messages (sealed with ``keys``, for a letterlock row,
    and then sent by the letterlock endpoint)."""
    sent = bench.bodies(messages, size, TOPIC, keys)
    if keys is not None:
        endpoint = ZmqEndpoint.from_url(f"{url}&wait=30")
        ready.set()
        go.wait()
        for body in sent:
            endpoint.publish(TOPIC, body)
        endpoint.close()
        return
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(url.removeprefix("zmq+").partition("?")[0])
    topic = TOPIC.encode()
    ready.set()
    go.wait()
    for body in sent:
        push.send_multipart([topic, body])
    push.close(linger=30_000)
    context.term()


def _consume_plain(
    socket: zmq.Socket[bytes], messages: int, work: Callable[[], object] | None
) -> float:
    socket.setsockopt(zmq.RCVTIMEO, 10_000)
    for _ in range(messages):
        try:
            socket.recv_multipart()
        except zmq.Again:
            raise SystemExit("consumer: no message for 10 s") from None
        if work is not None:
            work()
    return time.time()


def _consume_letterlock(
    endpoint: ZmqEndpoint, subscription: Any, messages: int, receiver: letterlock.Opener
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
    (a fresh ipc socket)."""
    folder = tempfile.mkdtemp(prefix="ll-bench-zmq-")
    url = f"zmq+ipc://{folder}/s.sock?pattern=pushpull"
    endpoint = ZmqEndpoint.from_url(url)
    receiver = keys = None
    if row.startswith(bench.LETTERLOCK):
        subscription = endpoint.subscribe(letterlock.Topics(TOPIC), group="g")
        sender, reader, keys = bench.key_pair()
        receiver = bench.opener(reader, sender.public, row)
    else:  # plain pyzmq: a PULL socket of its own, bound where the endpoint would bind
        plain: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        pull = plain.socket(zmq.PULL)
        pull.bind(endpoint.address)
    work = bench.floor_for(row, size)
    publisher, go = bench.forked(_publish, url=url, messages=messages, size=size, keys=keys)
    started, cpu = time.time(), time.process_time()
    go.set()
    try:
        if receiver is not None:
            finished = _consume_letterlock(endpoint, subscription, messages, receiver)
        else:
            finished = _consume_plain(pull, messages, work)
    finally:
        publisher.join()
        if receiver is not None:
            bench.discard(receiver)
            subscription.close()
        else:
            pull.close(linger=0)
            plain.term()
        endpoint.close()
        shutil.rmtree(folder, ignore_errors=True)
    cpu = time.process_time() - cpu  # the consumer's, ack or settle included
    return messages / (finished - started), cpu / messages * 1e6


def run(messages: int, size: int, *, durable: bool = False) -> dict[str, float]:
    """One round: each row's msgs/s, and ``<row> cpu_us`` (the consumer's CPU microseconds
    per message: steadier where the machine is shared). For ``benchmarks/brokers.py``."""
    return bench.collect(durable, lambda row: one_row(row, messages, size))


if __name__ == "__main__":
    bench.main(__doc__, run, "ZeroMQ PUSH/PULL via pyzmq (ipc), P-256, one consumer")
