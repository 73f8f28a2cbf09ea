"""Keysets (docs/spec/keyset.md): rotation with a grace period, the keyset statement, the model.

Every clock here is an argument (no sleeping): ``NOW`` is when bob's keyset starts. Bob is the
receiver who rotates; alice seals to him with whatever keyset she holds.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import NOW, cast_of
from letterlock import (
    Identity,
    KeysetOpener,
    Opener,
    ParseError,
    Pins,
    Reason,
    Rejected,
    ReplayWindow,
    Suite,
    UsageError,
    seal,
)
from letterlock.trust.keysets import (
    KEYSET_LABEL,
    TRANSITIONS,
    Keyset,
    SignedKeyset,
    Status,
    sealing_key,
    sign_keyset,
)

DAY = 86400
LIFETIME = 90 * DAY
GRACE = 7 * DAY
CAST = cast_of(Suite.X25519)
BOB = CAST.bob


def _window() -> ReplayWindow:
    return ReplayWindow(max_age=60 * DAY)


def _pins() -> Pins:
    pins = Pins()
    pins.pin("alice", CAST.alice.public)
    return pins


def _rotated(at: int) -> tuple[Keyset, Identity]:
    """Bob's keyset after a whole rotation at ``at``: key 1 added and promoted, key 0 retired."""
    new = Identity.generate(Suite.X25519)
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    keyset = keyset.add(new.public, now=at, lifetime=LIFETIME)
    keyset = keyset.promote(1, now=at).retire(0, now=at)
    return keyset, new


def _opener(keyset: Keyset, keys: dict[int, Identity]) -> KeysetOpener:
    return KeysetOpener(keyset, keys, trust=_pins(), replay=_window())


def _to(recipient_key: Keyset | Identity, at: int) -> bytes:
    """A message from alice to the key a sender picks from ``recipient_key`` at ``at``."""
    public = (
        sealing_key(recipient_key, at) if isinstance(recipient_key, Keyset)
        else recipient_key.public
    )  # fmt: skip
    return seal(b"queued", sender=CAST.alice, recipients=[public], topic="t", now=at)


# ------------------------------------------------------------ rotation and the grace period


def test_a_message_queued_before_a_rotation_opens_within_the_grace_period_and_not_after() -> None:
    rotation = NOW + 10 * DAY
    before = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    queued = _to(before, rotation - 60)  # sealed to key 0, the primary before the rotation
    after, new = _rotated(rotation)
    keys = {0: BOB, 1: new}
    opened = _opener(after, keys).open(queued, now=rotation + GRACE - 1)
    assert opened.payload == b"queued"
    with pytest.raises(Rejected) as refused:
        _opener(after, keys).open(queued, now=rotation + GRACE)
    assert refused.value.reason is Reason.NOT_FOR_ME
    assert "past its deadline" in refused.value.detail


def test_a_sender_with_an_old_keyset_keeps_working_until_the_retirement_and_grace() -> None:
    rotation = NOW + 10 * DAY
    old = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    after, new = _rotated(rotation)
    late = _to(old, rotation + GRACE - 10)  # alice has not fetched the new keyset yet
    assert _opener(after, {0: BOB, 1: new}).open(late, now=rotation + GRACE - 5).payload


def test_a_key_in_service_stops_opening_at_the_end_of_its_lifetime_plus_grace() -> None:
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    message = _to(keyset, NOW + LIFETIME - 1)
    opener = _opener(keyset, {0: BOB})
    with pytest.raises(Rejected) as refused:
        opener.open(message, now=NOW + LIFETIME + GRACE)
    assert refused.value.reason is Reason.NOT_FOR_ME
    assert opener.open(message, now=NOW + LIFETIME + GRACE - 1).payload == b"queued"


def test_a_new_key_opens_as_soon_as_it_is_added_before_it_is_promoted() -> None:
    new = Identity.generate(Suite.X25519)
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    keyset = keyset.add(new.public, now=NOW + 1, lifetime=LIFETIME)
    assert keyset.key(1).status is Status.ACTIVE
    assert sealing_key(keyset, NOW + 2) == BOB.public  # senders stay on the primary
    message = _to(new, NOW + 2)
    assert _opener(keyset, {0: BOB, 1: new}).open(message, now=NOW + 3).payload == b"queued"


def test_a_message_to_a_destroyed_key_is_refused_as_not_for_me() -> None:
    rotation = NOW + 10 * DAY
    queued = _to(BOB, rotation - 60)
    after, new = _rotated(rotation)
    destroyed = after.destroy(0, now=rotation + GRACE)
    with pytest.raises(Rejected) as refused:
        _opener(destroyed, {1: new}).open(queued, now=rotation + 1)
    assert refused.value.reason is Reason.NOT_FOR_ME
    assert "destroyed" in refused.value.detail


