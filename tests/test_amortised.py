"""Issue 3: amortised HPKE (Sealer, Opener) and the buffer paths keep every property.

A Sealer reuses one wrapped content key per recipient set within bounds; an Opener caches
decapsulations by the exact entry bytes. Neither may change what any input opens to, nor let a
message depend on another, nor reuse a key-nonce pair.
"""

from __future__ import annotations

import os

import pytest

import letterlock
from letterlock import (
    Identity,
    Opener,
    Pins,
    Reason,
    Rejected,
    ReplayWindow,
    Sealer,
    SealOptions,
    Suite,
    _crypto,
)
from letterlock.core.envelope import (
    encode_envelope,
    encode_header,
    encode_recipient_block,
    parse,
)
from letterlock.core.protocol import (
    LABEL_SIGNATURE,
    commitment_of,
    seal_envelope,
    wrap_content_key,
)

NOW = 1_800_000_000
HIDDEN = SealOptions(topic="t", hide_sender=True)
FAST_SUITES = [Suite.P256, Suite.X25519]


def _cast(suite: Suite) -> tuple[Identity, Identity, Identity, Pins]:
    alice, bob, carol = (Identity.generate(suite) for _ in range(3))
    pins = Pins()
    pins.pin("alice", alice.public)
    return alice, bob, carol, pins


def _opener(identity: Identity, pins: Pins) -> Opener:
    return Opener(identity, trust=pins, replay=ReplayWindow())


def _reason(opener: Opener, data: bytes) -> str:
    try:
        opener.open(data, now=NOW)
    except Rejected as rejected:
        return rejected.reason.value
    return "success"


