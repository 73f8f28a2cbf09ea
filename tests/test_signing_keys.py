"""Delegated signing keys (docs/spec/keyset.md section 9): an identity key certifies signing
keys in its keyset; messages they sign carry the keyset (credential format 3) and are admitted
as the identity, by receivers that hold only the identity key.

Every clock is an argument: ``NOW`` is when alice's keyset starts. Alice signs; bob receives
and pins alice's identity key only.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import NOW, cast_of
from letterlock import (
    CredentialFormat,
    Identity,
    KeysetOpener,
    Pins,
    Reason,
    Rejected,
    ReplayWindow,
    Sealer,
    Suite,
    UsageError,
    open,
    seal,
)
from letterlock.core.trust import TrustPolicy
from letterlock.trust import DelegatedSigners, DenyRevokedPins, FirstKnown, delegated
from letterlock.trust.keysets import (
    Keyset,
    Purpose,
    SignedKeyset,
    Status,
    sealing_key,
    sign_keyset,
)
from letterlock.trust.pins import parse_topics
from letterlock.trust.status import (
    Freshness,
    Revocation,
    RevocationReason,
    Revocations,
)
from letterlock.trust.status import (
    Status as Doc,
)

DAY = 86400
LIFETIME = 30 * DAY
CAST = cast_of(Suite.X25519)
ALICE, BOB, CAROL = CAST.alice, CAST.bob, CAST.carol
TOPIC = "orders.eu"


def _started() -> Keyset:
    return Keyset.start(ALICE.public, now=NOW, lifetime=90 * DAY, grace=7 * DAY)


def _with_signer(at: int = NOW, lifetime: int = LIFETIME) -> tuple[Keyset, Identity]:
    """Alice's keyset with a signing key (key 1, primary) added at ``at``, and that key."""
    signer = Identity.generate(Suite.X25519)
    return _started().add(signer.public, now=at, lifetime=lifetime, purpose=Purpose.SIGN), signer


def _pins(**named: Identity) -> Pins:
    pins = Pins()
    for name, identity in (named or {"alice": ALICE}).items():
        pins.pin(name, identity.public)
    return pins


def _trust(pins: Pins | None = None, known: dict[bytes, Keyset] | None = None) -> TrustPolicy:
    pins = _pins() if pins is None else pins
    return DenyRevokedPins(pins, DelegatedSigners(FirstKnown(pins), known))


def _sealed(keyset: Keyset, signer: Identity, at: int = NOW, *, by: Identity = ALICE) -> bytes:
    """A message to bob signed by ``signer`` as a signing key of ``keyset`` (signed by ``by``)."""
    signed = _sign(keyset, by)
    sender = Identity(
        signer.public,
        signer=signer.signer,
        decapsulator=signer.decapsulator,
    ).with_credentials(CredentialFormat.KEYSET, (signed.encoded, signed.signature))
    if keyset.signer(signer.public.fingerprint) is not None:  # the library's own path
        sender = delegated(signer, signed, now=at) if _current(keyset, signer, at) else sender
    return (
        seal(b"hi", sender=sender, recipients=[BOB.public], topic=TOPIC, now=at)
        if (_current(keyset, signer, at))
        else _seal_unchecked(sender, at)
    )


def _current(keyset: Keyset, signer: Identity, at: int) -> bool:
    key = keyset.signer(signer.public.fingerprint)
    return key is not None and key.signs(created=at, now=at)


def _seal_unchecked(sender: Identity, at: int) -> bytes:
    """What a thief (or a careless sender) seals, past the Sealer's own lifetime check."""
    from letterlock.core.protocol import seal_envelope, seal_options, wrap_content_key

    wrapped = wrap_content_key(bytes(32), suite=sender.suite, recipients=[BOB.public])
    return seal_envelope(
        b"hi", sender=sender, wrapped=wrapped, options=seal_options(TOPIC, {}),
        message_id=bytes(range(16)), created=at,
    )  # fmt: skip


