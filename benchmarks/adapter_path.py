"""What an adapter's own Python costs per message, without its broker: delivery, then ack.

    PYTHONPATH=src .venv/bin/python benchmarks/adapter_path.py [--messages 2000]
        [--rows amqp nats redis]

Per row, each message goes through the adapter's code that runs for every delivery, over a
stub of the client library that does nothing (so only letterlock's part is measured):

* ``amqp``: ``AmqpChannel.delivery`` (what pika hands the callback, as a Delivery), then
  ``AmqpEndpoint.settle(delivery, Ack())`` on a subscription's coalescing channel;
* ``nats``: ``NatsBroker.delivery`` of a JetStream message (its reply subject parsed);
* ``redis``: the subscription's ``_delivery`` of a stream entry, then
  ``RedisEndpoint.settle(delivery, Ack())`` (an ``XACK`` within half a lease).

It prints CPU microseconds per message (``time.process_time``, best of ``--rounds``). Each
message goes through its row's step in one ``map`` call from C, so an instruction count of the
steps alone, undisturbed by other work on the machine, is::

    PYTHONPATH=src valgrind --tool=callgrind --toggle-collect=map_next \\
        .venv/bin/python benchmarks/adapter_path.py --messages 2000 --rounds 1 --rows amqp

(the total ``Collected`` divided by ``--messages`` is one message's).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from nats.aio.msg import Msg

from letterlock import Topics
from letterlock.transports.amqp import AmqpChannel, AmqpEndpoint
from letterlock.transports.decide import Ack
from letterlock.transports.nats import NatsBroker
from letterlock.transports.redis import RedisEndpoint, _delivery

ROWS = ("amqp", "nats", "redis")
BODY = b"x" * 1200
ACK = Ack()


class _Pika:
    """A pika BlockingChannel that is open, confirms, and writes nothing."""

    _delivery_confirmation = True
    is_open = True

    def __init__(self) -> None:
        self._impl = SimpleNamespace(basic_ack=lambda tag, multiple=False: None)
        self.connection = SimpleNamespace(process_data_events=lambda time_limit=0: None)


class _Redis:
    """A redis-py client whose XACK acks one pending entry."""

    def register_script(self, script: str) -> None:
        return None

    def xack(self, stream: str, group: str, tag: str) -> int:
        return 1


def _amqp(messages: int) -> tuple[Callable[[Any], object], list[Any]]:
    channel = AmqpChannel(_Pika(), ack_batch=64)
    channel._coalesce = True  # as an AmqpSubscription's channel
    endpoint = object.__new__(AmqpEndpoint)
    # keyed by the channel's name (before 2026-12 by its prefix "<name>.": runs on older code)
    name: str = getattr(channel, "_name", None) or channel._prefix
    endpoint._channels = {name: channel}
    properties = SimpleNamespace(headers=None)

    def step(method: Any) -> None:
        endpoint.settle(channel.delivery("q", method, properties, BODY), ACK)

    methods = [
        SimpleNamespace(delivery_tag=n, exchange="ex", routing_key="bench.orders")
        for n in range(1, messages + 1)
    ]
    return step, methods


def _nats(messages: int) -> tuple[Callable[[Any], object], list[Any]]:
    broker = NatsBroker.__new__(NatsBroker)  # delivery() reads nothing of the broker
    msgs = [
        Msg(None, subject="bench.orders", data=BODY,  # type: ignore[arg-type]
            reply=f"$JS.ACK.bench.g.1.{n}.{n}.1733090000000000000.42")
        for n in range(1, messages + 1)
    ]  # fmt: skip
    return (lambda msg: broker.delivery(msg, "g")), msgs


def _redis(messages: int) -> tuple[Callable[[Any], object], list[Any]]:
    endpoint = RedisEndpoint(_Redis())  # type: ignore[arg-type]
    topics = Topics("bench.orders")
    now = time.monotonic()

    def step(entry: tuple[bytes, dict[bytes, bytes]]) -> None:
        delivery = _delivery(entry[0], entry[1], 1, now, topics=topics, group="g", consumer="c")
        assert delivery is not None
        endpoint.settle(delivery, ACK)

    entries = [
        (b"1733090000000-%d" % n, {b"topic": b"bench.orders", b"body": BODY})
        for n in range(messages)
    ]
    return step, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args()
    makers = {"amqp": _amqp, "nats": _nats, "redis": _redis}
    for row in args.rows:
        best = float("inf")
        for _ in range(args.rounds):
            step, items = makers[row](args.messages)
            start = time.process_time()
            deque(map(step, items), maxlen=0)
            best = min(best, time.process_time() - start)
        print(f"{row:<6} {best / args.messages * 1e6:7.2f} us/msg (best of {args.rounds})")


if __name__ == "__main__":
    main()