@pytest.mark.parametrize("suite", list(Suite), ids=str)
def test_in_place_aead_equals_the_one_shot_aead(suite: Suite) -> None:
    """The sealing path encrypts in place; it must produce the standard AEAD output."""
    key, nonce = os.urandom(suite.sizes.payload_key), os.urandom(12)
    cipher = _crypto.PayloadCipher(suite, key)
    for size in (0, 1, 15, 16, 17, 1000, (1 << 20) + 3):
        plaintext = os.urandom(size)
        region = bytearray(plaintext) + bytes(16)
        cipher.seal_in_place(nonce, memoryview(region), b"aad")
        assert bytes(region) == _crypto.PayloadCipher(suite, key).seal(nonce, plaintext, b"aad")


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
def test_warm_sealer_reuses_the_block_but_never_a_nonce(suite: Suite) -> None:
    alice, bob, _, _ = _cast(suite)
    sealer = Sealer(alice)
    first, second = (
        sealer.seal(b"same", recipients=[bob.public], topic="t", now=NOW) for _ in range(2)
    )
    one, two = (
        parse(first, suites=frozenset({suite}), limits=letterlock.DEFAULT_LIMITS),
        parse(second, suites=frozenset({suite}), limits=letterlock.DEFAULT_LIMITS),
    )
    assert one.header.recipients == two.header.recipients
    assert one.header.commitment == two.header.commitment
    assert one.header.message_id != two.header.message_id
    assert bytes(one.ciphertext) != bytes(two.ciphertext)


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
def test_reuse_is_bounded_by_count_age_and_recipient_set(suite: Suite) -> None:
    alice, bob, carol, _ = _cast(suite)
    sealer = Sealer(alice, max_messages=2, max_age=60)

    def block(recipients: list[letterlock.PublicIdentity], now: int) -> object:
        sealed = sealer.seal(b"x", recipients=recipients, topic="t", now=now)
        return letterlock.inspect(sealed).header.recipients

    a = block([bob.public], NOW)
    assert block([bob.public], NOW) == a  # 2nd use
    b = block([bob.public], NOW)  # 3rd: over max_messages
    assert b != a
    assert block([bob.public, carol.public], NOW) != b  # another set, another key
    assert block([bob.public], NOW + 60) != b  # too old
    assert block([bob.public], NOW - 1000) != b  # clock went back: not reused either


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
def test_each_warm_message_opens_alone(suite: Suite) -> None:
    """Independence holds under reuse: any one message opens with a fresh, cold opener."""
    alice, bob, carol, pins = _cast(suite)
    sealer = Sealer(alice)
    readers = [bob.public, carol.public]
    sealed = [
        sealer.seal(f"m{i}".encode(), recipients=readers, topic="t", now=NOW) for i in range(6)
    ]
    for index in (5, 0, 3):
        for reader in (bob, carol):
            assert (
                _opener(reader, pins).open(sealed[index], now=NOW).payload == f"m{index}".encode()
            )


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
@pytest.mark.parametrize("hide_sender", [False, True])
def test_warm_cache_gives_hostile_bytes_the_cold_outcome(suite: Suite, hide_sender: bool) -> None:
    """Every single-byte corruption of a cached envelope has the same outcome warm and cold.

    With a visible sender the signature refuses every corruption before any key is looked up;
    with a hidden sender decryption comes first, so corrupted envelopes do hit the cache.
    """
    alice, bob, _, pins = _cast(suite)
    sealer = Sealer(alice)
    wrapped = wrap_content_key(os.urandom(32), suite=suite, recipients=[bob.public])

    def seal(payload: bytes) -> bytes:
        if not hide_sender:
            return sealer.seal(payload, recipients=[bob.public], topic="t", now=NOW)
        # A Sealer never reuses a content key for a hidden sender; a sender may (the spec
        # allows it), and the receiver's cache must give the cold outcome then too.
        return seal_envelope(
            payload, sender=alice, wrapped=wrapped, options=HIDDEN, message_id=os.urandom(16),
            created=NOW,
        )  # fmt: skip

    genuine = seal(b"genuine")
    warm = _opener(bob, pins)
    warm.open(seal(b"warms the cache"), now=NOW)
    assert len(warm.cache) == 1
    for position in range(len(genuine)):
        corrupt = bytearray(genuine)
        corrupt[position] ^= 0x01
        cold = _opener(bob, pins)
        assert _reason(warm, bytes(corrupt)) == _reason(cold, bytes(corrupt)), position
    assert (warm.cache.hits > 0) is hide_sender
    assert warm.open(genuine, now=NOW).payload == b"genuine"


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
def test_rejected_messages_never_enter_the_cache(suite: Suite) -> None:
    """A trusted but malicious sender reuses a genuine entry with another commitment."""
    alice, bob, _, pins = _cast(suite)
    sealer = Sealer(alice)
    genuine = sealer.seal(b"g", recipients=[bob.public], topic="t", now=NOW)
    second = sealer.seal(b"h", recipients=[bob.public], topic="t", now=NOW)  # same entry
    envelope = parse(second, suites=frozenset({suite}), limits=letterlock.DEFAULT_LIMITS)
    forged_header = envelope.header.__class__(
        **{
            **{f: getattr(envelope.header, f) for f in envelope.header.__dataclass_fields__},
            "commitment": commitment_of(suite, os.urandom(32)),
        }
    )
    header_bytes = encode_header(forged_header)
    signature = alice.sign(
        LABEL_SIGNATURE + header_bytes + _crypto.digest(suite, envelope.ciphertext)
    )
    forged = encode_envelope(header_bytes, envelope.ciphertext, signature)
    opener = _opener(bob, pins)
    assert _reason(opener, forged) == Reason.BAD_COMMITMENT.value
    assert len(opener.cache) == 0
    assert opener.open(genuine, now=NOW).payload == b"g"
    assert len(opener.cache) == 1
    assert _reason(opener, forged) == Reason.BAD_COMMITMENT.value  # a cache hit changes nothing


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
@pytest.mark.parametrize("hide_sender", [False, True])
def test_buffers_round_trip_and_reuse(suite: Suite, hide_sender: bool) -> None:
    alice, bob, _, pins = _cast(suite)
    sealer, opener = Sealer(alice), _opener(bob, pins)
    sealed, payload = bytearray(), bytearray()
    for size in (3000, 3000, 10, 70_000):  # a reused buffer of the same size must not leak
        message = os.urandom(size)
        length = sealer.seal_into(
            message, sealed, recipients=[bob.public], topic="t", now=NOW, hide_sender=hide_sender,
            pad="padme",
        )  # fmt: skip
        assert length == len(sealed)
        received = opener.open_into(sealed, payload, now=NOW)
        assert not hasattr(received, "payload")  # the payload is in the buffer, nowhere else
        assert (received.size, bytes(payload)) == (size, message)


def test_rejected_open_into_leaves_no_plaintext_in_the_buffer() -> None:
    """With a hidden sender, trust is decided after decryption; a refusal must zero the buffer."""
    alice, bob, _, _ = _cast(Suite.X25519)
    secret = b"S" * 5000
    sealed = Sealer(alice).seal(
        secret, recipients=[bob.public], topic="t", now=NOW, hide_sender=True
    )
    payload = bytearray(b"old contents")
    with pytest.raises(Rejected) as caught:
        _opener(bob, Pins()).open_into(sealed, payload, now=NOW)
    assert caught.value.reason is Reason.UNKNOWN_SENDER
    assert b"S" not in payload
    assert not any(payload)


