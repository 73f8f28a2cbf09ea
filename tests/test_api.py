"""The public recipe: letterlock.seal / open / inspect, argument checking and check order."""

from __future__ import annotations

import dataclasses
import pickle
from functools import partial

import pytest

import letterlock
from letterlock import Identity, Pins, Reason, Rejected, ReplayWindow, Suite, UsageError

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def cast() -> tuple[Identity, Identity, Pins]:
    alice = Identity.generate(Suite.X25519)
    bob = Identity.generate(Suite.X25519)
    pins = Pins()
    pins.pin("alice", alice.public)
    return alice, bob, pins


def test_wrong_topic_is_step_10_before_replayed_step_11(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    """A re-routed copy of an already opened message reports the re-route (spec section 6)."""
    alice, bob, pins = cast
    sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="a", now=NOW)
    window = ReplayWindow()
    letterlock.open(sealed, identity=bob, trust=pins, replay=window, topic="a", now=NOW)
    with pytest.raises(Rejected) as caught:
        letterlock.open(sealed, identity=bob, trust=pins, replay=window, topic="b", now=NOW)
    assert caught.value.reason is Reason.WRONG_TOPIC
    with pytest.raises(Rejected) as caught:
        letterlock.open(sealed, identity=bob, trust=pins, replay=window, topic="a", now=NOW)
    assert caught.value.reason is Reason.REPLAYED


def test_inspect_shows_the_relay_view_without_keys(cast: tuple[Identity, Identity, Pins]) -> None:
    alice, bob, _ = cast
    sealed = letterlock.seal(
        b"secret", sender=alice, recipients=[bob.public], topic="t", headers={"k": "v"}, now=NOW
    )
    header = letterlock.inspect(sealed).header
    assert header.topic == "t"
    assert header.header_map == {"k": "v"}
    assert header.sender_key_id == alice.public.fingerprint
    assert [e.key_id for e in header.recipients] == [bob.public.recipient_id]
    with pytest.raises(Rejected) as caught:
        letterlock.inspect(sealed[:-1])
    assert caught.value.reason is Reason.MALFORMED


def test_expires_in_sets_a_signed_expiry(cast: tuple[Identity, Identity, Pins]) -> None:
    alice, bob, pins = cast
    sealed = letterlock.seal(
        b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW, expires_in=30
    )
    assert letterlock.inspect(sealed).header.expires == NOW + 30
    with pytest.raises(Rejected) as caught:
        letterlock.open(sealed, identity=bob, trust=pins, replay=ReplayWindow(), now=NOW + 30)
    assert caught.value.reason is Reason.EXPIRED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"topic": ""},
        {"topic": "t", "headers": {"Upper": "x"}},
        {"topic": "t", "content_type": "caf\u00e9"},
        {"topic": "t", "expires_in": 0},
        {"topic": "t", "pad": 0},
        {"topic": "t", "pad": "zeros"},
    ],
)
def test_caller_mistakes_are_usage_errors(
    cast: tuple[Identity, Identity, Pins], kwargs: dict[str, object]
) -> None:
    """Caller mistakes raise UsageError (a ValueError), never Rejected."""
    alice, bob, _ = cast
    with pytest.raises(UsageError):
        letterlock.seal(b"x", sender=alice, recipients=[bob.public], now=NOW, **kwargs)  # type: ignore[arg-type]


def test_mixed_suites_are_refused_at_seal() -> None:
    alice = Identity.generate(Suite.P256)
    bob = Identity.generate(Suite.X25519)
    with pytest.raises(UsageError, match="x25519"):
        letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t")


def test_identity_handles_keep_secrets() -> None:
    alice = Identity.generate(Suite.P256)
    with pytest.raises(TypeError):
        pickle.dumps(alice)
    with pytest.raises(TypeError):
        Identity()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        letterlock.PrivateKeys()
    assert "SHA256:" in repr(alice)
    assert "SHA256:" in repr(alice.signer)  # the public fingerprint, never a secret
    assert alice.public == letterlock.PublicIdentity(alice.public.to_bytes())
    text = alice.public.to_text("alice")
    assert letterlock.PublicIdentity.from_text(text) == (alice.public, "alice")


