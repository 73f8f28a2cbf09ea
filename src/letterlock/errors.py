"""The exceptions of letterlock.

There is one base, :class:`LetterlockError`. Below it, two families that must not be confused
(as in h11's ``LocalProtocolError`` / ``RemoteProtocolError``):

* :class:`Rejected` - an *incoming message* failed. Every way a message can fail (parsing,
  signature, decryption, trust, replay, expiry, destination) raises this one type, so an attacker
  cannot tell failures apart by type; :attr:`Rejected.reason` is a :class:`Reason` code for logs
  and metrics.
* :class:`UsageError` - the *caller* made a mistake (bad argument, key of the wrong suite). It is
  also a :class:`ValueError`, as PyNaCl's errors are builtin-compatible.

Errors of the environment (key files, passphrases, stores) have their own children.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable

__all__ = [
    "KeyStoreError",
    "LetterlockError",
    "ParseError",
    "Reason",
    "Rejected",
    "StoreError",
    "TransportError",
    "UsageError",
]


class LetterlockError(Exception):
    """Base of every exception letterlock raises on purpose."""


class Reason(enum.StrEnum):
    """Why an incoming message was rejected (``docs/spec/envelope-v1.md`` section 9)."""

    OVER_LIMIT = "over_limit"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    SUITE_NOT_ALLOWED = "suite_not_allowed"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_TOPIC = "wrong_topic"
    REPLAYED = "replayed"
    NOT_FOR_ME = "not_for_me"
    UNKNOWN_SENDER = "unknown_sender"
    UNTRUSTED = "untrusted"
    BAD_SIGNATURE = "bad_signature"
    DECRYPT_FAILED = "decrypt_failed"
    BAD_COMMITMENT = "bad_commitment"

    @property
    def transient(self) -> bool:
        """True when the same bytes might be accepted later (retry instead of dead-lettering).

        An unknown sender may become known (its pin or certificate arrives later), and a message
        from the near future becomes valid once the clock catches up.
        """
        return self in (Reason.UNKNOWN_SENDER, Reason.NOT_YET_VALID)


class Rejected(LetterlockError):
    """An incoming message was refused. No plaintext accompanies this error, ever.

    ``transient`` says the same bytes may be accepted later (retry rather than dead-letter): by
    default :attr:`Reason.transient` of the reason; a trust policy's transient refusal (an
    unknown certificate authority, a stale root) sets it for ``untrusted`` too.
    """

    reason: Reason
    detail: str
    transient: bool

    def __init__(self, reason: Reason, detail: str = "", *, transient: bool | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.transient = reason.transient if transient is None else transient
        super().__init__(f"message rejected: {reason.value}" + (f" ({detail})" if detail else ""))

    def __reduce__(self) -> tuple[Callable[..., Rejected], tuple[object, ...]]:
        return (_rejected, (type(self), self.reason, self.detail, self.transient))


def _rejected(cls: type[Rejected], reason: Reason, detail: str, transient: bool) -> Rejected:
    return cls(reason, detail, transient=transient)


class UsageError(builtins.ValueError, LetterlockError):
    """The caller passed something letterlock cannot use (a programming or configuration error)."""


class ParseError(builtins.ValueError, LetterlockError):
    """Local text or bytes (a public key line, a key, a known-senders file, a suite name) are
    not in letterlock's format. Parsers of certificates and trust metadata raise it too.

    Incoming *messages* never raise it: they fail as :class:`Rejected`.
    """


class KeyStoreError(LetterlockError):
    """A key could not be loaded or stored: wrong passphrase, damaged or unsupported key file."""


class TransportError(LetterlockError):
    """A broker or spool operation failed (the broker client's own error is the ``__cause__``)."""


class StoreError(LetterlockError):
    """A replay store could not be read or written (the store client's own error is the
    ``__cause__``): a file that is not a replay record, a database that went away."""
