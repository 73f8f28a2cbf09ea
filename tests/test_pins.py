"""Pinned senders: deny by default, a changed key fails hard, revocation sticks."""

from __future__ import annotations

import pytest

from letterlock import (
    Identity,
    Pins,
    Suite,
    TrustContext,
    UsageError,
    VerifiedSender,
    Via,
)
from letterlock.core.topics import Dialect
from letterlock.errors import Reason
from letterlock.trust import PinRefusal, PinWhy, Rotation, sign_rotation
from letterlock.trust.pins import parse_topics

NOW = 1_700_000_000

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
    assert pins.admit(alice.public, CONTEXT) == PinRefusal(
        detail="not pinned", why=PinWhy.NOT_PINNED
    )


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
    assert pins.admit(alice.public, CONTEXT) == PinRefusal(
        detail="pin 'alice' is revoked", why=PinWhy.REVOKED
    )
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


# ------------------------------------------------------------------ topics per pin


def _context(topic: str) -> TrustContext:
    return TrustContext(
        topic=topic, suite=Suite.X25519, content_type=None, headers={}, created=0, now=0
    )


def test_a_pin_with_topics_admits_only_on_them(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    pins.pin("alice", alice.public, topics=parse_topics(["orders.#", "billing.*"]))
    assert isinstance(pins.admit(alice.public, _context("orders.eu.1")), VerifiedSender)
    assert isinstance(pins.admit(alice.public, _context("billing.eu")), VerifiedSender)
    refused = pins.admit(alice.public, _context("billing.eu.bonus"))
    assert isinstance(refused, PinRefusal)
    assert (refused.why, refused.reason) == (PinWhy.TOPIC, Reason.UNTRUSTED)
    assert isinstance(pins.admit(alice.public, _context("payroll")), PinRefusal)


def test_a_pin_without_topics_admits_any_topic(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    assert isinstance(pins.admit(alice.public, _context("anything.at.all")), VerifiedSender)


def test_topics_of_any_dialect_are_normalised_and_survive_the_text_form(
    keys: tuple[Identity, Identity],
) -> None:
    alice, bob = keys
    pins = Pins()
    pins.pin("alice", alice.public, topics=parse_topics(["sensors/+/temp"], Dialect.MQTT))
    pins.pin("bob", bob.public, topics=parse_topics(["orders.>"], Dialect.NATS))
    again = Pins.parse(pins.to_text())
    assert again.to_text() == pins.to_text()
    assert "topics=orders.*.# bob " in pins.to_text()  # NATS > is one word or more
    assert isinstance(again.admit(alice.public, _context("sensors/k1/temp")), VerifiedSender)
    assert isinstance(again.admit(alice.public, _context("sensors/k1/rpm")), PinRefusal)
    assert isinstance(again.admit(bob.public, _context("orders.eu")), VerifiedSender)
    assert isinstance(again.admit(bob.public, _context("orders")), PinRefusal)


def test_a_pattern_that_cannot_be_stored_is_refused() -> None:
    with pytest.raises(UsageError, match="cannot be stored"):
        parse_topics(["a,b.#"])


# ------------------------------------------------------------------ rotation


def test_rotation_signed_by_the_old_key_is_accepted(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    new = Identity.generate(Suite.P256)  # a rotation may change the suite too
    pins = Pins()
    pins.pin("alice", alice.public, topics=parse_topics(["orders.#"]))
    rotation = Rotation.from_text(sign_rotation(alice, new.public, at=NOW).to_text())
    assert (rotation.old, rotation.new, rotation.at) == (alice.public.fingerprint, new.public, NOW)
    pinned = pins.rotate("alice", rotation)
    assert pinned.identity == new.public
    assert pinned.topics == parse_topics(["orders.#"])
    assert pins.lookup(alice.public.fingerprint) is None
    assert isinstance(pins.admit(new.public, _context("orders.x")), VerifiedSender)
    assert isinstance(pins.admit(alice.public, _context("orders.x")), PinRefusal)


def test_rotation_signed_by_another_key_is_refused(keys: tuple[Identity, Identity]) -> None:
    alice, mallory = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    forged = sign_rotation(mallory, mallory.public, at=NOW)
    claimed = Rotation(
        old=alice.public.fingerprint, new=mallory.public, at=NOW, signature=forged.signature
    )
    for rotation in (forged, claimed):
        with pytest.raises(UsageError, match="not signed by its pinned key"):
            pins.rotate("alice", rotation)
    assert pins["alice"].identity == alice.public


def test_a_rotation_statement_cannot_be_altered(keys: tuple[Identity, Identity]) -> None:
    alice, mallory = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    rotation = sign_rotation(alice, Identity.generate(Suite.X25519).public, at=NOW)
    later = Rotation(old=rotation.old, new=rotation.new, at=NOW + 1, signature=rotation.signature)
    swapped = Rotation(old=rotation.old, new=mallory.public, at=NOW, signature=rotation.signature)
    for altered in (later, swapped):
        with pytest.raises(UsageError, match="not signed"):
            pins.rotate("alice", altered)


def test_a_revoked_pin_cannot_rotate(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    pins.pin("alice", alice.public)
    pins.revoke("alice")
    with pytest.raises(UsageError, match="revoked"):
        pins.rotate("alice", sign_rotation(alice, Identity.generate(Suite.X25519).public, at=1))


# ------------------------------------------------------------------ trust on first use


def test_first_use_is_refused_by_default(keys: tuple[Identity, Identity]) -> None:
    alice, _ = keys
    pins = Pins()
    assert not pins.tofu
    with pytest.raises(UsageError, match="trust-on-first-use is off"):
        pins.first_use("alice", alice.public)
    assert len(pins) == 0


def test_first_use_pins_when_switched_on_and_never_changes_a_key(
    keys: tuple[Identity, Identity],
) -> None:
    alice, mallory = keys
    pins = Pins(tofu=True)
    assert pins.first_use("alice", alice.public).identity == alice.public
    assert isinstance(pins.admit(alice.public, CONTEXT), VerifiedSender)
    assert pins.first_use("alice", alice.public).identity == alice.public
    with pytest.raises(UsageError, match="refusing the different key"):
        pins.first_use("alice", mallory.public)


def test_old_lines_without_a_check_are_read_from_the_known_senders_file(
    keys: tuple[Identity, Identity],
) -> None:
    alice, _ = keys
    old_line = alice.public.to_text().rpartition(":")[0]
    pins = Pins.parse(f"alice {old_line}\n")
    assert pins["alice"].identity == alice.public
    assert pins.to_text() == f"alice {alice.public.to_text()}\n"  # written back with a check
