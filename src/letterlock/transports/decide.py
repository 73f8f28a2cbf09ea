"""The consumer core: everything that decides how a delivery is settled lives here.

Pure (no I/O, no clock: attempts and the retry policy are arguments), so every broker adapter
settles by the same rules, and the rules are tested once, row by row. A consumer asks twice per
delivery: once before opening it (should it be opened at all?) and once with what happened.

What happened (the *outcome*): :attr:`Outcome.DELIVERED` (taken from the broker, not opened
yet), a :class:`~letterlock.errors.Reason` (``open()`` refused the message),
:attr:`Outcome.BUSY` (it opened, but another consumer holds the claim on it and is handling it
now), or, once it opened and was claimed, the handler's :attr:`Outcome.HANDLED` /
:attr:`Outcome.HANDLER_RAISED`. Refusals split by :data:`SETTLEMENT` into those retried (what may
be accepted later, and every reason the trust policy or the signature decides, alike) and those
dead-lettered at once; handler errors by :attr:`RetryPolicy.on_handler_error`. Where the
delivery's attempt count stands (:class:`Count`) against :attr:`RetryPolicy.max_attempts` picks
the column:

==================  ==================  =================  =================  =================
outcome             attempts unknown    attempts < max     attempts == max    attempts > max
==================  ==================  =================  =================  =================
delivered           open it             open it            open it            dead letter
                                                                              ``max_attempts``
busy                retry after wait    retry after wait   retry after wait   ``max_attempts``
handled             ack                 ack                ack                ack
handler raised      ``handler_error``   ``handler_error``  ``handler_error``  ``handler_error``
handler raised,     ``handler_error``   retry, backoff     ``handler_error``  ``handler_error``
retried
refused, retried    ``rejected``        retry, backoff     ``rejected``       ``rejected``
refused, other      ``rejected``        ``rejected``       ``rejected``       ``rejected``
==================  ==================  =================  =================  =================

(``rejected``, ``handler_error``, ``max_attempts``: a dead letter with that
:class:`DeadLetterReason`.) The retry after attempt ``n`` waits ``delay * 2**(n - 1)`` seconds,
at most ``max_delay`` (:meth:`RetryPolicy.backoff`). A busy copy waits ``wait`` seconds (the
consumer's claim lease: by then the claim is finished, or its holder stopped renewing it and the
copy takes it over); it is retried whether or not the broker counts attempts, since a claim
bounds the wait, not a count. :data:`TABLE` is this table; :func:`decide` reads it.

Why one word for every refusal: the broker is hostile and must not learn whom the receiver
trusts by sending forgeries. A forgery naming a trusted sender's key fails as ``bad_signature``,
one naming an unknown key as ``unknown_sender``; both are retried alike and then dead-lettered
as ``rejected``, so the queue shows the same reason, attempts, delays and order for both.

Brokers that do not count deliveries (MQTT, ZeroMQ: ``attempts`` is ``None``): a retry must be
bounded and only a count bounds it, so nothing is retried there; a refusal is dead-lettered at
once, alike for every reason (the trust oracle stays closed). A crash loop cannot be told from
a first delivery either, so a delivery is always opened; the replay window still lets at most
one copy of a message id reach the handler (a redelivered copy is refused as ``replayed``). An
adapter that can count (e.g. in a header of the copies it republishes) reports the count instead.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, cast

from letterlock.errors import Reason, UsageError

__all__ = [
    "SETTLEMENT",
    "TABLE",
    "Ack",
    "Count",
    "DeadLetter",
    "DeadLetterReason",
    "OnHandlerError",
    "OnRefusal",
    "Outcome",
    "Retry",
    "RetryPolicy",
    "Row",
    "Settlement",
    "decide",
]


class DeadLetterReason(enum.StrEnum):
    """The one vocabulary of dead letters: all a broker (and whoever reads it) is told."""

    REJECTED = "rejected"  #: open() refused it, whatever the reason code (which stays local)
    HANDLER_ERROR = "handler_error"  #: it opened, and the handler raised
    MAX_ATTEMPTS = "max_attempts"  #: delivered more often than the policy allows (a crash loop)


@dataclass(frozen=True, slots=True)
class Ack:
    """Done with it: the broker may forget the message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Give it back, to be delivered again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """Keep the bytes aside for an operator, with ``reason`` as the only word said about them."""

    reason: DeadLetterReason


Settlement = Ack | Retry | DeadLetter


class Outcome(enum.Enum):
    """What happened to a delivery, besides a refusal (which is its :class:`Reason`)."""

    DELIVERED = "delivered"  #: taken from the broker, not opened yet
    BUSY = "busy"  #: opened, but another consumer's live claim holds it
    HANDLED = "handled"  #: opened, and the handler returned
    HANDLER_RAISED = "handler_raised"  #: opened, and the handler raised

    # Members are singletons: identity hashing is exact, and C-level instead of Enum's
    # Python-level hash of the name (each decision looks members up in the table).
    __hash__ = object.__hash__