def test_a_key_destroyed_before_its_deadline_opens_nothing() -> None:
    rotation = NOW + 10 * DAY
    after, _ = _rotated(rotation)
    assert 0 in {key.key_id for key in after.opens_with(rotation + 1)}
    destroyed = after.destroy(0, now=rotation + 1, early=True)
    assert {key.key_id for key in destroyed.opens_with(rotation + 1)} == {1}


@pytest.mark.parametrize("step", ["promote", "retire", "destroy"])
def test_a_destroyed_key_never_changes_again(step: str) -> None:
    rotation = NOW + 10 * DAY
    destroyed = _rotated(rotation)[0].destroy(0, now=rotation + GRACE)
    with pytest.raises(UsageError, match="it is destroyed"):
        getattr(destroyed, step)(0, now=rotation + GRACE)


def test_a_retired_key_is_never_promoted_again() -> None:
    retired = _rotated(NOW + DAY)[0]
    with pytest.raises(UsageError, match="cannot promote key 0: it is retired"):
        retired.promote(0, now=NOW + DAY)


def test_an_opener_refuses_the_private_key_of_a_destroyed_key() -> None:
    rotation = NOW + 10 * DAY
    after, new = _rotated(rotation)
    destroyed = after.destroy(0, now=rotation + GRACE)
    with pytest.raises(UsageError, match="destroyed"):
        _opener(destroyed, {0: BOB, 1: new})


def test_an_opener_refuses_a_private_key_other_than_the_certified_one() -> None:
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    with pytest.raises(UsageError, match="not the key"):
        _opener(keyset, {0: CAST.dave})


def test_destroying_before_the_deadline_needs_early() -> None:
    rotation = NOW + 10 * DAY
    after, _ = _rotated(rotation)
    with pytest.raises(UsageError, match="grace period"):
        after.destroy(0, now=rotation + GRACE - 1)
    assert after.destroy(0, now=rotation + 1, early=True).key(0).status is Status.DESTROYED


# ------------------------------------------------------------------------------ sealing


def test_a_sender_seals_to_the_primary_key_of_the_contacts_keyset() -> None:
    after, new = _rotated(NOW + DAY)
    assert sealing_key(after, NOW + DAY) == new.public
    message = _to(after, NOW + DAY)
    with pytest.raises(Rejected) as refused:  # not to key 0 (retired), which would open
        _opener(after, {0: BOB}).open(message, now=NOW + DAY)
    assert refused.value.reason is Reason.NOT_FOR_ME
    assert _opener(after, {0: BOB, 1: new}).open(message, now=NOW + DAY).payload == b"queued"


def test_a_key_past_its_lifetime_is_not_used_for_sealing() -> None:
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    assert sealing_key(keyset, NOW + LIFETIME - 1) == BOB.public
    with pytest.raises(UsageError, match="outside its lifetime"):
        sealing_key(keyset, NOW + LIFETIME)
    with pytest.raises(UsageError, match="outside its lifetime"):
        sealing_key(keyset, NOW - 1)  # nor before it begins


def test_a_key_outside_its_lifetime_cannot_be_promoted() -> None:
    new = Identity.generate(Suite.X25519)
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    keyset = keyset.add(new.public, now=NOW, lifetime=DAY)
    with pytest.raises(UsageError, match="outside its lifetime"):
        keyset.promote(1, now=NOW + DAY)


# ------------------------------------------------------------------- the signed statement


def _signed() -> SignedKeyset:
    return sign_keyset(_rotated(NOW + DAY)[0], BOB)


def test_a_keyset_signed_by_its_identity_key_is_accepted() -> None:
    signed = _signed()
    again = SignedKeyset.from_text(signed.to_text(), identity=BOB.public)
    assert again.keyset == signed.keyset
    assert again.keyset.encode() == again.encoded  # canonical


def test_a_keyset_not_signed_by_the_identity_key_is_refused() -> None:
    signed = _signed()
    forged = dataclasses.replace(signed, signature=CAST.mallory.sign(KEYSET_LABEL + signed.encoded))
    with pytest.raises(ParseError, match="not signed by its identity key"):
        SignedKeyset.from_text(forged.to_text(), identity=BOB.public)


def test_a_keyset_for_a_different_identity_is_refused() -> None:
    mallorys = sign_keyset(
        Keyset.start(CAST.mallory.public, now=NOW, lifetime=LIFETIME, grace=GRACE), CAST.mallory
    )  # validly signed, by the identity it names: mallory, not bob
    with pytest.raises(ParseError, match="different identity"):
        SignedKeyset.from_text(mallorys.to_text(), identity=BOB.public)


