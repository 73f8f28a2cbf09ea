"""Attacks on opening found by an independent review (issue 6), one test per attack.

Each test names the attack it stands for and fails on the code before the fix:
a ciphertext swapped between the signature check and the decryption (double fetch), a
hidden-sender envelope that makes the receiver work and allocate before any authentication,
a caller's buffer left holding old plaintext, a co-recipient re-padding a hidden-sender
message, nonces that ignore part of the message id, keys of small order, control characters.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Callable
from functools import partial

import pytest

import letterlock
from conftest import NOW, Cast, cast_of
from letterlock import (
    DEFAULT_LIMITS,
    Identity,
    Limits,
    Opener,
    PublicIdentity,
    Reason,
    Rejected,
    ReplayWindow,
    SealOptions,
    Suite,
    UsageError,
    _crypto,
)
from letterlock.core.envelope import encode_envelope, parse
from letterlock.core.protocol import (
    LABEL_WRAP,
    _info,
    nonce_of,
    payload_key,
    seal_envelope,
    wrap_content_key,
)

TOPIC = "payroll.eu"
FAST = [Suite.P256, Suite.X25519]


def _reason(call: Callable[[], object]) -> Reason:
    with pytest.raises(Rejected) as caught:
        call()
    return caught.value.reason


def _insider_key(data: bytes, insider: Identity) -> bytes:
    """The payload key a co-recipient learns from its own entry."""
    header = letterlock.inspect(data).header
    my_id = insider.public.recipient_id
    entry = next(e for e in header.recipients if e.key_id == my_id)
    content_key = insider.unwrap(entry.wrapped, _info(header.suite, LABEL_WRAP, my_id))
    assert content_key is not None
    return payload_key(header.suite, content_key)


def _opener(cast: Cast, **limits: object) -> Opener:
    return Opener(
        cast.bob,
        trust=cast.pins(),
        replay=ReplayWindow(),
        limits=dataclasses.replace(DEFAULT_LIMITS, **limits),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("suite", FAST, ids=str)
@pytest.mark.parametrize("size", [100, 200_000], ids=["small", "large"])
@pytest.mark.parametrize("into", [False, True], ids=["bytes", "into"])
def test_double_fetch_ciphertext_swapped_after_the_signature_check_is_never_released(
    suite: Suite, size: int, into: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Double fetch (issue 6, item 3): the envelope sits in memory that a co-recipient can write
    (a shared mmap). Right after open() hashes the ciphertext for alice's signature, dave
    swaps in a ciphertext of his own under the same payload key. Fails if open() decrypts
    the caller's buffer a second time instead of the snapshot it hashed."""
    cast = cast_of(suite)
    genuine_payload = b"G" * size
    sealed = letterlock.seal(
        genuine_payload, sender=cast.alice, recipients=[cast.bob.public, cast.dave.public],
        topic=TOPIC, now=NOW,
    )  # fmt: skip
    envelope = letterlock.inspect(sealed)
    key = _insider_key(sealed, cast.dave)
    evil_inner = (size).to_bytes(8, "big") + b"E" * size
    evil = _crypto.PayloadCipher(suite, key).seal(
        nonce_of(suite, envelope.header.message_id), evil_inner, envelope.header_bytes
    )
    assert len(evil) == len(envelope.ciphertext)
    shared = bytearray(sealed)
    start = len(envelope.header_bytes) + 4
    real_digest = _crypto.digest

    def digest_then_swap(which: Suite, data: bytes | memoryview) -> bytes:
        result = real_digest(which, data)
        if len(data) == len(evil):  # the ciphertext hash for the signature: now swap
            shared[start : start + len(evil)] = evil
        return result

    monkeypatch.setattr(_crypto, "digest", digest_then_swap)
    buffer = bytearray()
    if into:
        _opener(cast).open_into(shared, buffer, topic=TOPIC, now=NOW)
        released = bytes(buffer)
    else:
        released = _opener(cast).open(shared, topic=TOPIC, now=NOW).payload
    assert released == genuine_payload
    assert shared[start : start + len(evil)] == evil  # the swap did happen


# --------------------------------------------------------------------------- item 4


def _hidden(cast: Cast, size: int, sender: Identity | None = None, pad: int | None = None) -> bytes:
    return letterlock.seal(
        b"h" * size, sender=sender or cast.alice, recipients=[cast.bob.public], topic=TOPIC,
        now=NOW, hide_sender=True, pad=pad,
    )  # fmt: skip


