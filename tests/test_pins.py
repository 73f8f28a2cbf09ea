"""Pinned senders: deny by default, a changed key fails hard, revocation sticks."""

from __future__ import annotations

import pytest

from letterlock import (
    Identity,
    Pins,
    Refusal,
    Suite,
    TrustContext,
    UsageError,
    VerifiedSender,
    Via,
)

CONTEXT = TrustContext(
    topic="t", suite=Suite.X25519, content_type=None, headers={}, created=0, now=0
)


@pytest.fixture(scope="module")
def keys() -> tuple[Identity, Identity]:
    return Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)


def test_unpinned_key_is_unknown_and_refused(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    assert pins.lookup(alice.public.fingerprint) is None
    assert pins.admit(alice.public, CONTEXT) == Refusal(detail="not pinned")


def test_pinned_key_is_admitted_with_its_name(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    verdict = pins.admit(alice.public, CONTEXT)
    assert isinstance(verdict, VerifiedSender)
    assert (verdict.name, verdict.via) == ("alice", Via.PIN)
    assert verdict.fingerprint == alice.public.fingerprint_text


def test_changed_key_under_a_pinned_name_fails_hard_showing_both(
    keys: tuple[Identity, Identity],
) -> None:
    alice, mallory = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    with pytest.raises(UsageError) as caught:
        pins.pin("alice", mallory.public)
    assert alice.public.fingerprint_text in str(caught.value)
    assert mallory.public.fingerprint_text in str(caught.value)


def test_revoked_pin_is_refused_and_cannot_be_pinned_again(
    keys: tuple[Identity, Identity],
) -> None:
    alice, _ = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    pins.revoke("alice")
    assert pins.lookup(alice.public.fingerprint) == alice.public
    assert pins.admit(alice.public, CONTEXT) == Refusal(detail="pin 'alice' is revoked")
    with pytest.raises(UsageError, match="revoked"):
        pins.pin("alice", alice.public)


def test_text_round_trip_keeps_revocations(keys: tuple[Identity, Identity]) -> None:
    alice, bob = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    pins.pin("bob", bob.public)
    pins.revoke("bob")
    again = Pins.parse("# known senders\n\n" + pins.to_text())
    assert again.to_text() == pins.to_text()
    assert again["bob"].revoked
    assert not again["alice"].revoked


def test_parse_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        Pins.parse("# ok\nalice letterlock-x25519 not-base64!\n")


BAD_NAMES = {
    "homoglyph": "\u0430lice",  # Cyrillic a
    "escape-sequence": "alice\x1b[31m",
    "right-to-left-override": "al\u202eecila",
    "10000-characters": "a" * 10_000,
    "comma": "alice,bob",
    "space": "alice smith",
    "newline": "alice\nbob",
    "empty": "",
    "leading-dot": ".alice",
    "leading-at": "@revoked",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_pin_names_are_restricted_as_identity_names_are(
    keys: tuple[Identity, Identity], name: str
) -> None:
    alice, _ = keys
    with pytest.raises(UsageError, match="1-64 characters of A-Z a-z 0-9") as caught:
        Pins().pin(name, alice.public)
    assert len(str(caught.value)) < 200  # a 10,000-character name is not echoed back
    assert "\x1b" not in str(caught.value)
    assert "\u202e" not in str(caught.value)


def test_good_pin_names_are_accepted(keys: tuple[Identity, Identity]) -> None:
    alice, bob = keys
    pins = Pins()
    pins.pin("alice@example.org", alice.public)
    pins.pin("B0b_2.x+y-z", bob.public)
    assert len(pins) == 2


def test_a_known_senders_file_with_a_bad_name_is_refused_with_its_line_number(
    keys: tuple[Identity, Identity],
) -> None:
    alice, bob = keys
    text = f"# pins\nalice {alice.public.to_text()}\n\u0430lice {bob.public.to_text()}\n"
    with pytest.raises(ValueError, match=r"^line 3: pin name"):
        Pins.parse(text)