def _sign(keyset: Keyset, by: Identity) -> SignedKeyset:
    if by is ALICE:
        return sign_keyset(keyset, ALICE)
    encoded = keyset.encode()  # a statement for alice's identity, signed by another key
    from letterlock.trust.keysets import KEYSET_LABEL

    return SignedKeyset(keyset=keyset, encoded=encoded, signature=by.sign(KEYSET_LABEL + encoded))


def _open(data: bytes, trust: TrustPolicy, now: int = NOW) -> object:
    return open(data, identity=BOB, trust=trust, replay=ReplayWindow(max_age=90 * DAY), now=now)


def _refused(data: bytes, trust: TrustPolicy, now: int = NOW) -> Rejected:
    with pytest.raises(Rejected) as caught:
        _open(data, trust, now)
    return caught.value


# ------------------------------------------------------------------------- admitted


def test_a_delegated_key_opens_at_a_receiver_pinning_only_the_identity_key() -> None:
    keyset, signer = _with_signer()
    data = _sealed(keyset, signer)
    opened = _open(data, _trust())
    sender = opened.sender  # type: ignore[attr-defined]
    assert opened.payload == b"hi"  # type: ignore[attr-defined]
    assert sender.name == "alice"
    assert sender.fingerprint == ALICE.public.fingerprint_text  # the identity is the sender
    assert sender.key_id == signer.public.fingerprint  # the key that signed (replay records)
    assert sender.path_keys == (ALICE.public.fingerprint,)


def test_the_envelope_names_the_signing_key_and_carries_the_keyset() -> None:
    from letterlock import inspect

    keyset, signer = _with_signer()
    envelope = inspect(_sealed(keyset, signer)).header
    assert envelope.sender_key_id == signer.public.fingerprint
    assert envelope.credentials is not None
    assert envelope.credentials.format is CredentialFormat.KEYSET
    assert envelope.credentials.items == (keyset.encode(), sign_keyset(keyset, ALICE).signature)


def test_without_delegated_signers_the_signing_key_is_unknown() -> None:
    keyset, signer = _with_signer()
    refused = _refused(_sealed(keyset, signer), FirstKnown(_pins()))
    assert refused.reason is Reason.UNKNOWN_SENDER


def test_the_former_primary_signing_key_still_verifies_until_retired() -> None:
    keyset, first = _with_signer()
    second = Identity.generate(Suite.X25519)
    keyset = keyset.add(second.public, now=NOW + DAY, lifetime=LIFETIME, purpose=Purpose.SIGN)
    assert keyset.key(1).status is Status.ACTIVE
    assert keyset.key(2).status is Status.PRIMARY
    assert keyset.signing_key(NOW + DAY) == keyset.key(2)
    assert _open(_sealed(keyset, first, NOW + DAY), _trust(), NOW + DAY).payload == b"hi"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- refused


def test_an_expired_signing_key_is_refused() -> None:
    keyset, signer = _with_signer(lifetime=DAY)
    late = NOW + DAY  # not_after: the first second it no longer signs
    refused = _refused(_sealed(keyset, signer, late), _trust(), late)
    assert refused.reason is Reason.UNTRUSTED
    assert "valid from" in refused.detail


def test_a_message_made_in_time_is_refused_once_the_key_has_expired() -> None:
    keyset, signer = _with_signer(lifetime=DAY)
    data = _sealed(keyset, signer, NOW + DAY - 1)  # signed in its lifetime
    assert _open(data, _trust(), NOW + DAY - 1).payload == b"hi"  # type: ignore[attr-defined]
    refused = _refused(data, _trust(), NOW + DAY)  # verified after it
    assert refused.reason is Reason.UNTRUSTED


def test_a_not_yet_valid_signing_key_is_refused() -> None:
    keyset, signer = _with_signer(at=NOW + 100)
    refused = _refused(_sealed(keyset, signer, NOW + 99), _trust(), NOW + 99)
    assert refused.reason is Reason.UNTRUSTED
    assert "valid from" in refused.detail