def test_signing_a_keyset_with_another_identity_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        sign_keyset(_rotated(NOW + DAY)[0], CAST.mallory)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_changed_byte_of_a_signed_keyset_is_refused(data: st.DataObject) -> None:
    signed = _signed()
    raw = bytearray(signed.encoded + signed.signature)
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    encoded, signature = bytes(raw[: len(signed.encoded)]), bytes(raw[len(signed.encoded) :])
    text = f"letterlock-keyset {base64.b64encode(encoded).decode()} "
    text += base64.b64encode(signature).decode()
    with pytest.raises(ParseError):
        SignedKeyset.from_text(text, identity=BOB.public)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda k: dataclasses.replace(k, grace=-1), "grace"),
        (lambda k: dataclasses.replace(k, keys=k.keys[::-1]), "increasing order"),
        (lambda k: dataclasses.replace(k, keys=(k.keys[0],)), "exactly one primary"),
        (lambda k: dataclasses.replace(k, identity=bytes(32)), "identity key's own"),
        (
            lambda k: dataclasses.replace(
                k, keys=(k.keys[0], dataclasses.replace(k.keys[1], retired_at=NOW))
            ),
            "retirement time",
        ),
        (
            lambda k: dataclasses.replace(
                k, keys=(k.keys[0], dataclasses.replace(k.keys[1], not_after=NOW))
            ),
            "lifetime",
        ),
    ],
)
def test_keysets_that_break_a_rule_of_section_2_are_refused(change: object, message: str) -> None:
    keyset, _ = _rotated(NOW + DAY)
    with pytest.raises(UsageError, match=message):
        change(keyset)  # type: ignore[operator]


def test_keys_of_another_suite_are_refused() -> None:
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    with pytest.raises(UsageError, match="one suite"):
        keyset.add(cast_of(Suite.P256).bob.public, now=NOW, lifetime=DAY)


# ----------------------------------------------------------- random rotation sequences

_RANK = {Status.ACTIVE: 0, Status.PRIMARY: 0, Status.RETIRED: 1, Status.DESTROYED: 2}
_POOL = (*(identity.public for identity in CAST.pool), CAST.dave.public, CAST.eve.public)
_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["add", *TRANSITIONS]), st.integers(0, 3), st.integers(0, 10 * DAY),
        st.booleans(),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_STEPS)
def test_random_rotations_only_move_statuses_forward_with_exactly_one_primary(
    steps: list[tuple[str, int, int, bool]],
) -> None:
    keyset = Keyset.start(BOB.public, now=NOW, lifetime=LIFETIME, grace=GRACE)
    now = NOW
    for step, key_id, wait, early in steps:
        now += wait
        try:
            if step == "add":
                following = keyset.add(_POOL[key_id % len(_POOL)], now=now, lifetime=LIFETIME)
            elif step == "destroy":
                following = keyset.destroy(key_id, now=now, early=early)
            else:
                following = getattr(keyset, step)(key_id, now=now)
        except UsageError:
            continue
        assert following.version == keyset.version + 1
        assert sum(key.status is Status.PRIMARY for key in following.keys) == 1
        for key in keyset.keys:
            moved = following.key(key.key_id)
            assert _RANK[moved.status] >= _RANK[key.status]
            assert moved.public == key.public
        assert Keyset.decode(following.encode()) == following
        keyset = following


# ------------------------------------------------------------------- KeysetOpener as Opener


def test_a_keyset_opener_is_an_opener_whose_replay_and_trust_reach_every_key() -> None:
    after, new = _rotated(NOW + DAY)
    opener = _opener(after, {0: BOB, 1: new})
    assert isinstance(opener, Opener)
    message = _to(after, NOW + DAY)
    opener.open(message, now=NOW + DAY)
    with pytest.raises(Rejected) as replayed:
        opener.open(message, now=NOW + DAY)
    assert replayed.value.reason is Reason.REPLAYED
    opener.replay = _window()  # a fresh record: the same message opens again
    assert opener.open(message, now=NOW + DAY).payload == b"queued"
    opener.replay = _window()
    opener.trust = Pins()  # nobody trusted any more, whichever key the message is for
    with pytest.raises(Rejected) as untrusted:
        opener.open(message, now=NOW + DAY)
    assert untrusted.value.reason is Reason.UNKNOWN_SENDER


def test_a_keyset_opener_opens_into_a_buffer_and_wipes_it_when_refusing() -> None:
    rotation = NOW + 10 * DAY
    queued = _to(BOB, rotation - 60)
    after, new = _rotated(rotation)
    opener = _opener(after, {0: BOB, 1: new})
    buffer = bytearray(b"earlier secret")
    received = opener.open_into(queued, buffer, now=rotation + 1)
    assert bytes(buffer) == b"queued" == bytes(buffer[: received.size])
    buffer[:] = b"earlier secret"
    with pytest.raises(Rejected):
        opener.open_into(queued, buffer, now=rotation + GRACE)
    assert not any(buffer)