@pytest.mark.parametrize("hide_sender", [False, True])
@pytest.mark.parametrize("size", [0, 100, 64 * 1024 - 9, 64 * 1024 - 8, 64 * 1024, 200_000])
def test_in_place_and_one_shot_sealing_give_the_same_envelope(size: int, hide_sender: bool) -> None:
    """Small messages are sealed in one call, large or buffered ones in place: same bytes.

    Ed25519 signatures are deterministic, so with a fixed message id and content key the two
    paths must produce byte-identical envelopes on both sides of the size threshold.
    """
    alice, bob, _, _ = _cast(Suite.X25519)
    wrapped = wrap_content_key(b"\x05" * 32, suite=Suite.X25519, recipients=[bob.public])
    payload = os.urandom(size)

    def sealed(into: bytearray | None) -> bytes:
        result = seal_envelope(
            payload, sender=alice, wrapped=wrapped,
            options=SealOptions(topic="t", hide_sender=hide_sender, pad="padme"),
            message_id=b"\x09" * 16, created=NOW, into=into,
        )  # fmt: skip
        return bytes(into) if into is not None else result

    assert sealed(None) == sealed(bytearray(b"stale contents"))


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
def test_hidden_sender_envelopes_never_share_a_recipient_block(suite: Suite) -> None:
    """Defends against a relay linking a hidden sender's messages (issue 6, item 12).

    Reusing a content key repeats the recipient block byte for byte, which would let a relay
    group the envelopes of one hidden sender. Fails if a Sealer reuses keys for them.
    """
    alice, bob, _, _ = _cast(suite)
    sealer = Sealer(alice)
    blocks = {
        letterlock.inspect(
            sealer.seal(b"x", recipients=[bob.public], topic="t", now=NOW, hide_sender=True)
        ).header.recipients
        for _ in range(5)
    }
    assert len(blocks) == 5
    visible = {
        letterlock.inspect(
            sealer.seal(b"x", recipients=[bob.public], topic="t", now=NOW)
        ).header.recipients
        for _ in range(5)
    }
    assert len(visible) == 1  # visible senders keep the amortisation


@pytest.mark.parametrize(
    ("max_messages", "max_age"),
    [(2**32 + 1, 600), (2**64, 600), (0, 600), (10, -1), (10, 86_401), (10, 2**40)],
)
def test_content_key_reuse_bound_is_enforced(max_messages: int, max_age: int) -> None:
    """Issue 6, item 7: the spec caps one content key at 2**32 envelopes; reuse is bounded in
    time too. Fails if a Sealer accepts bounds beyond them."""
    alice, _, _, _ = _cast(Suite.X25519)
    with pytest.raises(letterlock.UsageError):
        Sealer(alice, max_messages=max_messages, max_age=max_age)
    Sealer(alice, max_messages=2**32, max_age=86_400)


def test_opening_into_the_envelopes_own_buffer_is_a_usage_error() -> None:
    alice, bob, _, pins = _cast(Suite.X25519)
    sealed = bytearray(Sealer(alice).seal(b"x", recipients=[bob.public], topic="t", now=NOW))
    with pytest.raises(letterlock.UsageError):
        _opener(bob, pins).open_into(sealed, sealed, now=NOW)


def test_labels_parsed_under_other_limits_are_never_reused() -> None:
    """The labels cache keys on the exact bytes, and a hit must also match the limits (and the
    suite and flags) it was parsed under: a receiver that tightens its limits re-parses."""
    alice, bob, _, pins = _cast(Suite.X25519)
    sealer = Sealer(alice)
    headers = {"a": "1", "b": "2", "c": "3"}

    def seal() -> bytes:
        return sealer.seal(b"x", recipients=[bob.public], topic="t", headers=headers, now=NOW)

    opener = Opener(bob, trust=pins, replay=ReplayWindow(), limits=letterlock.Limits(max_headers=5))
    opener.open(seal(), now=NOW)
    opener.open(seal(), now=NOW)
    assert opener.labels.hits == 1
    opener.limits = letterlock.Limits(max_headers=2)
    assert _reason(opener, seal()) == Reason.OVER_LIMIT.value
    opener.limits = letterlock.Limits(max_headers=5, hidden_sender=False)
    assert opener.open(seal(), now=NOW).payload == b"x"
    hidden = sealer.seal(
        b"x", recipients=[bob.public], topic="t", headers=headers, now=NOW, hide_sender=True
    )
    assert _reason(opener, hidden) == Reason.UNSUPPORTED.value


@pytest.mark.parametrize("suite", FAST_SUITES, ids=str)
@pytest.mark.parametrize("count", [1, 3])
def test_wrapped_key_is_what_the_codec_would_encode(suite: Suite, count: int) -> None:
    """wrap_content_key joins its recipient block itself (the cold seal path); it must be the
    codec's canonical encoding of the same entries."""
    readers = [Identity.generate(suite).public for _ in range(count)]
    wrapped = wrap_content_key(os.urandom(32), suite=suite, recipients=readers)
    assert [e.key_id for e in wrapped.recipients] == sorted(r.recipient_id for r in readers)
    assert wrapped.block == encode_recipient_block(suite, wrapped.recipients, wrapped.commitment)
