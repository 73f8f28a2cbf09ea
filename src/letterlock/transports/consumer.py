"""The receiving end of a spool queue: open each sealed message, hand it over, then settle it.

The consumer opens each message against the topics it was configured to serve (``topics=``),
never against the topic the broker reports for a delivery: a broker can put any message into
any queue and report any topic. ``delivery.topic`` only ever appears in local logs, marked as
the broker's claim.

:meth:`SealedConsumer.poll` settles every delivery in exactly one of these ways:

=====================================  ============================================
outcome of the delivery                what the queue does
=====================================  ============================================
opened, handler returned               ``ack`` (the only path to an ack)
Rejected, a reason that                requeued with backoff; at ``max_attempts``
:data:`SETTLEMENT` retries             a dead letter ``rejected``
Rejected, any other reason             dead letter ``rejected``
opened, handler raised                 dead letter ``handler_error``, re-raised
delivered more than ``max_attempts``   dead letter ``max_attempts`` (a crash loop)
=====================================  ============================================

:attr:`SealedConsumer.metrics` counts each settlement locally: ``acked``, ``retried:<reason>``,
``dead_lettered:<reason>`` (the reason code, not the word the broker got; or ``handler_error``,
``max_attempts``), and ``lease_lost`` when the lease ran out before the consumer settled (another
delivery of the message has it now).

What the broker learns of a refusal: the broker is hostile, so it must not be able to probe whom
the receiver trusts by sending forgeries. Every refused message is dead-lettered with one word,
``rejected``, whatever the reason; and ``unknown_sender``, ``untrusted`` and ``bad_signature``
are settled alike (retried with the same backoff, then dead-lettered), so a forgery claiming a
trusted sender's key id and one claiming an unknown key id look the same in the queue: same
reason text, attempts, delays, order. The reasons settled otherwise are decided before the trust
policy is consulted, or only after a trusted sender's signature verified (which a broker cannot
make). The exact reason and its detail go to the local log and to :attr:`~SealedConsumer.metrics`
only. Not hidden: the time between lease and settlement, which for an unknown sender lacks one
signature verification.

Why a handler error is not retried: :func:`letterlock.open` records the message id in the replay
window before it returns (so that no copy of a message reaches a handler twice, even across
consumers racing on a shared window). A requeued copy would therefore always come back as
``replayed``. The dead letter keeps the bytes and the reason for an operator instead. For the
same reason a process killed inside the handler finds the message refused as ``replayed`` when its
lease runs out: at most one handler call per message id, never a silent drop.

Refusals are logged through :mod:`logging` (logger ``letterlock.transports.consumer``) with
their exact reason at most once per reason code per ``log_interval`` seconds, with a count of the
ones held back. No payload byte is ever logged; a rejected message has none to log.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final

import letterlock
from letterlock.core.envelope import DEFAULT_LIMITS, Limits
from letterlock.core.keys import Identity
from letterlock.core.protocol import Opened
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import TrustPolicy
from letterlock.errors import Reason, Rejected, UsageError
from letterlock.transports.spool import Delivery, LeaseLost, Spool

__all__ = [
    "HANDLER_ERROR",
    "MAX_ATTEMPTS",
    "REJECTED",
    "SETTLEMENT",
    "Handler",
    "Refusal",
    "SealedConsumer",
]

#: The dead-letter reasons a broker can read: one word for every refused message, whatever the
#: reason code (which stays local), and the two failures that are not the message's.
REJECTED: Final = "rejected"
HANDLER_ERROR: Final = "handler_error"
MAX_ATTEMPTS: Final = "max_attempts"


class Refusal(enum.Enum):
    """How a consumer settles a message that failed to open."""

    RETRY = "retry"  #: requeued with backoff; dead-lettered once delivered ``max_attempts`` times
    DEAD_LETTER = "dead_letter"  #: dead-lettered at once


#: The settlement of each reason. Retried: what may be accepted later (a sender's pin or
#: certificate arriving, the clock catching up), and every reason the trust policy or the
#: signature decides, alike, so the queue never tells whom the receiver trusts.
SETTLEMENT: Final[Mapping[Reason, Refusal]] = MappingProxyType(
    {
        Reason.OVER_LIMIT: Refusal.DEAD_LETTER,
        Reason.MALFORMED: Refusal.DEAD_LETTER,
        Reason.UNSUPPORTED: Refusal.DEAD_LETTER,
        Reason.SUITE_NOT_ALLOWED: Refusal.DEAD_LETTER,
        Reason.NOT_YET_VALID: Refusal.RETRY,  # the clock may catch up
        Reason.EXPIRED: Refusal.DEAD_LETTER,
        Reason.WRONG_TOPIC: Refusal.DEAD_LETTER,
        Reason.REPLAYED: Refusal.DEAD_LETTER,
        Reason.NOT_FOR_ME: Refusal.DEAD_LETTER,
        Reason.UNKNOWN_SENDER: Refusal.RETRY,  # its pin or certificate may arrive later
        Reason.UNTRUSTED: Refusal.RETRY,  # a policy may admit it later; and as unknown_sender
        Reason.BAD_SIGNATURE: Refusal.RETRY,  # as unknown_sender: a forgery's claim stays hidden
        Reason.DECRYPT_FAILED: Refusal.DEAD_LETTER,
        Reason.BAD_COMMITMENT: Refusal.DEAD_LETTER,
    }
)

ACKED: Final = "acked"
LEASE_LOST: Final = "lease_lost"

Handler = Callable[[Opened], object]

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())


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


class SealedConsumer:
    """Opens messages from one spool queue and acks only those its handler has taken."""

    def __init__(
        self,
        spool: Spool,
        queue: str,
        *,
        identity: Identity,
        trust: TrustPolicy,
        replay: ReplayWindow,
        topics: str | Iterable[str] | Topics,
        suites: Iterable[Suite] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        lease_seconds: float = 30.0,
        max_attempts: int = 5,
        retry_delay: float = 5.0,
        max_retry_delay: float = 300.0,
        log_interval: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        """``topics`` are the topics this consumer serves, from its own configuration: one topic,
        several, or :class:`letterlock.Topics` (exact topics and ``*``/``#`` patterns; ``"#"``
        serves every topic and must be said explicitly). A message signed for any other topic
        is refused as ``wrong_topic``, whatever topic the broker reports for it.

        Refusals that :data:`SETTLEMENT` retries are retried after ``retry_delay *
        2**(attempts - 1)`` seconds (at most ``max_retry_delay``) until a message has been
        delivered ``max_attempts`` times.
        """
        if max_attempts < 1 or lease_seconds <= 0 or log_interval < 0:
            raise UsageError("max_attempts and lease_seconds must be positive")
        if not 0 <= retry_delay <= max_retry_delay:
            raise UsageError("retry delays must satisfy 0 <= retry_delay <= max_retry_delay")
        self.spool = spool
        self.queue = queue
        self._opener = letterlock.Opener(  # caches decapsulations across deliveries
            identity, trust=trust, replay=replay, suites=suites, limits=limits
        )
        if topics is None:  # deny by default: a consumer names what it serves
            raise UsageError("name the topics this consumer serves (topics='#' serves all)")
        self.topics = Topics.of(topics)
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._log = logger if logger is not None else _log
        self._limiter = _RateLimiter(log_interval)
        self._counts: Counter[str] = Counter()

    @property
    def metrics(self) -> Mapping[str, int]:
        """How many deliveries this consumer settled, by outcome (see the module's table).

        A snapshot: ``acked``, ``retried:<reason>``, ``dead_lettered:<reason>`` (a reason code,
        ``handler_error`` or ``max_attempts``) and ``lease_lost``. Local only: the exact
        reasons, which the broker never sees.
        """
        return MappingProxyType(dict(self._counts))

    def poll(
        self, handler: Handler, *, max_messages: int | None = None, now: float | None = None
    ) -> int:
        """Process ready messages until the queue is empty (or ``max_messages`` were taken).

        Returns how many messages reached ``handler`` and were acked. ``now`` (seconds since
        the epoch) replaces the clock for the queue and for :func:`letterlock.open`.
        """
        handled = taken = 0
        while max_messages is None or taken < max_messages:
            delivery = self.spool.get(self.queue, lease_seconds=self._lease_seconds, now=now)
            if delivery is None:
                break
            taken += 1
            handled += self._process(delivery, handler, now)
        return handled

    def _process(self, delivery: Delivery, handler: Handler, now: float | None) -> int:
        if delivery.attempts > self._max_attempts:
            self._dead_letter(
                delivery, MAX_ATTEMPTS, "delivered too often (crash loop?)", now, shown=MAX_ATTEMPTS
            )
            return 0
        try:
            opened = self._opener.open(delivery.body, topic=self.topics, now=now)
        except Rejected as rejected:
            self._refuse(delivery, rejected, now)
            return 0
        try:
            handler(opened)
        except Exception as exc:
            self._dead_letter(
                delivery, HANDLER_ERROR, f"handler raised {type(exc).__name__}", now,
                shown=HANDLER_ERROR,
            )  # fmt: skip
            raise
        self._ack(delivery)
        return 1

    def _refuse(self, delivery: Delivery, rejected: Rejected, now: float | None) -> None:
        code = rejected.reason.value
        retry = SETTLEMENT[rejected.reason] is Refusal.RETRY
        if not retry or delivery.attempts >= self._max_attempts:
            self._dead_letter(delivery, code, rejected.detail, now, shown=REJECTED)
            return
        backoff = 2.0 ** min(delivery.attempts - 1, 62)  # no OverflowError at any attempt
        delay = min(self._max_retry_delay, self._retry_delay * backoff)
        if self._settle(delivery, requeue=True, delay=delay, now=now):
            self._counts[f"retried:{code}"] += 1
            self._note(
                logging.INFO, f"retry:{code}", "queue %s: message %d refused (%s) on attempt %d, "
                "retrying in %.0fs", self.queue, delivery.seq, code, delivery.attempts, delay,
            )  # fmt: skip

    def _dead_letter(
        self, delivery: Delivery, reason: str, detail: str, now: float | None, *, shown: str
    ) -> None:
        """Dead-letter as ``shown`` for the broker; ``reason`` goes to the local log and metrics."""
        if self._settle(delivery, requeue=False, reason=shown, now=now):
            self._counts[f"dead_lettered:{reason}"] += 1
            self._note(
                logging.WARNING, reason, "queue %s: message %d (topic per the broker: %r) "
                "dead-lettered as %r: %s%s", self.queue, delivery.seq, delivery.topic, shown,
                reason, f" ({detail})" if detail else "",
            )  # fmt: skip

    def _ack(self, delivery: Delivery) -> None:
        try:
            self.spool.ack(delivery.tag)
        except LeaseLost:
            self._lease_lost(delivery)
            return
        self._counts[ACKED] += 1

    def _settle(
        self,
        delivery: Delivery,
        *,
        requeue: bool,
        now: float | None,
        reason: str = "",
        delay: float = 0.0,
    ) -> bool:
        """Nack; False (logged) if the lease ran out meanwhile and someone else has it now."""
        try:
            self.spool.nack(delivery.tag, requeue=requeue, reason=reason, delay=delay, now=now)
        except LeaseLost:
            self._lease_lost(delivery)
            return False
        return True

    def _lease_lost(self, delivery: Delivery) -> None:
        self._counts[LEASE_LOST] += 1
        self._note(
            logging.WARNING, "lease_lost", "queue %s: message %d outlived its lease (%.0fs) and "
            "was delivered again; raise lease_seconds", self.queue, delivery.seq,
            self._lease_seconds,
        )  # fmt: skip

    def _note(self, level: int, key: str, message: str, *args: object) -> None:
        held = self._limiter.allow(key)
        if held is None or not self._log.isEnabledFor(level):
            return
        if held:
            message += " (%d more like it not logged)"
            args = (*args, held)
        self._log.log(level, message, *args)