def test_a_retired_signing_key_is_refused() -> None:
    keyset, signer = _with_signer()
    keyset = keyset.retire(1, now=NOW)
    assert keyset.key(1).status is Status.RETIRED
    assert keyset.signing_primary is None
    refused = _refused(_sealed(keyset, signer), _trust())
    assert refused.reason is Reason.UNTRUSTED
    assert "retired" in refused.detail


def test_a_destroyed_signing_key_is_refused() -> None:
    keyset, signer = _with_signer()
    keyset = keyset.retire(1, now=NOW).destroy(1, now=NOW)  # no grace for a signing key
    refused = _refused(_sealed(keyset, signer), _trust())
    assert refused.reason is Reason.UNTRUSTED
    assert "destroyed" in refused.detail


def test_an_unlisted_signing_key_is_unknown() -> None:
    keyset, _ = _with_signer()
    stranger = Identity.generate(Suite.X25519)
    refused = _refused(_sealed(keyset, stranger), _trust())
    assert refused.reason is Reason.UNKNOWN_SENDER


def test_a_keyset_signed_by_another_key_is_refused() -> None:
    keyset, signer = _with_signer()
    refused = _refused(_sealed(keyset, signer, by=CAROL), _trust(_pins(alice=ALICE, carol=CAROL)))
    assert refused.reason is Reason.UNKNOWN_SENDER


def test_a_keyset_of_an_identity_the_receiver_does_not_trust_is_refused() -> None:
    keyset, signer = _with_signer()
    refused = _refused(_sealed(keyset, signer), _trust(_pins(carol=CAROL)))
    assert refused.reason is Reason.UNKNOWN_SENDER


def test_the_policy_decides_on_the_identity_key() -> None:
    """A pin's topics bind its identity's signing keys: off its topics, refused."""
    keyset, signer = _with_signer()
    pins = Pins()
    pins.pin("alice", ALICE.public, topics=parse_topics(["billing.#"]))
    refused = _refused(_sealed(keyset, signer), _trust(pins))
    assert refused.reason is Reason.UNTRUSTED
    assert "may not publish on this topic" in refused.detail


def test_a_revoked_identity_pin_refuses_its_signing_keys() -> None:
    keyset, signer = _with_signer()
    pins = _pins()
    pins.revoke("alice")
    refused = _refused(_sealed(keyset, signer), _trust(pins))
    assert refused.reason is Reason.UNTRUSTED
    assert "revoked" in refused.detail


def test_deny_revoked_pins_refuses_what_a_revoked_key_vouched_for() -> None:
    """Even when the policy that admits the identity is not the pins (here: own identities)."""
    from letterlock.trust import OwnIdentities

    keyset, signer = _with_signer()
    pins = _pins()
    pins.revoke("alice")
    trust = DenyRevokedPins(pins, DelegatedSigners(OwnIdentities({"me": ALICE.public})))
    refused = _refused(_sealed(keyset, signer), trust)
    assert refused.reason is Reason.UNTRUSTED
    assert "revoked" in refused.detail


def _revoking(key: bytes) -> TrustPolicy:
    status = Doc(
        data=b"", signed=b"", version=1, issued=NOW, expires=NOW + 3600, principals={},
        keys={key: Revocation(reason=RevocationReason.COMPROMISED, since=NOW - 1)},
    )  # fmt: skip
    return Revocations(_trust(), status, Freshness(max_age=3600))


def test_a_signing_key_revoked_by_the_status_document_is_refused() -> None:
    keyset, signer = _with_signer()
    data = _sealed(keyset, signer)
    assert _open(data, _revoking(CAROL.public.fingerprint)).payload == b"hi"  # type: ignore[attr-defined]
    refused = _refused(data, _revoking(signer.public.fingerprint))
    assert refused.reason is Reason.UNTRUSTED
    assert "revoked" in refused.detail


def test_an_identity_revoked_by_the_status_document_refuses_its_signing_keys() -> None:
    keyset, signer = _with_signer()
    refused = _refused(_sealed(keyset, signer), _revoking(ALICE.public.fingerprint))
    assert refused.reason is Reason.UNTRUSTED
    assert "revoked" in refused.detail


