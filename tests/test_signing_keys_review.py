"""Review of delegated signing keys (docs/spec/keyset.md section 9): attacks by a hostile
broker, a malicious trusted sender and a malicious co-recipient, each pinned down here.

Alice signs with a signing key her keyset certifies; bob pins alice's identity key.
"""

from __future__ import annotations

from conftest import NOW, cast_of
from letterlock import (
    CredentialBlock,
    Identity,
    Pins,
    Reason,
    Rejected,
    ReplayWindow,
    Suite,
    VerifiedSender,
    open,
    seal,
)
from letterlock.core.trust import Refusal, TrustPolicy
from letterlock.trust import DelegatedSigners, DenyRevokedPins, FirstKnown, ScopePattern, delegated
from letterlock.trust.check import admit_pattern, why_not_placed
from letterlock.trust.keysets import Keyset, Purpose, sign_keyset
from letterlock.trust.pins import parse_topics

DAY = 86400
CAST = cast_of(Suite.X25519)
ALICE, BOB = CAST.alice, CAST.bob
TOPIC = "orders.eu"


def _with_signer() -> tuple[Keyset, Identity]:
    signer = Identity.generate(Suite.X25519)
    keyset = Keyset.start(ALICE.public, now=NOW, lifetime=90 * DAY, grace=7 * DAY)
    return keyset.add(signer.public, now=NOW, lifetime=7 * DAY, purpose=Purpose.SIGN), signer


def _block(keyset: Keyset, signer: Identity) -> CredentialBlock:
    block = delegated(signer, sign_keyset(keyset, ALICE), now=NOW).credentials
    assert block is not None
    return block


def _trust(pins: Pins) -> TrustPolicy:
    return DenyRevokedPins(pins, DelegatedSigners(FirstKnown(pins)))


def _alice(topics: tuple[str, ...] = ()) -> Pins:
    pins = Pins()
    pins.pin("alice", ALICE.public, topics=parse_topics(list(topics)))
    return pins


def _opened(
    data: bytes, trust: TrustPolicy, replay: ReplayWindow, now: int = NOW
) -> VerifiedSender:
    return open(data, identity=BOB, trust=trust, replay=replay, now=now).sender


def _reason(data: bytes, trust: TrustPolicy, replay: ReplayWindow, now: int = NOW) -> Reason:
    try:
        _opened(data, trust, replay, now)
    except Rejected as exc:
        return exc.reason
    raise AssertionError("accepted")


# ------------------------------------------------------- trust check on a listen pattern


def test_trust_check_on_a_pattern_admits_a_signing_key_as_its_identity() -> None:
    """trust check --message with a pattern asks about the identity the carried keyset names,
    as open does on each topic; it used to ask the inner policy about the signing key."""
    keyset, signer = _with_signer()
    verdict = admit_pattern(
        _trust(_alice()), signer.public, ScopePattern.parse("orders.#"), now=NOW,
        credentials=_block(keyset, signer),
    )  # fmt: skip
    assert isinstance(verdict, VerifiedSender), verdict
    assert verdict.name == "alice"
    assert verdict.key_id == signer.public.fingerprint
    assert verdict.path_keys[-1] == ALICE.public.fingerprint


def test_trust_check_on_a_pattern_decides_on_the_identity_not_a_pin_of_the_signing_key() -> None:
    """The signing key is also pinned (as mallory, on every topic) and alice only on billing:
    open refuses the message on orders.eu (alice decides), so trust check on orders.# must
    refuse too, not answer for mallory."""
    keyset, signer = _with_signer()
    pins = _alice(("billing.#",))
    pins.pin("mallory", signer.public)
    trust = _trust(pins)
    data = seal(b"hi", sender=delegated(signer, sign_keyset(keyset, ALICE), now=NOW),
                recipients=[BOB.public], topic=TOPIC, now=NOW)  # fmt: skip
    assert _reason(data, trust, ReplayWindow(max_age=DAY)) is Reason.UNTRUSTED
    verdict = admit_pattern(
        trust, signer.public, ScopePattern.parse("orders.#"), now=NOW,
        credentials=_block(keyset, signer),
    )  # fmt: skip
    assert isinstance(verdict, Refusal), verdict


