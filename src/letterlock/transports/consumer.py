"""The receiving end of a spool queue: open each sealed message, hand it over, then settle it.

The consumer opens each message against the topics it was configured to serve (``topics=``),
never against the topic the broker reports for a delivery: a broker can put any message into
any queue and report any topic. ``delivery.topic`` only ever appears in local logs, marked as
the broker's claim.

:meth:`SealedConsumer.poll` settles every delivery in exactly one of these ways:

=====================================  ===============================================
outcome of the delivery                what the queue does
=====================================  ===============================================
opened, handler returned               ``ack`` (the only path to an ack)
Rejected, permanent reason             dead letter, reason = the code (``bad_signature``)
Rejected, transient reason             requeued with backoff; at ``max_attempts`` a dead
                                       letter with the code (``unknown_sender``)
opened, handler raised                 dead letter ``handler_error``, exception re-raised
delivered more than ``max_attempts``   dead letter ``max_attempts`` (a crash loop)
=====================================  ===============================================

Why a handler error is not retried: :func:`letterlock.open` records the message id in the replay
window before it returns (so that no copy of a message reaches a handler twice, even across
consumers racing on a shared window). A requeued copy would therefore always come back as
``replayed``. The dead letter keeps the bytes and the reason for an operator instead. For the
same reason a process killed inside the handler finds the message refused as ``replayed`` when its
lease runs out: at most one handler call per message id, never a silent drop.

Rejections are logged through :mod:`logging` (logger ``letterlock.transports.consumer``) at most
once per reason code per ``log_interval`` seconds, with a count of the ones held back. No payload
byte is ever logged; a rejected message has none to log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

import letterlock
from letterlock.core.envelope import DEFAULT_LIMITS, Limits
from letterlock.core.keys import Identity
from letterlock.core.protocol import Opened
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.errors import Rejected, UsageError
from letterlock.transports.spool import Delivery, LeaseLost, Spool
from letterlock.trust.policy import TrustPolicy

__all__ = ["HANDLER_ERROR", "MAX_ATTEMPTS", "Handler", "SealedConsumer"]

HANDLER_ERROR: Final = "handler_error"
MAX_ATTEMPTS: Final = "max_attempts"

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

        Transient rejections are retried after ``retry_delay * 2**(attempts - 1)`` seconds (at
        most ``max_retry_delay``) until a message has been delivered ``max_attempts`` times.
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
            self._dead_letter(delivery, MAX_ATTEMPTS, "delivered too often (crash loop?)", now)
            return 0
        try:
            opened = self._opener.open(delivery.body, topic=self.topics, now=now)
        except Rejected as rejected:
            self._refuse(delivery, rejected, now)
            return 0
        try:
            handler(opened)
        except Exception as exc:
            self._dead_letter(delivery, HANDLER_ERROR, f"handler raised {type(exc).__name__}", now)
            raise
        self._ack(delivery)
        return 1

    def _refuse(self, delivery: Delivery, rejected: Rejected, now: float | None) -> None:
        code = rejected.reason.value
        if not rejected.reason.transient or delivery.attempts >= self._max_attempts:
            self._dead_letter(delivery, code, rejected.detail, now)
            return
        backoff = 2.0 ** min(delivery.attempts - 1, 62)  # no OverflowError at any attempt
        delay = min(self._max_retry_delay, self._retry_delay * backoff)
        if self._settle(delivery, requeue=True, delay=delay, now=now):
            self._note(
                logging.INFO, f"retry:{code}", "queue %s: message %d refused (%s) on attempt %d, "
                "retrying in %.0fs", self.queue, delivery.seq, code, delivery.attempts, delay,
            )  # fmt: skip

    def _dead_letter(self, delivery: Delivery, reason: str, detail: str, now: float | None) -> None:
        if self._settle(delivery, requeue=False, reason=reason, now=now):
            self._note(
                logging.WARNING, reason, "queue %s: message %d (topic per the broker: %r) "
                "dead-lettered: %s%s",
                self.queue, delivery.seq, delivery.topic, reason, f" ({detail})" if detail else "",
            )  # fmt: skip

    def _ack(self, delivery: Delivery) -> None:
        try:
            self.spool.ack(delivery.tag)
        except LeaseLost:
            self._lease_lost(delivery)

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
