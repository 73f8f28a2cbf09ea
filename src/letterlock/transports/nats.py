"""NATS JetStream (nats-py, asyncio): streams, durable pull consumers, ``term()`` for refusals.

Two ways in. :class:`NatsBroker` is the asyncio adapter, driven by
:class:`~letterlock.transports.AsyncSealedConsumer` the way nats-py users write code: pull
(``await broker.subscribe(topics, group=...)``, then ``consumer.poll(handler)``, which fetches in
batches with ``psub.fetch``) or push (``stream = await broker.declare(topics)``, then
``js.subscribe(subject, durable=..., stream=stream, cb=broker.callback(...), manual_ack=True)``).
:class:`NatsEndpoint` is the same adapter for the command line: a sync
:class:`~letterlock.transports.base.Endpoint` for ``nats://`` and ``tls://`` URLs that runs the
asyncio client on a private event-loop thread.

How the seam maps (see :mod:`letterlock.transports.base`): a delivery's tag is its reply subject,
its topic ``msg.subject`` (the broker's claim), attempts ``msg.metadata.num_delivered``. Ack is
``msg.ack()``, Retry ``msg.nak(delay=...)``; DeadLetter publishes the bytes to the dead-letter
stream with the one opaque reason in a header, awaits the stream's ack, then ``msg.term()``, so
nothing is terminated that is not kept. ``extend_lease`` is ``msg.in_progress()``, which
restarts ``ack_wait``. A second settlement of one delivery raises
:class:`~letterlock.transports.base.LeaseLost`, and so does a settlement or heartbeat on a
connection that is gone (closed, or reconnecting past what nats-py buffers or a request waits):
the server delivers the message again after ``ack_wait`` (see :meth:`NatsBroker.settle`). The
server itself accepts an ack of a delivery it
has already handed to another consumer, so a lease lost to a slow handler is caught by the
consumer's replay-store claim, not here. Publish is ``js.publish``, acknowledged by the stream;
``NoStreamResponseError`` (no stream captures the subject) is
:class:`~letterlock.transports.base.Unroutable`, every ``nats.errors.Error`` and timeout a
:class:`~letterlock.errors.TransportError`.

Streams. Subjects are the topics (NATS dialect: ``.``, ``*``, ``>``), and no two streams may
capture one subject, so streams cannot follow groups (two groups of one topic would overlap).
Instead a stream holds a topic namespace and each group is a durable consumer on it with the
group's pattern as its filter:

* by default the stream is named after the pattern's first token and captures that token and
  everything under it (``orders.*.eu`` -> stream ``orders``, subjects ``orders`` and
  ``orders.>``); a pattern starting with a wildcard needs ``stream=``;
* ``stream=NAME`` uses that stream (created for the group's pattern if missing, used as it is
  if it exists: streams an operator declared are respected).

A stream letterlock creates has interest retention (a message stays until every group
subscribed when it arrived has acked or terminated it), file storage and ``replicas`` copies. A
group's consumer is created with ``deliver_policy=new`` (it receives what is published from
then on, and keeps it while nobody listens), explicit acks, ``ack_wait`` = the lease and
``max_deliver`` unlimited by default: a delivery limit is the consumer's retry policy
(``max_attempts``), which dead-letters, where the server's limit would only stop delivering.
nats-server 2.9 filters a consumer on one subject, so a group serves one pattern. Group names
that are not a NATS name (letters, digits, ``-``, ``_``) are hashed into one.

Dead letters live in one stream (``dead=NAME``, default ``letterlock-dead``, limits retention)
under the subject ``<dead>.<group>``, with headers ``Letterlock-Reason`` (the one word),
``Letterlock-Subject`` and ``Letterlock-Attempts``: nothing the broker did not know but the word.
``redrive`` republishes each to its subject with a ``Letterlock-Group`` header, then deletes it;
other groups of that subject, which had it already, ack such a copy unseen. A dead letter and
a redriven copy carry a ``Nats-Msg-Id``, so a retried publish is stored once. That id can be
guessed (stream and sequence numbers), so a duplicate ack is checked against what the stream
holds under it, subject, bytes and headers (deduplication is per stream, not per subject): a
message that someone who may publish there sent first, under our id, would otherwise have ours
dropped and then terminated or deleted. It raises :class:`~letterlock.errors.TransportError`
instead, and nothing is settled.

What the broker reports, and what it can decide. A message's subject, headers and metadata are
the broker's word (or its publisher's), and they decide settlement in two places only; neither
can make the application see a message as handled that it did not handle, or leak one:

* a ``Letterlock-Group`` header naming another group makes the group ack the message unseen
  (:meth:`NatsBroker.foreign`): no handler runs, no message id is claimed or recorded in the
  replay window, nothing is counted as handled or dead-lettered. That is a dropped message,
  which a broker can always cause; the same bytes delivered without that header are opened as
  new and handled once (``test_a_skip_by_the_group_header_drops_and_leaves_no_trace``). A
  publisher sets the header of its own messages only;
* ``num_delivered`` is the attempts that :mod:`~letterlock.transports.decide` bounds: a high
  count dead-letters a message early (``redrive`` puts it back).

The subject (``delivery.topic``) decides nothing: the consumer opens against its configured
topics, and the subject only goes to local logs and, as the broker's own claim, to the dead
letter's ``Letterlock-Subject``. A second settlement is refused here (LeaseLost) from our own
state, not the broker's; an ack the server takes for a delivery it already gave to another
consumer is caught by the replay window's claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Final, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics, Wildcard
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    Subscription,
    Unroutable,
    slot_setters,
)
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = ["NatsBroker", "NatsDelivery", "NatsEndpoint", "consumer_name"]

REASON: Final = "Letterlock-Reason"  #: a dead letter's one word
SUBJECT: Final = "Letterlock-Subject"  #: the subject a dead letter was consumed from
ATTEMPTS: Final = "Letterlock-Attempts"  #: how often it had been delivered
PUBLISHED: Final = "Letterlock-Published"  #: when its stream stored it (seconds since epoch)
GROUP: Final = "Letterlock-Group"  #: on a redriven copy: the one group that takes it
MSG_ID: Final = "Nats-Msg-Id"  #: JetStream's deduplication id

DEFAULT_DEAD: Final = "letterlock-dead"
_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MIN_FETCH: Final = 0.05  # seconds: nats-py refuses a fetch that expires at once
_ACK: Final = Msg.Ack  # where a reply subject's fields are (JetStream's v2 layout)
_V1_TOKENS: Final = 9  # tokens of a reply subject in the v1 layout (no domain, no account)
_T = TypeVar("_T")
_log = logging.getLogger(__name__)

#: nats-py's exceptions, and the transport's own, as letterlock's (first match wins).
ERRORS: Final[ExceptionMapping] = {
    nats.js.errors.NoStreamResponseError: Unroutable,
    nats.errors.MsgAlreadyAckdError: LeaseLost,
    nats.errors.Error: TransportError,
    TimeoutError: TransportError,  # asyncio's, and nats-py's own are one
    OSError: TransportError,
}
#: map_exceptions(ERRORS), made once: it keeps no state, and adapters enter it per message.
_MAPPED: Final = map_exceptions(ERRORS)

#: What says the connection a delivery came on is gone (closed, draining, or reconnecting with
#: no room left to buffer): a settlement or heartbeat that meets it is LeaseLost. (A timeout
#: while the client is not connected is one too: see :meth:`NatsBroker.settle`.)
_CONNECTION_LOST: Final = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    OSError,
)


def consumer_name(group: str) -> str:
    """The durable consumer (and dead-letter token) of ``group``: itself if it is a NATS name."""
    if not isinstance(group, str) or not group or not group.isprintable():
        raise UsageError("a group is a non-empty printable string")
    if _NAME.fullmatch(group):
        return group
    return "g-" + hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class NatsDelivery(Delivery):
    """One JetStream delivery; ``msg`` is nats-py's message, settled through its methods."""

    msg: Msg = field(repr=False, compare=False)


