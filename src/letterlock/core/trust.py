"""The trust interface: who may send what, decided by the receiver (deny by default).

:func:`letterlock.open` asks a :class:`TrustPolicy` two questions, before it spends any time on
the signature: which public identity owns this sender key id (:meth:`TrustPolicy.lookup`), and may
that sender send this message (:meth:`TrustPolicy.admit`). The answer to the second is either the
:class:`VerifiedSender` that :func:`letterlock.open` hands the application once the signature has
verified, or a typed :class:`Refusal`.

The interface lives here, below the protocol that calls it; :mod:`letterlock.trust` holds the
policies that implement it (pins today; certificates, authorities, a threshold-signed root,
revocation and X.509 next) and combinators over them.

**Policies never do I/O.** Both calls run on the per-message path, possibly under a consumer's
lock, and must be pure functions of the policy's state and their arguments: no file, network,
clock or environment access, and no blocking. Whatever a policy needs from outside (a pin file,
certificates, a root of trust, a revocation snapshot fetched from the broker) is fetched out of
band by a *source* that hands the policy an immutable snapshot; replacing the snapshot is how a
policy learns something new. A decision that may change once a source has fetched more (a
certificate not yet seen, an authority not yet known, a stale root) is a *transient*
:class:`Refusal`: consumers retry such messages later instead of dead-lettering them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity
from letterlock.core.suites import Suite
from letterlock.errors import Reason, UsageError

__all__ = ["Refusal", "TrustContext", "TrustPolicy", "VerifiedSender", "Via", "lookup_carried"]


class Via(enum.StrEnum):
    """How the receiver came to trust a sender's key."""

    PIN = "pin"  #: pinned by the receiver (a known-senders file)
    SELF = "self"  #: one of the receiver's own identities
    AUTHORITY = "authority"  #: certified by an authority under the receiver's root of trust
    X509 = "x509"  #: an X.509 certificate chained to a company CA


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A policy's "no" to a sender it knows (section 6, step 14), or to one it cannot place.

    ``reason`` is ``untrusted`` (known, but not allowed to send this message) or
    ``unknown_sender`` (its key cannot be placed yet, e.g. its certificate's authority is not
    known); ``transient`` says the same message may be admitted later, once a source has
    fetched more (a certificate, a fresher root), so it should be retried, not dead-lettered.
    ``detail`` is for local logs.
    """

    reason: Reason = Reason.UNTRUSTED
    detail: str = ""
    transient: bool = False

    def __post_init__(self) -> None:
        if self.reason not in (Reason.UNTRUSTED, Reason.UNKNOWN_SENDER):
            raise UsageError(
                f"a trust policy refuses as untrusted or unknown_sender, not {self.reason}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustContext:
    """What the message claims, for a policy to decide on (all of it is signed).

    ``status_version`` is the status document version the sender says it holds (0 when the
    message carries none); ``credentials`` is the credential block the message carries
    (``docs/spec/envelope-v1.md`` section 4.1), None without one. Both are the sender's
    claims, checked by the signature only after the policy has decided.
    """

    topic: str
    suite: Suite
    content_type: str | None
    headers: Mapping[str, str]
    created: int
    now: int
    status_version: int = 0
    credentials: CredentialBlock | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedSender:
    """Who signed a message, as the receiver's trust policy knows them.

    ``name`` is the receiver's name for the sender (the pinned name today, a principal such as
    ``ll://acme/svc/billing`` with certificates); ``via`` says how trust was established.
    Senders certified by an authority also carry their ``principal``, the ``authorities`` of
    the chain (the receiver's anchor first) and the ``roles`` the chain grants them (the
    intersection along it); other senders leave the defaults. ``rule`` names the receiver's
    policy rules that admitted the message (:class:`letterlock.trust.Rules`: every rule
    governing its topic, comma-separated), None where no rule layer decided. ``via`` is the
    trust mode. ``status_version`` and ``status_age`` (seconds since it was issued) describe
    the status document the receiver held when it admitted the sender
    (:class:`letterlock.trust.status.Revocations` fills them), None where no status applies.
    ``path_keys`` names every key that vouched for the sender, the receiver's anchor first
    (an authority chain: each credential's issuer key fingerprint; an X.509 path: the SHA-256
    of each CA certificate's SubjectPublicKeyInfo, the anchor's included), so that a status
    document revoking any of them refuses the sender; empty for pins and own identities. A
    sender that signed with a delegated signing key (``docs/spec/keyset.md`` section 9) is
    reported as its identity (``name``, ``fingerprint``, ``principal``), with ``key_id`` the
    signing key's fingerprint (the key that signed; replay records key on it) and the
    identity key last in ``path_keys``.
    """

    name: str
    fingerprint: str
    key_id: bytes
    suite: Suite
    via: Via
    principal: str | None = None
    authorities: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()
    rule: str | None = None
    status_version: int | None = None
    status_age: int | None = None
    path_keys: tuple[bytes, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint}, {self.via})"


class TrustPolicy(Protocol):
    """The receiver's trust decisions. Both calls are pure, do no I/O and must not block."""

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        """The public identity whose fingerprint is ``key_id``, or None if unknown.

        ``credentials`` is the block the message carries, if any: a policy that verifies
        carried chains places an unseen key from it, and only if the chain verifies against
        its own anchors (a chain never makes an anchor, and a chain binding another key
        places nothing). Policies that do not read carried chains ignore it. :func:`open`
        passes it only when the message carries a block.
        """
        ...

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        """The verified sender if ``sender`` may send this message, else a :class:`Refusal`.

        The verified sender's ``key_id`` must be ``sender.fingerprint``.
        """
        ...


def lookup_carried(
    policy: TrustPolicy, key_id: bytes, credentials: CredentialBlock | None
) -> PublicIdentity | None:
    """``policy.lookup(key_id, credentials)``, or ``policy.lookup(key_id)`` without a block.

    What combinators call, so that a policy written before messages carried credentials (its
    ``lookup`` takes the key id alone) keeps working for every message that carries none.
    """
    return policy.lookup(key_id) if credentials is None else policy.lookup(key_id, credentials)