def test_a_newer_keyset_held_by_the_receiver_decides() -> None:
    """A thief of a retired key attaching the old keyset that listed it active is refused by
    a receiver holding the newer version; one holding an equal version with other contents
    refuses the carried one."""
    keyset, signer = _with_signer()
    data = _sealed(keyset, signer)
    retired = keyset.retire(1, now=NOW)
    refused = _refused(data, _trust(known={ALICE.public.fingerprint: retired}))
    assert refused.reason is Reason.UNTRUSTED
    assert "retired" in refused.detail
    other = dataclasses.replace(keyset, issued=keyset.issued + 1)
    refused = _refused(data, _trust(known={ALICE.public.fingerprint: other}))
    assert refused.reason is Reason.UNTRUSTED
    assert "differs" in refused.detail
    older = _started()
    assert _open(data, _trust(known={ALICE.public.fingerprint: older})).payload == b"hi"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ one purpose per key


def test_an_encryption_key_of_a_keyset_cannot_sign() -> None:
    """Key 0 (the identity's own) and an added encryption key are listed, but not to sign."""
    enc = Identity.generate(Suite.X25519)
    keyset = _started().add(enc.public, now=NOW, lifetime=LIFETIME)
    assert keyset.signer(enc.public.fingerprint) is None
    refused = _refused(_sealed(keyset, enc), _trust())
    assert refused.reason is Reason.UNKNOWN_SENDER
    with pytest.raises(UsageError, match="not a signing key"):
        delegated(enc, sign_keyset(keyset, ALICE), now=NOW)


def test_the_signing_key_cannot_be_used_as_a_recipient() -> None:
    keyset, signer = _with_signer()
    assert keyset.opens_with(NOW) == (keyset.key(0),)
    with pytest.raises(UsageError, match="signing key"):
        KeysetOpener(keyset, {0: ALICE, 1: signer}, trust=_pins(), replay=ReplayWindow())
    opener = KeysetOpener(keyset, {0: ALICE}, trust=_pins(bob=BOB), replay=ReplayWindow())
    data = seal(b"x", sender=BOB, recipients=[signer.public], topic=TOPIC, now=NOW)
    with pytest.raises(Rejected) as caught:
        opener.open(data, now=NOW)
    assert caught.value.reason is Reason.NOT_FOR_ME
    assert "signing key" in caught.value.detail


def test_the_delegated_identity_opens_nothing() -> None:
    keyset, signer = _with_signer()
    sending = delegated(signer, sign_keyset(keyset, ALICE), now=NOW)
    data = seal(b"x", sender=BOB, recipients=[signer.public], topic=TOPIC, now=NOW)
    with pytest.raises(Rejected) as caught:
        open(data, identity=sending, trust=_pins(bob=BOB), replay=ReplayWindow(), now=NOW)
    assert caught.value.reason is Reason.DECRYPT_FAILED


# ------------------------------------------------------------------------ sender side


def test_the_sealer_refuses_to_sign_outside_the_key_lifetime() -> None:
    keyset, signer = _with_signer(lifetime=DAY)
    sealer = Sealer(delegated(signer, sign_keyset(keyset, ALICE), now=NOW))
    sealer.seal(b"x", recipients=[BOB.public], topic=TOPIC, now=NOW + DAY - 1)
    with pytest.raises(UsageError, match="outside its lifetime"):
        sealer.seal(b"x", recipients=[BOB.public], topic=TOPIC, now=NOW + DAY)


def test_delegated_refuses_a_key_that_cannot_sign_now() -> None:
    keyset, signer = _with_signer()
    signed = sign_keyset(keyset.retire(1, now=NOW), ALICE)
    with pytest.raises(UsageError, match="retired"):
        delegated(signer, signed, now=NOW)


def test_signing_key_is_the_current_primary_signing_key() -> None:
    keyset, _ = _with_signer(at=NOW, lifetime=DAY)
    assert keyset.signing_key(NOW - 1) is None
    assert keyset.signing_key(NOW) == keyset.key(1)
    assert keyset.signing_key(NOW + DAY) is None
    assert _started().signing_key(NOW) is None