def test_rejected_is_one_type_and_pickles_with_its_reason() -> None:
    error = Rejected(Reason.BAD_SIGNATURE, "detail")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, Rejected)
    assert isinstance(copy, letterlock.LetterlockError)
    assert copy.reason is Reason.BAD_SIGNATURE
    assert str(copy) == "message rejected: bad_signature (detail)"


def test_trust_policy_sees_headers_read_only(cast: tuple[Identity, Identity, Pins]) -> None:
    """A policy gets a read-only view: it cannot change what open() reports as signed."""
    alice, bob, pins = cast

    class Meddler:
        def lookup(
            self, key_id: bytes, credentials: object = None
        ) -> letterlock.PublicIdentity | None:
            return pins.lookup(key_id)

        def admit(
            self, sender: letterlock.PublicIdentity, context: letterlock.TrustContext
        ) -> letterlock.VerifiedSender | letterlock.Refusal:
            with pytest.raises(TypeError):
                context.headers["tenant"] = "evil"  # type: ignore[index]
            return pins.admit(sender, context)

    sealed = letterlock.seal(
        b"x", sender=alice, recipients=[bob.public], topic="t", headers={"tenant": "acme"}, now=NOW
    )
    opened = letterlock.open(sealed, identity=bob, trust=Meddler(), replay=ReplayWindow(), now=NOW)
    assert opened.headers == {"tenant": "acme"}
    assert pickle.loads(pickle.dumps(opened.headers)) == {"tenant": "acme"}


def test_open_without_recording_leaves_the_record_to_the_caller(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    """record=False checks the window (a recorded id is still refused) but records nothing;
    the caller's record() afterwards is the step that decides, once, under the signer's key."""
    alice, bob, pins = cast
    sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW)
    window = ReplayWindow()
    opened = letterlock.open(
        sealed, identity=bob, trust=pins, replay=window, topic="t", now=NOW, record=False
    )
    assert len(window.store) == 0
    again = letterlock.open(
        sealed, identity=bob, trust=pins, replay=window, topic="t", now=NOW, record=False
    )
    assert again.payload == opened.payload == b"x"
    window.record(
        sender=opened.sender.key_id, message_id=opened.message_id, created=opened.created, now=NOW
    )
    assert window.store.contains(alice.public.fingerprint, opened.message_id)
    with pytest.raises(Rejected) as caught:
        window.record(
            sender=opened.sender.key_id, message_id=opened.message_id, created=NOW, now=NOW
        )
    assert caught.value.reason is Reason.REPLAYED
    with pytest.raises(Rejected) as caught:
        letterlock.open(
            sealed, identity=bob, trust=pins, replay=window, topic="t", now=NOW, record=False
        )
    assert caught.value.reason is Reason.REPLAYED


class _CountingStore(letterlock.MemoryReplayStore):
    """A memory store that counts the lookups an open makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def floor(self, sender: bytes | None = None) -> int:
        self.calls.append("floor" if sender is None else "floor(sender)")
        return super().floor(sender)

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        self.calls.append("contains")
        return super().contains(sender, message_id)

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        self.calls.append("floor_and_contains")  # both questions, one call (one round trip)
        return super().floor_and_contains(sender, message_id)


def test_open_without_recording_asks_the_store_once_per_question(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    """record=False: a visible sender's floor and id are looked up at steps 9 and 11 only (step
    21 is the caller's atomic record or claim); a hidden sender's, unknown until step 20, are
    looked up at step 21, so a recorded hidden id is still refused there. The store answers
    the sender's floor and the id in one call (MemoryReplayStore.floor_and_contains)."""
    alice, bob, pins = cast
    for hidden, lookups in [
        (False, ["floor_and_contains"]),
        (True, ["floor", "floor_and_contains"]),
    ]:
        sealed = letterlock.seal(
            b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW, hide_sender=hidden
        )
        store = _CountingStore()
        window = ReplayWindow(store)
        call = partial(
            letterlock.open,
            sealed, identity=bob, trust=pins, replay=window, topic="t", now=NOW, record=False,
        )  # fmt: skip
        opened = call()
        assert store.calls == lookups
        window.record(sender=alice.public.fingerprint, message_id=opened.message_id,
                      created=opened.created, now=NOW)  # fmt: skip
        with pytest.raises(Rejected) as caught:
            call()
        assert caught.value.reason is Reason.REPLAYED


