"""The receiving end of any broker: open each sealed message, hand it over, then settle it.

:class:`SealedConsumer` is the I/O shell around the pure consumer core
(:mod:`letterlock.transports.decide`): it opens each delivery with its
:class:`~letterlock.Opener`, calls the handler, and settles the delivery on its
:class:`~letterlock.transports.base.Broker` exactly as :func:`~letterlock.transports.decide.decide`
says. It works for brokers that push (the adapter's callback calls :meth:`SealedConsumer.handle`
with each delivery) and for brokers it pulls from (:meth:`SealedConsumer.poll` drains a queue of
a :class:`~letterlock.transports.base.PullBroker`, such as the local spool).
:class:`AsyncSealedConsumer` is the same shell for asyncio clients
(:class:`~letterlock.transports.base.AsyncBroker`): one private core decides for both.

The consumer opens each message against the topics it was configured to serve (``topics=``),
never against the topic the broker reports for a delivery: a broker can put any message into
any queue and report any topic. ``delivery.topic`` only ever appears in local logs, marked as
the broker's claim.

Every delivery is settled in exactly one way (the full table, with attempt counts, is in
:mod:`~letterlock.transports.decide`):

=====================================  ============================================
outcome of the delivery                what the broker is told
=====================================  ============================================
opened, claimed, handler returned      ack (the only path to an ack)
Rejected, a reason that                retry with backoff; at ``max_attempts`` (or
:data:`~.decide.SETTLEMENT` retries    if the broker does not count) dead letter
                                       ``rejected``
Rejected, any other reason             dead letter ``rejected``
opened, but another consumer's live    retry after ``claim_lease`` (``busy``), at any
claim holds it                         attempt count below the crash-loop bound
opened, handler raised                 per ``RetryPolicy.on_handler_error``: dead
                                       letter ``handler_error`` (default), or retry
                                       with backoff; the exception is re-raised
delivered more than ``max_attempts``   dead letter ``max_attempts`` (a crash loop)
=====================================  ============================================

:attr:`SealedConsumer.metrics` counts each settlement locally: ``acked``, ``retried:<reason>``,
``dead_lettered:<reason>`` (the reason code, not the word the broker got; or ``handler_error``,
``max_attempts``), ``retried:busy``, ``lease_lost`` when the lease ran out before the consumer
settled (another delivery of the message has it now) or the connection to the broker was lost
(the broker delivers the message again; a copy already handled is refused as ``replayed``),
``taken_over`` and ``claim_lost``.

What the broker learns of a refusal: the broker is hostile, so it must not be able to probe whom
the receiver trusts by sending forgeries. Every refused message is dead-lettered with one word,
``rejected``, whatever the reason; and ``unknown_sender``, ``untrusted`` and ``bad_signature``
are settled alike (retried with the same backoff, then dead-lettered), so a forgery claiming a
trusted sender's key id and one claiming an unknown key id look the same in the queue: same
reason text, attempts, delays, order. The reasons settled otherwise are decided before the trust
policy is consulted, or only after a trusted sender's signature verified (which a broker cannot
make). Nor does the time between delivery and settlement tell them apart: a sender that is
unknown or refused by the policy costs one signature verification against a decoy key, as a bad
signature does (``letterlock.core.protocol``). The exact reason and its detail go to the local
log and to :attr:`~SealedConsumer.metrics` only.

Claims: handled once, and nothing used up by a crash. The consumer opens a message without
recording it, then *claims* its id in the opener's replay window for ``claim_lease`` seconds
(:meth:`letterlock.ReplayWindow.claim`, in a store that consumers of one group may share). Only
when the handler has returned does the claim become a handled id (``finish``), and only then is
the delivery acked. So:

* a copy of a message already handled is refused as ``replayed`` and dead-lettered: no handler
  sees a message twice, across consumers that share a store;
* a copy delivered while another consumer's handler holds a live claim is retried after
  ``claim_lease`` (``busy``), not dead-lettered: if that handler succeeds, the retried copy is
  then a replay; if it raises, the copy is handled;
* a handler that raised releases its claim, so a retry (``OnHandlerError.RETRY``) or a dead
  letter redriven by an operator is handled afresh;
* a process killed inside its handler (SIGKILL, power loss) leaves its claim to run out: the
  broker redelivers the message (lease, reconnect or redelivery, as each broker does), the
  copy is retried until ``claim_lease`` has passed, then taken over and handled (the
  ``taken_over`` count);
* a process killed after ``finish`` but before the broker took its ack leaves a handled id:
  the redelivered copy is refused as ``replayed``, so the application saw the message once and
  the dead letter keeps the bytes for an operator.

Give long handlers a ``claim_lease`` above their running time, or renew it from the handler
with :meth:`SealedConsumer.extend_lease`; a handler that outlived its claim while another
consumer took the message over is counted as ``claim_lost``.

A handler that runs longer than the broker's lease calls :meth:`SealedConsumer.extend_lease` (a
heartbeat) while it works; it raises :class:`~letterlock.transports.base.LeaseLost` if the broker
has already given the message to someone else.

Refusals are logged through :mod:`logging` (logger ``letterlock.transports.consumer``) with
their exact reason at most once per reason code per ``log_interval`` seconds, with a count of the
ones held back. No payload byte is ever logged; a rejected message has none to log.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from letterlock._api import Opener
from letterlock.core.protocol import Opened
from letterlock.core.replay import Claim
from letterlock.core.topics import Topics
from letterlock.errors import Rejected, UsageError
from letterlock.transports.base import (
    AsyncBroker,
    AsyncPullBroker,
    Broker,
    Delivery,
    LeaseLost,
    PullBroker,
)
from letterlock.transports.decide import (
    Ack,
    DeadLetter,
    DeadLetterReason,
    Outcome,
    Retry,
    RetryPolicy,
    Settlement,
    decide,
)

__all__ = ["AsyncHandler", "AsyncSealedConsumer", "Handler", "SealedConsumer"]

ACKED: Final = "acked"
LEASE_LOST: Final = "lease_lost"
BUSY: Final = "busy"  #: the cause of a busy copy's retry (another consumer's live claim)
TAKEN_OVER: Final = "taken_over"  #: a claim of a consumer that stopped renewing it, taken
CLAIM_LOST: Final = "claim_lost"  #: this handler outlived its claim; another took it over
_MAX_ATTEMPTS: Final = DeadLetterReason.MAX_ATTEMPTS
# Per-message uses of enum members are globals: an attribute of an Enum class costs a
# Python-level __getattr__ hook on 3.11 (EnumType defines one), a global does not.
_DELIVERED, _HANDLED = Outcome.DELIVERED, Outcome.HANDLED
_CLAIMED: Final = Claim.CLAIMED
_HANDLER_ERROR: Final = DeadLetterReason.HANDLER_ERROR
_DECIDED: Final = 64  #: attempt counts whose decisions a consumer keeps

Handler = Callable[[Opened], object]
#: A handler of :class:`AsyncSealedConsumer`: a coroutine function, or a plain one.
AsyncHandler = Callable[[Opened], Awaitable[object] | object]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: The consumer and the delivery whose handler runs in this thread or task, for extend_lease.
_handling: ContextVar[tuple[_Core, Delivery, Opened] | None] = ContextVar(
    "letterlock_handling", default=None
)


class _RateLimiter:
    """Lets one event per key through every ``interval`` seconds and counts the rest."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None if this event should be held back, else how many were held back before it."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class _Core:
    """What both shells share: configuration, the decisions around opening, metrics and logs."""

    def __init__(
        self,
        queue: str,
        *,
        opener: Opener,
        topics: str | Iterable[str] | Topics,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen: one shared default is safe
        claim_lease: float = 60.0,
        log_interval: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        """``opener`` opens every delivery (one receiver: its identity, trust policy, replay
        window, suites and limits, and its cache of decapsulations).

        ``topics`` are the topics this consumer serves, from its own configuration: one topic,
        several, or :class:`letterlock.Topics` (exact topics and ``*``/``#`` patterns; ``"#"``
        serves every topic and must be said explicitly). A message signed for any other topic
        is refused as ``wrong_topic``, whatever topic the broker reports for it.

        ``retry`` bounds and spaces the retries of refusals that
        :data:`~letterlock.transports.decide.SETTLEMENT` retries (where the broker counts
        deliveries), and says whether a handler's exception is retried or dead-lettered.

        ``claim_lease`` (seconds) is how long this consumer's claim on a message it is handling
        holds in the opener's replay window before another consumer may take the message over
        (its handler renews it with :meth:`extend_lease`). A copy delivered meanwhile is retried
        after that long. ``queue`` is the queue :meth:`poll` drains; a pushing broker's
        deliveries name their own.
        """
        if not isinstance(opener, Opener):
            raise UsageError("opener must be a letterlock.Opener")
        if not isinstance(retry, RetryPolicy):
            raise UsageError("retry must be a RetryPolicy")
        if log_interval < 0:
            raise UsageError("log_interval must not be negative")
        if not claim_lease > 0:
            raise UsageError("claim_lease must be positive")
        if topics is None:  # deny by default: a consumer names what it serves
            raise UsageError("name the topics this consumer serves (topics='#' serves all)")
        self.queue = queue
        self.opener = opener
        self.topics = Topics.of(topics)
        self.retry = retry
        self.claim_lease = float(claim_lease)
        #: This consumer's claim token: only it can finish, release or extend its claims.
        self._holder = secrets.token_bytes(16)
        self._log = logger if logger is not None else _log
        self._limiter = _RateLimiter(log_interval)
        self._counts: Counter[str] = Counter()
        #: attempts -> what :func:`decide` says on delivery and once handled, at that count:
        #: both are pure functions of (outcome, attempts, policy) and the policy is frozen, so
        #: a delivery asks a dict, not the table twice (see :meth:`_decisions`).
        self._decided: dict[int | None, tuple[Settlement | None, _Verdict]] = {}

    @property
    def metrics(self) -> Mapping[str, int]:
        """How many deliveries this consumer settled, by outcome (see the module's table).

        A snapshot: ``acked``, ``retried:<reason>`` (a reason code, ``busy`` or
        ``handler_error``), ``dead_lettered:<reason>`` (a reason code, ``handler_error`` or
        ``max_attempts``), ``lease_lost``, ``taken_over`` and ``claim_lost``. Local only: the
        exact reasons, which the broker never sees.
        """
        return MappingProxyType(dict(self._counts))

    def _open(self, delivery: Delivery, now: float | None) -> Opened | _Verdict:
        """Open and claim ``delivery``, or say how to settle it without handing it over."""
        attempts = delivery.attempts
        decided = self._decided.get(attempts)
        early = (decided or self._decisions(attempts))[0]
        if early is not None:  # delivered too often: not opened again
            return _Verdict(early, _MAX_ATTEMPTS.value, "delivered too often (crash loop?)")
        at = time.time() if now is None else float(now)
        try:
            opened = self.opener.open(delivery.body, topic=self.topics, now=at, record=False)
            claim = self.opener.replay.claim(
                sender=opened.sender.key_id, message_id=opened.message_id,
                created=opened.created, now=at, holder=self._holder,
                until=at + self.claim_lease,
            )  # fmt: skip
        except Rejected as rejected:
            refusal = decide(rejected.reason, attempts=attempts, policy=self.retry)
            assert refusal is not None  # a refusal is always settled
            return _Verdict(refusal, rejected.reason.value, rejected.detail)
        if claim is _CLAIMED:
            return opened
        if claim is Claim.BUSY:
            busy = decide(Outcome.BUSY, attempts=attempts, policy=self.retry, wait=self.claim_lease)
            assert busy is not None
            return _Verdict(busy, BUSY, "another consumer is handling it")
        if claim is Claim.TAKEN_OVER:
            self._counts[TAKEN_OVER] += 1
            self._note(
                logging.WARNING, TAKEN_OVER, "queue %s: message %s was claimed by a consumer "
                "that stopped renewing its claim (it died or outlived claim_lease in its "
                "handler); handling it here", delivery.queue, delivery.ref,
            )  # fmt: skip
        return opened

    def _handled(self, delivery: Delivery, opened: Opened) -> _Verdict:
        """The handler returned: the claim becomes a handled id, then the delivery is acked."""
        if not self.opener.replay.finish(
            sender=opened.sender.key_id, message_id=opened.message_id, holder=self._holder
        ):
            self._counts[CLAIM_LOST] += 1
            self._note(
                logging.WARNING, CLAIM_LOST, "queue %s: message %s was taken over by another "
                "consumer while this handler ran past claim_lease; extend_lease() from long "
                "handlers", delivery.queue, delivery.ref,
            )  # fmt: skip
        attempts = delivery.attempts
        decided = self._decided.get(attempts)
        return (decided or self._decisions(attempts))[1]

    def _decisions(self, attempts: int | None) -> tuple[Settlement | None, _Verdict]:
        """:func:`decide` on delivery and once handled, at ``attempts``; kept for the counts
        that share a row of the table with every other (bounded: a broker chooses counts)."""
        early = decide(_DELIVERED, attempts=attempts, policy=self.retry)
        done = decide(_HANDLED, attempts=attempts, policy=self.retry)
        assert done is not None
        decided = early, _ACKED if done == _ACKED.settlement else _Verdict(done)
        if len(self._decided) < _DECIDED:
            self._decided[attempts] = decided
        return decided

    def _failed(self, delivery: Delivery, opened: Opened, exc: Exception) -> _Verdict:
        """The handler raised: the claim is released (a retry, or a redriven dead letter, is
        handled afresh), and the delivery settled as the retry policy says."""
        self.opener.replay.release(
            sender=opened.sender.key_id, message_id=opened.message_id, holder=self._holder
        )
        failed = decide(Outcome.HANDLER_RAISED, attempts=delivery.attempts, policy=self.retry)
        assert failed is not None
        return _Verdict(failed, _HANDLER_ERROR.value, f"handler raised {type(exc).__name__}")

    def _renew(self, opened: Opened, now: float | None) -> None:
        """A heartbeat for the claim; LeaseLost if another consumer has taken it over."""
        at = time.time() if now is None else float(now)
        if not self.opener.replay.extend(
            sender=opened.sender.key_id, message_id=opened.message_id, holder=self._holder,
            until=at + self.claim_lease,
        ):  # fmt: skip
            raise LeaseLost("another consumer has taken this message over")

    def _settled(self, delivery: Delivery, verdict: _Verdict) -> None:
        """Count and log a settlement the broker took, under its cause (never the broker's)."""
        if verdict is _ACKED:  # almost every delivery: no pattern to match
            self._counts[ACKED] += 1
            return
        code = verdict.cause
        match verdict.settlement:
            case Ack():
                self._counts[ACKED] += 1
            case Retry(delay=delay):
                self._counts[f"retried:{code}"] += 1
                self._note(
                    logging.INFO, f"retry:{code}", "queue %s: message %s refused (%s) on attempt "
                    "%s, retrying in %.0fs", delivery.queue, delivery.ref, code, delivery.attempts,
                    delay,
                )  # fmt: skip
            case DeadLetter(reason=shown):
                detail = verdict.detail
                self._counts[f"dead_lettered:{code}"] += 1
                self._note(
                    logging.WARNING, code, "queue %s: message %s (topic per the broker: %r) "
                    "dead-lettered as %r: %s%s", delivery.queue, delivery.ref, delivery.topic,
                    shown.value, code, f" ({detail})" if detail else "",
                )  # fmt: skip

    def _lease_lost(self, delivery: Delivery, lost: LeaseLost) -> None:
        self._counts[LEASE_LOST] += 1
        self._note(
            logging.WARNING, LEASE_LOST, "queue %s: message %s is no longer this consumer's "
            "(%s); the broker delivers it again. If it outlived its lease, give the broker a "
            "longer lease, or extend it from the handler", delivery.queue, delivery.ref, lost,
        )  # fmt: skip

    def _note(self, level: int, key: str, message: str, *args: object) -> None:
        held = self._limiter.allow(key)
        if held is None or not self._log.isEnabledFor(level):
            return
        if held:
            message += " (%d more like it not logged)"
            args = (*args, held)
        self._log.log(level, message, *args)

    def _current(self) -> tuple[Delivery, Opened]:
        current = _handling.get()
        if current is None or current[0] is not self:
            raise UsageError("extend_lease() is for this consumer's handler, while it runs")
        return current[1], current[2]


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A settlement, and the cause the local log and metrics give for it."""

    settlement: Settlement
    cause: str = ""  #: a reason code, a dead letter's reason, or busy
    detail: str = ""


#: The verdict of almost every message, made once (a frozen dataclass costs ~1 us to build).
_ACKED: Final = _Verdict(Ack())


class SealedConsumer(_Core):
    """Opens messages from one queue of a broker and acks only those its handler has taken."""

    def __init__(
        self,
        broker: Broker,
        queue: str,
        *,
        opener: Opener,
        topics: str | Iterable[str] | Topics,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen: one shared default is safe
        claim_lease: float = 60.0,
        log_interval: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            queue, opener=opener, topics=topics, retry=retry, claim_lease=claim_lease,
            log_interval=log_interval, logger=logger,
        )  # fmt: skip
        self.broker = broker

    __init__.__doc__ = _Core.__init__.__doc__

    def poll(
        self, handler: Handler, *, max_messages: int | None = None, now: float | None = None
    ) -> int:
        """Pull: process ready messages until the queue is empty (or ``max_messages`` were taken).

        Returns how many messages ``handler`` took (returned from). ``now`` (seconds since the
        epoch) replaces the clock for the broker and for opening.
        """
        if not isinstance(self.broker, PullBroker):
            raise UsageError("this broker pushes: its adapter calls handle() for each delivery")
        deliveries = self.broker.deliveries(self.queue, now=now)
        handled = taken = 0
        while max_messages is None or taken < max_messages:
            delivery = next(deliveries, None)
            if delivery is None:
                break
            taken += 1
            handled += self.handle(delivery, handler, now=now)
        return handled

    def handle(self, delivery: Delivery, handler: Handler, *, now: float | None = None) -> bool:
        """Push: open one delivery, hand it to ``handler`` and settle it; True if handled.

        A push adapter's callback calls this for every delivery. True once the handler returned
        (the delivery is then acked; a lease lost meanwhile is logged and counted, not raised).
        An exception of the handler is re-raised once the delivery is settled as
        ``retry.on_handler_error`` says (dead-lettered as ``handler_error``, or retried).
        """
        opened = self._open(delivery, now)
        if isinstance(opened, _Verdict):
            self._settle(delivery, opened, now)
            return False
        token = _handling.set((self, delivery, opened))
        try:
            handler(opened)
        except Exception as exc:
            self._settle(delivery, self._failed(delivery, opened, exc), now)
            raise
        finally:
            _handling.reset(token)
        self._settle(delivery, self._handled(delivery, opened), now)
        return True

    def extend_lease(self, *, now: float | None = None) -> None:
        """From inside a handler of this consumer: keep its delivery for another lease.

        Raises :class:`~letterlock.transports.base.LeaseLost` if the broker has given the
        delivery to someone else meanwhile; a no-op on brokers without leases.
        """
        delivery, opened = self._current()
        self.broker.extend_lease(delivery, now=now)
        self._renew(opened, now)

    def _settle(self, delivery: Delivery, verdict: _Verdict, now: float | None) -> None:
        """Tell the broker; count and log it (unless the lease was lost)."""
        try:
            self.broker.settle(delivery, verdict.settlement, now=now)
        except LeaseLost as lost:
            self._lease_lost(delivery, lost)
            return
        self._settled(delivery, verdict)


class AsyncSealedConsumer(_Core):
    """:class:`SealedConsumer` for asyncio brokers (:class:`~.base.AsyncBroker`).

    The same decisions, metrics and logs; the broker's calls are awaited, and ``handler`` may
    be a coroutine function (its result is awaited) or a plain function. Opening runs in the
    event loop: it is CPU work of well under a millisecond for messages of a few KiB.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        queue: str,
        *,
        opener: Opener,
        topics: str | Iterable[str] | Topics,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen: one shared default is safe
        claim_lease: float = 60.0,
        log_interval: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            queue, opener=opener, topics=topics, retry=retry, claim_lease=claim_lease,
            log_interval=log_interval, logger=logger,
        )  # fmt: skip
        self.broker = broker

    __init__.__doc__ = _Core.__init__.__doc__

    async def poll(
        self, handler: AsyncHandler, *, max_messages: int | None = None, now: float | None = None
    ) -> int:
        """As :meth:`SealedConsumer.poll`, for an :class:`~.base.AsyncPullBroker`."""
        if not isinstance(self.broker, AsyncPullBroker):
            raise UsageError("this broker pushes: its adapter calls handle() for each delivery")
        deliveries = aiter(self.broker.deliveries(self.queue, now=now))
        handled = taken = 0
        while max_messages is None or taken < max_messages:
            delivery = await anext(deliveries, None)
            if delivery is None:
                break
            taken += 1
            handled += await self.handle(delivery, handler, now=now)
        return handled

    async def handle(
        self, delivery: Delivery, handler: AsyncHandler, *, now: float | None = None
    ) -> bool:
        """As :meth:`SealedConsumer.handle`; an awaitable result of ``handler`` is awaited."""
        opened = self._open(delivery, now)
        if isinstance(opened, _Verdict):
            await self._settle(delivery, opened, now)
            return False
        token = _handling.set((self, delivery, opened))
        try:
            result = handler(opened)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            await self._settle(delivery, self._failed(delivery, opened, exc), now)
            raise
        finally:
            _handling.reset(token)
        await self._settle(delivery, self._handled(delivery, opened), now)
        return True

    async def extend_lease(self, *, now: float | None = None) -> None:
        """As :meth:`SealedConsumer.extend_lease`."""
        delivery, opened = self._current()
        await self.broker.extend_lease(delivery, now=now)
        self._renew(opened, now)

    async def _settle(self, delivery: Delivery, verdict: _Verdict, now: float | None) -> None:
        try:
            await self.broker.settle(delivery, verdict.settlement, now=now)
        except LeaseLost as lost:
            self._lease_lost(delivery, lost)
            return
        self._settled(delivery, verdict)