def test_trust_check_on_a_pattern_refuses_a_retired_signing_key() -> None:
    keyset, signer = _with_signer()
    block = _block(keyset, signer)
    retired = keyset.retire(1, now=NOW)
    pins = _alice()
    trust = DenyRevokedPins(
        pins, DelegatedSigners(FirstKnown(pins), {ALICE.public.fingerprint: retired})
    )
    verdict = admit_pattern(trust, signer.public, ScopePattern.parse("orders.#"), now=NOW,
                            credentials=block)  # fmt: skip
    assert isinstance(verdict, Refusal)
    assert "retired" in verdict.detail


# ------------------------------------------------------------------ what holds already


def test_a_signing_key_pinned_as_another_identity_is_reported_as_the_keyset_identity() -> None:
    """With the keyset carried, the message is alice's (she certified the key); the same key
    signing without a keyset is mallory's. Only the key's holder can make either."""
    keyset, signer = _with_signer()
    pins = _alice()
    pins.pin("mallory", signer.public)
    trust = _trust(pins)
    data = seal(b"hi", sender=delegated(signer, sign_keyset(keyset, ALICE), now=NOW),
                recipients=[BOB.public], topic=TOPIC, now=NOW)  # fmt: skip
    assert _opened(data, trust, ReplayWindow(max_age=DAY)).name == "alice"
    plain = seal(b"hi", sender=signer, recipients=[BOB.public], topic=TOPIC, now=NOW)
    assert _opened(plain, trust, ReplayWindow(max_age=DAY)).name == "mallory"


def test_a_replayed_delegated_message_is_refused() -> None:
    keyset, signer = _with_signer()
    data = seal(b"hi", sender=delegated(signer, sign_keyset(keyset, ALICE), now=NOW),
                recipients=[BOB.public], topic=TOPIC, now=NOW)  # fmt: skip
    trust, replay = _trust(_alice()), ReplayWindow(max_age=DAY)
    _opened(data, trust, replay)
    assert _reason(data, trust, replay, NOW + 1) is Reason.REPLAYED


def test_a_cached_keyset_verification_does_not_outlive_the_key_lifetime() -> None:
    """The keyset a message carries is verified once (cached by digest); the lifetime is
    checked on every message, so the same block is refused once the key has expired."""
    keyset, signer = _with_signer()
    sender = delegated(signer, sign_keyset(keyset, ALICE), now=NOW)
    trust = _trust(_alice())
    early = seal(b"1", sender=sender, recipients=[BOB.public], topic=TOPIC, now=NOW)
    late = seal(b"2", sender=sender, recipients=[BOB.public], topic=TOPIC, now=NOW + 7 * DAY - 1)
    assert _opened(early, trust, ReplayWindow(max_age=30 * DAY)).name == "alice"
    assert _reason(late, trust, ReplayWindow(max_age=30 * DAY), NOW + 7 * DAY) is Reason.UNTRUSTED


def test_revoking_the_identity_refuses_a_signing_key_whose_keyset_is_cached() -> None:
    keyset, signer = _with_signer()
    data = seal(b"hi", sender=delegated(signer, sign_keyset(keyset, ALICE), now=NOW),
                recipients=[BOB.public], topic=TOPIC, now=NOW)  # fmt: skip
    pins = _alice()
    trust = _trust(pins)
    _opened(data, trust, ReplayWindow(max_age=DAY))
    pins.revoke("alice")
    assert _reason(data, trust, ReplayWindow(max_age=DAY)) is Reason.UNTRUSTED


def test_trust_check_says_why_a_carried_keyset_places_no_key() -> None:
    """trust check --message on a keyset whose identity is not known here, or that does not
    list the signing key, says so (it said no anchor read the block's format)."""
    keyset, signer = _with_signer()
    block = _block(keyset, signer)
    stranger = _trust(Pins())
    assert "does not verify" in why_not_placed(stranger, signer.public.fingerprint, block)
    other = Identity.generate(Suite.X25519).public.fingerprint
    assert "no signing key" in why_not_placed(_trust(_alice()), other, block)