def _trap_crypto(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for owner, name in ((Identity, "unwrap"), (_crypto.PayloadCipher, "open")):
        original = getattr(owner, name)

        def trap(*args: object, _name: str = name, _original: object = original) -> object:
            calls.append(_name)
            assert callable(_original)
            return _original(*args)

        monkeypatch.setattr(owner, name, trap)
    return calls


@pytest.mark.parametrize("suite", FAST, ids=str)
def test_unauthenticated_work_receiver_can_refuse_hidden_senders(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unauthenticated work (issue 6, item 4): anyone with bob's public key can make him run
    HPKE and decrypt a hidden-sender envelope before any signature. A receiver that does not
    want that refuses them (unsupported) before any cryptography. Fails without the setting."""
    cast = cast_of(suite)
    calls = _trap_crypto(monkeypatch)
    refusing = _opener(cast, hidden_sender=False)
    assert _reason(partial(refusing.open, _hidden(cast, 10), now=NOW)) is Reason.UNSUPPORTED
    assert calls == []
    visible = letterlock.seal(b"v", sender=cast.alice, recipients=[cast.bob.public], topic=TOPIC)
    assert refusing.open(visible).payload == b"v"


@pytest.mark.parametrize("suite", FAST, ids=str)
def test_unauthenticated_work_hidden_senders_have_a_smaller_size_cap(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unauthenticated work (item 4): a large hidden-sender envelope costs a full AEAD pass
    before its signature is seen, so it has its own, smaller cap (default 1 MiB), checked
    before any cryptography. Fails if a 2 MiB hidden-sender envelope reaches HPKE."""
    cast = cast_of(suite)
    big = _hidden(cast, 2 << 20)
    calls = _trap_crypto(monkeypatch)
    assert DEFAULT_LIMITS.max_hidden_size == 1 << 20
    assert _reason(partial(_opener(cast).open, big, now=NOW)) is Reason.OVER_LIMIT
    assert calls == []
    raised = _opener(cast, max_hidden_size=4 << 20)
    assert raised.open(big, now=NOW).size == 2 << 20
    assert letterlock.inspect(big).header.hidden_sender  # a relay's view is not capped


@pytest.mark.parametrize("suite", FAST, ids=str)
def test_unauthenticated_work_hidden_forgery_allocates_nothing_of_its_size(suite: Suite) -> None:
    """Unauthenticated work (item 4): a forged 8 MiB hidden-sender envelope, opened into the
    caller's buffer, must not make open() allocate copies of its size for the padding check or
    the wipe. Fails if either allocates (it did: two full-size allocations)."""
    cast = cast_of(suite)
    size = 8 << 20
    # nobody pins mallory (unknown_sender); nearly all of it is padding, checked before trust
    forged = _hidden(cast, 10, sender=cast.mallory, pad=size)
    opener = _opener(cast, max_hidden_size=16 << 20)
    buffer = bytearray(len(letterlock.inspect(forged).ciphertext) - 16)
    tracemalloc.start()
    try:
        reason = _reason(partial(opener.open_into, forged, buffer, now=NOW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason is Reason.UNKNOWN_SENDER
    assert peak < size // 8, f"open allocated {peak} bytes for an {size}-byte forgery"
    assert not any(buffer)


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-1], Reason.MALFORMED),
        (lambda data: data, Reason.WRONG_TOPIC),
    ],
    ids=["parse", "topic"],
)
def test_into_buffer_wiped_when_refused_before_decryption(
    damage: Callable[[bytes], bytes], reason: Reason
) -> None:
    """Issue 6, item 6: Opener.open(into=buf) promises a zeroed buffer on rejection. A message
    refused before decryption left the previous message's plaintext in it."""
    cast = cast_of(Suite.X25519)
    opener = _opener(cast)
    buffer = bytearray()
    first = letterlock.seal(b"SECRET " * 50, sender=cast.alice, recipients=[cast.bob.public],
                            topic=TOPIC)  # fmt: skip
    opener.open_into(first, buffer, topic=TOPIC)
    assert bytes(buffer) == b"SECRET " * 50
    second = letterlock.seal(b"x", sender=cast.alice, recipients=[cast.bob.public], topic=TOPIC)
    assert _reason(partial(opener.open_into, damage(second), buffer, topic="other")) is reason
    assert not any(buffer)


# --------------------------------------------------------------------------- item 8