_NATS_DELIVERY: Final = slot_setters(NatsDelivery)


class NatsBroker:
    """The asyncio adapter over a nats-py :class:`~nats.js.JetStreamContext`.

    An :class:`~letterlock.transports.base.AsyncPullBroker`: ``deliveries(group)`` fetches from
    the pull subscription that :meth:`subscribe` made for ``group``.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str | None = None,
        dead: str = DEFAULT_DEAD,
        replicas: int = 1,
        lease: float = 30.0,
        max_deliver: int = -1,
        batch: int = 64,
        fetch_timeout: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        """``stream``: the stream of every group (default: one per first token, see the module).
        ``dead``: the dead-letter stream. ``replicas``: copies of the streams it creates.
        ``lease``: a group consumer's ``ack_wait``, seconds. ``max_deliver``: its delivery
        limit (-1: none; else set it above the consumer's ``max_attempts``). ``batch``: how
        many messages one fetch takes. ``fetch_timeout``: how long ``deliveries`` waits for
        more before it stops. ``timeout``: for each request to the server (publish, stream
        and consumer calls)."""
        for name in (stream, dead):
            if name is not None and not _NAME.fullmatch(name):
                raise UsageError(f"a stream name is letters, digits, '-' and '_', not {name!r}")
        if isinstance(replicas, bool) or not 1 <= replicas <= 5:
            raise UsageError("replicas is 1 to 5")
        if not lease > 0 or not fetch_timeout >= _MIN_FETCH or not timeout > 0:
            raise UsageError(f"lease and timeout must be positive, fetch_timeout >= {_MIN_FETCH}")
        if max_deliver == 0 or max_deliver < -1 or batch < 1:
            raise UsageError("max_deliver is -1 (no limit) or positive; batch is positive")
        self.js = js
        self.stream = stream
        self.dead = dead
        self.replicas = replicas
        self.lease = float(lease)
        self.max_deliver = max_deliver
        self.batch = batch
        self.fetch_timeout = float(fetch_timeout)
        self.timeout = float(timeout)
        self._pulls: dict[str, JetStreamContext.PullSubscription] = {}
        self._dead_ready = False

    # publishing ---------------------------------------------------------------------------

    async def publish(
        self, topic: str, body: bytes, *, now: float | None = None, msg_id: str | None = None
    ) -> int:
        """``js.publish``: the stream's sequence number once the stream has stored it.

        ``msg_id`` (``Nats-Msg-Id``) makes a retried publish of the same message a duplicate
        the stream stores once (within its duplicate window, 2 minutes by default).
        """
        if not isinstance(topic, str) or not topic:
            raise UsageError("a NATS subject is a non-empty string")
        headers = None if msg_id is None else {MSG_ID: msg_id}
        with _MAPPED:
            ack = await self.js.publish(topic, bytes(body), timeout=self.timeout, headers=headers)
        return int(ack.seq)

    # declaring ----------------------------------------------------------------------------

    def stream_for(self, topics: Topics) -> tuple[str, list[str]]:
        """The stream a group of ``topics`` consumes from, and the subjects it would capture."""
        if not isinstance(topics, Topics) or topics.dialect is not Dialect.NATS:
            raise UsageError("NATS groups take NATS patterns: Topics.nats('orders.>')")
        if len(topics.parsed) != 1:
            raise UsageError("a NATS group serves one subject pattern (one filter per consumer)")
        [pattern] = topics.parsed
        if self.stream is not None:
            return self.stream, [pattern.text]
        first = pattern.segments[0]
        if isinstance(first, Wildcard) or not _NAME.fullmatch(first):
            raise UsageError(
                f"{pattern.text!r}: a stream is named after a subject's first token; name one "
                "with stream=NAME"
            )
        return first, [first, f"{first}.>"]

    async def subscribe(self, topics: Topics, *, group: str) -> JetStreamContext.PullSubscription:
        """Declare the stream, the dead-letter stream and ``group``'s durable consumer
        (idempotent), and bind a pull subscription to it for :meth:`deliveries`."""
        stream = await self.declare(topics)
        name = consumer_name(group)
        config = ConsumerConfig(
            durable_name=name, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
            filter_subject=topics.patterns[0], ack_wait=self.lease, max_deliver=self.max_deliver,
        )  # fmt: skip
        with _MAPPED:
            await self.js.add_consumer(stream, config, timeout=self.timeout)
            psub = await self.js.pull_subscribe_bind(name, stream)
        self._pulls[group] = psub
        return psub

    async def declare(self, topics: Topics) -> str:
        """Make sure the stream of ``topics`` and the dead-letter stream exist; the stream's
        name (for a push consumer: ``js.subscribe(..., stream=name)``)."""
        stream, subjects = self.stream_for(topics)
        with _MAPPED:
            await self._ensure_stream(stream, subjects, RetentionPolicy.INTEREST)
            await self._ensure_dead()
        return stream

    async def _ensure_stream(
        self, name: str, subjects: list[str], retention: RetentionPolicy
    ) -> None:
        try:
            await self.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(
                name=name, subjects=subjects, retention=retention, storage=StorageType.FILE,
                num_replicas=self.replicas,
            )  # fmt: skip
            await self.js.add_stream(config)

    async def _ensure_dead(self) -> None:
        if not self._dead_ready:
            await self._ensure_stream(self.dead, [f"{self.dead}.*"], RetentionPolicy.LIMITS)
            self._dead_ready = True

    # consuming ----------------------------------------------------------------------------

    def delivery(self, msg: Msg, group: str) -> NatsDelivery:
        """``msg``, delivered to ``group``, as the consumer takes it."""
        try:  # not map_exceptions: entering it per message costs more than this whole call
            stream, sequence, delivered = _position(msg.reply)
        except Exception:
            _reraise_mapped()
        # NatsDelivery(tag=msg.reply, ...), its slots set directly (see base.delivery)
        made = object.__new__(NatsDelivery)
        s0, s1, s2, s3, s4, s5, s6 = _NATS_DELIVERY
        s0(made, msg.reply)
        s1(made, group)
        s2(made, msg.subject)
        s3(made, msg.data)
        s4(made, delivered)
        s5(made, f"{stream}:{sequence}")
        s6(made, msg)
        return made

    async def foreign(self, msg: Msg, group: str) -> bool:
        """True (and acked) if ``msg`` is a copy redriven for another group than ``group``."""
        if not _redriven_elsewhere(msg, group):
            return False
        with _MAPPED:
            await msg.ack()
        return True

    def callback(
        self, handle: Callable[[Delivery], Awaitable[object]], *, group: str
    ) -> Callable[[Msg], Awaitable[None]]:
        """A ``cb`` for ``js.subscribe(..., durable=group, manual_ack=True)`` (push): each
        message, unless redriven for another group, goes to ``handle`` (say
        ``lambda d: consumer.handle(d, handler)``). What ``handle`` raises goes to nats-py's
        ``error_cb``, after the consumer has settled the message."""

        async def on_message(msg: Msg) -> None:
            if not await self.foreign(msg, group):
                await handle(self.delivery(msg, group))

        return on_message

    async def fetch(self, psub: JetStreamContext.PullSubscription, wait: float) -> list[Msg]:
        """Up to ``batch`` messages: those ready at once, else the first to come within
        ``wait`` seconds; none if nothing came."""
        try:  # not map_exceptions: a busy consumer fetches about once per message
            return await psub.fetch(self.batch, timeout=max(wait, _MIN_FETCH))
        except TimeoutError:  # nats-py's, or asyncio's: nothing came in time
            return []
        except Exception:
            _reraise_mapped()

    async def deliveries(self, queue: str, *, now: float | None = None) -> AsyncIterator[Delivery]:
        """Fetch ``queue``'s messages in batches until one fetch waits ``fetch_timeout`` in vain.

        Messages fetched but not taken when the iteration stops are nak'ed (delivered again at
        once) rather than left to their lease.
        """
        psub = self._pulls.get(queue)
        if psub is None:
            raise UsageError(f"subscribe(topics, group={queue!r}) before its deliveries")
        while msgs := await self.fetch(psub, self.fetch_timeout):
            pending = deque(msgs)
            try:
                while pending:
                    msg = pending.popleft()
                    if not (_redriven_elsewhere(msg, queue) and await self.foreign(msg, queue)):
                        yield self.delivery(msg, queue)
            finally:
                await self.give_back(pending)

    async def give_back(self, msgs: Sequence[Msg]) -> None:
        """Nak each of ``msgs``, fetched and never handed over, so it is delivered again now."""
        if not msgs:  # after each fetch taken whole: no context manager for nothing
            return
        with _MAPPED:
            for msg in msgs:
                await msg.nak()

    # settling -----------------------------------------------------------------------------

    async def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, ``nak(delay=...)``, or keep in the dead-letter stream and ``term()``.

        LeaseLost if the connection is gone (closed for good, or reconnecting for longer than
        a request waits, or with nowhere left to buffer): the server delivers the message again
        once ``ack_wait`` has passed, and a copy already handled is refused as a replay. While
        nats-py reconnects, an ack or ``term()`` waits in its buffer and reaches the server
        once it is back; one written just as the connection dropped is lost unseen, and the
        message comes again too. A dead letter kept before the connection dropped and not
        terminated is kept again when the message comes back (its ``Nats-Msg-Id`` counts the
        delivery): a duplicate dead letter, never a lost message. A dead letter the stream
        refuses (Unroutable, a deduplication id held by another message) surfaces.
        """
        msg = _msg(delivery)
        try:
            if type(settlement) is Ack:  # the common case, without a context manager per message
                try:
                    await msg.ack()
                except Exception:
                    _reraise_mapped()
                return
            with _MAPPED:
                match settlement:
                    case Ack():
                        await msg.ack()
                    case Retry(delay=delay):
                        await msg.nak(delay=delay)
                    case DeadLetter(reason=reason):
                        await self._keep(delivery, msg, reason)
                        await msg.term()
        except TransportError as exc:
            _raise_if_lost(exc, msg)
            raise

    async def _keep(self, delivery: Delivery, msg: Msg, reason: DeadLetterReason) -> None:
        """Publish a dead letter and await the dead-letter stream's ack (or raise: then the
        message is not terminated, and comes back after ``ack_wait``)."""
        await self._ensure_dead()
        meta = msg.metadata
        headers = {
            REASON: DeadLetterReason(reason).value,
            SUBJECT: msg.subject,
            ATTEMPTS: str(meta.num_delivered),
            PUBLISHED: f"{meta.timestamp.timestamp():.6f}" if meta.timestamp else "0",
            MSG_ID: f"dead:{meta.stream}:{meta.sequence.stream}:{meta.num_delivered}",
        }
        dead_subject = f"{self.dead}.{consumer_name(delivery.queue)}"
        try:
            ack = await self.js.publish(
                dead_subject, msg.data, timeout=self.timeout, headers=headers
            )
        except nats.js.errors.NoStreamResponseError:
            self._dead_ready = False  # deleted meanwhile: made again for the next dead letter
            raise
        await self._check_kept(ack, dead_subject, msg.data, headers)

    async def _check_kept(
        self, ack: PubAck, subject: str, data: bytes, headers: Mapping[str, str]
    ) -> None:
        """Raise TransportError unless the stream keeps what we published. A duplicate ack
        says it holds a message with our ``Nats-Msg-Id`` already: ours (a publish retried), or
        one that someone who may publish there sent first, guessing the id, so that ours is
        dropped; what is then terminated or deleted would be lost. Deduplication is per
        stream, not per subject: the same bytes on another subject of the stream (which our
        group does not read) are not ours either. A stream that no longer holds it cannot
        show it is ours, and nothing is settled then too."""
        if not ack.duplicate:
            return
        refused = TransportError(
            f"stream {ack.stream} holds another message under the deduplication id "
            f"{headers.get(MSG_ID)!r}, or none any more: nothing was settled"
        )
        try:
            stored = await self.js.get_msg(ack.stream, seq=ack.seq)
        except nats.js.errors.APIError:
            raise refused from None
        kept = stored.headers or {}
        if (
            stored.subject != subject
            or stored.data != data
            or any(kept.get(name) != value for name, value in headers.items())
        ):
            raise refused

    async def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """``msg.in_progress()``: ``ack_wait`` starts again; LeaseLost if the connection is
        gone (as :meth:`settle`)."""
        msg = _msg(delivery)
        try:
            with _MAPPED:
                await msg.in_progress()
        except TransportError as exc:
            _raise_if_lost(exc, msg)
            raise

    # dead letters -------------------------------------------------------------------------

    async def _dead(self, group: str, limit: int | None) -> list[RawStreamMsg]:
        subject = f"{self.dead}.{consumer_name(group)}"
        found: list[RawStreamMsg] = []
        seq = 1
        with _MAPPED:
            while limit is None or len(found) < limit:
                try:
                    raw = await self.js.get_msg(self.dead, seq=seq, subject=subject, next=True)
                except nats.js.errors.NotFoundError:  # no more (or no dead-letter stream yet)
                    break
                found.append(raw)
                seq = (raw.seq or seq) + 1
        return found

    async def dead_letters(self, group: str, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """``group``'s dead letters, oldest first, read without consuming them."""
        return [_record(group, raw) for raw in await self._dead(group, limit)]

    async def redrive(self, group: str) -> int:
        """Republish each of ``group``'s dead letters to its subject for ``group`` alone, then
        delete it from the dead-letter stream; how many."""
        dead = await self._dead(group, None)
        with _MAPPED:
            for raw in dead:
                headers = {GROUP: consumer_name(group), MSG_ID: f"redrive:{self.dead}:{raw.seq}"}
                subject = (raw.headers or {}).get(SUBJECT, "")
                ack = await self.js.publish(
                    subject, raw.data or b"", timeout=self.timeout, headers=headers
                )
                await self._check_kept(ack, subject, raw.data or b"", headers)
                await self.js.delete_msg(self.dead, raw.seq or 0)
        return len(dead)


def _position(reply: str | None) -> tuple[str, int, int]:
    """The stream, stream sequence and delivery count in a JetStream message's reply subject,
    read from the tokens where nats-py's ``Msg.metadata`` reads them (its ``NotJSMessageError``
    for anything else), without building it: two frozen dataclasses and a datetime a message."""
    tokens = Msg.Metadata._get_metadata_fields(reply)
    if len(tokens) == _V1_TOKENS:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>...
        return tokens[2], int(tokens[5]), int(tokens[4])
    return tokens[_ACK.Stream], int(tokens[_ACK.StreamSeq]), int(tokens[_ACK.NumDelivered])


def _reraise_mapped() -> NoReturn:
    """Raise the exception being handled as :data:`ERRORS` maps it (call in ``except``)."""
    with _MAPPED:
        raise  # noqa: PLE0704 - re-raised inside the mapping on purpose


def _raise_if_lost(exc: TransportError, msg: Msg) -> None:
    """Raise LeaseLost from ``exc`` (a settlement's or heartbeat's error) if it says the
    connection ``msg`` came on is gone: the server delivers it again after ``ack_wait``."""
    cause = exc.__cause__
    if isinstance(exc, LeaseLost) or cause is None:
        return
    if isinstance(cause, _CONNECTION_LOST) or (
        isinstance(cause, TimeoutError) and not getattr(msg._client, "is_connected", True)
    ):
        raise LeaseLost(
            f"the connection to NATS is gone ({type(cause).__name__}): the message comes "
            "again after ack_wait"
        ) from cause


def _redriven_elsewhere(msg: Msg, group: str) -> bool:
    target = msg.headers.get(GROUP) if msg.headers else None
    return target is not None and target != consumer_name(group)


def _msg(delivery: Delivery) -> Msg:
    if not isinstance(delivery, NatsDelivery):
        raise UsageError("a NATS broker settles the deliveries it made (NatsDelivery)")
    return delivery.msg


def _record(group: str, raw: RawStreamMsg) -> DeadLetterRecord:
    headers = raw.headers or {}
    return DeadLetterRecord(
        queue=group, seq=raw.seq or 0, topic=headers.get(SUBJECT, ""), body=raw.data or b"",
        attempts=int(headers.get(ATTEMPTS, "0")), reason=headers.get(REASON, ""),
        published=float(headers.get(PUBLISHED, "0")),
        dead_at=raw.time.timestamp() if raw.time else 0.0,
    )  # fmt: skip


# the sync Endpoint ------------------------------------------------------------------------


class _Loop:
    """A private event loop on a daemon thread, for sync callers of the asyncio client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="letterlock-nats", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[object, object, _T]) -> _T:
        if not self._thread.is_alive():
            coro.close()
            raise UsageError("this NATS endpoint is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_OPTIONS: Final = {
    "stream": str, "dead": str, "replicas": int, "lease": float, "max_deliver": int,
    "batch": int, "fetch_timeout": float, "timeout": float, "connect_timeout": float,
}  # fmt: skip


def parse_url(url: str) -> tuple[list[str], dict[str, str | int | float]]:
    """``nats://[user:pass@]host[:port][,host:port...][/?option=value&...]``: the server URLs
    for nats-py and the :class:`NatsBroker` options (``stream``, ``dead``, ``replicas``,
    ``lease``, ``max_deliver``, ``batch``, ``fetch_timeout``, ``timeout``), and
    ``connect_timeout`` (seconds to reach a first server)."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.netloc or parts.path not in ("", "/"):
        raise UsageError("a NATS URL is nats://host:port[,host:port...][?lease=SECONDS&...]")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    credentials = f"{userinfo}@" if userinfo else ""
    servers = [f"{parts.scheme}://{credentials}{host}" for host in hosts.split(",") if host]
    options: dict[str, str | int | float] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        kind = _OPTIONS.get(key)
        if kind is None:
            raise UsageError(f"unknown NATS URL option {key!r}: one of {', '.join(_OPTIONS)}")
        try:
            options[key] = kind(value)
        except ValueError:
            raise UsageError(f"NATS URL option {key}={value!r} is no {kind.__name__}") from None
    return servers, options


class NatsEndpoint:
    """:class:`NatsBroker` for sync callers (the command line): its own connection and event
    loop thread. Options come from the URL (:func:`parse_url`): ``lease=SECONDS`` is each
    group consumer's ``ack_wait``."""

    dialect: Final = Dialect.NATS

    def __init__(
        self, servers: Sequence[str], *, connect_timeout: float = 5.0, **options: str | int | float
    ) -> None:
        self._loop = _Loop()
        try:
            self._nc = self._loop.run(_connect(list(servers), connect_timeout))
            self.broker = NatsBroker(self._nc.jetstream(), **options)  # type: ignore[arg-type]
        except BaseException:
            self._loop.stop()
            raise

    @classmethod
    def from_url(cls, url: str) -> NatsEndpoint:
        servers, options = parse_url(url)
        connect_timeout = float(options.pop("connect_timeout", 5.0))
        return cls(servers, connect_timeout=connect_timeout, **options)

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> int:
        return self._loop.run(self.broker.publish(topic, body))

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        self._loop.run(self.broker.settle(delivery, settlement))

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        self._loop.run(self.broker.extend_lease(delivery))

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        psub = self._loop.run(self.broker.subscribe(topics, group=group))
        return _NatsSubscription(self, psub, group)

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        return self._loop.run(self.broker.dead_letters(group, limit=limit))

    def redrive(self, group: str, /) -> int:
        return self._loop.run(self.broker.redrive(group))

    def close(self) -> None:
        try:
            with _MAPPED:
                self._loop.run(self._nc.close())
        finally:
            self._loop.stop()


async def _connect(servers: list[str], wait: float) -> Client:
    """Connect to one of ``servers`` within ``wait`` seconds; once connected, reconnect for
    ever (to any server of the cluster: each call has its own timeout meanwhile)."""

    async def quiet(exc: Exception) -> None:  # nats-py would log a traceback per attempt
        _log.debug("nats: %r", exc)

    def unreachable(exc: Exception) -> TransportError:
        return TransportError(f"no NATS server of {len(servers)} answered within {wait:g} s")

    with map_exceptions({**ERRORS, TimeoutError: unreachable}):
        return await asyncio.wait_for(
            nats.connect(
                servers=servers, connect_timeout=wait, error_cb=quiet, reconnect_time_wait=0.5,
                max_reconnect_attempts=-1,
            ),
            wait,
        )  # fmt: skip


class _NatsSubscription:
    """One pull subscription on a group's durable consumer, fetched in batches; what was
    fetched and not handed over is nak'ed on close."""

    def __init__(
        self, endpoint: NatsEndpoint, psub: JetStreamContext.PullSubscription, group: str
    ) -> None:
        self._endpoint = endpoint
        self._psub = psub
        self._group = group
        self._pending: deque[Msg] = deque()

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        broker, run = self._endpoint.broker, self._endpoint._loop.run
        idle_since = time.monotonic()
        while True:
            if not self._pending:
                waited = time.monotonic() - idle_since
                if idle_timeout is not None and waited >= idle_timeout:
                    return
                wait = broker.fetch_timeout
                if idle_timeout is not None:
                    wait = min(wait, idle_timeout - waited)
                self._pending.extend(run(broker.fetch(self._psub, wait)))
                continue
            msg = self._pending.popleft()
            if not (
                _redriven_elsewhere(msg, self._group) and run(broker.foreign(msg, self._group))
            ):
                yield broker.delivery(msg, self._group)
                idle_since = time.monotonic()

    def close(self) -> None:
        pending, self._pending = list(self._pending), deque()
        run = self._endpoint._loop.run
        try:
            run(self._endpoint.broker.give_back(pending))
        finally:
            with _MAPPED:
                run(self._psub.unsubscribe())
