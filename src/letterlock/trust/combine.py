"""Policies made of policies, like pyca's ``MultiFernet`` over ``Fernet``s. Pure.

:class:`FirstKnown` asks its policies in order; the first that knows a sender's key decides
for it, alone: a later policy cannot admit a key an earlier one refuses (a revoked pin stays
revoked even if another policy would take the key). That holds only while the pins come
first and the sender's key is known by them: a policy asked first (or a key another policy
places from a carried chain) is not held to it. :class:`DenyRevokedPins` holds every policy to
it: put it outermost, ``DenyRevokedPins(pins, FirstKnown(...))``, and a key the receiver
revoked itself is refused whatever vouches for it. :class:`OwnIdentities` admits a receiver's
own keys, as the CLI does for a message one of its identities sealed to itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import (
    Refusal,
    TrustContext,
    TrustPolicy,
    VerifiedSender,
    Via,
    lookup_carried,
)
from letterlock.errors import Reason, UsageError
from letterlock.trust.pins import PinRefusal, Pins, PinWhy

__all__ = ["DenyRevokedPins", "FirstKnown", "OwnIdentities"]


class FirstKnown:
    """A :class:`~letterlock.core.trust.TrustPolicy` over others: the first that knows decides."""

    def __init__(self, *policies: TrustPolicy) -> None:
        if not policies:
            raise UsageError("FirstKnown needs at least one policy")
        self._policies = policies

    @property
    def policies(self) -> tuple[TrustPolicy, ...]:
        """The policies asked, in order."""
        return self._policies

    def _deciding(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> tuple[TrustPolicy, PublicIdentity] | None:
        for policy in self._policies:
            found = lookup_carried(policy, key_id, credentials)
            if found is not None:
                return policy, found
        return None

    def deciding(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> TrustPolicy | None:
        """The policy that decides for ``key_id`` (the first that knows it, with the
        ``credentials`` a message carries), or None."""
        deciding = self._deciding(key_id, credentials)
        return None if deciding is None else deciding[0]

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        deciding = self._deciding(key_id, credentials)
        return None if deciding is None else deciding[1]

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        deciding = self._deciding(sender.fingerprint, context.credentials)
        if deciding is None or deciding[1] != sender:
            return Refusal(reason=Reason.UNKNOWN_SENDER, detail="no policy knows this key")
        return deciding[0].admit(sender, context)


class OwnIdentities:
    """Admits the receiver's own public identities, by name, as ``Via.SELF``.

    Only the holder of the private keys can sign as one of them, so a message signed by one of
    your own identities is yours (a note to self, a message between two of your services).
    """

    def __init__(self, named: Mapping[str, PublicIdentity]) -> None:
        self._by_key = {
            public.fingerprint: VerifiedSender(
                name=name,
                fingerprint=public.fingerprint_text,
                key_id=public.fingerprint,
                suite=public.suite,
                via=Via.SELF,
            )
            for name, public in named.items()
        }
        self._publics = {public.fingerprint: public for public in named.values()}

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        return self._publics.get(bytes(key_id))

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        verified = self._by_key.get(sender.fingerprint)
        return verified if verified is not None else Refusal(detail="not one of your identities")


class DenyRevokedPins:
    """A :class:`~letterlock.core.trust.TrustPolicy`: ``inner``, except that a key ``pins``
    holds as revoked (``@revoked``) is refused, whatever ``inner`` would say of it.

    The receiver's own revocation is a deny list in front of every policy: a revoked key
    that carries a valid certificate, or that an authority's credential names, stays refused
    (reason ``untrusted``), and so does a sender that a revoked key vouched for (in
    :attr:`VerifiedSender.path_keys`: a revoked identity's delegated signing key, a revoked
    authority's principal). The pins are read on every call, so a key revoked after this policy
    was made is refused too.
    """

    def __init__(self, pins: Pins, inner: TrustPolicy) -> None:
        self._pins = pins
        self._inner = inner

    @property
    def inner(self) -> TrustPolicy:
        return self._inner

    def denied(self, key_id: bytes) -> Refusal | None:
        """The refusal of ``key_id`` if the pins hold it as revoked, else None."""
        pin = self._pins.pin_of(key_id)
        if pin is not None and pin.revoked:
            return PinRefusal(detail=f"pin {pin.name!r} is revoked", why=PinWhy.REVOKED)
        return None

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        pin = self._pins.pin_of(key_id)
        if pin is not None and pin.revoked:
            return pin.identity  # known, so that admit refuses it as revoked
        return lookup_carried(self._inner, key_id, credentials)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        denied = self.denied(sender.fingerprint)
        if denied is not None:
            return denied
        verdict = self._inner.admit(sender, context)
        if isinstance(verdict, VerifiedSender):
            for key in verdict.path_keys:  # what vouched for it: an identity, an authority
                denied = self.denied(key)
                if denied is not None:
                    return denied
        return verdict