class OnHandlerError(enum.Enum):
    """How a message whose handler raised is settled (the user's choice)."""

    DEAD_LETTER = "dead_letter"  #: dead-lettered at once (``handler_error``), for an operator
    RETRY = "retry"  #: retried with backoff while the broker counts attempts, then dead-lettered


class OnRefusal(enum.Enum):
    """How a message that failed to open is settled."""

    RETRY = "retry"  #: retried with backoff; dead-lettered once delivered ``max_attempts`` times
    DEAD_LETTER = "dead_letter"  #: dead-lettered at once


#: The settlement of each reason. Retried: what may be accepted later (a sender's pin or
#: certificate arriving, the clock catching up), and every reason the trust policy or the
#: signature decides, alike, so the queue never tells whom the receiver trusts. The reasons
#: dead-lettered at once are decided before the trust policy is consulted, or only after a
#: trusted sender's signature verified (which a broker cannot make).
SETTLEMENT: Final[Mapping[Reason, OnRefusal]] = MappingProxyType(
    {
        Reason.OVER_LIMIT: OnRefusal.DEAD_LETTER,
        Reason.MALFORMED: OnRefusal.DEAD_LETTER,
        Reason.UNSUPPORTED: OnRefusal.DEAD_LETTER,
        Reason.SUITE_NOT_ALLOWED: OnRefusal.DEAD_LETTER,
        Reason.NOT_YET_VALID: OnRefusal.RETRY,  # the clock may catch up
        Reason.EXPIRED: OnRefusal.DEAD_LETTER,
        Reason.WRONG_TOPIC: OnRefusal.DEAD_LETTER,
        Reason.REPLAYED: OnRefusal.DEAD_LETTER,
        Reason.NOT_FOR_ME: OnRefusal.DEAD_LETTER,
        Reason.UNKNOWN_SENDER: OnRefusal.RETRY,  # its pin or certificate may arrive later
        Reason.UNTRUSTED: OnRefusal.RETRY,  # a policy may admit it later; and as unknown_sender
        Reason.BAD_SIGNATURE: OnRefusal.RETRY,  # as unknown_sender: a forgery's claim stays hidden
        Reason.DECRYPT_FAILED: OnRefusal.DEAD_LETTER,
        Reason.BAD_COMMITMENT: OnRefusal.DEAD_LETTER,
    }
)


class Count(enum.Enum):
    """Where a delivery's attempt count stands against :attr:`RetryPolicy.max_attempts`."""

    UNKNOWN = "unknown"  #: the broker does not count deliveries
    LEFT = "left"  #: attempts < max_attempts: another delivery is allowed
    LAST = "last"  #: attempts == max_attempts
    OVER = "over"  #: attempts > max_attempts: delivered too often

    # Members are singletons: identity hashing is exact, and C-level instead of Enum's
    # Python-level hash of the name (each decision looks members up in the table).
    __hash__ = object.__hash__


class Row(enum.Enum):
    """The rows of :data:`TABLE`: an outcome, with refusals split by :data:`SETTLEMENT`."""

    DELIVERED = "delivered"
    BUSY = "busy"
    HANDLED = "handled"
    HANDLER_RAISED = "handler raised"
    HANDLER_RAISED_RETRIED = "handler raised, retried"
    REFUSED_RETRIED = "refused, retried"
    REFUSED_OTHER = "refused, other"

    # Members are singletons: identity hashing is exact, and C-level instead of Enum's
    # Python-level hash of the name (each decision looks members up in the table).
    __hash__ = object.__hash__


_OPEN: Final = None  # not settled yet: open the message
_ACK: Final = Ack()
_BACKOFF: Final = Retry(delay=-1.0)  # stands for the policy's backoff at this attempt
_WAIT: Final = Retry(delay=-2.0)  # stands for the caller's wait (a busy copy)
_REJECTED: Final = DeadLetter(reason=DeadLetterReason.REJECTED)
_HANDLER_ERROR: Final = DeadLetter(reason=DeadLetterReason.HANDLER_ERROR)
_MAX_ATTEMPTS: Final = DeadLetter(reason=DeadLetterReason.MAX_ATTEMPTS)

_U, _L, _E, _O = Count.UNKNOWN, Count.LEFT, Count.LAST, Count.OVER
# Per-message comparisons use globals: an attribute of an Enum class costs a Python-level
# __getattr__ hook on 3.11 (EnumType defines one), a global does not.
_BUSY, _HANDLER_RAISED = Outcome.BUSY, Outcome.HANDLER_RAISED
_RETRY_ON_ERROR: Final = OnHandlerError.RETRY