def test_the_primary_encryption_key_is_not_the_signing_key() -> None:
    """Key 1 signs (primary), key 2 encrypts (primary): senders seal to key 2, never key 1."""
    keyset, _ = _with_signer()
    assert keyset.primary.key_id == 0  # sealing_key and opens_with read the encryption keys
    enc = Identity.generate(Suite.X25519)
    keyset = keyset.add(enc.public, now=NOW, lifetime=LIFETIME).promote(2, now=NOW)
    assert [k.status for k in keyset.keys] == [Status.ACTIVE, Status.PRIMARY, Status.PRIMARY]
    assert keyset.primary.key_id == 2
    assert sealing_key(keyset, NOW) == enc.public


# --------------------------------------------------------------------- the keyset model


def test_key_0_cannot_be_a_signing_key() -> None:
    key0 = dataclasses.replace(_started().keys[0], purpose=Purpose.SIGN)
    signing = Identity.generate(Suite.X25519)
    other = dataclasses.replace(key0, key_id=1, purpose=Purpose.ENCRYPT, public=signing.public,
                                status=Status.PRIMARY)  # fmt: skip
    with pytest.raises(UsageError, match="key 0"):
        Keyset(identity=ALICE.public.fingerprint, version=1, issued=NOW, grace=0,
               keys=(key0, other))  # fmt: skip


def test_a_keyset_has_at_most_one_primary_signing_key() -> None:
    keyset, _ = _with_signer()
    two = dataclasses.replace(
        keyset.keys[1], key_id=2, public=Identity.generate(Suite.X25519).public
    )
    with pytest.raises(UsageError, match="one primary signing key"):
        dataclasses.replace(keyset, keys=(*keyset.keys, two))


def test_a_keyset_without_a_primary_encryption_key_is_refused_even_with_a_signing_one() -> None:
    keyset, _ = _with_signer()
    demoted = dataclasses.replace(keyset.keys[0], status=Status.ACTIVE)
    with pytest.raises(UsageError, match="primary encryption key"):
        dataclasses.replace(keyset, keys=(demoted, keyset.keys[1]))


def test_promoting_a_signing_key_leaves_the_encryption_primary_alone() -> None:
    keyset, _ = _with_signer()
    keyset = keyset.add(Identity.generate(Suite.X25519).public, now=NOW, lifetime=DAY,
                        purpose=Purpose.SIGN).promote(1, now=NOW)  # fmt: skip
    assert [k.status for k in keyset.keys] == [Status.PRIMARY, Status.PRIMARY, Status.ACTIVE]


def test_the_encoding_with_a_signing_key_round_trips() -> None:
    keyset, _ = _with_signer()
    encoded = keyset.encode()
    assert encoded[57 + 32 + 73 + 4] == Purpose.SIGN  # key 1's purpose byte
    assert Keyset.decode(encoded) == keyset


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 10 * DAY), lifetime=st.integers(1, 10 * DAY),
    created=st.integers(0, 30 * DAY), delay=st.integers(0, 30 * DAY),
    retired=st.booleans(),
)  # fmt: skip
def test_a_delegated_message_opens_exactly_when_the_rule_says(
    start: int, lifetime: int, created: int, delay: int, retired: bool
) -> None:
    """Property: admitted iff in service and not_before <= created, now < not_after."""
    keyset, signer = _with_signer(at=NOW + start, lifetime=lifetime)
    if retired:
        keyset = keyset.retire(1, now=NOW + start)
    data = _sealed(keyset, signer, NOW + created)
    now = NOW + created + delay
    low, high = NOW + start, NOW + start + lifetime
    expected = not retired and low <= NOW + created < high and low <= now < high
    if expected:
        assert _open(data, _trust(), now).sender.key_id == signer.public.fingerprint  # type: ignore[attr-defined]
    else:
        assert _refused(data, _trust(), now).reason in (Reason.UNTRUSTED, Reason.EXPIRED)
