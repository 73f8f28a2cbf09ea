"""A broker in memory: the test double of the broker seam (as httpcore's ``MockBackend``).

:class:`MemoryBroker` implements :class:`~letterlock.transports.base.PullBroker` with no I/O:
topic bindings (AMQP rules, as the spool's), leased deliveries, delays and dead letters, all in
a few dicts, on a clock that is an argument (``now``; the ``clock`` given at construction when
it is None). It plays each kind of broker the seam has to serve:

* ``push=False``: the consumer pulls (``deliveries``), like the spool, Redis Streams or a
  JetStream pull consumer. ``push=True``: the broker pushes: ``subscribe(queue, callback)``,
  and every :meth:`~MemoryBroker.pump` (one turn of the broker's event loop) hands each ready
  delivery to its queue's callback, like pika, paho or a JetStream push consumer.
* ``counts_attempts=False``: deliveries carry ``attempts=None``, like MQTT and ZeroMQ.
* ``nack=False``: no negative acknowledgement, like MQTT and Redis Streams: a retry leaves the
  delivery leased, so it comes back only when its lease runs out (whatever delay was asked),
  and a dead letter is a republish to the dead letters plus an ack (which looks the same here).

:class:`AsyncMemoryBroker` shows a memory broker through the asyncio seam
(:class:`~letterlock.transports.base.AsyncPullBroker`), for
:class:`~letterlock.transports.AsyncSealedConsumer`: each call yields to the event loop once,
then does what the memory broker does.

Everything it was told is kept for tests: :attr:`MemoryBroker.journal` lists each call on the
seam with the broker's own reference of the message (never a lease tag), and
:meth:`~MemoryBroker.dead_letters` and :meth:`~MemoryBroker.stats` show a queue as the spool's
namesakes do. Not thread-safe: one test, one thread.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from letterlock.core.topics import topic_matches
from letterlock.errors import UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    QueueStats,
    Unroutable,
)
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = ["AsyncMemoryBroker", "MemoryBroker"]

Callback = Callable[[Delivery], object]
AsyncCallback = Callable[[Delivery], Awaitable[object]]


@dataclass(slots=True, kw_only=True)
class _Copy:
    """One message in one queue."""

    seq: int
    topic: str
    body: bytes
    published: float
    attempts: int = 0
    visible_at: float = 0.0
    lease: str | None = None


class MemoryBroker:
    """Queues, leases, delays and dead letters in memory (see the module)."""

    def __init__(
        self,
        *,
        push: bool = False,
        counts_attempts: bool = True,
        nack: bool = True,
        lease_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not lease_seconds > 0:
            raise UsageError("lease_seconds must be positive")
        self.push = push
        self.counts_attempts = counts_attempts
        self.nack = nack
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._bindings: set[tuple[str, str]] = set()
        self._queues: dict[str, list[_Copy]] = {}
        self._dead: dict[str, list[DeadLetterRecord]] = {}
        self._subscribers: dict[str, Callback] = {}
        self._seq = itertools.count(1)
        self._tags = itertools.count(1)
        self._leased: dict[str, tuple[str, _Copy]] = {}  # tag -> (queue, copy)
        #: Every call on the seam, as (call, queue, seq, detail): what the broker was told.
        self.journal: list[tuple[str, str, int, object]] = []

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else float(now)

    # routing ----------------------------------------------------------------------------

    def bind(self, queue: str, pattern: str) -> None:
        """Copy every message whose topic matches ``pattern`` into ``queue`` from now on."""
        self._bindings.add((queue, pattern))
        self._queues.setdefault(queue, [])

    def publish(
        self,
        topic: str,
        body: bytes | bytearray | memoryview,
        *,
        now: float | None = None,
        mandatory: bool = True,
    ) -> int:
        """Copy ``body`` into every matching queue; its sequence number. Unroutable if none."""
        if not isinstance(topic, str) or not topic:
            raise UsageError("topic must be a non-empty string")
        seq = next(self._seq)
        queues = sorted({q for q, p in self._bindings if topic_matches(p, topic)})
        if not queues and mandatory:
            raise Unroutable(f"no queue is bound to a pattern matching {topic!r}")
        for queue in queues:
            self.put(queue, topic, bytes(body), seq=seq, now=now)
        return seq

    def put(
        self,
        queue: str,
        topic: str,
        body: bytes,
        *,
        seq: int | None = None,
        now: float | None = None,
    ) -> int:
        """What a hostile broker can do: put any bytes into any queue, reporting any topic."""
        number = next(self._seq) if seq is None else seq
        copy = _Copy(seq=number, topic=topic, body=body, published=self._now(now))
        self._queues.setdefault(queue, []).append(copy)
        return number

    # pull -------------------------------------------------------------------------------

    def get(
        self, queue: str, *, lease_seconds: float | None = None, now: float | None = None
    ) -> Delivery | None:
        """Lease the oldest ready copy in ``queue`` (in any mode: it is what a push turns on)."""
        at = self._now(now)
        for copy in self._queues.get(queue, []):
            if copy.visible_at <= at:
                if copy.lease is not None:  # its lease ran out: the old tag settles nothing
                    del self._leased[copy.lease]
                copy.attempts += 1
                copy.lease = tag = f"lease-{next(self._tags)}"
                copy.visible_at = at + (lease_seconds or self.lease_seconds)
                self._leased[tag] = (queue, copy)
                self.journal.append(("deliver", queue, copy.seq, copy.attempts))
                return Delivery(
                    tag=tag, queue=queue, topic=copy.topic, body=copy.body,
                    attempts=copy.attempts if self.counts_attempts else None, ref=str(copy.seq),
                )  # fmt: skip
        return None

    def deliveries(self, queue: str, *, now: float | None = None) -> Iterator[Delivery]:
        """Lease the ready deliveries of ``queue`` one at a time (pull mode only)."""
        if self.push:
            raise UsageError("this broker pushes: subscribe() a callback and pump()")
        while (delivery := self.get(queue, now=now)) is not None:
            yield delivery

    # push -------------------------------------------------------------------------------

    def subscribe(self, queue: str, callback: Callback) -> None:
        """Push mode: hand ``queue``'s deliveries to ``callback`` on every pump()."""
        if not self.push:
            raise UsageError("this broker is pulled from: call deliveries()")
        self._subscribers[queue] = callback

    def unsubscribe(self, queue: str) -> None:
        self._subscribers.pop(queue, None)

    def pump(self, *, now: float | None = None, max_messages: int | None = None) -> int:
        """One turn of the event loop: push every ready delivery to its queue's subscriber.

        Returns how many were pushed; a callback's exception stops the turn and propagates.
        """
        pushed = 0
        for queue, callback in list(self._subscribers.items()):
            while max_messages is None or pushed < max_messages:
                delivery = self.get(queue, now=now)
                if delivery is None:
                    break
                pushed += 1
                callback(delivery)
        return pushed

    # settling ---------------------------------------------------------------------------

    def _holder(self, delivery: Delivery) -> tuple[str, _Copy]:
        held = self._leased.get(delivery.tag)
        if held is None:
            raise LeaseLost("this delivery was already settled or has been delivered again")
        return held

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, retry (with nack: ready after the delay; without: when the lease runs out), or
        dead-letter; LeaseLost for a delivery that is no longer leased under its tag."""
        queue, copy = self._holder(delivery)
        self.journal.append(("settle", queue, copy.seq, settlement))
        match settlement:
            case Retry(delay=delay):
                if delay < 0:
                    raise UsageError("delay must not be negative")
                if self.nack:
                    copy.visible_at = self._now(now) + delay
                    self._release(delivery.tag, copy)
                return  # without a nack the delivery stays leased: back when the lease ends
            case DeadLetter(reason=reason):
                dead = DeadLetterRecord(
                    queue=queue, seq=copy.seq, topic=copy.topic, body=copy.body,
                    attempts=copy.attempts, reason=DeadLetterReason(reason),
                    published=copy.published, dead_at=self._now(now),
                )  # fmt: skip
                self._dead.setdefault(queue, []).append(dead)
            case Ack():
                pass
        self._queues[queue].remove(copy)
        self._release(delivery.tag, copy)

    def _release(self, tag: str, copy: _Copy) -> None:
        copy.lease = None
        del self._leased[tag]

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Keep the delivery leased for another ``lease_seconds``; LeaseLost if it is gone."""
        queue, copy = self._holder(delivery)
        copy.visible_at = self._now(now) + self.lease_seconds
        self.journal.append(("extend", queue, copy.seq, self.lease_seconds))

    # inspection -------------------------------------------------------------------------

    def dead_letters(self, queue: str) -> list[DeadLetterRecord]:
        """The dead letters of ``queue``, oldest first."""
        return list(self._dead.get(queue, []))

    def redrive(self, queue: str, *, now: float | None = None) -> int:
        """Move the dead letters of ``queue`` back into it (attempts reset); how many."""
        dead = self._dead.pop(queue, [])
        for letter in dead:
            copy = _Copy(seq=letter.seq, topic=letter.topic, body=letter.body,
                         published=letter.published, visible_at=self._now(now))  # fmt: skip
            self._queues.setdefault(queue, []).append(copy)
            self.journal.append(("redrive", queue, letter.seq, None))
        return len(dead)

    def stats(self, queue: str, *, now: float | None = None) -> QueueStats:
        at = self._now(now)
        copies = self._queues.get(queue, [])
        return QueueStats(
            ready=sum(c.visible_at <= at for c in copies),
            leased=sum(c.visible_at > at and c.lease is not None for c in copies),
            delayed=sum(c.visible_at > at and c.lease is None for c in copies),
            dead=len(self._dead.get(queue, [])),
        )


