"""RabbitMQ through pika's ``BlockingConnection``: sealed bytes on a topic exchange.

The broker only ever holds sealed bytes; what it reports for a delivery (routing key,
``redelivered``, ``x-delivery-count``, headers) is a claim, and consumers open against their own
topics. Three pieces, each usable alone:

* :func:`declare` lays out a group's topology on any pika channel (names in :class:`Topology`):

  ==========================  ============================================================
  ``<exchange>``              the durable topic exchange publishers send to
  ``<group>``                 the group's durable queue, bound to each of its patterns;
                              what it rejects by itself (``basic_nack(requeue=False)``, a
                              quorum queue's ``x-delivery-limit``) goes to the dead-letter
                              exchange with the group as routing key
  ``<exchange>.dead``         the durable direct dead-letter exchange
  ``<group>.dead``            the group's dead-letter queue (bound with the group's name)
  ``<group>.delay``           the delay queue of :class:`~.decide.Retry`: each copy expires
                              after its own delay (per-message ``expiration``) and is
                              dead-lettered straight back into ``<group>``
  ==========================  ============================================================

* :class:`AmqpChannel` is the :class:`~.base.Broker` over one pika channel, yours or ours:
  :meth:`AmqpChannel.callback` wraps a :class:`~letterlock.transports.SealedConsumer` into an
  ``on_message_callback`` for ``channel.basic_consume``, so code that already drives a
  ``BlockingConnection`` (``start_consuming``, ``process_data_events``) keeps doing so.
* :class:`AmqpEndpoint` is the :class:`~.base.Endpoint` by URL (``letterlock listen --broker
  amqp://...``): one connection, a confirm channel for publishing, one channel per
  subscription, dead letters listed and redriven with ``basic_get``.

Settlement (:meth:`AmqpChannel.settle`):

=====================  ===================================================================
decision               what RabbitMQ is told
=====================  ===================================================================
Ack                    ``basic_ack``
Retry, no delay        ``basic_nack(requeue=True)``
Retry after a delay    the bytes published to ``<group>.delay`` with ``expiration`` = the
                       delay (confirmed), then ``basic_ack``
DeadLetter             the bytes published to ``<exchange>.dead`` with one header, the
                       reason word (confirmed), then ``basic_ack``
=====================  ===================================================================

A copy is acked only once its replacement is confirmed, so a crash in between leaves two copies
(the replay window refuses the second), never none. A dead letter's headers are
``letterlock-reason`` (``rejected``, ``handler_error`` or ``max_attempts``: never why) and
``letterlock-topic`` (the routing key it was published with, which the broker knew already).

Attempts: a quorum queue counts deliveries (``x-delivery-count``, absent on the first); a copy
that came back through the delay queue carries the count so far in ``letterlock-attempts``; the
sum is the delivery's ``attempts``. A classic queue says only ``redelivered``, so ``attempts``
is ``None`` there and refusals are dead-lettered at once (see :mod:`~.decide`).

Leases: RabbitMQ has none per message. A delivery stays with its channel until it is settled,
the channel or connection closes (the consumer died: the message goes back to the queue at once,
``redelivered``), or the broker's ``consumer_timeout`` (30 min by default) closes the channel.
So the URL's ``lease=`` is accepted and ignored. What a long handler must keep alive is the
connection: a ``BlockingConnection`` answers heartbeats only while pika runs, and one that
misses two (60 s each by default; ``?heartbeat=SECONDS``, pika's own parameter) is closed by
RabbitMQ, its messages going to other consumers. :meth:`AmqpEndpoint.extend_lease` (called by
``SealedConsumer.extend_lease`` from the handler) lets pika run for that;
:meth:`AmqpChannel.extend_lease` does nothing (your loop's callbacks would run inside your
handler: call ``connection.process_data_events`` yourself where that is safe).

Persistence: messages are published persistent (``delivery_mode=2``) to durable queues, so a
broker restart keeps them. Quorum queues (``?queue_type=quorum``) replicate them; there the
delay queue dead-letters ``at-least-once``. Delayed copies share one queue and expire only at
its head: a long delay ahead of a short one holds it back until it expires itself.

Every pika exception (``pika.exceptions.AMQPError``) and ``OSError`` leaves as
:class:`~letterlock.errors.TransportError`; a publish no queue is bound to (``mandatory=True``,
pika's ``UnroutableError``) as :class:`~.base.Unroutable`.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    Unroutable,
    delivery,
)
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = [
    "ATTEMPTS_HEADER",
    "REASON_HEADER",
    "TOPIC_HEADER",
    "AmqpChannel",
    "AmqpEndpoint",
    "AmqpSubscription",
    "Topology",
    "declare",
]

REASON_HEADER: Final = "letterlock-reason"  #: a dead letter's one word
TOPIC_HEADER: Final = "letterlock-topic"  #: the routing key a copy was first published with
ATTEMPTS_HEADER: Final = "letterlock-attempts"  #: deliveries before a delayed retry (quorum)
DEFAULT_EXCHANGE: Final = "letterlock"
ACK_BATCH: Final = 64  #: a subscription's acks per write (AmqpChannel's ``ack_batch``)

#: pika's errors -> ours (UnroutableError is an AMQPError: it is listed first).
ERRORS: Final[ExceptionMapping] = {
    pika.exceptions.UnroutableError: Unroutable,
    pika.exceptions.AMQPError: TransportError,
    OSError: TransportError,
}
#: What means the connection (not a channel) is gone, so a subscription reconnects.
_CONNECTION_LOST: Final = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelClosed,
    pika.exceptions.ChannelWrongStateError,
    OSError,
)
#: RabbitMQ's reply when it closes a channel whose delivery outlived ``consumer_timeout``.
_PRECONDITION_FAILED: Final = 406
#: What closing something already closed (by the broker, a restart) may raise.
_CLOSING: Final = (pika.exceptions.AMQPError, OSError)
_PERSISTENT: Final = 2
_ids = itertools.count(1)  # AmqpChannel instances, so a stale delivery tag is told apart
#: map_exceptions(ERRORS), made once: it keeps no state, and settling enters it per message.
_MAPPED: Final = map_exceptions(ERRORS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """The names of a group's exchanges and queues (see the module's table)."""

    exchange: str  #: the topic exchange publishers send to
    queue: str  #: the group's queue
    dead_letter_exchange: str
    dead_letter_queue: str
    delay_queue: str

    @classmethod
    def of(cls, group: str, *, exchange: str = DEFAULT_EXCHANGE) -> Topology:
        """The names for ``group`` under ``exchange``."""
        if not group or not exchange:
            raise UsageError("a group and an exchange each need a name")
        return cls(
            exchange=exchange, queue=group, dead_letter_exchange=f"{exchange}.dead",
            dead_letter_queue=f"{group}.dead", delay_queue=f"{group}.delay",
        )  # fmt: skip


def declare(
    channel: Any,
    group: str,
    topics: Topics | str,
    *,
    exchange: str = DEFAULT_EXCHANGE,
    quorum: bool = False,
    dead_letter: bool = True,
    delay: bool = True,
) -> Topology:
    """Declare ``group``'s durable queue bound to ``topics`` on ``exchange``, on a pika channel.

    Idempotent: a group that exists keeps what waits in it, and gains the bindings of
    ``topics`` (no binding is removed). ``dead_letter`` declares the dead-letter exchange and
    the group's dead-letter queue; ``delay`` the delay queue for retries after a delay (a
    settlement that needs one that is missing raises Unroutable). ``quorum`` makes the queues
    quorum queues (replicated; deliveries counted). A group that exists with other arguments
    (another queue type) is refused by RabbitMQ: TransportError, and the channel is closed.
    """
    topics = Topics.of(topics)
    if topics.dialect is not Dialect.AMQP:
        raise UsageError("RabbitMQ binds AMQP patterns ('.', '*' and '#')")
    names = Topology.of(group, exchange=exchange)
    kind: dict[str, object] = {"x-queue-type": "quorum"} if quorum else {}
    with _MAPPED:
        channel.exchange_declare(names.exchange, exchange_type="topic", durable=True)
        arguments = dict(kind)
        if dead_letter:
            channel.exchange_declare(
                names.dead_letter_exchange, exchange_type="direct", durable=True
            )
            channel.queue_declare(names.dead_letter_queue, durable=True, arguments=kind)
            channel.queue_bind(names.dead_letter_queue, names.dead_letter_exchange, group)
            arguments["x-dead-letter-exchange"] = names.dead_letter_exchange
            arguments["x-dead-letter-routing-key"] = group
        channel.queue_declare(group, durable=True, arguments=arguments)
        for pattern in topics.patterns:
            channel.queue_bind(group, names.exchange, pattern)
        if delay:
            back: dict[str, object] = {
                **kind, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": group,
            }  # fmt: skip
            if quorum:  # else a quorum queue dead-letters at most once
                back |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
            channel.queue_declare(names.delay_queue, durable=True, arguments=back)
    return names


def _lost(exc: BaseException | None) -> bool:
    """Whether a settlement's error says the delivery went back to the queue: the connection
    or channel is gone (not closed by RabbitMQ for what it was asked), or RabbitMQ closed the
    channel because the delivery outlived ``consumer_timeout``."""
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return exc.reply_code == _PRECONDITION_FAILED and "timed out" in exc.reply_text
    return isinstance(exc, _CONNECTION_LOST)


def _count(value: object) -> int:
    """A count from a header the broker (or anyone) wrote: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class AmqpChannel:
    """The :class:`~.base.Broker` over one pika ``BlockingChannel`` (yours or the endpoint's).

    Puts the channel in confirm mode (``confirm_delivery``), so publishes (yours, retries and
    dead letters) wait for RabbitMQ's confirm. Deliveries are settled on the channel they came
    from: after it closed, settling one raises :class:`~.base.LeaseLost` (RabbitMQ has put the
    message back already).
    """

    def __init__(
        self,
        channel: Any,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        quorum: bool = False,
        ack_batch: int = 1,
    ) -> None:
        """``exchange`` and ``quorum`` as given to :func:`declare` for the groups consumed here
        (``quorum``: attempts are counted).

        ``ack_batch`` above 1 queues each ack (in order, once its handler returned) and sends
        the queued ones together, with one write: every ``ack_batch`` acks, and whenever pika
        next reads or writes on the connection (``process_data_events``, another settlement,
        closing). One system call per batch instead of per message; a consumer killed
        meanwhile has those messages delivered again (at-least-once: the replay window
        refuses them). For a loop that calls ``process_data_events`` between deliveries, as
        :class:`AmqpSubscription` does.
        """
        if ack_batch < 1:
            raise UsageError("ack_batch must be positive")
        self.channel = channel
        self.exchange = exchange
        self.quorum = quorum
        self.ack_batch = ack_batch
        self._queued = 0  # acks written to pika's buffer, not yet flushed
        # Coalescing (AmqpSubscription's channels only, which send the run before pika runs):
        # every tag up to _upto is settled; _run is the last of the Acks since the last write
        # that followed on from every tag before them, so one ``multiple`` ack covers them all
        # and nothing unsettled; _early holds tags settled out of order, ahead of _upto.
        self._coalesce = False
        self._upto = 0
        self._run = 0
        self._early: set[int] = set()
        self._name = str(next(_ids))  #: a delivery's tag is "<name>.<pika's delivery tag>"
        self._prefix = f"{self._name}."
        if not getattr(channel, "_delivery_confirmation", False):  # pika logs an error if so
            with _MAPPED:
                channel.confirm_delivery()

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> None:
        """Publish persistent ``body`` on ``topic`` and wait for the confirm.

        Raises Unroutable if no queue is bound to a matching pattern (``mandatory=True``).
        """
        at = time.time() if now is None else now
        properties = pika.BasicProperties(delivery_mode=_PERSISTENT, timestamp=int(at))
        with _MAPPED:
            self.channel.basic_publish(
                self.exchange, topic, body, properties=properties, mandatory=True
            )

    def delivery(self, queue: str, method: Any, properties: Any, body: bytes) -> Delivery:
        """What pika hands an ``on_message_callback``, as a :class:`~.base.Delivery`."""
        headers: Mapping[str, object] = properties.headers or {}
        attempts = None
        if self.quorum:
            attempts = _count(headers.get("x-delivery-count")) + _count(
                headers.get(ATTEMPTS_HEADER)
            ) + 1  # fmt: skip
        topic = headers.get(TOPIC_HEADER) if method.exchange == "" else None
        return delivery(
            f"{self._prefix}{method.delivery_tag}", queue,
            topic if isinstance(topic, str) else str(method.routing_key),
            bytes(body), attempts, str(method.delivery_tag),
        )  # fmt: skip

    def callback(
        self, consumer: Any, handler: Callable[[Any], object]
    ) -> Callable[[Any, Any, Any, bytes], None]:
        """An ``on_message_callback`` for ``channel.basic_consume`` that hands each delivery to
        ``consumer.handle`` (a :class:`~letterlock.transports.SealedConsumer` over this
        broker, whose ``queue`` is the queue consumed) with ``handler``.

        The handler's own exception propagates out of pika's loop after its message was
        dead-lettered (``handler_error``): catch it in the handler to keep consuming.
        """
        if consumer.broker is not self:
            raise UsageError("the consumer settles through another broker than this channel")

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            consumer.handle(self.delivery(consumer.queue, method, properties, body), handler)

        return on_message

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, retry (now, or after a delay through the delay queue) or dead-letter.

        LeaseLost if the connection drops meanwhile: RabbitMQ puts back every message this
        channel had not acked (a copy already handled comes back and is refused as a replay).
        A retry or dead letter whose copy was confirmed just before the drop is so published
        twice (noise, never a loss). What RabbitMQ refuses is no lost connection and surfaces
        as TransportError, the message unacked: a copy it returns or nacks, a channel it
        closes for the settlement (a dead-letter exchange deleted: 404; permissions: 403),
        but for ``consumer_timeout`` (406, "timed out"), which is a lease lost.
        """
        name, _, tag = delivery.tag.rpartition(".")
        self._settle_tag(delivery, name, tag, settlement)

    def _settle_tag(self, delivery: Delivery, name: str, text: str, settlement: Settlement) -> None:
        """:meth:`settle`, the delivery's tag split at its last dot (``name``, ``text``)."""
        if name != self._name or not text.isdigit():
            raise LeaseLost("this delivery came through another channel")
        if not self.channel.is_open:
            raise LeaseLost("the channel closed: RabbitMQ has put the message back")
        tag = int(text)
        try:
            if self._coalesce and type(settlement) is Ack:  # almost every delivery
                with _MAPPED:
                    self._ack_coalesced(tag)
                return
            self._settle(delivery, tag, settlement)
        except TransportError as exc:
            if isinstance(exc, LeaseLost) or not _lost(exc.__cause__):
                raise
            lost = exc.__cause__
            message = f"the channel closed ({lost!r}): RabbitMQ puts the message back"
            raise LeaseLost(message) from lost

    def _settle(self, delivery: Delivery, tag: int, settlement: Settlement) -> None:
        with _MAPPED:
            match settlement:
                case Ack() if self._coalesce:
                    self._ack_coalesced(tag)
                case Ack() if self.ack_batch > 1:
                    self.channel._impl.basic_ack(tag)  # pika's own buffer, not yet written
                    self._queued += 1
                    if self._queued >= self.ack_batch:
                        self._queued = 0
                        self.channel.connection.process_data_events(time_limit=0)
                case Ack():
                    self.channel.basic_ack(tag)
                case Retry(delay=delay) if delay <= 0:
                    self.channel.basic_nack(tag, requeue=True)
                case Retry(delay=delay):
                    headers: dict[str, object] = {TOPIC_HEADER: delivery.topic}
                    if delivery.attempts is not None:
                        headers[ATTEMPTS_HEADER] = delivery.attempts
                    later = f"{delay * 1000:.0f}"  # milliseconds
                    self._send("", self._names(delivery).delay_queue, delivery, headers, later)
                    self.channel.basic_ack(tag)
                case DeadLetter(reason=reason):
                    headers = {REASON_HEADER: DeadLetterReason(reason).value}
                    headers[TOPIC_HEADER] = delivery.topic
                    names = self._names(delivery)
                    self._send(names.dead_letter_exchange, names.queue, delivery, headers)
                    self.channel.basic_ack(tag)
            if self._coalesce and not isinstance(settlement, Ack):
                self._follows(tag)  # settled alone, and so never covered twice

    def _ack_coalesced(self, tag: int) -> None:
        """Ack a run of deliveries settled in order with one ``basic_ack(multiple=True)``:
        one frame and one system call per batch, where pika writes each frame with a system
        call of its own. A tag that does not follow on is acked alone."""
        if tag == self._upto + 1 and not self._early:  # in order, as almost every one is
            self._upto = self._run = tag
        elif self._follows(tag):
            self._run = tag
        else:
            self.channel._impl.basic_ack(tag)  # pika's own buffer, not yet written
        self._queued += 1
        if self._queued >= self.ack_batch:
            self.send_acks()
            self.channel.connection.process_data_events(time_limit=0)

    def _follows(self, tag: int) -> bool:
        """Record ``tag`` as settled; True if every tag before it was already."""
        if tag != self._upto + 1:
            self._early.add(tag)
            return False
        self._upto = tag
        while self._upto + 1 in self._early:
            self._early.remove(self._upto + 1)
            self._upto += 1
        return True

    def send_acks(self) -> None:
        """Put the pending run of acks into pika's buffer, as one ``multiple`` ack."""
        if self._run:
            self.channel._impl.basic_ack(self._run, multiple=True)
        self._run = self._queued = 0

    def _names(self, delivery: Delivery) -> Topology:
        return Topology.of(delivery.queue, exchange=self.exchange)

    def _send(
        self, exchange: str, key: str, delivery: Delivery, headers: dict[str, object],
        expiration: str | None = None,
    ) -> None:  # fmt: skip
        properties = pika.BasicProperties(
            delivery_mode=_PERSISTENT, headers=headers, expiration=expiration,
            timestamp=int(time.time()),
        )  # fmt: skip
        self.channel.basic_publish(exchange, key, delivery.body, properties, mandatory=True)

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Nothing: RabbitMQ keeps a delivery with its channel until it is settled or closed
        (and running pika here would run your consumer callbacks inside your handler)."""


def _record(group: str, seq: int, properties: Any, body: bytes) -> DeadLetterRecord:
    """A copy in a dead-letter queue: ours (reason header) or one RabbitMQ dead-lettered."""
    headers: Mapping[str, object] = properties.headers or {}
    reason, topic = headers.get(REASON_HEADER), headers.get(TOPIC_HEADER)
    deaths = headers.get("x-death")
    if reason is None and isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")  # rejected, expired, maxlen, delivery_limit
        keys = deaths[0].get("routing-keys")
        topic = keys[0] if isinstance(keys, list) and keys else topic
    published = properties.timestamp
    return DeadLetterRecord(
        queue=group, seq=seq, topic=str(topic or ""), body=bytes(body), attempts=0,
        reason=str(reason or DeadLetterReason.REJECTED.value),
        published=float(published) if isinstance(published, int) else 0.0, dead_at=0.0,
    )  # fmt: skip


def _waiting(channel: Any, queue: str) -> int:
    """How many copies ``queue`` holds ready; 0 if it does not exist (a group never declared
    has no dead letters), which closes ``channel``."""
    try:
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:  # NOT_FOUND
            return 0
        raise


def _put_back(channel: Any, queue: str, count: int, *, wait: float = 2.0) -> None:
    """Requeue every copy ``channel`` took from ``queue``, and wait (at most ``wait`` seconds)
    until ``queue`` holds ``count`` again: a quorum queue takes copies back asynchronously, and
    a redrive right after a listing must find them."""
    channel.basic_nack(0, multiple=True, requeue=True)  # tag 0, multiple: all it holds
    deadline = time.monotonic() + wait
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        if time.monotonic() >= deadline:
            return  # taken meanwhile by someone else: nothing to wait for
        time.sleep(0.01)


class AmqpEndpoint:
    """RabbitMQ by URL: ``amqp://user:password@host:port/vhost?options`` (``amqps://`` too).

    Options (beside pika's own, such as ``heartbeat``): ``exchange`` (default ``letterlock``),
    ``queue_type`` (``classic`` or ``quorum``), ``prefetch`` (deliveries a subscription holds
    unacked, default 100), ``reconnect`` (seconds a subscription keeps reconnecting after the
    connection is lost before it raises TransportError, default 30; 0: never), ``ack_batch``
    (acks a subscription sends in one write, default 64; see :class:`AmqpChannel`) and ``lease``
    (accepted and ignored: RabbitMQ has no per-message lease, see the module).
    Dead letters are not timed by RabbitMQ: a record's ``attempts`` and ``dead_at`` are 0.
    An endpoint is one pika connection, which is not thread-safe: one endpoint per thread.
    """

    dialect: Final = Dialect.AMQP

    def __init__(
        self,
        parameters: Any,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        quorum: bool = False,
        prefetch: int = 100,
        reconnect: float = 30.0,
        ack_batch: int = ACK_BATCH,
    ) -> None:
        """Connect lazily to pika ``parameters`` (a ``ConnectionParameters``)."""
        if prefetch < 1 or reconnect < 0 or ack_batch < 1:
            raise UsageError("prefetch and ack_batch must be positive, reconnect not negative")
        Topology.of("-", exchange=exchange)
        self.parameters = parameters
        self.exchange = exchange
        self.quorum = quorum
        self.prefetch = prefetch
        self.reconnect = reconnect
        self.ack_batch = ack_batch
        self._connection: Any = None
        self._publisher: AmqpChannel | None = None
        self._channels: dict[str, AmqpChannel] = {}  # name -> live subscription channel

    @classmethod
    def from_url(cls, url: str) -> AmqpEndpoint:
        """Parse ``url``: our options are taken out, the rest goes to ``pika.URLParameters``."""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise UsageError("a RabbitMQ URL starts amqp:// or amqps://")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("exchange", "queue_type", "prefetch", "reconnect", "lease", "ack_batch"):
                ours[key] = value
            else:
                theirs.append((key, value))
        queue_type = ours.get("queue_type", "classic")
        if queue_type not in ("classic", "quorum"):
            raise UsageError("queue_type is classic or quorum")
        try:
            prefetch = int(ours.get("prefetch", "100"))
            ack_batch = int(ours.get("ack_batch", str(ACK_BATCH)))
            reconnect = float(ours.get("reconnect", "30"))
            float(ours.get("lease", "0"))
        except ValueError:
            raise UsageError(
                "prefetch and ack_batch are whole numbers; reconnect and lease are seconds"
            ) from None
        rest = urlunsplit((*parts[:3], urlencode(theirs), parts.fragment))
        try:
            parameters = pika.URLParameters(rest)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"not a RabbitMQ URL pika understands: {exc}") from None
        return cls(
            parameters, exchange=ours.get("exchange", DEFAULT_EXCHANGE),
            quorum=queue_type == "quorum", prefetch=prefetch, reconnect=reconnect,
            ack_batch=ack_batch,
        )  # fmt: skip

    # the connection -------------------------------------------------------------------

    def connection(self) -> Any:
        """The open ``BlockingConnection``, (re)connecting if there is none."""
        if self._connection is None or not self._connection.is_open:
            self._publisher = None
            self._channels.clear()  # their deliveries went back to their queues
            with _MAPPED:
                self._connection = pika.BlockingConnection(self.parameters)
        return self._connection

    def channel(self, *, ack_batch: int = 1) -> AmqpChannel:
        """A new confirm channel on the connection, as a Broker."""
        with _MAPPED:
            channel = self.connection().channel()
        return AmqpChannel(channel, exchange=self.exchange, quorum=self.quorum, ack_batch=ack_batch)

    def close(self) -> None:
        """Close the connection: unsettled deliveries go back to their queues."""
        connection, self._connection = self._connection, None
        self._publisher = None
        channels, self._channels = list(self._channels.values()), {}
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_CLOSING):  # gone already: nothing is left to settle
                for channel in channels:  # acks of a subscription left open: written first
                    if channel.channel.is_open:
                        channel.send_acks()
                connection.close()

    def __enter__(self) -> AmqpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the Broker -------------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> None:
        """Publish under confirms (see :meth:`AmqpChannel.publish`); Unroutable if unbound.

        A lost connection raises TransportError and is opened again on the next call: a
        publisher retries with the same sealed bytes (a copy that did arrive twice is refused
        as a replay by the consumer).
        """
        if self._publisher is None or not self._publisher.channel.is_open:
            publisher = self.channel()
            with _MAPPED:  # so that no queue bound yet is Unroutable, not 404
                publisher.channel.exchange_declare(self.exchange, "topic", durable=True)
            self._publisher = publisher
        try:
            self._publisher.publish(topic, body, now=now)
        except TransportError as exc:
            if isinstance(exc.__cause__, _CONNECTION_LOST):
                self._publisher = None
            raise

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Settle on the channel ``delivery`` came through; LeaseLost once it has closed."""
        name, _, tag = delivery.tag.rpartition(".")
        channel = self._channels.get(name)
        if channel is None:
            raise LeaseLost("the channel closed: RabbitMQ has put the message back")
        channel._settle_tag(delivery, name, tag, settlement)

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Keep the connection alive for a handler that runs long: RabbitMQ has no
        per-message lease, but pika answers heartbeats only while it runs, and a connection
        that misses two is closed, its deliveries going to other consumers. So this lets
        pika run once (``process_data_events(time_limit=0)``; what arrives meanwhile waits
        in the subscription). LeaseLost if the delivery's channel has closed already, or the
        connection turns out to be lost now."""
        name, _, _ = delivery.tag.rpartition(".")
        channel = self._channels.get(name)
        if channel is None or not channel.channel.is_open:
            raise LeaseLost("the channel closed: RabbitMQ has put the message back")
        try:
            with _MAPPED:
                channel.send_acks()
                channel.channel.connection.process_data_events(time_limit=0)
        except TransportError as exc:
            if not _lost(exc.__cause__):
                raise
            lost = exc.__cause__
            raise LeaseLost(f"the connection was lost ({lost!r}): RabbitMQ puts it back") from lost

    # the Endpoint -----------------------------------------------------------------------

    def declare(self, topics: Topics, *, group: str) -> Topology:
        """:func:`declare` ``group`` with this endpoint's exchange and queue type."""
        broker = self.channel()
        try:
            return declare(
                broker.channel, group, topics, exchange=self.exchange, quorum=self.quorum
            )
        finally:
            self._discard(broker)

    def subscribe(self, topics: Topics, *, group: str) -> AmqpSubscription:
        """Declare ``group`` (:func:`declare`) and consume it on a channel of its own."""
        return AmqpSubscription(self, topics, group)

    def _attach(self, broker: AmqpChannel) -> None:
        self._channels[broker._name] = broker

    def _discard(self, broker: AmqpChannel) -> None:
        self._channels.pop(broker._name, None)
        if broker.channel.is_open:
            with contextlib.suppress(*_CLOSING):  # its connection is gone: so are its deliveries
                broker.send_acks()
                broker.channel.close()

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """The group's dead letters, oldest first: read with ``basic_get`` and left in place
        (requeued unacked: RabbitMQ puts each back where it was); none for a group never
        declared."""
        names = Topology.of(group, exchange=self.exchange)
        broker = self.channel()
        records: list[DeadLetterRecord] = []
        try:
            with _MAPPED:
                count = _waiting(broker.channel, names.dead_letter_queue)
                while (limit is None or len(records) < limit) and len(records) < count:
                    method, properties, body = broker.channel.basic_get(names.dead_letter_queue)
                    if method is None:
                        break
                    records.append(_record(group, len(records) + 1, properties, body))
                if records:
                    _put_back(broker.channel, names.dead_letter_queue, count)
        finally:
            self._discard(broker)
        return records

    def redrive(self, group: str, /) -> int:
        """Move the group's dead letters back into its queue (as many as it held when called):
        each is published to the group's queue under confirms, then acked, so none is lost."""
        names = Topology.of(group, exchange=self.exchange)
        broker = self.channel()
        moved = 0
        try:
            with _MAPPED:
                channel = broker.channel
                for _ in range(_waiting(channel, names.dead_letter_queue)):
                    method, properties, body = channel.basic_get(names.dead_letter_queue)
                    if method is None:
                        break
                    topic = _record(group, 0, properties, b"").topic
                    back = pika.BasicProperties(
                        delivery_mode=_PERSISTENT, timestamp=properties.timestamp,
                        headers={TOPIC_HEADER: topic},
                    )  # fmt: skip
                    channel.basic_publish("", names.queue, body, back, mandatory=True)
                    channel.basic_ack(method.delivery_tag)
                    moved += 1
        finally:
            self._discard(broker)
        return moved


class AmqpSubscription:
    """One consumer of a group: ``basic_consume`` on a channel of its own, driven by
    ``process_data_events`` while :meth:`deliveries` waits.

    Acks go out in batches (:class:`AmqpChannel`'s ``ack_batch``, the endpoint's, or the
    prefetch if lower): whenever :meth:`deliveries` waits for more, every batch, and on
    :meth:`close`. Deliveries acked in the order they came go out as one ``basic_ack`` with
    ``multiple`` (one frame, where pika writes each frame with a system call of its own), which
    never covers a delivery not settled yet; one acked out of order goes alone. If the
    connection is lost (a broker restart), the deliveries not yet settled
    are gone back to the queue (settling one raises LeaseLost), and :meth:`deliveries`
    reconnects, declares the group again and consumes on, for up to the endpoint's
    ``reconnect`` seconds.
    """

    def __init__(self, endpoint: AmqpEndpoint, topics: Topics, group: str) -> None:
        self._endpoint = endpoint
        self._topics = topics
        self._group = group
        self._pending: deque[Delivery] = deque()
        self._broker: AmqpChannel | None = None
        self._attach()

    def _attach(self) -> None:
        endpoint = self._endpoint
        broker = endpoint.channel(ack_batch=min(endpoint.ack_batch, endpoint.prefetch))
        broker._coalesce = True  # this subscription sends the run before each pika run
        self._pending.clear()
        with _MAPPED:
            declare(
                broker.channel, self._group, self._topics, exchange=endpoint.exchange,
                quorum=endpoint.quorum,
            )  # fmt: skip
            broker.channel.basic_qos(prefetch_count=endpoint.prefetch)
            broker.channel.basic_consume(self._group, self._on_message)
        endpoint._attach(broker)
        self._broker = broker

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        assert self._broker is not None
        self._pending.append(self._broker.delivery(self._group, method, properties, body))

    def _recover(self, lost: TransportError) -> None:
        """Reconnect after ``lost`` (backing off up to 1 s), or raise it once out of time."""
        if self._broker is not None:
            self._endpoint._channels.pop(self._broker._name, None)
        self._broker = None
        self._pending.clear()
        deadline = time.monotonic() + self._endpoint.reconnect
        pause = 0.05
        while True:
            if time.monotonic() >= deadline:
                raise lost
            try:
                self._attach()
            except TransportError:
                time.sleep(pause)
                pause = min(1.0, pause * 2)
            else:
                return

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        """Each next delivery; stop after ``idle_timeout`` seconds without one (None: never).
        Time spent reconnecting does not count: a broker restart is not an idle queue."""
        idle_since = time.monotonic()
        while True:
            if self._pending:
                yield self._pending.popleft()
                idle_since = time.monotonic()
                continue
            waited = time.monotonic() - idle_since
            if idle_timeout is not None and waited >= idle_timeout:
                return
            left = 1.0 if idle_timeout is None else min(1.0, idle_timeout - waited)
            try:
                self._wait(left)
            except TransportError as exc:
                self._recover(exc)
                idle_since = time.monotonic()  # time spent reconnecting is not idle time

    def _wait(self, seconds: float) -> None:
        """Let pika read and dispatch for up to ``seconds``; TransportError if consuming ended."""
        if self._broker is None:
            raise TransportError("this subscription is closed")
        with _MAPPED:
            self._broker.send_acks()
            self._endpoint.connection().process_data_events(time_limit=seconds)
        if not self._broker.channel.is_open:
            raise TransportError("the channel closed")

    def close(self) -> None:
        """Send the queued acks and stop consuming; unsettled deliveries go back to the
        group's queue."""
        broker, self._broker = self._broker, None
        self._pending.clear()
        if broker is not None:
            self._endpoint._discard(broker)
