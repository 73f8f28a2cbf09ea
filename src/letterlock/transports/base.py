"""The broker seam: what a broker adapter hands a consumer, and the few calls it must answer.

A broker adapter is thin (as httpcore's network backends are): it moves sealed bytes and settles
each delivery as :class:`~letterlock.transports.SealedConsumer` tells it, by the pure rules of
:mod:`letterlock.transports.decide`. It never opens a message and never decides anything.

* :class:`Delivery` is what an adapter makes of one delivered copy of a message: the bytes, the
  topic the broker *claims* (for local logs only: a consumer opens against its own configured
  topics), how often the broker has delivered it (``None`` if it does not count), and a ``tag``,
  the adapter's own handle for settling it.
* :class:`Broker` is what every adapter answers: ``publish`` (sealed bytes onto a topic),
  ``settle`` (an :class:`~letterlock.transports.decide.Ack`, a
  :class:`~letterlock.transports.decide.Retry` after a delay or a
  :class:`~letterlock.transports.decide.DeadLetter` with its one-word reason) and
  ``extend_lease`` (a heartbeat for a handler that runs long).
* Pull and push. A broker the consumer pulls from is a :class:`PullBroker`: its ``deliveries``
  leases one delivery at a time, and :meth:`SealedConsumer.poll` drains it. A broker that
  pushes calls the adapter back; the adapter's callback hands each delivery to
  :meth:`SealedConsumer.handle`.
* What a broker cannot do, an adapter says in the way this module fixes: no attempt count ->
  ``attempts=None``, and the decision then never asks for a retry (see
  :mod:`~letterlock.transports.decide`); no nack -> the adapter republishes (to a dead-letter
  topic or stream) and acks, or, for a retry, leaves the delivery unacked for the broker to
  redeliver; nothing to keep dead letters in -> the adapter drops it, and the consumer's log
  and metrics are the report; no lease -> ``extend_lease`` does nothing. An adapter asked for
  what it cannot express raises :class:`~letterlock.errors.UsageError`.
* Errors: every exception of the client library leaves an adapter as
  :class:`~letterlock.errors.TransportError` through :func:`letterlock._edges.map_exceptions`;
  a settlement or heartbeat that comes after the broker gave the delivery to someone else
  raises :class:`LeaseLost`, and so does one that cannot reach the broker because the
  connection or channel it needs is gone (the message stays with the broker and comes back:
  redelivery, a reclaimed pending entry, ``ack_wait``, an MQTT session resumed), so that a
  lost connection never stops a consumer in ``handle``; what the broker refuses (a
  permission, a dead-letter copy it will not take) stays a TransportError. A publish that no
  queue would ever read raises :class:`Unroutable` where the broker can tell.
* asyncio clients (aio-pika, nats-py) answer the same calls as coroutines: :class:`AsyncBroker`
  and :class:`AsyncPullBroker` mirror :class:`Broker` and :class:`PullBroker` (as httpcore's
  ``AsyncNetworkBackend`` mirrors ``NetworkBackend``), and
  :class:`~letterlock.transports.AsyncSealedConsumer` drives them by the same pure ``decide``.
* By URL: an adapter that the command line (``letterlock send``, ``listen``, ``dlq``) can reach
  is also an :class:`Endpoint`: a :class:`Broker` that declares a group's durable subscription
  (:meth:`Endpoint.subscribe`, returning a :class:`Subscription` whose ``deliveries`` block
  for the next one) and lists and redrives the group's dead letters. Its constructor is a
  ``from_url`` class method, registered by scheme in :mod:`letterlock.transports.urls`.

How each broker's primitives map onto the seam:

**The local spool** (:class:`letterlock.transports.Spool`, the first adapter): pull.
``deliveries`` leases with ``get`` for the spool's ``lease_seconds``; attempts are counted; Ack
is ``ack``, Retry ``nack(requeue=True, delay=...)``, DeadLetter ``nack(requeue=False,
reason=...)`` (the bytes stay as a dead letter for ``dead_letters``/``redrive``);
``extend_lease`` is ``touch``. A tag settled after its lease ran out and the message was leased
again raises LeaseLost; a topic no queue is bound to raises Unroutable.

**RabbitMQ** (pika, aio-pika): push with ``channel.basic_consume(queue, on_message_callback)``
(aio-pika ``queue.consume``), pull with ``basic_get`` (aio-pika ``queue.get``). The tag is the
delivery tag of the channel; the topic the routing key. Quorum queues count deliveries (the
``x-delivery-count`` header, absent on the first delivery) and can bound them themselves
(``x-delivery-limit``); classic queues say only ``redelivered``, so attempts is None there.
Ack is ``basic_ack``; DeadLetter is ``basic_nack(requeue=False)`` into the queue's dead-letter
exchange (``x-dead-letter-exchange``; RabbitMQ's own ``x-death`` reason is ``rejected`` too),
or, to keep the exact :class:`~letterlock.transports.decide.DeadLetterReason`, a publish of the
bytes to that exchange with the reason in a header, under publisher confirms, then
``basic_ack``. Retry with no delay is ``basic_nack(requeue=True)``; AMQP cannot requeue later, so
a delayed retry is a confirmed publish to a delay queue (per-message ``expiration`` = the delay,
dead-lettering back into the work queue, the attempts so far in a ``letterlock-attempts``
header) and then ``basic_ack``. No per-message lease (a delivery stays with the channel until
it closes or ``consumer_timeout``); what a long handler keeps alive is the connection, whose
heartbeats a pika ``BlockingConnection`` answers only while it runs: ``extend_lease`` lets it
run (``process_data_events(time_limit=0)``; nothing on aio-pika, whose loop runs). Publish is
``basic_publish(exchange, topic, body, mandatory=True)`` on a channel in ``confirm_delivery()``
mode: pika's ``UnroutableError`` is Unroutable, ``NackError`` and every
``pika.exceptions.AMQPError`` (aio-pika: ``aio_pika.exceptions.AMQPException``) a TransportError.

**MQTT** (paho-mqtt 2, :mod:`letterlock.transports.mqtt`): push:
``Client(CallbackAPIVersion.VERSION2, manual_ack=True)``, ``on_message(client, userdata,
message)`` feeding a queue that the subscription's ``deliveries`` reads; the tag carries the
connection, ``message.mid`` and ``message.qos``, the topic is ``message.topic``. MQTT has no
nack, no attempt count (``message.dup`` says only "maybe seen before") and no delay, so attempts
is None and no refusal is retried. Ack is ``client.ack(mid, qos)``, on the connection the
delivery came on only (LeaseLost otherwise). Retry (a busy copy only, since attempts is None)
keeps the delivery unacked and hands it out again after the delay: the broker cannot. DeadLetter
publishes the bytes to ``letterlock/dead/<group>`` (QoS 1, the reason as an MQTT 5 user
property, a small framing in 3.1.1), waits for its PUBACK, then acks. A message never acked
stays with the group's persistent session and comes back when a consumer connects again: MQTT's
only redelivery, which serves crashes. No lease: ``extend_lease`` does nothing. Publish is
``client.publish(topic, body, qos=1)`` and its PUBACK; an MQTT 5 PUBACK "no matching
subscribers" is Unroutable (3.1.1 brokers drop such a message unseen); an error code other than
``MQTT_ERR_SUCCESS``, ``OSError`` and paho's ``ValueError``/``RuntimeError`` become
TransportError (:func:`~letterlock._edges.map_exceptions` never turns our UsageError, a
ValueError, into one).

**NATS JetStream** (nats-py, asyncio): push with ``js.subscribe(subject, durable=...,
cb=..., manual_ack=True)``, pull with ``js.pull_subscribe(subject, durable)`` and
``psub.fetch(batch, timeout)``. The tag is the message's reply subject (an ack is a publish to
it), the topic ``msg.subject``, attempts ``msg.metadata.num_delivered``. Ack is ``msg.ack()``
(``ack_sync()`` to wait for the server); Retry is ``msg.nak(delay=seconds)``; DeadLetter:
JetStream keeps no dead letters, so the adapter publishes the bytes and the reason to a
dead-letter stream (``js.publish``, which waits for the stream's ack) and then ``msg.term()``.
``extend_lease`` is ``msg.in_progress()``, which restarts the consumer's ``ack_wait``; set
``max_deliver`` above ``max_attempts``. Publish is ``js.publish(subject, body)``, acknowledged
by the stream: ``NoStreamResponseError`` (no stream for the subject) is Unroutable, every
``nats.errors.Error`` and timeout a TransportError.

**Redis Streams** (redis-py; :mod:`letterlock.transports.redis`): pull: ``XAUTOCLAIM key g c
<lease ms> 0-0 COUNT n`` for entries whose holder went quiet for a lease, then ``XREADGROUP
GROUP g c COUNT n STREAMS key >`` for new ones. Redis has no pattern subscription: one stream
per endpoint, each entry's topic in a field; a group acks and skips the entries its patterns do
not match (the broker dropping them, which it always can). The tag is the entry id; attempts
is the entry's delivery count (``XPENDING`` with the id; ``XAUTOCLAIM`` raises it). Ack is
``XACK``. No nack: Retry leaves the entry pending, to be claimed again once idle for the lease
(a shorter delay: ``XCLAIM ... IDLE`` with an idle time that makes it due then, ``JUSTID`` so
that nothing is counted; Redis cannot set an idle time in the future, so a delay is at most the
lease); DeadLetter is ``XADD <key>:dead:<group>`` (per group, so that ``dead_letters`` and
``redrive`` read one group's) with the bytes and the reason, and ``XACK``. ``extend_lease`` is
``XCLAIM key g c 0 <id> JUSTID``, which restarts the entry's idle clock. ``XACK`` and ``XCLAIM``
do not ask who holds an entry, so each settlement and heartbeat is one Lua script that checks
with ``XPENDING`` that the entry is still this consumer's (else LeaseLost) before it acts:
atomic, dead letter and ack together. Publish is ``XADD``; there is no Unroutable (a stream
exists once written). ``redis.exceptions.RedisError`` (its ``ConnectionError`` and
``TimeoutError`` included) becomes TransportError; a subscription first tries to reach Redis
again, and makes its group again if Redis lost it, for the URL's ``reconnect`` seconds.

**ZeroMQ** (pyzmq; :mod:`letterlock.transports.zmq`): no broker at all, at most once. The
adapter pulls from a ``PULL`` or ``SUB`` socket (``poll``, then ``recv_multipart()``); the topic
is the first frame, the tag empty. No ack, no nack, no attempts, no lease: Ack and
``extend_lease`` do nothing; a Retry (asked for only for a busy copy, since attempts is None,
which another consumer is handling) is dropped, as nothing can come back; DeadLetter sends
``[topic, reason, body]`` on the adapter's dead-letter ``PUSH`` socket if it has one, and
otherwise drops the message (the consumer's warning and its ``dead_lettered:<reason>`` count
are the report). Publish is ``send_multipart([topic, body])`` on an ``XPUB`` (a ``PUB`` that
sees subscriptions, so a new publisher can wait for its subscribers) or ``PUSH`` socket; a
``PUB`` drops what nobody subscribes to, unseen. ``zmq.ZMQError`` becomes TransportError.

**Celery / kombu**: push with ``kombu.Consumer(channel, queues, callbacks=[on_message])``
(``on_message(body, message)``, driven by ``connection.drain_events()``), pull with
``SimpleQueue.get`` or ``Queue.get(no_ack=False)``. The tag is ``message.delivery_tag``, the
topic ``message.delivery_info["routing_key"]``; attempts as the transport under it has them
(``x-delivery-count`` on RabbitMQ quorum queues, else None). Ack is ``message.ack()``;
DeadLetter ``message.reject(requeue=False)`` where the transport dead-letters (AMQP with a
dead-letter exchange), else a publish to a dead-letter queue and ``ack``; Retry with no delay
``message.requeue()``, later ones a publish to a delay queue and ``ack`` (as for RabbitMQ).
``extend_lease`` does nothing (a Redis or SQS transport's ``visibility_timeout`` is set per
connection). Publish is ``Producer.publish(body, exchange=..., routing_key=topic)``, with
``mandatory=True`` and confirms where the transport has them. kombu names each transport's errors
(``connection.connection_errors + connection.channel_errors``; ``kombu.exceptions.KombuError``):
those are what the adapter maps to TransportError. A Celery worker runs its own consumer; there
letterlock seals task arguments as a kombu serializer and opens them in a gate before Celery
(:mod:`letterlock.integrations.celery`), which settles a refusal by the same decision
(``message.reject(requeue=False)``: a dead letter at once, attempts being unknown).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Final, Protocol, runtime_checkable

from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError
from letterlock.transports.decide import Settlement

__all__ = [
    "AsyncBroker",
    "AsyncPullBroker",
    "Broker",
    "DeadLetterRecord",
    "Delivery",
    "Endpoint",
    "LeaseLost",
    "PullBroker",
    "QueueStats",
    "Subscription",
    "Unroutable",
]


class LeaseLost(TransportError):
    """The delivery is no longer this consumer's: it was settled, or delivered again elsewhere."""