def test_topics_are_the_receivers_patterns(cast: tuple[Identity, Identity, Pins]) -> None:
    """A receiver names the topics it serves (exact or * / # patterns); others are wrong_topic."""
    alice, bob, pins = cast
    served = letterlock.Topics("payroll.us", "audit.#")
    for topic, ok in [("payroll.us", True), ("audit.x.y", True), ("payroll.eu", False)]:
        sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic=topic, now=NOW)
        call = partial(
            letterlock.open,
            sealed, identity=bob, trust=pins, replay=ReplayWindow(), topic=served, now=NOW,
        )  # fmt: skip
        if ok:
            assert call().topic == topic
        else:
            with pytest.raises(Rejected) as caught:
                call()
            assert caught.value.reason is Reason.WRONG_TOPIC
            assert "one of audit.#, payroll.us" in caught.value.detail


def test_a_policy_cannot_admit_a_sender_under_another_key_id(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    """``Opened.sender.key_id`` is what callers record a message under (``record=False``):
    a policy that reports another key than the one that signed is a bug, never accepted."""
    alice, bob, pins = cast
    other = Identity.generate(Suite.X25519).public

    class Confused:
        def lookup(
            self, key_id: bytes, credentials: object = None
        ) -> letterlock.PublicIdentity | None:
            return pins.lookup(key_id)

        def admit(
            self, sender: letterlock.PublicIdentity, context: letterlock.TrustContext
        ) -> letterlock.VerifiedSender | letterlock.Refusal:
            return letterlock.VerifiedSender(
                name="alice", fingerprint=other.fingerprint_text, key_id=other.fingerprint,
                suite=sender.suite, via=letterlock.Via.PIN,
            )  # fmt: skip

    sealed = letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t", now=NOW)
    with pytest.raises(UsageError, match="another key id"):
        letterlock.open(sealed, identity=bob, trust=Confused(), replay=ReplayWindow(), now=NOW)


def test_seal_options_and_keywords_are_one_list() -> None:
    """Adding a sealing option is a one-place change: SealOptions and its keywords agree."""
    fields = {f.name for f in dataclasses.fields(letterlock.SealOptions)}
    assert fields - {"topic"} == set(letterlock.SealKeywords.__annotations__)


def test_an_unknown_sealing_option_is_a_usage_error(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    alice, bob, _ = cast
    with pytest.raises(UsageError, match="reply_to"):
        letterlock.seal(b"x", sender=alice, recipients=[bob.public], topic="t", reply_to="q")  # type: ignore[call-arg]


def test_seal_into_and_open_into_report_lengths_not_empty_payloads(
    cast: tuple[Identity, Identity, Pins],
) -> None:
    """An empty payload is legitimate: the buffer forms report a length and a payload-less
    Received, so nothing reads ``b""`` as "the payload is elsewhere"."""
    alice, bob, pins = cast
    sealer = letterlock.Sealer(alice)
    opener = letterlock.Opener(bob, trust=pins, replay=ReplayWindow())
    envelope, payload = bytearray(), bytearray(b"stale")
    for message in (b"", b"twelve bytes"):
        length = sealer.seal_into(message, envelope, recipients=[bob.public], topic="t", now=NOW)
        assert length == len(envelope) > len(message)
        received = opener.open_into(envelope, payload, now=NOW)
        assert isinstance(received, letterlock.Received)
        assert not isinstance(received, letterlock.Opened)
        assert (received.size, bytes(payload)) == (len(message), message)
    empty = opener.open(sealer.seal(b"", recipients=[bob.public], topic="t", now=NOW), now=NOW)
    assert (empty.payload, empty.size) == (b"", 0)