@pytest.mark.parametrize("suite", FAST, ids=str)
def test_hidden_sender_repadded_by_a_co_recipient_is_refused(suite: Suite) -> None:
    """Issue 6, item 8: dave (a co-recipient, so he knows the payload key) re-encrypts alice's
    hidden-sender message with more zero padding. Everything he keeps is signed, but the
    padding was not: it opened as alice's. The signature now covers ct_len."""
    cast = cast_of(suite)
    sealed = letterlock.seal(
        b"pay 100", sender=cast.alice, recipients=[cast.bob.public, cast.dave.public],
        topic=TOPIC, now=NOW, hide_sender=True,
    )  # fmt: skip
    envelope = letterlock.inspect(sealed)
    key = _insider_key(sealed, cast.dave)
    nonce = nonce_of(suite, envelope.header.message_id)
    inner = _crypto.PayloadCipher(suite, key).open(
        nonce, envelope.ciphertext, envelope.header_bytes
    )
    assert inner is not None
    repadded = _crypto.PayloadCipher(suite, key).seal(
        nonce, inner + bytes(64), envelope.header_bytes
    )
    forged = encode_envelope(envelope.header_bytes, repadded, None)
    assert _opener(cast).open(sealed, now=NOW).payload == b"pay 100"
    assert _reason(partial(_opener(cast).open, forged, now=NOW)) is Reason.BAD_SIGNATURE


# --------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("suite", list(Suite), ids=str)
def test_nonce_depends_on_every_byte_of_the_message_id(suite: Suite) -> None:
    """Issue 6, item 11: with the nonce taken from the first 96 bits of the id, a sender that
    puts a counter in the id's last bytes repeats nonces under a reused content key."""
    base = bytes(16)
    nonces = {nonce_of(suite, base)}
    for position in range(16):
        changed = bytearray(base)
        changed[position] = 1
        nonces.add(nonce_of(suite, bytes(changed)))
    assert len(nonces) == 17
    assert all(len(nonce) == 12 for nonce in nonces)


@pytest.mark.parametrize("suite", FAST, ids=str)
def test_counter_in_the_message_ids_last_bytes_never_repeats_a_keystream(suite: Suite) -> None:
    """Item 11, end to end: two envelopes under one content key whose ids differ only in their
    last four bytes. Fails (identical ciphertext bodies) if the nonce ignores those bytes."""
    cast = cast_of(suite)
    wrapped = wrap_content_key(b"\x03" * 32, suite=suite, recipients=[cast.bob.public])
    bodies = []
    for counter in (1, 2):
        sealed = seal_envelope(
            b"same payload", sender=cast.alice, wrapped=wrapped, options=SealOptions(topic=TOPIC),
            message_id=b"\xaa" * 12 + counter.to_bytes(4, "big"), created=NOW,
        )  # fmt: skip
        bodies.append(bytes(letterlock.inspect(sealed).ciphertext)[:-16])
    assert bodies[0] != bodies[1]


# --------------------------------------------------------------------------- keys


_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P


def _edwards_add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p, q
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P  # a = -1: y1*y2 - a*x1*x2
    return x3, y3


