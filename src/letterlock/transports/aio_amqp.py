"""RabbitMQ for asyncio, on aio-pika: the :class:`~.base.AsyncBroker` that
:class:`~letterlock.transports.AsyncSealedConsumer` drives.

The same topology, headers and settlement as :mod:`letterlock.transports.amqp` (read its table:
ack; retry now with ``nack(requeue=True)``, later through ``<group>.delay``; dead letters
published to ``<exchange>.dead`` with the one reason word, confirmed, then acked), on a robust
connection (``aio_pika.connect_robust``) that reconnects by itself and declares again what was
declared on it. A delivery is settled through the channel it came from; once that channel has
closed (a lost connection), or when the connection drops under the settlement, settling it
raises :class:`~.base.LeaseLost`: RabbitMQ puts the message back (see
:meth:`AioAmqpBroker.settle`). Like pika's, this adapter never extends a lease (RabbitMQ has
none) and reads ``lease=`` on the URL without using it.

The way an aio-pika user consumes, with the consumer in between::

    broker = await AioAmqpBroker.connect("amqp://guest:guest@127.0.0.1/%2F?prefetch=50")
    queue = await broker.declare(Topics("orders.*"), group="billing")
    consumer = AsyncSealedConsumer(broker, "billing", opener=opener, topics="orders.*")
    async with queue.iterator() as messages:
        async for message in messages:
            await consumer.handle(broker.delivery("billing", message), on_order)

(:meth:`AioAmqpBroker.consume` is that loop, with an idle timeout.) Every aio-pika and aiormq
exception, ``OSError`` and a timeout leave as :class:`~letterlock.errors.TransportError`; a
publish no queue is bound to (aio-pika's ``PublishError``) as :class:`~.base.Unroutable`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import Delivery, LeaseLost, Unroutable
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = ["AioAmqpBroker"]

# The names and headers of letterlock.transports.amqp (the adapters stand side by side and do
# not import each other; a test checks that they agree).
REASON_HEADER: Final = "letterlock-reason"
TOPIC_HEADER: Final = "letterlock-topic"
ATTEMPTS_HEADER: Final = "letterlock-attempts"
DEFAULT_EXCHANGE: Final = "letterlock"

ERRORS: Final[ExceptionMapping] = {
    aio_pika.exceptions.PublishError: Unroutable,  # a mandatory publish came back
    aio_pika.exceptions.AMQPError: TransportError,
    asyncio.TimeoutError: TransportError,
    OSError: TransportError,
    RuntimeError: TransportError,  # aiormq's "connection closed" on a dead writer
}
#: What says the connection is gone (dropped, reset, closed under a settlement): a settlement
#: that meets it is LeaseLost, RabbitMQ putting back what the channel had not acked. Not what
#: says the broker refused something (a channel it closed, a nack, a login it refused).
_CONNECTION_LOST: Final = (aiormq.exceptions.AMQPConnectionError, RuntimeError, OSError)
_REFUSED: Final = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.IncompatibleProtocolError,
    aiormq.exceptions.ConnectionNotAllowed,
)
_ids = itertools.count(1)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class AioAmqpBroker:
    """The :class:`~.base.AsyncBroker` over one aio-pika channel in publisher-confirm mode."""

    dialect: Final = Dialect.AMQP

    def __init__(
        self,
        channel: AbstractChannel,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        quorum: bool = False,
        connection: AbstractRobustConnection | None = None,
    ) -> None:
        """Over ``channel`` (opened with ``publisher_confirms=True, on_return_raises=True``);
        ``exchange`` and ``quorum`` as for :func:`letterlock.transports.amqp.declare`.
        ``connection``, if given, is closed by :meth:`close`."""
        if not exchange:
            raise UsageError("the exchange needs a name")
        self.channel = channel
        self.exchange = exchange
        self.quorum = quorum
        self._connection = connection
        self._prefix = f"a{next(_ids)}."
        self._held: dict[str, AbstractIncomingMessage] = {}  # tag -> unsettled message
        self._numbers = itertools.count(1)

    @classmethod
    async def connect(cls, url: str) -> AioAmqpBroker:
        """``connect_robust`` to ``url``: options ``exchange``, ``queue_type``, ``prefetch``
        and ``lease`` as for :class:`letterlock.transports.amqp.AmqpEndpoint`; the rest of the
        query goes to aio-pika."""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise UsageError("a RabbitMQ URL starts amqp:// or amqps://")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("exchange", "queue_type", "prefetch", "lease"):
                ours[key] = value
            else:
                theirs.append((key, value))
        queue_type = ours.get("queue_type", "classic")
        if queue_type not in ("classic", "quorum"):
            raise UsageError("queue_type is classic or quorum")
        try:
            prefetch = int(ours.get("prefetch", "100"))
            float(ours.get("lease", "0"))  # RabbitMQ has no per-message lease
        except ValueError:
            raise UsageError("prefetch is a whole number; lease is seconds") from None
        if prefetch < 1:
            raise UsageError("prefetch must be positive")
        rest = urlunsplit((*parts[:3], urlencode(theirs), parts.fragment))
        with map_exceptions(ERRORS):
            connection = await aio_pika.connect_robust(rest)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.set_qos(prefetch_count=prefetch)
            except BaseException:
                await connection.close()
                raise
        return cls(
            channel, exchange=ours.get("exchange", DEFAULT_EXCHANGE),
            quorum=queue_type == "quorum", connection=connection,
        )  # fmt: skip

    async def close(self) -> None:
        """Close the connection (if this broker opened it); unsettled deliveries go back."""
        self._held.clear()
        if self._connection is not None:
            with map_exceptions(ERRORS):
                await self._connection.close()

    async def declare(self, topics: Topics | str, *, group: str) -> AbstractQueue:
        """Declare ``group``'s topology (as :func:`letterlock.transports.amqp.declare`, with
        dead letters and delays); the group's queue, to consume with ``queue.iterator()``."""
        topics = Topics.of(topics)
        if topics.dialect is not Dialect.AMQP:
            raise UsageError("RabbitMQ binds AMQP patterns ('.', '*' and '#')")
        if not group:
            raise UsageError("a group needs a name")
        kind: dict[str, Any] = {"x-queue-type": "quorum"} if self.quorum else {}
        durable = aio_pika.ExchangeType.TOPIC, aio_pika.ExchangeType.DIRECT
        with map_exceptions(ERRORS):
            exchange = await self.channel.declare_exchange(self.exchange, durable[0], durable=True)
            dead = await self.channel.declare_exchange(
                f"{self.exchange}.dead", durable[1], durable=True
            )
            dead_queue = await self.channel.declare_queue(
                f"{group}.dead", durable=True, arguments=kind
            )
            await dead_queue.bind(dead, routing_key=group)
            queue = await self.channel.declare_queue(
                group, durable=True, arguments={
                    **kind, "x-dead-letter-exchange": f"{self.exchange}.dead",
                    "x-dead-letter-routing-key": group,
                },
            )  # fmt: skip
            for pattern in topics.patterns:
                await queue.bind(exchange, routing_key=pattern)
            back: dict[str, Any] = {
                **kind, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": group,
            }  # fmt: skip
            if self.quorum:
                back |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
            await self.channel.declare_queue(f"{group}.delay", durable=True, arguments=back)
        return queue

    async def publish(self, topic: str, body: bytes, *, now: float | None = None) -> None:
        """Publish persistent ``body`` on ``topic`` (mandatory, confirmed); Unroutable if no
        queue is bound to a matching pattern."""
        at = time.time() if now is None else now
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, timestamp=int(at)
        )
        with map_exceptions(ERRORS):
            exchange = await self.channel.get_exchange(self.exchange, ensure=False)
            await exchange.publish(message, routing_key=topic, mandatory=True)

    def delivery(self, queue: str, message: AbstractIncomingMessage) -> Delivery:
        """An aio-pika message consumed from ``queue``, as a :class:`~.base.Delivery` to hand
        to :meth:`AsyncSealedConsumer.handle` (settle it through this broker)."""
        headers: Mapping[str, object] = message.headers or {}
        attempts = None
        if self.quorum:
            attempts = _count(headers.get("x-delivery-count")) + _count(
                headers.get(ATTEMPTS_HEADER)
            ) + 1  # fmt: skip
        topic = headers.get(TOPIC_HEADER) if message.exchange == "" else None
        tag = f"{self._prefix}{next(self._numbers)}"  # never reused, unlike delivery tags
        self._held[tag] = message
        return Delivery(
            tag=tag, queue=queue,
            topic=topic if isinstance(topic, str) else str(message.routing_key),
            body=bytes(message.body), attempts=attempts, ref=str(message.delivery_tag),
        )  # fmt: skip

    async def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, retry (now, or later through the delay queue) or dead-letter, then forget it.

        LeaseLost if the channel closed, or the connection drops meanwhile (before aio-pika
        has seen it go: the write fails): RabbitMQ puts back every message the channel had not
        acked, and a copy already handled is refused as a replay. A retry or dead letter whose
        copy was confirmed just before the drop is so published twice (a copy in the delay
        queue that comes back as a replay, a duplicate dead letter): noise, never a loss. What
        RabbitMQ refuses (a copy it returns or nacks, a channel it closes) surfaces.
        """
        message = self._holding(delivery, settle=True)
        try:
            await self._settle(message, delivery, settlement)
        except TransportError as exc:
            lost = exc.__cause__
            if (
                isinstance(exc, LeaseLost)
                or not isinstance(lost, _CONNECTION_LOST)
                or isinstance(lost, _REFUSED)
            ):
                raise
            why = f"the connection dropped ({lost!r}): RabbitMQ puts the message back"
            raise LeaseLost(why) from lost

    async def _settle(
        self, message: AbstractIncomingMessage, delivery: Delivery, settlement: Settlement
    ) -> None:
        group = delivery.queue
        with map_exceptions(ERRORS):
            match settlement:
                case Ack():
                    await message.ack()
                case Retry(delay=delay) if delay <= 0:
                    await message.nack(requeue=True)
                case Retry(delay=delay):
                    headers: dict[str, Any] = {TOPIC_HEADER: delivery.topic}
                    if delivery.attempts is not None:
                        headers[ATTEMPTS_HEADER] = delivery.attempts
                    later = timedelta(seconds=delay)
                    await self._send("", f"{group}.delay", delivery, headers, later)
                    await message.ack()
                case DeadLetter(reason=reason):
                    headers = {
                        REASON_HEADER: DeadLetterReason(reason).value,
                        TOPIC_HEADER: delivery.topic,
                    }
                    await self._send(f"{self.exchange}.dead", group, delivery, headers)
                    await message.ack()

    async def _send(
        self, exchange: str, key: str, delivery: Delivery, headers: dict[str, Any],
        expiration: timedelta | None = None,
    ) -> None:  # fmt: skip
        message = aio_pika.Message(
            delivery.body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=expiration, timestamp=int(time.time()),
        )  # fmt: skip
        target = (
            self.channel.default_exchange
            if exchange == ""
            else await self.channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(message, routing_key=key, mandatory=True)

    async def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Nothing to extend: RabbitMQ has no per-message lease (and aio-pika's loop answers
        the connection's heartbeats). LeaseLost if the channel the delivery came on has closed:
        RabbitMQ has put the message back."""
        self._holding(delivery, settle=False)

    def _holding(self, delivery: Delivery, *, settle: bool) -> AbstractIncomingMessage:
        """The message ``delivery`` is (forgotten if ``settle``); LeaseLost unless this broker
        holds it on a channel still open."""
        held = self._held
        message = held.pop(delivery.tag, None) if settle else held.get(delivery.tag)
        if message is None:
            raise LeaseLost("not a delivery this broker holds: settled already, or not ours")
        try:
            message.channel  # noqa: B018 - raises once the channel it came on has closed
        except aio_pika.exceptions.ChannelInvalidStateError:
            raise LeaseLost("the channel closed: RabbitMQ has put the message back") from None
        return message

    async def consume(
        self,
        queue: AbstractQueue,
        consumer: Any,
        handler: Any,
        *,
        idle_timeout: float | None = None,
        max_messages: int | None = None,
    ) -> int:
        """Hand each message of ``queue`` to ``consumer.handle`` (an AsyncSealedConsumer over
        this broker) with ``handler``, until ``idle_timeout`` seconds pass without one or
        ``max_messages`` were taken; how many the handler took."""
        if consumer.broker is not self:
            raise UsageError("the consumer settles through another broker than this one")
        handled = taken = 0
        with map_exceptions(ERRORS):
            async with queue.iterator() as messages:
                while max_messages is None or taken < max_messages:
                    try:
                        message = await asyncio.wait_for(anext(messages), idle_timeout)
                    except (TimeoutError, StopAsyncIteration):
                        break
                    taken += 1
                    delivery = self.delivery(queue.name, message)
                    handled += await consumer.handle(delivery, handler)
        return handled
