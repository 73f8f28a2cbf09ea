"""The trust interface (``letterlock.core.trust``) and the combinators of ``letterlock.trust``.

A policy answers with a ``VerifiedSender`` or a typed ``Refusal``; a transient refusal (an
authority not yet known, a stale root) makes a transient rejection, which consumers retry.
``FirstKnown`` lets the first policy that knows a key decide for it, alone.
"""

from __future__ import annotations

from functools import partial

import pytest

import letterlock
from letterlock import (
    FirstKnown,
    Identity,
    OwnIdentities,
    Pins,
    PublicIdentity,
    Reason,
    Refusal,
    Rejected,
    ReplayWindow,
    Suite,
    TrustContext,
    UsageError,
    VerifiedSender,
    Via,
)

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def people() -> tuple[Identity, Identity, Identity]:
    return tuple(Identity.generate(Suite.X25519) for _ in range(3))  # type: ignore[return-value]


class Answering:
    """A policy that knows every key and answers ``admit`` with a fixed value."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def lookup(self, key_id: bytes, credentials: object = None) -> PublicIdentity | None:
        return self.known

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        return self.answer  # type: ignore[return-value]

    known: PublicIdentity | None = None


def _open(sealed: bytes, bob: Identity, trust: letterlock.TrustPolicy) -> letterlock.Opened:
    return letterlock.open(sealed, identity=bob, trust=trust, replay=ReplayWindow(), now=NOW)


def _reject(call: partial[letterlock.Opened]) -> Rejected:
    with pytest.raises(Rejected) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("transient", [False, True])
@pytest.mark.parametrize("reason", [Reason.UNTRUSTED, Reason.UNKNOWN_SENDER])
def test_a_typed_refusal_becomes_the_rejection(
    people: tuple[Identity, Identity, Identity], reason: Reason, transient: bool
) -> None:
    """An unknown CA or a stale root is as transient as an unknown sender: the policy says so,
    and the Rejected carries it (consumers retry transient rejections)."""
    alice, bob, _ = people
    policy = Answering(
        Refusal(reason=reason, detail="authority not known yet", transient=transient)
    )
    policy.known = alice.public
    sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW)
    rejected = _reject(partial(_open, sealed, bob, policy))
    assert (rejected.reason, rejected.transient) == (reason, transient)
    assert "authority not known yet" in rejected.detail


def test_refusals_name_a_trust_reason_only() -> None:
    with pytest.raises(UsageError):
        Refusal(reason=Reason.EXPIRED)


def test_a_policy_answering_anything_else_is_a_usage_error(
    people: tuple[Identity, Identity, Identity],
) -> None:
    """``admit`` returning a string (the old interface) is a bug in the policy, not a message's
    fault: it raises UsageError, never lets the message through."""
    alice, bob, _ = people
    policy = Answering("no")
    policy.known = alice.public
    sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW)
    with pytest.raises(UsageError, match="VerifiedSender or a Refusal"):
        _open(sealed, bob, policy)


def test_first_known_lets_the_first_policy_that_knows_a_key_decide(
    people: tuple[Identity, Identity, Identity],
) -> None:
    """A revoked pin stays revoked even when a later policy would admit the same key; a key
    no policy knows is unknown_sender."""
    alice, bob, carol = people
    pins = Pins()
    pins.pin("alice", alice.public)
    pins.revoke("alice")
    combined = FirstKnown(pins, OwnIdentities({"me": alice.public, "carol": carol.public}))
    for sender, expected in ((alice, Reason.UNTRUSTED), (bob, Reason.UNKNOWN_SENDER)):
        sealed = letterlock.seal(b"x", sender=sender, recipients=[bob.public], topic="t", now=NOW)
        assert _reject(partial(_open, sealed, bob, combined)).reason is expected
    sealed = letterlock.seal(b"x", sender=carol, recipients=[bob.public], topic="t", now=NOW)
    opened = _open(sealed, bob, combined)
    assert (opened.sender.name, opened.sender.via) == ("carol", Via.SELF)
    assert combined.lookup(bob.public.fingerprint) is None
    assert combined.lookup(carol.public.fingerprint) == carol.public


def test_first_known_needs_a_policy() -> None:
    with pytest.raises(UsageError):
        FirstKnown()


def test_via_is_an_enum_that_prints_as_its_word() -> None:
    assert str(Via.PIN) == "pin"
    assert {v.value for v in Via} == {"pin", "self", "authority", "x509"}