def _edwards_x(y: int) -> int | None:
    """An x with (x, y) on edwards25519, or None."""
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x2 = u * pow(v, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return x if (x * x - x2) % _P == 0 else None


def test_the_small_order_tables_are_the_eight_torsion() -> None:
    """The key checks' tables, recomputed: each listed y is on the curve with order dividing 8
    (and the X25519 u-coordinates are their images u = (1 + y) / (1 - y), with u=0 for y=1's
    partner), so the production code needs only a table lookup, no curve arithmetic."""
    for y in _crypto._ED25519_SMALL_ORDER_Y:
        x = _edwards_x(y)
        assert x is not None
        point, multiple = (x, y), (x, y)
        for _ in range(7):
            multiple = _edwards_add(multiple, point)
        assert multiple == (0, 1)  # 8 * P is the neutral element
    images = {(1 + y) * pow(1 - y, -1, _P) % _P for y in _crypto._ED25519_SMALL_ORDER_Y if y != 1}
    assert images | {0} >= _crypto._X25519_SMALL_ORDER_U - {1, _P - 1}


def _with_keys(sig_public: bytes, kem_public: bytes) -> bytes:
    suite = bytes([Suite.X25519.value])
    return b"LLP\x01" + suite + b"\x00\x20" + sig_public + b"\x00\x20" + kem_public


def test_small_order_ed25519_key_is_refused_because_it_verifies_forgeries() -> None:
    """A pinned Ed25519 key of small order verifies signatures nobody made (pyca accepts
    ``R = identity, S = 0`` for the identity key): such keys are refused when parsed."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    identity_point = (1).to_bytes(32, "little")
    raw = ed25519.Ed25519PublicKey.from_public_bytes(identity_point)
    raw.verify(identity_point + bytes(32), b"any message")  # the danger, shown
    good_kem = Identity.generate(Suite.X25519).public.to_bytes()[-32:]
    for y in sorted(_crypto._ED25519_SMALL_ORDER_Y):
        for sign in (0, 1 << 255):
            with pytest.raises(ValueError, match="small order"):
                PublicIdentity(_with_keys((y | sign).to_bytes(32, "little"), good_kem))
    non_canonical = (_P + 5).to_bytes(32, "little")
    with pytest.raises(ValueError, match="canonical"):
        PublicIdentity(_with_keys(non_canonical, good_kem))


def test_small_order_x25519_key_is_refused() -> None:
    good_sig = Identity.generate(Suite.X25519).public.to_bytes()[7:39]
    for u in sorted(_crypto._X25519_SMALL_ORDER_U):
        with pytest.raises(ValueError, match="small order"):
            PublicIdentity(_with_keys(good_sig, u.to_bytes(32, "little")))
    for bad in ((_P + 3).to_bytes(32, "little"), (9 | 1 << 255).to_bytes(32, "little")):
        with pytest.raises(ValueError, match="canonical"):
            PublicIdentity(_with_keys(good_sig, bad))


# --------------------------------------------------------------------------- control characters


@pytest.mark.parametrize("text", ["a\x00b", "a\nb", "\x1b[31m", "a\x7f", "a\u0085b", "a\u009bb"])
def test_control_characters_in_topics_and_header_values_are_refused(text: str) -> None:
    """Topics and header values are shown in logs and terminals: the format refuses control
    characters (Unicode Cc), at seal (UsageError) and at open (malformed)."""
    cast = cast_of(Suite.X25519)
    with pytest.raises(UsageError, match="control"):
        letterlock.seal(b"x", sender=cast.alice, recipients=[cast.bob.public], topic=text)
    with pytest.raises(UsageError, match="control"):
        letterlock.seal(
            b"x", sender=cast.alice, recipients=[cast.bob.public], topic="t", headers={"h": text}
        )
    sealed = letterlock.seal(
        b"x", sender=cast.alice, recipients=[cast.bob.public], topic="t" * len(text.encode())
    )
    raw = text.encode()
    hostile = sealed.replace(b"t" * len(raw), raw, 1)
    with pytest.raises(Rejected) as caught:
        parse(hostile, suites=frozenset({Suite.X25519}), limits=Limits())
    assert caught.value.reason is Reason.MALFORMED


# --------------------------------------------------------------------------- item 5 (timing)


@pytest.mark.parametrize("suite", FAST, ids=str)
@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
def test_trust_oracle_by_timing_every_sender_refusal_costs_one_verification(
    suite: Suite, hidden: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust oracle through timing (issue 6, item 5): a forgery naming an unknown sender was
    refused before any signature check, one naming a trusted sender after one. A broker that
    times settlements could tell them apart. Every refusal at steps 13 to 15 (and 20) now
    costs one verification. Fails if an unknown or refused sender skips it."""
    cast = cast_of(suite)
    calls: list[bytes] = []
    original = PublicIdentity.verify

    def counting(self: PublicIdentity, signature: bytes, message: bytes) -> bool:
        calls.append(message)
        return original(self, signature, message)

    monkeypatch.setattr(PublicIdentity, "verify", counting)
    pins = cast.pins()
    pins.revoke("carol")
    outcomes = {}
    for name, signer in (("unknown", cast.mallory), ("revoked", cast.carol), ("bad", None)):
        sealed = letterlock.seal(
            b"x", sender=signer or cast.alice, recipients=[cast.bob.public], topic=TOPIC,
            now=NOW, hide_sender=hidden,
        )  # fmt: skip
        if signer is None:  # alice's own message, one signature byte flipped
            sealed = _flip_signature(sealed, hidden, cast, suite)
        calls.clear()
        opener = Opener(cast.bob, trust=pins, replay=ReplayWindow())
        outcomes[name] = _reason(partial(opener.open, sealed, now=NOW))
        assert len(calls) == 1, (name, len(calls))
    assert outcomes == {
        "unknown": Reason.UNKNOWN_SENDER,
        "revoked": Reason.UNTRUSTED,
        "bad": Reason.BAD_SIGNATURE,
    }


def _flip_signature(sealed: bytes, hidden: bool, cast: Cast, suite: Suite) -> bytes:
    if not hidden:
        damaged = bytearray(sealed)
        damaged[-1] ^= 1
        return bytes(damaged)
    # hidden: the signature is inside; dave, a co-recipient, flips a byte of it and re-encrypts
    envelope = letterlock.inspect(sealed)
    key = _insider_key(sealed, cast.bob)
    nonce = nonce_of(suite, envelope.header.message_id)
    inner = _crypto.PayloadCipher(suite, key).open(
        nonce, envelope.ciphertext, envelope.header_bytes
    )
    assert inner is not None
    inner = inner[:40] + bytes([inner[40] ^ 1]) + inner[41:]
    resealed = _crypto.PayloadCipher(suite, key).seal(nonce, inner, envelope.header_bytes)
    return encode_envelope(envelope.header_bytes, resealed, None)
