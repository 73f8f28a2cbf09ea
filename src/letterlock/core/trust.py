"""The trust hook: who may send what, decided by the receiver (deny by default).

:func:`letterlock.open` asks a :class:`TrustPolicy` two questions, before it spends any time on
the signature: which public identity owns this sender key id (:meth:`TrustPolicy.lookup`), and may
that sender send this message (:meth:`TrustPolicy.admit`). The answer to the second is the
:class:`VerifiedSender` that :func:`letterlock.open` hands the application once the signature has
verified. Pins (:mod:`letterlock.trust.pins`) implement it today; certificates, authorities and
revocation plug into the same two calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from letterlock.core.keys import PublicIdentity
from letterlock.core.suites import Suite

__all__ = ["TrustContext", "TrustPolicy", "VerifiedSender"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustContext:
    """What the message claims, for a policy to decide on (all of it is signed)."""

    topic: str
    suite: Suite
    content_type: str | None
    headers: Mapping[str, str]
    created: int
    now: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedSender:
    """Who signed a message, as the receiver's trust policy knows them.

    ``name`` is the receiver's name for the sender (the pinned name today, a principal such as
    ``ll://acme/svc/billing`` with certificates); ``via`` says how trust was established.
    """

    name: str
    fingerprint: str
    key_id: bytes
    suite: Suite
    via: str

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint}, {self.via})"


class TrustPolicy(Protocol):
    """The receiver's trust decisions. Both calls are pure and must not block."""

    def lookup(self, key_id: bytes) -> PublicIdentity | None:
        """The public identity whose fingerprint is ``key_id``, or None if unknown."""
        ...

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | str:
        """The verified sender if ``sender`` may send this message, else a refusal reason."""
        ...