class AsyncMemoryBroker:
    """A :class:`MemoryBroker` through the asyncio seam: the same queues, awaited calls."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.sync = broker
        self._subscribers: dict[str, AsyncCallback] = {}

    async def publish(self, topic: str, body: bytes, *, now: float | None = None) -> int:
        await asyncio.sleep(0)
        return self.sync.publish(topic, body, now=now)

    async def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        await asyncio.sleep(0)
        self.sync.settle(delivery, settlement, now=now)

    async def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        await asyncio.sleep(0)
        self.sync.extend_lease(delivery, now=now)

    async def deliveries(self, queue: str, *, now: float | None = None) -> AsyncIterator[Delivery]:
        """Lease the ready deliveries of ``queue`` one at a time (pull mode only)."""
        for delivery in self.sync.deliveries(queue, now=now):
            await asyncio.sleep(0)
            yield delivery

    def subscribe(self, queue: str, callback: AsyncCallback) -> None:
        """Push mode: hand ``queue``'s deliveries to the coroutine ``callback`` on pump()."""
        if not self.sync.push:
            raise UsageError("this broker is pulled from: iterate deliveries()")
        self._subscribers[queue] = callback

    def unsubscribe(self, queue: str) -> None:
        self._subscribers.pop(queue, None)

    async def pump(self, *, now: float | None = None, max_messages: int | None = None) -> int:
        """As :meth:`MemoryBroker.pump`, awaiting each callback."""
        pushed = 0
        for queue, callback in list(self._subscribers.items()):
            while max_messages is None or pushed < max_messages:
                delivery = self.sync.get(queue, now=now)
                if delivery is None:
                    break
                pushed += 1
                await callback(delivery)
        return pushed