class Unroutable(TransportError):
    """No queue is bound to a pattern matching the topic, so nobody would ever read it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One delivered copy of a message, as an adapter hands it to a consumer."""

    #: The adapter's handle for settling it (a spool lease tag, an AMQP delivery tag, a
    #: JetStream reply subject, a stream entry id). Opaque to letterlock; never logged.
    tag: str
    queue: str  #: where it was consumed from
    #: The topic the broker reports for it: a claim, for local logs only. A consumer opens every
    #: message against the topics of its own configuration, never against this.
    topic: str
    body: bytes = field(repr=False)
    #: How often the broker has delivered this message, this time included; None if it does
    #: not count (MQTT, ZeroMQ, RabbitMQ classic queues).
    attempts: int | None
    ref: str = ""  #: what the broker calls the message, for logs (a sequence number, an id)


def slot_setters(cls: type) -> tuple[Callable[[object, object], None], ...]:
    """The ``__set__`` of each field's slot of the frozen, slotted dataclass ``cls``, in field
    order: for an adapter's maker of its deliveries (:func:`delivery`)."""
    return tuple(getattr(cls, f.name).__set__ for f in fields(cls))


_DELIVERY: Final = slot_setters(Delivery)


def delivery(  # noqa: PLR0917 - Delivery's fields, in order
    tag: str, queue: str, topic: str, body: bytes, attempts: int | None, ref: str
) -> Delivery:
    """``Delivery(tag=tag, ...)`` with its slots set directly: what the dataclass's ``__init__``
    does (it checks nothing either) without a keyword call and an ``object.__setattr__`` per
    field, at less than half the cost. Adapters make one per message."""
    made = object.__new__(Delivery)
    s0, s1, s2, s3, s4, s5 = _DELIVERY
    s0(made, tag)
    s1(made, queue)
    s2(made, topic)
    s3(made, body)
    s4(made, attempts)
    s5(made, ref)
    return made


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterRecord:
    """A dead letter as a broker keeps it: the exact bytes it was given, and the one word said.

    For inspection (the spool's and the memory broker's ``dead_letters``): not part of the seam.
    ``reason`` is a :class:`~letterlock.transports.decide.DeadLetterReason` value (as stored).
    """

    queue: str
    seq: int
    topic: str
    body: bytes = field(repr=False)
    attempts: int
    reason: str
    published: float
    dead_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """How many copies a queue holds, by state (for inspection: not part of the seam)."""

    ready: int
    leased: int
    delayed: int
    dead: int