#: The decision table (the module's table, as data): (row, count) -> settlement, ``None`` for
#: "open it". Every pair is listed; :func:`decide` only reads it.
TABLE: Final[Mapping[tuple[Row, Count], Settlement | None]] = MappingProxyType(
    {
        (Row.DELIVERED, _U): _OPEN,
        (Row.DELIVERED, _L): _OPEN,
        (Row.DELIVERED, _E): _OPEN,
        (Row.DELIVERED, _O): _MAX_ATTEMPTS,
        (Row.BUSY, _U): _WAIT,  # a claim, not a count, bounds this wait
        (Row.BUSY, _L): _WAIT,
        (Row.BUSY, _E): _WAIT,
        (Row.BUSY, _O): _MAX_ATTEMPTS,
        (Row.HANDLED, _U): _ACK,
        (Row.HANDLED, _L): _ACK,
        (Row.HANDLED, _E): _ACK,
        (Row.HANDLED, _O): _ACK,
        (Row.HANDLER_RAISED, _U): _HANDLER_ERROR,
        (Row.HANDLER_RAISED, _L): _HANDLER_ERROR,
        (Row.HANDLER_RAISED, _E): _HANDLER_ERROR,
        (Row.HANDLER_RAISED, _O): _HANDLER_ERROR,
        (Row.HANDLER_RAISED_RETRIED, _U): _HANDLER_ERROR,  # only a count bounds retries
        (Row.HANDLER_RAISED_RETRIED, _L): _BACKOFF,
        (Row.HANDLER_RAISED_RETRIED, _E): _HANDLER_ERROR,
        (Row.HANDLER_RAISED_RETRIED, _O): _HANDLER_ERROR,
        (Row.REFUSED_RETRIED, _U): _REJECTED,  # only a count bounds retries
        (Row.REFUSED_RETRIED, _L): _BACKOFF,
        (Row.REFUSED_RETRIED, _E): _REJECTED,
        (Row.REFUSED_RETRIED, _O): _REJECTED,
        (Row.REFUSED_OTHER, _U): _REJECTED,
        (Row.REFUSED_OTHER, _L): _REJECTED,
        (Row.REFUSED_OTHER, _E): _REJECTED,
        (Row.REFUSED_OTHER, _O): _REJECTED,
    }
)


_ROW_OF: Final = {outcome: Row[outcome.name] for outcome in Outcome}


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how late refusals that :data:`SETTLEMENT` retries are retried.

    A message is delivered at most ``max_attempts`` times (where the broker counts); the retry
    after attempt ``n`` comes ``delay * 2**(n - 1)`` seconds later, at most ``max_delay``.
    ``on_handler_error`` says what becomes of a message whose handler raised: a dead letter
    (the default: an operator looks at it, and redrives it once the cause is fixed), or retries
    on the same terms as retried refusals.
    """

    max_attempts: int = 5
    delay: float = 5.0
    max_delay: float = 300.0
    on_handler_error: OnHandlerError = OnHandlerError.DEAD_LETTER

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise UsageError("max_attempts must be a whole number")
        if self.max_attempts < 1:
            raise UsageError("max_attempts must be positive")
        if not 0 <= self.delay <= self.max_delay:
            raise UsageError("retry delays must satisfy 0 <= delay <= max_delay")
        if not isinstance(self.on_handler_error, OnHandlerError):
            raise UsageError("on_handler_error is an OnHandlerError (DEAD_LETTER or RETRY)")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before the delivery after attempt ``attempts`` (1 for the first)."""
        return min(self.max_delay, self.delay * 2.0 ** min(attempts - 1, 62))  # no overflow

    def count(self, attempts: int | None) -> Count:
        """Where ``attempts`` (deliveries so far, this one included) stands."""
        if attempts is None:
            return _U
        if attempts < 1:
            raise UsageError("attempts counts this delivery too: 1 or more, or None")
        if attempts < self.max_attempts:
            return _L
        return _E if attempts == self.max_attempts else _O


def decide(
    outcome: Outcome | Reason,
    *,
    attempts: int | None,
    policy: RetryPolicy,
    wait: float | None = None,
) -> Settlement | None:
    """How to settle a delivery after ``outcome``; ``None``: not yet, open it (see the table).

    ``attempts`` is how often the broker has delivered the message, this time included, or
    ``None`` if it does not count. ``wait`` (seconds, for :attr:`Outcome.BUSY` only) is how
    long a busy copy waits before it comes back.
    """
    count = policy.count(attempts)
    if type(outcome) is Reason:  # an enum with members is final; isinstance is slower here
        retried = SETTLEMENT[outcome] is OnRefusal.RETRY
        row = Row.REFUSED_RETRIED if retried else Row.REFUSED_OTHER
    elif outcome is _HANDLER_RAISED and policy.on_handler_error is _RETRY_ON_ERROR:
        row = Row.HANDLER_RAISED_RETRIED
    else:
        row = _ROW_OF[cast(Outcome, outcome)]  # not a Reason: its exact type was checked
    if (outcome is _BUSY) != (wait is not None):
        raise UsageError("wait is given for a busy copy, and only for one")
    settlement = TABLE[row, count]
    if settlement is _BACKOFF:
        assert attempts is not None  # a count of LEFT
        return Retry(delay=policy.backoff(attempts))
    if settlement is _WAIT:
        assert wait is not None
        if not wait >= 0:
            raise UsageError("wait must not be negative")
        return Retry(delay=wait)
    return settlement
