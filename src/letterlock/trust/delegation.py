"""Delegated signing keys: messages signed by a key the sender's identity key certifies. Pure.

``docs/spec/keyset.md`` section 9. An identity lists signing keys (purpose SIGN) in its keyset;
a message signed by one names it as the sender key id and carries the signed keyset in its
credential block (format KEYSET, ``docs/spec/envelope-v1.md`` section 4.1), so a receiver that
has never seen the keyset verifies it from the message and the identity key it already trusts.

Sender: :func:`delegated` makes the :class:`~letterlock.Identity` to seal with. Receiver:
:class:`DelegatedSigners`, a trust policy in front of the receiver's others, which decide on
the *identity* key only: a signing key is never admitted on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.suites import Suite
from letterlock.core.times import iso_utc
from letterlock.core.trust import (
    Refusal,
    TrustContext,
    TrustPolicy,
    VerifiedSender,
    lookup_carried,
)
from letterlock.errors import ParseError, Reason, UsageError
from letterlock.trust.keysets import KEYSET_LABEL, Key, Keyset, Purpose, SignedKeyset

__all__ = ["DelegatedSigners", "carried_keyset", "delegated"]

_CACHE_SIZE: Final = 256  # verified carried keysets kept, by the block's chain digest


class _NoDecapsulation:
    """The decapsulator of a delegated signing key: a signing key opens nothing."""

    __slots__ = ("suite",)

    def __init__(self, suite: Suite) -> None:
        self.suite = suite

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        return None


def delegated(
    signing: Identity, signed: SignedKeyset, *, now: int, status_version: int = 0
) -> Identity:
    """The identity to seal with when ``signing`` is a signing key of ``signed``.

    Its messages name ``signing``'s key as the sender key id, are signed by it and carry the
    signed keyset (credential format KEYSET) with ``status_version``. UsageError unless
    ``signing`` is a signing key of the keyset in service and within its lifetime at ``now``,
    or if the keyset is too large to carry (more than 16384 bytes). The identity it returns
    opens nothing: a signing key is never an encryption key.
    """
    key = signed.keyset.signer(signing.public.fingerprint)
    if key is None:
        raise UsageError(f"{signing.public.fingerprint_text} is not a signing key of the keyset")
    if not key.signs(created=now, now=now):
        raise UsageError(
            f"signing key {key.key_id} is {key.status.name.lower()}, valid from "
            f"{iso_utc(key.not_before)} to {iso_utc(key.not_after)}: it cannot sign now"
        )
    try:
        block = CredentialBlock.of(
            CredentialFormat.KEYSET, (signed.encoded, signed.signature),
            status_version=status_version,
        )  # fmt: skip
    except UsageError as exc:
        raise UsageError(f"the keyset cannot be carried in messages: {exc}") from None
    return Identity(
        signing.public, signer=signing.signer, decapsulator=_NoDecapsulation(signing.suite),
        credentials=block,
    )  # fmt: skip


def carried_keyset(block: CredentialBlock, identity: PublicIdentity) -> Keyset:
    """The keyset ``block`` (format KEYSET) carries, verified as signed by ``identity``;
    ParseError if the block is not exactly a keyset of ``identity`` and its valid signature."""
    if block.format is not CredentialFormat.KEYSET or len(block.items) != 2:
        raise ParseError("a keyset block carries a keyset and its signature")
    encoded, signature = block.items
    keyset = Keyset.decode(encoded)
    if keyset.identity != identity.fingerprint:
        raise ParseError("the keyset is for a different identity")
    if not identity.verify(signature, KEYSET_LABEL + encoded):
        raise ParseError("the keyset is not signed by its identity key")
    return keyset


class DelegatedSigners:
    """A :class:`~letterlock.core.trust.TrustPolicy`: ``inner``, plus the signing keys that
    the identities ``inner`` admits certify in the keysets their messages carry.

    A message whose credential block is a keyset (format KEYSET) is admitted only if: the
    keyset parses and is signed by its identity key, which ``inner`` knows (by its
    fingerprint, without the block); the sender key id is a signing key of the keyset (an
    encryption key never signs); that key is active or primary and within its lifetime at the
    message's creation time and at ``now``; and ``inner`` admits the *identity* key for the
    message. ``known`` maps identity fingerprints to keysets the receiver holds (its contacts'):
    a carried keyset older than the one held is decided by the one held (a key retired or
    dropped since is refused), and one of the same version with other contents is refused.

    The verified sender is ``inner``'s for the identity (name, principal, roles), with
    ``key_id`` the signing key's fingerprint (what replay records key on) and the identity
    key appended to ``path_keys``, so a status document revoking the signing key or the
    identity key refuses the message (:class:`~letterlock.trust.status.Revocations`). Every
    other message is ``inner``'s alone. Put it inside ``Revocations`` and
    ``DenyRevokedPins``, outside ``FirstKnown``.
    """

    def __init__(self, inner: TrustPolicy, known: Mapping[bytes, Keyset] | None = None) -> None:
        self._inner = inner
        self._known = dict(known or {})
        self._verified: dict[bytes, tuple[Keyset, PublicIdentity]] = {}
        # per signing key: the inner verdict last seen and what it became (pins answer with
        # the same object every time, so a stream from one sender builds its verdict once)
        self._became: dict[bytes, tuple[VerifiedSender, VerifiedSender]] = {}

    @property
    def inner(self) -> TrustPolicy:
        return self._inner

    def _carried(self, block: CredentialBlock) -> tuple[Keyset, PublicIdentity] | None:
        """The verified keyset the block carries and its identity key, or None."""
        hit = self._verified.get(block.chain_digest)
        if hit is not None:
            return hit
        if len(block.items) != 2:
            return None
        try:
            claimed = Keyset.decode(block.items[0])
        except ParseError:
            return None
        identity = lookup_carried(self._inner, claimed.identity, None)
        if identity is None or identity.fingerprint != claimed.identity:
            return None
        try:
            keyset = carried_keyset(block, identity)
        except ParseError:
            return None
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()  # bounded; a verified keyset is only a saved verification
        self._verified[block.chain_digest] = (keyset, identity)
        return keyset, identity

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        if credentials is None or credentials.format is not CredentialFormat.KEYSET:
            return lookup_carried(self._inner, key_id, credentials)
        found = self._carried(credentials)
        if found is None:
            return None
        key = found[0].signer(bytes(key_id))
        return None if key is None else key.public

    def why_not_placed(self, key_id: bytes, credentials: CredentialBlock) -> str | None:
        """Why the keyset ``credentials`` carries does not place ``key_id`` (None: it does, or
        the block holds no keyset): for ``letterlock trust check --message``."""
        if credentials.format is not CredentialFormat.KEYSET:
            return None
        found = self._carried(credentials)
        if found is None:
            return "the carried keyset does not verify under an identity key known here"
        if found[0].signer(bytes(key_id)) is None:
            return "the carried keyset lists no signing key with this fingerprint"
        return None

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        block = context.credentials
        if block is None or block.format is not CredentialFormat.KEYSET:
            return self._inner.admit(sender, context)
        identity = self.identity_of(sender, block, created=context.created, now=context.now)
        if isinstance(identity, Refusal):
            return identity
        bare = TrustContext(  # as if the identity key had signed: no block (not replace: slow)
            topic=context.topic, suite=context.suite, content_type=context.content_type,
            headers=context.headers, created=context.created, now=context.now,
            status_version=context.status_version,
        )  # fmt: skip
        verdict = self._inner.admit(identity, bare)
        if isinstance(verdict, Refusal):
            return verdict
        return self.as_signed_by(verdict, sender, identity)

    def identity_of(
        self, sender: PublicIdentity, block: CredentialBlock, *, created: int, now: int
    ) -> PublicIdentity | Refusal:
        """The identity key whose keyset ``block`` (format KEYSET) certifies ``sender`` as a
        signing key in service at ``created`` and ``now`` (section 9, steps 1 to 6), or why
        not. Step 7, the inner policy on the identity, is the caller's."""
        found = self._carried(block)
        if found is None:
            return Refusal(
                reason=Reason.UNKNOWN_SENDER,
                detail="the carried keyset does not verify under an identity key known here",
            )
        keyset, identity = found
        held = self._known.get(keyset.identity)
        if held is not None and held.version == keyset.version and held != keyset:
            return Refusal(detail=f"the carried keyset version {keyset.version} differs from "
                           "the one held")  # fmt: skip
        if held is not None and held.version > keyset.version:
            keyset = held  # the sender's identity has said more since: its word stands
        key = keyset.signer(sender.fingerprint)
        why = _not_signing(key, sender, keyset, created=created, now=now)
        if why is not None:
            return Refusal(detail=why)
        return identity

    def as_signed_by(
        self, verdict: VerifiedSender, sender: PublicIdentity, identity: PublicIdentity
    ) -> VerifiedSender:
        """``verdict``, the inner policy's on ``identity``, for a message its signing key
        ``sender`` signed: ``key_id`` the signing key, the identity key last in ``path_keys``."""
        last = self._became.get(sender.fingerprint)
        if last is not None and last[0] is verdict:
            return last[1]
        became = dataclasses.replace(
            verdict, key_id=sender.fingerprint,
            path_keys=(*verdict.path_keys, identity.fingerprint),
        )  # fmt: skip
        if len(self._became) >= _CACHE_SIZE:
            self._became.clear()
        self._became[sender.fingerprint] = (verdict, became)
        return became


def _not_signing(
    key: Key | None, sender: PublicIdentity, keyset: Keyset, *, created: int, now: int
) -> str | None:
    """Why ``key`` does not vouch for this message (section 9), or None if it does."""
    if key is None or key.public != sender or key.purpose is not Purpose.SIGN:
        return f"not a signing key of the keyset (version {keyset.version})"
    if not key.status.in_service:
        return f"signing key {key.key_id} is {key.status.name.lower()} (keyset {keyset.version})"
    if key.signs(created=created, now=now):
        return None
    return (
        f"signing key {key.key_id} is valid from {iso_utc(key.not_before)} to "
        f"{iso_utc(key.not_after)}: not at the message's time or now"
    )