class Broker(Protocol):
    """What every broker adapter answers (see the module for each broker's primitives)."""

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> object:
        """Put sealed bytes on ``topic``; what it returns (a sequence number) is the broker's."""
        ...

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, retry after ``settlement.delay`` or dead-letter with ``settlement.reason``.

        Raises LeaseLost if the delivery is no longer this consumer's, or if the connection
        it must be settled through is gone (the broker has it back).
        """
        ...

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """A heartbeat: keep the delivery this consumer's for another lease (if leases exist);
        LeaseLost as for :meth:`settle`."""
        ...


@runtime_checkable
class PullBroker(Broker, Protocol):
    """A broker the consumer pulls from."""

    def deliveries(self, queue: str, *, now: float | None = None) -> Iterator[Delivery]:
        """Lease the ready deliveries of ``queue`` one at a time, oldest first, until none is
        ready. The next one is leased only when asked for."""
        ...


class AsyncBroker(Protocol):
    """:class:`Broker` for asyncio clients: the same calls, as coroutines."""

    async def publish(self, topic: str, body: bytes, *, now: float | None = None) -> object:
        """As :meth:`Broker.publish`."""
        ...

    async def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """As :meth:`Broker.settle`."""
        ...

    async def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """As :meth:`Broker.extend_lease`."""
        ...


@runtime_checkable
class AsyncPullBroker(AsyncBroker, Protocol):
    """:class:`PullBroker` for asyncio clients."""

    def deliveries(self, queue: str, *, now: float | None = None) -> AsyncIterator[Delivery]:
        """As :meth:`PullBroker.deliveries`: lease the ready deliveries one at a time."""
        ...


class Subscription(Protocol):
    """One consumer attached to a group's durable subscription (:meth:`Endpoint.subscribe`)."""

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        """Wait for each next delivery; stop after ``idle_timeout`` seconds without one (None:
        never). Settle each through the endpoint, from the thread that iterates; deliveries
        not settled when the subscription closes come back to the group (at-least-once)."""
        ...

    def close(self) -> None:
        """Detach this consumer; the group's subscription and what waits in it stay."""
        ...


class Endpoint(Broker, Protocol):
    """A broker reached by URL: what the command line sends to, listens on and inspects.

    A *group* is a durable subscription shared by the consumers that name it: a RabbitMQ
    queue, a NATS durable consumer, a Redis consumer group, an MQTT persistent session, a spool
    queue. Messages published after a group was first subscribed wait for it while no consumer
    is attached; consumers of one group share its messages, each message going to one of them.
    """

    @property
    def dialect(self) -> Dialect:
        """How this broker writes topics and patterns (AMQP ``.``/``*``/``#``, MQTT
        ``/``/``+``/``#``, NATS ``.``/``*``/``>``): ``listen --topic`` is read in it."""
        ...

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        """Declare ``group``'s durable subscription to ``topics`` (idempotent: an existing
        group keeps what waits in it) and attach one consumer to it."""
        ...

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """The group's dead letters, oldest first, without consuming them."""
        ...

    def redrive(self, group: str, /) -> int:
        """Put the group's dead letters back to be delivered again; how many."""
        ...

    def close(self) -> None:
        """Close the connection; settle nothing more through it."""
        ...
