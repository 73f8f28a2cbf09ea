"""The nine security properties of a sealed message (``DESIGN.md``), one named group each.

Each test names the property it defends and the attack it stands for; each would fail if the
line of the library that provides the property were removed. Attacks that need a dishonest
sender or a dishonest co-recipient are built by hand from the documented building blocks
(:mod:`letterlock.core.envelope`, :mod:`letterlock.core.protocol`, :mod:`letterlock._crypto`).
Every hand-built attack has a control that shows the same builder, used honestly, opens.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import random
import struct
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import letterlock
from conftest import NOW, Cast, cast_of, make_pins, reencoded
from letterlock import (
    DEFAULT_LIMITS,
    Identity,
    LetterlockError,
    Limits,
    MemoryReplayStore,
    Opened,
    PublicIdentity,
    Reason,
    Rejected,
    ReplayWindow,
    SealOptions,
    Suite,
    TrustPolicy,
    _crypto,
)
from letterlock.core.envelope import Envelope, Header, encode_envelope, encode_header, parse
from letterlock.core.protocol import (
    LABEL_WRAP,
    _info,
    commitment_of,
    nonce_of,
    padme,
    payload_key,
    seal_envelope,
    signed_hidden,
    signed_visible,
    wrap_content_key,
)
from letterlock.stores.sqlite import SQLiteReplayStore

TOPIC = "orders.eu"
MARKER = b"PAYLOAD-MARKER salary=123456 diagnosis=confidential"
HEADERS = {"kind": "salary", "tenant": "acme"}
CONTENT_TYPE = "application/json"
ALL_SUITES = frozenset(Suite)
AES_GCM_SUITES = [Suite.P256, Suite.P384, Suite.PQ]
_U64 = struct.Struct(">Q")

# --------------------------------------------------------------------------- helpers


def seal(
    cast: Cast,
    payload: bytes = MARKER,
    *,
    sender: Identity | None = None,
    recipients: tuple[Identity, ...] | None = None,
    hide_sender: bool = False,
    now: int = NOW,
    expires_in: float | None = 600,
) -> bytes:
    """alice's message to bob and dave on TOPIC, with headers, content type and an expiry."""
    chosen = recipients if recipients is not None else (cast.bob, cast.dave)
    return letterlock.seal(
        payload,
        sender=sender or cast.alice,
        recipients=[r.public for r in chosen],
        topic=TOPIC,
        headers=HEADERS,
        content_type=CONTENT_TYPE,
        expires_in=expires_in,
        now=now,
        hide_sender=hide_sender,
    )


def open_as(
    cast: Cast,
    data: bytes,
    receiver: Identity | None = None,
    *,
    window: ReplayWindow | None = None,
    topic: str | None = TOPIC,
    now: int = NOW,
    trust: TrustPolicy | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Opened:
    """Open as bob (by default) with pins trusting alice and carol and a fresh window."""
    return letterlock.open(
        data,
        identity=receiver or cast.bob,
        trust=trust if trust is not None else cast.pins(),
        replay=window if window is not None else ReplayWindow(),
        topic=topic,
        now=now,
        limits=limits,
    )


def rejection(call: Callable[[], object]) -> Rejected:
    """The Rejected that ``call`` raises (any other outcome fails the test)."""
    with pytest.raises(Rejected) as info:
        call()
    return info.value


def reason_of(call: Callable[[], object]) -> Reason:
    return rejection(call).reason


def parse_any(data: bytes) -> Envelope:
    return parse(data, suites=ALL_SUITES, limits=DEFAULT_LIMITS)


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def with_header(data: bytes, header: Header) -> bytes:
    """A relay's edit: the same ciphertext and signature under a re-encoded header."""
    envelope = parse_any(data)
    return encode_envelope(encode_header(header), envelope.ciphertext, envelope.signature)


def content_key_of(data: bytes, insider: Identity) -> bytes:
    """What a legitimate recipient learns: the content key from its own entry."""
    header = parse_any(data).header
    my_id = insider.public.recipient_id
    entry = next(e for e in header.recipients if e.key_id == my_id)
    key = insider.unwrap(entry.wrapped, _info(header.suite, LABEL_WRAP, my_id))
    assert key is not None
    return key


def reseal_as_insider(
    data: bytes,
    insider: Identity,
    mutate: Callable[[Header, bytes], Header],
    mutate_inner: Callable[[bytes], bytes] = lambda inner: inner,
) -> bytes:
    """A co-recipient's edit: decrypt with the content key, change, re-encrypt, keep signatures.

    This is the strongest attacker short of the sender's signing key: it knows the content key,
    so the AEAD cannot stop it; only the signature can.
    """
    envelope = parse_any(data)
    old = envelope.header
    suite = old.suite
    key = content_key_of(data, insider)
    pk = payload_key(suite, key)
    inner = _crypto.PayloadCipher(suite, pk).open(
        nonce_of(suite, old.message_id), envelope.ciphertext, envelope.header_bytes
    )
    assert inner is not None
    new = mutate(old, key)
    new_bytes = encode_header(new)
    ciphertext = _crypto.PayloadCipher(suite, pk).seal(
        nonce_of(suite, new.message_id), mutate_inner(inner), new_bytes
    )
    return encode_envelope(new_bytes, ciphertext, envelope.signature)


HONEST_KEY = b"\x07" * 32


def forge(
    cast: Cast,
    *,
    signer: Identity | None = None,
    claimed: PublicIdentity | None = None,
    keys: Mapping[Identity, bytes] | None = None,
    commit_key: bytes = HONEST_KEY,
    payload: bytes = MARKER,
    padding: bytes = b"",
    hidden: bool = False,
    message_id: bytes = b"\x42" * 16,
    encrypt: Callable[[bytes, bytes], bytes] | None = None,
) -> bytes:
    """An envelope built by hand, as a dishonest sender (or a forger) could.

    ``keys`` maps each recipient to the content key wrapped to it; the commitment is computed
    from ``commit_key``; ``signer`` signs while ``claimed`` is written as the sender key id.
    ``encrypt(header_bytes, inner)`` replaces the honest encryption under ``commit_key``.
    With no arguments it builds what alice would send bob and dave.
    """
    suite = cast.suite
    signer = signer or cast.alice
    claimed = claimed or cast.alice.public
    keys = keys if keys is not None else {cast.bob: HONEST_KEY, cast.dave: HONEST_KEY}
    entries = sorted(
        (
            wrap_content_key(key, suite=suite, recipients=[r.public]).recipients[0]
            for r, key in keys.items()
        ),
        key=lambda entry: entry.key_id,
    )
    header = Header(
        suite=suite,
        message_id=message_id,
        created=NOW,
        expires=None,
        topic=TOPIC,
        content_type=CONTENT_TYPE,
        headers=tuple(sorted(HEADERS.items())),
        sender_key_id=None if hidden else claimed.fingerprint,
        recipients=tuple(entries),
        commitment=commitment_of(suite, commit_key),
    )
    header_bytes = encode_header(header)
    inner = _U64.pack(len(payload)) + payload + padding
    if hidden:
        ct_length = 32 + suite.sizes.signature + len(inner) + 16
        digest = _crypto.digest(suite, payload)
        signed = signed_hidden(suite, header_bytes, ct_length, claimed.fingerprint, digest)
        inner = claimed.fingerprint + signer.sign(signed) + inner
    if encrypt is None:
        pk = payload_key(suite, commit_key)
        nonce = nonce_of(suite, message_id)
        ciphertext = _crypto.PayloadCipher(suite, pk).seal(nonce, inner, header_bytes)
    else:
        ciphertext = encrypt(header_bytes, inner)
    signature = None
    if not hidden:
        digest = _crypto.digest(suite, ciphertext)
        signature = signer.sign(signed_visible(suite, header_bytes, digest))
    return encode_envelope(header_bytes, ciphertext, signature)


EntryPoints = tuple[tuple[object, str], ...]


def _crypto_functions(*prefixes: str) -> EntryPoints:
    """Every function ``letterlock._crypto`` exports whose name starts with one of ``prefixes``."""
    names = (n for n in _crypto.__all__ if inspect.isfunction(getattr(_crypto, n)))
    return tuple((_crypto, n) for n in names if n.startswith(prefixes))


#: Everything cryptographic open could call: every _crypto function, HPKE unwrap, verification.
CRYPTO_ENTRY_POINTS: EntryPoints = (
    *_crypto_functions(""),
    (_crypto.PayloadCipher, "seal_in_place"),
    (_crypto.PayloadCipher, "open"),
    (_crypto.PayloadCipher, "open_into"),
    (Identity, "unwrap"),
    (PublicIdentity, "verify"),
)
#: What decrypting takes: key derivation, AEAD decryption (any variant), HPKE unwrap.
DECRYPTION_ENTRY_POINTS: EntryPoints = (
    *_crypto_functions("hkdf"),
    (_crypto.PayloadCipher, "open"),
    (_crypto.PayloadCipher, "open_into"),
    (Identity, "unwrap"),
)


def spy_on(
    monkeypatch: pytest.MonkeyPatch,
    entry_points: EntryPoints,
    *,
    forbid: bool = False,
) -> list[str]:
    """Record every call of ``entry_points`` (and fail it with AssertionError if ``forbid``)."""
    calls: list[str] = []
    for owner, name in entry_points:
        original = getattr(owner, name)

        def spy(
            *args: object, _name: str = name, _original: object = original, **kw: object
        ) -> object:
            calls.append(_name)
            if forbid:
                raise AssertionError(f"{_name} called before the cheap checks refused")
            assert callable(_original)
            return _original(*args, **kw)

        monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.fixture(params=[False, True], ids=["visible", "hidden"])
def hidden(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


# --------------------------------------------------------------------------- harness controls


def test_forge_harness_builds_envelopes_that_open(cast: Cast, hidden: bool) -> None:
    """Control for every hand-built attack below: the builder, used honestly, gives valid mail."""
    opened = open_as(cast, forge(cast, hidden=hidden))
    assert opened.payload == MARKER
    assert opened.sender.name == "alice"


def test_insider_reseal_harness_without_changes_still_opens(cast: Cast, hidden: bool) -> None:
    """Control for the co-recipient attacks: re-encrypting without a change keeps it valid."""
    sealed = seal(cast, hide_sender=hidden)
    resealed = reseal_as_insider(sealed, cast.dave, lambda header, _key: header)
    assert open_as(cast, resealed).payload == MARKER


# --------------------------------------------------------------------------- property 1


def test_property1_confidentiality_only_listed_recipients_can_read(cast: Cast) -> None:
    """Defends against anyone but the listed recipients reading the payload.

    Fails if the payload or the content key travel in clear, or if the content key is not wrapped
    to each recipient's own encryption key (an outsider, or a recipient using another entry,
    could then recover it).
    """
    content_key = bytes(range(32))
    wrapped = wrap_content_key(
        content_key, suite=cast.suite, recipients=[cast.bob.public, cast.dave.public]
    )
    sealed = seal_envelope(
        MARKER, sender=cast.alice, wrapped=wrapped, options=SealOptions(topic=TOPIC),
        message_id=b"m" * 16, created=NOW,
    )  # fmt: skip
    for receiver in (cast.bob, cast.dave):
        assert open_as(cast, sealed, receiver).payload == MARKER
    assert MARKER not in sealed
    assert content_key not in sealed
    assert reason_of(lambda: open_as(cast, sealed, cast.eve)) is Reason.NOT_FOR_ME
    entries = parse_any(sealed).header.recipients
    for entry in entries:
        for key_id in {e.key_id for e in entries} | {cast.eve.public.recipient_id}:
            assert cast.eve.unwrap(entry.wrapped, _info(cast.suite, LABEL_WRAP, key_id)) is None
    bob_id, dave_id = cast.bob.public.recipient_id, cast.dave.public.recipient_id
    dave_entry = next(e for e in entries if e.key_id == dave_id)
    assert cast.bob.unwrap(dave_entry.wrapped, _info(cast.suite, LABEL_WRAP, dave_id)) is None
    assert cast.bob.unwrap(dave_entry.wrapped, _info(cast.suite, LABEL_WRAP, bob_id)) is None


def test_property1_confidentiality_cached_content_key_never_repeats_a_keystream(
    cast: Cast,
) -> None:
    """Defends against key caching turning into keystream reuse (two-time pad).

    Two messages sealed under one cached wrapped key (one payload key) must use different
    nonces: the XOR of their ciphertexts must not equal the XOR of their inner plaintexts.
    Fails if the nonce stops depending on the message id (one keystream would repeat).
    """
    wrapped = wrap_content_key(b"\x33" * 32, suite=cast.suite, recipients=[cast.bob.public])
    first, second = b"transfer 100 EUR to alice", b"transfer 999 EUR to mallo"
    sealed = [
        seal_envelope(
            p,
            sender=cast.alice,
            wrapped=wrapped,
            options=SealOptions(topic=TOPIC),
            message_id=i,
            created=NOW,
        )
        for i, p in ((b"\x01" * 16, first), (b"\x02" * 16, second))
    ]
    ct1, ct2 = (bytes(parse_any(s).ciphertext)[8 : 8 + len(first)] for s in sealed)
    assert bytes(a ^ b for a, b in zip(ct1, ct2, strict=True)) != bytes(
        a ^ b for a, b in zip(first, second, strict=True)
    )
    assert [open_as(cast, s).payload for s in sealed] == [first, second]


# --------------------------------------------------------------------------- property 2


@pytest.mark.parametrize("where", ["signature_first", "signature_last", "ciphertext"])
def test_property2_signature_verified_before_payload_released(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Defends against decrypting (and so acting on) a message whose signature is bad.

    The damaged copy must be refused as bad_signature with no HPKE unwrap, no key derivation
    and no AEAD decryption; fails if the signature check moves after decryption or is skipped.
    (A hidden sender's signature is inside the ciphertext; property 8's tests show that no
    payload escapes when it fails.)
    """
    sealed = seal(cast)
    envelope = parse_any(sealed)
    signature_at = len(sealed) - cast.suite.sizes.signature
    index = {
        "signature_first": signature_at,
        "signature_last": len(sealed) - 1,
        "ciphertext": len(envelope.header_bytes) + 4 + 3,
    }[where]
    calls = spy_on(monkeypatch, DECRYPTION_ENTRY_POINTS)
    assert open_as(cast, sealed).payload == MARKER
    assert {"unwrap", "hkdf", "open"} <= set(calls)  # the spies are wired
    calls.clear()
    assert reason_of(lambda: open_as(cast, flip(sealed, index))) is Reason.BAD_SIGNATURE
    assert calls == []


def test_property2_forged_signature_under_another_key_refused(cast: Cast, hidden: bool) -> None:
    """Defends against mallory passing as alice: her own key signs, alice's key id is claimed.

    Fails if the receiver verifies with a key other than the one the trust policy maps the
    claimed key id to (or does not verify at all), visibly or inside the ciphertext.
    """
    forged = forge(cast, hidden=hidden, signer=cast.mallory)
    assert reason_of(lambda: open_as(cast, forged)) is Reason.BAD_SIGNATURE


def test_property2_receiver_learns_exactly_who_signed(
    cast: Cast, hidden: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defends against a wrong or missing sender attribution, and unknown or revoked senders.

    The opened message names the pinned signer; an unpinned or revoked signer is refused before
    any decryption (visible sender) and never yields a payload.
    """
    opened = open_as(cast, seal(cast, hide_sender=hidden))
    assert (opened.sender.name, opened.sender.key_id) == ("alice", cast.alice.public.fingerprint)
    assert opened.sender.fingerprint == cast.alice.public.fingerprint_text
    from_carol = open_as(cast, seal(cast, sender=cast.carol, hide_sender=hidden))
    assert from_carol.sender.name == "carol"
    revoked = cast.pins()
    revoked.revoke("alice")
    sealed = seal(cast, hide_sender=hidden)
    calls = spy_on(monkeypatch, DECRYPTION_ENTRY_POINTS if not hidden else ())
    stranger = make_pins(carol=cast.carol.public)
    assert reason_of(lambda: open_as(cast, sealed, trust=stranger)) is Reason.UNKNOWN_SENDER
    assert reason_of(lambda: open_as(cast, sealed, trust=revoked)) is Reason.UNTRUSTED
    assert calls == []


def test_property2_pq_signature_needs_both_algorithms() -> None:
    """Defends the pq suite against a broken ML-DSA or a broken ECDSA alone.

    A pq signature is ML-DSA-87 || ECDSA P-384; swapping either half for mallory's valid half
    over the same message must fail. Fails if the verifier accepts on one algorithm.
    """
    cast = cast_of(Suite.PQ)
    envelope = parse_any(seal(cast))
    assert envelope.signature is not None
    digest = _crypto.digest(Suite.PQ, envelope.ciphertext)
    signed = signed_visible(Suite.PQ, envelope.header_bytes, digest)
    theirs = cast.mallory.sign(signed)
    ours = envelope.signature
    split = 4627
    for signature in (ours[:split] + theirs[split:], theirs[:split] + ours[split:]):
        spliced = encode_envelope(envelope.header_bytes, envelope.ciphertext, signature)
        assert reason_of(partial(open_as, cast, spliced)) is Reason.BAD_SIGNATURE
    original = encode_envelope(envelope.header_bytes, envelope.ciphertext, ours)
    assert open_as(cast, original).payload == MARKER


# --------------------------------------------------------------------------- property 3

HeaderEdit = Callable[[Header, Cast], Header]
HEADER_EDITS: dict[str, HeaderEdit] = {
    "topic": lambda h, c: dataclasses.replace(h, topic="orders.us"),
    "message_id": lambda h, c: dataclasses.replace(h, message_id=bytes(16)),
    "created": lambda h, c: dataclasses.replace(h, created=h.created - 1),
    "expires": lambda h, c: dataclasses.replace(h, expires=None),
    "content_type": lambda h, c: dataclasses.replace(h, content_type="text/plain"),
    "header_value": lambda h, c: dataclasses.replace(
        h, headers=(("kind", "bonus"), ("tenant", "acme"))
    ),
    "header_added": lambda h, c: dataclasses.replace(h, headers=(("a", "1"), *h.headers)),
    "header_removed": lambda h, c: dataclasses.replace(h, headers=h.headers[1:]),
    "recipient_removed": lambda h, c: dataclasses.replace(
        h, recipients=tuple(e for e in h.recipients if e.key_id != c.dave.public.recipient_id)
    ),
}


def _garble_daves_entry(header: Header, cast: Cast) -> Header:
    dave_id = cast.dave.public.recipient_id
    entries = tuple(
        dataclasses.replace(e, wrapped=bytes(len(e.wrapped))) if e.key_id == dave_id else e
        for e in header.recipients
    )
    return dataclasses.replace(header, recipients=entries)


#: Edits only a relay makes (a co-recipient gains nothing from them, or is stopped earlier).
RELAY_EDITS: dict[str, HeaderEdit] = {
    **HEADER_EDITS,
    "sender_key_id": lambda h, c: dataclasses.replace(h, sender_key_id=c.carol.public.fingerprint),
    "commitment": lambda h, c: dataclasses.replace(h, commitment=bytes(32)),
    "other_recipient_entry": _garble_daves_entry,
}


def _expected_topic(edit: str) -> str:
    """The topic the receiver subscribed to: where the relay routed the edited message."""
    return "orders.us" if edit == "topic" else TOPIC


@pytest.mark.parametrize("edit", RELAY_EDITS)
def test_property3_binding_relay_edit_of_signed_field_refused(cast: Cast, edit: str) -> None:
    """Defends against a relay re-routing or re-labelling a message by editing its header.

    The ciphertext and signature are kept, so the refusal must be bad_signature: the signature
    covers the field. Were the field left out of the signed bytes, the signature would verify
    and the message would fail later (decrypt_failed), or open.
    """
    sealed = seal(cast)
    relayed = with_header(sealed, RELAY_EDITS[edit](parse_any(sealed).header, cast))
    assert relayed != sealed
    topic = _expected_topic(edit)
    assert reason_of(lambda: open_as(cast, relayed, topic=topic)) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("edit", [*HEADER_EDITS, "inner_sender_id"])
def test_property3_binding_co_recipient_edit_of_hidden_sender_message_refused(
    cast: Cast, edit: str
) -> None:
    """Defends against a co-recipient (dave) re-labelling a hidden-sender message for bob.

    dave knows the content key, so he can re-encrypt for an edited header: only the inner
    signature, which covers the header, stops him. Fails if the hidden signature does not
    cover a field (or the inner sender key id).
    """
    sealed = seal(cast, hide_sender=True)
    if edit == "inner_sender_id":
        carol_id = cast.carol.public.fingerprint
        resealed = reseal_as_insider(
            sealed, cast.dave, lambda h, _k: h, lambda inner: carol_id + inner[32:]
        )
    else:
        resealed = reseal_as_insider(sealed, cast.dave, lambda h, _k: HEADER_EDITS[edit](h, cast))
    topic = _expected_topic(edit)
    assert reason_of(lambda: open_as(cast, resealed, topic=topic)) is Reason.BAD_SIGNATURE


def test_property3_binding_forwarding_to_another_recipient_set_refused(
    cast: Cast, hidden: bool
) -> None:
    """Defends against bob forwarding alice's message to eve as if alice had meant it for her.

    bob adds a valid entry for eve (eve really can unwrap the content key) and re-encrypts; the
    signature covers the recipient block, so eve refuses. Fails if the recipient set is unsigned.
    """
    sealed = seal(cast, hide_sender=hidden)
    new_set = [cast.bob.public, cast.dave.public, cast.eve.public]

    def add_eve(header: Header, key: bytes) -> Header:
        wrapped = wrap_content_key(key, suite=cast.suite, recipients=new_set)
        return dataclasses.replace(header, recipients=wrapped.recipients)

    forwarded = reseal_as_insider(sealed, cast.bob, add_eve)
    assert content_key_of(forwarded, cast.eve) == content_key_of(sealed, cast.bob)
    eve_pins = make_pins(alice=cast.alice.public)
    rejected = reason_of(lambda: open_as(cast, forwarded, cast.eve, trust=eve_pins))
    assert rejected is Reason.BAD_SIGNATURE


def test_property3_binding_topic_reroute_refused(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defends against a routing bug or relay delivering orders.eu traffic to orders.us.

    The receiver names the topic it consumes; the signed topic must match byte for byte.
    Refused before any cryptography. Fails if the destination check is dropped or loosened.
    """
    sealed = seal(cast)
    calls = spy_on(monkeypatch, CRYPTO_ENTRY_POINTS)
    for wrong in ("orders.us", "Orders.eu", "orders.eu ", "orders"):
        assert reason_of(partial(open_as, cast, sealed, topic=wrong)) is Reason.WRONG_TOPIC
    assert calls == []
    assert open_as(cast, sealed, topic=TOPIC).topic == TOPIC


# --------------------------------------------------------------------------- property 4


def _aes_block(key: bytes, block: bytes) -> int:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return int.from_bytes(encryptor.update(block) + encryptor.finalize(), "big")


def _gf_mul(x: int, y: int) -> int:
    """Multiplication in GCM's GF(2^128) (NIST SP 800-38D, algorithm 1)."""
    z, v = 0, y
    for bit in range(127, -1, -1):
        if (x >> bit) & 1:
            z ^= v
        v = (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1
    return z


def _gf_pow(x: int, exponent: int) -> int:
    result = 1 << 127  # the field's one, in GCM's bit order
    while exponent:
        if exponent & 1:
            result = _gf_mul(result, x)
        x = _gf_mul(x, x)
        exponent >>= 1
    return result


def _blocks(data: bytes) -> list[int]:
    padded = data + bytes(-len(data) % 16)
    return [int.from_bytes(padded[i : i + 16], "big") for i in range(0, len(padded), 16)]


def _ghash(h: int, blocks: list[int]) -> int:
    y = 0
    for block in blocks:
        y = _gf_mul(y ^ block, h)
    return y


def gcm_two_key_ciphertext(
    key1: bytes, key2: bytes, nonce: bytes, aad: bytes, plaintext: bytes
) -> bytes:
    """An AES-GCM ciphertext (96-bit nonce) that decrypts under BOTH keys ("invisible salamander").

    Under ``key1`` it decrypts to ``plaintext`` except its last block; that block is chosen so
    the two tags coincide (GHASH is linear in each ciphertext block).
    """
    assert len(plaintext) % 16 == 0
    h1, h2 = _aes_block(key1, bytes(16)), _aes_block(key2, bytes(16))
    j0 = nonce + (1).to_bytes(4, "big")
    s1, s2 = _aes_block(key1, j0), _aes_block(key2, j0)
    count = len(plaintext) // 16
    stream = [_aes_block(key1, nonce + (2 + i).to_bytes(4, "big")) for i in range(count)]
    cipher = [p ^ k for p, k in zip(_blocks(plaintext), stream, strict=True)]
    cipher[-1] = 0
    aad_blocks = _blocks(aad)
    lengths = (len(aad) * 8) << 64 | len(plaintext) * 8

    def all_blocks() -> list[int]:
        return [*aad_blocks, *cipher, lengths]

    exponent = 2  # the last ciphertext block is second to last in GHASH's input
    coefficient = _gf_pow(h1, exponent) ^ _gf_pow(h2, exponent)
    target = _ghash(h1, all_blocks()) ^ _ghash(h2, all_blocks()) ^ s1 ^ s2
    cipher[-1] = _gf_mul(target, _gf_pow(coefficient, 2**128 - 2))
    tag = _ghash(h1, all_blocks()) ^ s1
    assert tag == _ghash(h2, all_blocks()) ^ s2
    return b"".join(c.to_bytes(16, "big") for c in cipher) + tag.to_bytes(16, "big")


def test_property4_key_commitment_two_content_keys_at_most_one_recipient_decrypts(
    cast: Cast,
) -> None:
    """Defends against a malicious sender showing bob and carol different content keys.

    alice (trusted, signing honestly) wraps key 1 to bob and key 2 to dave, commits to key 1.
    bob opens; dave must get bad_commitment. Fails if the commitment check is removed (dave
    would then fail later as decrypt_failed, or, with AES-GCM, possibly read another text).
    """
    key1, key2 = b"\x01" * 32, b"\x02" * 32
    forged = forge(cast, keys={cast.bob: key1, cast.dave: key2}, commit_key=key1)
    assert open_as(cast, forged).payload == MARKER
    assert reason_of(lambda: open_as(cast, forged, cast.dave)) is Reason.BAD_COMMITMENT
    swapped = forge(
        cast, keys={cast.bob: key1, cast.dave: key2}, commit_key=key2, message_id=b"\x43" * 16
    )
    assert reason_of(lambda: open_as(cast, swapped)) is Reason.BAD_COMMITMENT


@pytest.mark.parametrize("suite", AES_GCM_SUITES, ids=[s.label for s in AES_GCM_SUITES])
def test_property4_key_commitment_refuses_aes_gcm_ciphertext_valid_under_two_keys(
    suite: Suite,
) -> None:
    """Defends against the "invisible salamanders" attack on AES-GCM, which is not committing.

    alice builds ONE ciphertext whose tag verifies under the payload keys of key 1 (bob) and
    key 2 (dave), so the AEAD alone would hand them different plaintexts. The commitment to key
    1 makes dave refuse with bad_commitment. Fails if the commitment check is removed.
    """
    cast = cast_of(suite)
    key1, key2 = b"\x11" * 32, b"\x22" * 32
    message_id = b"\x44" * 16
    mk1, mk2 = (payload_key(suite, k) for k in (key1, key2))
    body = b"pay bob 100 EUR ".ljust(40, b".")
    inner1 = _U64.pack(len(body) + 16) + body + bytes(16)  # the last block becomes free

    def salamander(header_bytes: bytes, _inner: bytes) -> bytes:
        return gcm_two_key_ciphertext(mk1, mk2, nonce_of(suite, message_id), header_bytes, inner1)

    forged = forge(
        cast,
        signer=cast.alice,
        claimed=cast.alice.public,
        keys={cast.bob: key1, cast.dave: key2},
        commit_key=key1,
        message_id=message_id,
        encrypt=salamander,
    )
    envelope = parse_any(forged)
    for_bob, for_dave = (
        _crypto.PayloadCipher(suite, mk).open(
            nonce_of(suite, message_id), envelope.ciphertext, envelope.header_bytes
        )
        for mk in (mk1, mk2)
    )
    assert for_bob is not None
    assert for_dave is not None
    assert for_bob != for_dave  # the AEAD alone would accept two different plaintexts
    assert open_as(cast, forged).payload.startswith(body)
    assert reason_of(lambda: open_as(cast, forged, cast.dave)) is Reason.BAD_COMMITMENT


# --------------------------------------------------------------------------- property 5


def test_property5_replay_memory_window_refuses_second_copy(cast: Cast, hidden: bool) -> None:
    """Defends against a relay re-delivering a message (e.g. "pay 100 EUR" twice).

    Fails if the window does not record opened ids or does not consult them.
    """
    sealed = seal(cast, hide_sender=hidden)
    window = ReplayWindow()
    assert open_as(cast, sealed, window=window).payload == MARKER
    assert reason_of(lambda: open_as(cast, sealed, window=window)) is Reason.REPLAYED
    assert reason_of(lambda: open_as(cast, sealed, window=window, now=NOW + 5)) is Reason.REPLAYED


def test_property5_replay_message_ids_are_fresh_128_bit(cast: Cast) -> None:
    """Defends against two distinct messages sharing an id (one would be refused as a replay).

    Fails if the message id is not drawn fresh (16 random bytes) for every seal.
    """
    ids = {parse_any(seal(cast)).header.message_id for _ in range(8)}
    assert len(ids) == 8
    assert all(len(i) == 16 for i in ids)


def test_property5_replay_sqlite_window_survives_restart(cast: Cast, tmp_path: Path) -> None:
    """Defends against replaying a message after the consumer restarts.

    Opens with a SQLite-backed window, closes the store, reopens the file in a new store and
    window: the same message is refused. Fails if ids are not persisted durably.
    """
    path = tmp_path / "replay.sqlite3"
    sealed = seal(cast)
    with SQLiteReplayStore(path) as store:
        assert open_as(cast, sealed, window=ReplayWindow(store)).payload == MARKER
    with SQLiteReplayStore(path) as reopened:
        again = ReplayWindow(reopened)
        assert reason_of(lambda: open_as(cast, sealed, window=again)) is Reason.REPLAYED
        other = seal(cast)
        assert open_as(cast, other, window=again).payload == MARKER


@pytest.mark.parametrize(
    ("sealed_at", "expires_in", "opened_at", "reason"),
    [
        (NOW, 60, NOW + 60, Reason.EXPIRED),  # now >= expires
        (NOW, None, NOW + 3601, Reason.EXPIRED),  # older than max_age
        (NOW + 301, None, NOW, Reason.NOT_YET_VALID),  # beyond the clock skew
    ],
    ids=["expired", "too_old", "future"],
)
def test_property5_replay_outside_time_window_refused(
    cast: Cast, sealed_at: int, expires_in: int | None, opened_at: int, reason: Reason
) -> None:
    """Defends against old captured messages being replayed once their ids were forgotten.

    Fails if expiry, max_age (3600 s) or skew (300 s) are not enforced; the boundary one second
    earlier (later, for the future case) opens.
    """
    sealed = seal(cast, now=sealed_at, expires_in=expires_in)
    assert reason_of(lambda: open_as(cast, sealed, now=opened_at)) is reason
    inside = opened_at - 1 if reason is not Reason.NOT_YET_VALID else opened_at + 1
    assert open_as(cast, sealed, now=inside).payload == MARKER


def _sealed_with_id(cast: Cast, sender: Identity, message_id: bytes, *, hidden: bool) -> bytes:
    """A message of ``sender``'s, honestly sealed, whose id ``sender`` chose (as any sender can)."""
    wrapped = wrap_content_key(
        _crypto.random_bytes(32), suite=cast.suite, recipients=[cast.bob.public, cast.dave.public]
    )
    return seal_envelope(
        MARKER, sender=sender, wrapped=wrapped,
        options=SealOptions(topic=TOPIC, hide_sender=hidden), message_id=message_id, created=NOW,
    )  # fmt: skip


def test_property5_replay_id_squatting_by_a_trusted_sender_cannot_block_another(
    cast: Cast, hidden: bool
) -> None:
    """Defends against replay id squatting (issue 6, item 1a).

    Carol (trusted, but malicious) reads the id of alice's pending message on the broker and
    sends her own validly signed message with that id first. Alice's genuine message must still
    open. Fails if the replay record is keyed on the message id alone.
    """
    genuine = seal(cast, hide_sender=hidden)
    squatted = parse_any(genuine).header.message_id
    squatter = _sealed_with_id(cast, cast.carol, squatted, hidden=hidden)
    window = ReplayWindow()
    assert open_as(cast, squatter, window=window).sender.name == "carol"
    assert open_as(cast, genuine, window=window).sender.name == "alice"
    assert reason_of(lambda: open_as(cast, genuine, window=window)) is Reason.REPLAYED


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_property5_replay_floor_raising_by_a_trusted_sender_cannot_expire_another(
    cast: Cast, hidden: bool, store: str, tmp_path: Path
) -> None:
    """Defends against floor raising (issue 6, item 1b).

    Carol (trusted, but malicious) fills the receiver's record to capacity with messages
    dated at the allowed clock skew. Eviction must not raise a floor that alice's messages
    meet, and no floor may pass the receiver's clock. Fails with one floor for all senders.
    """
    replay_store = (
        MemoryReplayStore(capacity=8)
        if store == "memory"
        else SQLiteReplayStore(tmp_path / "replay.sqlite3", capacity=8)
    )
    window = ReplayWindow(replay_store)
    skewed = NOW + window.skew
    for sent in range(12):
        flood = seal(cast, sender=cast.carol, now=skewed, hide_sender=hidden, expires_in=None)
        if sent < 8:
            assert open_as(cast, flood, window=window).sender.name == "carol"
        else:  # carol's own record is full of future ids: only she is refused
            assert reason_of(partial(open_as, cast, flood, window=window)) is Reason.OVER_LIMIT
    assert replay_store.floor() <= NOW
    genuine = seal(cast, now=NOW - 60, hide_sender=hidden)
    assert open_as(cast, genuine, window=window).sender.name == "alice"
    if isinstance(replay_store, SQLiteReplayStore):
        replay_store.close()


def _damaged_copies(cast: Cast, hidden: bool) -> Iterator[tuple[str, bytes, bytes]]:
    """(kind, genuine, damaged copy with the same message id) for each way a copy can fail."""
    genuine = seal(cast, hide_sender=hidden)
    envelope = parse_any(genuine)
    last = len(genuine) - 1
    yield "flipped_last_byte", genuine, flip(genuine, last)
    yield (
        "rerouted_copy",
        genuine,
        with_header(genuine, dataclasses.replace(envelope.header, topic="orders.us")),
    )
    if hidden:
        # dave re-encrypts with a damaged inner signature: fails only at step 20, after decryption
        yield (
            "inner_signature",
            genuine,
            reseal_as_insider(genuine, cast.dave, lambda h, _k: h, lambda inner: flip(inner, 40)),
        )
    forger_id = envelope.header.message_id
    forged = forge(cast, hidden=hidden, signer=cast.mallory, message_id=forger_id)
    genuine_forge = forge(cast, hidden=hidden, message_id=forger_id)
    yield "mallory_same_id", genuine_forge, forged


def test_property5_replay_rejected_copy_is_not_recorded(cast: Cast, hidden: bool) -> None:
    """Defends against a forged or damaged copy "using up" a genuine message's id.

    Each damaged copy arrives first and is refused; the genuine message then still opens on
    the same window. Fails if the id is recorded before every check has passed.
    """
    for kind, genuine, damaged in _damaged_copies(cast, hidden):
        window = ReplayWindow()
        rejected = reason_of(partial(open_as, cast, damaged, window=window))
        assert rejected is not Reason.REPLAYED, kind
        assert open_as(cast, genuine, window=window).payload == MARKER, kind


# --------------------------------------------------------------------------- property 6


def _damage_bobs_entry(data: bytes, bob: Identity) -> bytes:
    """A copy with one byte of bob's wrapped key flipped (same message id)."""
    header_bytes = parse_any(data).header_bytes
    return flip(data, header_bytes.index(bob.public.recipient_id) + 16 + 5)


def _stream_of_twenty(cast: Cast, rng: random.Random) -> list[tuple[bytes, str, bytes]]:
    """(sealed, sender name, payload): 10 from alice (visible), 10 from carol (hidden sender);
    each sender's first five share one cached wrapped content key."""
    messages = []
    for name, sender, hidden in (("alice", cast.alice, False), ("carol", cast.carol, True)):
        cached = wrap_content_key(
            rng.randbytes(32), suite=cast.suite, recipients=[cast.bob.public, cast.dave.public]
        )
        for n in range(10):
            payload = f"{name} #{n}".encode()
            if n < 5:
                data = seal_envelope(
                    payload, sender=sender, wrapped=cached,
                    options=SealOptions(topic=TOPIC, hide_sender=hidden),
                    message_id=rng.randbytes(16), created=NOW + n,
                )  # fmt: skip
            else:
                data = seal(cast, payload, sender=sender, now=NOW + n, hide_sender=hidden)
            messages.append((data, name, payload))
    return messages


Message = tuple[bytes, str, bytes]  # sealed bytes, sender's pinned name, payload


def _sealer_stream(cast: Cast) -> list[Message]:
    """The same twenty messages through letterlock.Sealer (its own wrapped-key cache)."""
    messages = []
    for name, sender, hidden in (("alice", cast.alice, False), ("carol", cast.carol, True)):
        sealer = letterlock.Sealer(sender)
        for n in range(10):
            payload = f"{name} #{n}".encode()
            data = sealer.seal(
                payload, recipients=[cast.bob.public, cast.dave.public], topic=TOPIC,
                now=NOW + n, hide_sender=hidden,
            )  # fmt: skip
            messages.append((data, name, payload))
    blocks = {parse_any(data).header.recipients for data, _, _ in messages}
    # alice's visible messages share one cached block; carol's hidden ones never reuse a key
    assert len(blocks) == 1 + 10
    return messages


def _deliver_disordered(
    cast: Cast, messages: list[Message], open_one: Callable[[bytes], Opened]
) -> None:
    """Deliver ``messages`` shuffled with 4 lost, 6 duplicated and 4 damaged copies; check that
    every surviving original opens with its own payload and sender, and every later copy of an
    opened message is refused as replayed."""
    rng = random.Random(6)
    lost = {0, 10, 7, 15}  # including each sender's first message under a cached key
    survivors = [i for i in range(len(messages)) if i not in lost]
    stream = [*survivors, *rng.sample(survivors, 6)]
    chosen = rng.sample(survivors, 4)
    damaged = {i: flip(messages[i][0], len(messages[i][0]) - 2) for i in chosen[:2]}
    damaged |= {i: _damage_bobs_entry(messages[i][0], cast.bob) for i in chosen[2:]}
    stream += [-1 - i for i in damaged]
    rng.shuffle(stream)
    opened: set[int] = set()
    for item in stream:
        if item < 0:
            rejection(partial(open_one, damaged[-1 - item]))
            continue
        data, name, payload = messages[item]
        if item in opened:
            assert reason_of(partial(open_one, data)) is Reason.REPLAYED
            continue
        result = open_one(data)
        assert (result.payload, result.sender.name) == (payload, name)
        opened.add(item)
    assert opened == set(survivors)


def test_property6_independence_shuffled_lossy_duplicated_stream(cast: Cast) -> None:
    """Defends against one message's fate depending on another's: a lost first message, a
    reordered, duplicated or damaged one, a content key shared by several messages, visible
    and hidden senders interleaved.

    Damaged copies have a flipped signature byte or a flipped byte in bob's recipient entry.
    Fails if the window orders messages (a sequence number), if a failure is recorded, or if
    state from one message leaks into the next.
    """
    window = ReplayWindow()

    def open_one(data: bytes) -> Opened:
        return open_as(cast, data, window=window, now=NOW + 20)

    _deliver_disordered(cast, _stream_of_twenty(cast, random.Random(20)), open_one)


def test_property6_independence_holds_through_sealer_and_opener_caches(cast: Cast) -> None:
    """Defends the speed-ups (Sealer reuses a wrapped content key, Opener caches HPKE results)
    against coupling messages: the same disordered stream, through both caches."""
    opener = letterlock.Opener(cast.bob, trust=cast.pins(), replay=ReplayWindow())

    def open_one(data: bytes) -> Opened:
        return opener.open(data, topic=TOPIC, now=NOW + 20)

    _deliver_disordered(cast, _sealer_stream(cast), open_one)
    assert opener.cache.hits > 0  # the cache really served some messages


def test_property6_independence_rejected_message_never_enters_the_unwrap_cache(
    cast: Cast,
) -> None:
    """Defends against cache poisoning: a damaged copy must not be cached, and a cached entry
    must not let a message skip the commitment check.

    Two hidden-sender messages share one recipient block (a sender may reuse a content key;
    letterlock's Sealer does not for hidden senders, a hazmat sender can). A copy with a broken tag
    passes HPKE and the commitment but fails the AEAD: nothing may be cached. After the
    genuine message opens (and is cached), a relay's copy of the second message with another
    commitment must still fail as bad_commitment, and the genuine second one opens from the
    cache. Fails if the Opener caches before the whole envelope has opened.
    """
    wrapped = wrap_content_key(HONEST_KEY, suite=cast.suite, recipients=[cast.bob.public])
    first, second = (
        seal_envelope(
            MARKER,
            sender=cast.alice,
            wrapped=wrapped,
            options=SealOptions(topic=TOPIC, hide_sender=True),
            message_id=bytes([n]) * 16,
            created=NOW,
        )
        for n in range(2)
    )
    opener = letterlock.Opener(cast.bob, trust=cast.pins(), replay=ReplayWindow())
    damaged = flip(first, len(first) - 1)
    assert reason_of(partial(opener.open, damaged, now=NOW)) is Reason.DECRYPT_FAILED
    assert len(opener.cache) == 0
    assert opener.open(first, now=NOW).payload == MARKER
    assert len(opener.cache) == 1
    header = parse_any(second).header
    recommitted = with_header(second, dataclasses.replace(header, commitment=bytes(32)))
    assert reason_of(partial(opener.open, recommitted, now=NOW)) is Reason.BAD_COMMITMENT
    assert opener.open(second, now=NOW).payload == MARKER
    assert opener.cache.hits == 2  # the re-committed copy and the second message were cache hits


# --------------------------------------------------------------------------- property 7


def _with_byte(index: int, value: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:index] + bytes([value]) + data[index + 1 :]


PARSE_REFUSALS: dict[str, tuple[Callable[[bytes], bytes], Limits, Reason]] = {
    "over_max_size": (lambda d: d, Limits(max_size=200), Reason.OVER_LIMIT),
    "too_many_recipients": (lambda d: d, Limits(max_recipients=1), Reason.OVER_LIMIT),
    "too_many_headers": (lambda d: d, Limits(max_headers=1), Reason.OVER_LIMIT),
    "truncated": (lambda d: d[:-1], DEFAULT_LIMITS, Reason.MALFORMED),
    "trailing_byte": (lambda d: d + b"\x00", DEFAULT_LIMITS, Reason.MALFORMED),
    "bad_magic": (_with_byte(0, ord("X")), DEFAULT_LIMITS, Reason.MALFORMED),
    "short": (lambda d: d[:5], DEFAULT_LIMITS, Reason.MALFORMED),
    "unknown_version": (_with_byte(3, 2), DEFAULT_LIMITS, Reason.UNSUPPORTED),
    "unknown_suite": (_with_byte(4, 0x05), DEFAULT_LIMITS, Reason.UNSUPPORTED),
    "unknown_flag": (_with_byte(5, 0x04), DEFAULT_LIMITS, Reason.UNSUPPORTED),  # not 0x02: in use
    "expires_equals_created": (
        lambda d: d[:30] + d[22:30] + d[38:],
        DEFAULT_LIMITS,
        Reason.MALFORMED,
    ),
}


@pytest.mark.parametrize("case", PARSE_REFUSALS)
def test_property7_strict_parsing_refuses_before_any_cryptography(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Defends against hostile input reaching cryptography (CPU exhaustion, parser confusion).

    Over-limit and malformed envelopes are refused with the spec's reason while every crypto
    entry point (hkdf, digest, AEAD, HPKE unwrap, signature verify) is booby-trapped. Fails if
    a cap is checked late or a malformed field slips through to the crypto layer.
    """
    edit, limits, reason = PARSE_REFUSALS[case]
    data = edit(seal(cast))
    calls = spy_on(monkeypatch, CRYPTO_ENTRY_POINTS, forbid=True)
    assert reason_of(lambda: open_as(cast, data, limits=limits)) is reason
    assert calls == []


def test_property7_strict_parsing_suite_not_allowed_before_any_cryptography(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defends against a message choosing an algorithm the receiver did not allow."""
    data = seal(cast)
    other = next(s for s in Suite if s is not cast.suite)
    calls = spy_on(monkeypatch, CRYPTO_ENTRY_POINTS, forbid=True)
    rejected = reason_of(
        lambda: letterlock.open(
            data, identity=cast.bob, trust=cast.pins(), replay=ReplayWindow(), suites=[other]
        )
    )
    assert rejected is Reason.SUITE_NOT_ALLOWED
    assert calls == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("future", Reason.NOT_YET_VALID),
        ("expired", Reason.EXPIRED),
        ("wrong_topic", Reason.WRONG_TOPIC),
        ("replayed", Reason.REPLAYED),
        ("not_for_me", Reason.NOT_FOR_ME),
    ],
)
def test_property7_strict_parsing_cheap_refusals_use_no_cryptography(
    cast: Cast, monkeypatch: pytest.MonkeyPatch, case: str, reason: Reason
) -> None:
    """Defends against a flood of stale, misrouted or replayed copies costing a verification each.

    Steps 8 to 12 of the open procedure run before any cryptography. Fails if they move after
    the signature check or decryption.
    """
    sealed = seal(cast)
    window = ReplayWindow()
    open_as(cast, sealed, window=window)
    calls = spy_on(monkeypatch, CRYPTO_ENTRY_POINTS, forbid=True)
    attempts: dict[str, Callable[[], object]] = {
        "future": lambda: open_as(cast, sealed, now=NOW - 301),
        "expired": lambda: open_as(cast, sealed, now=NOW + 600),
        "wrong_topic": lambda: open_as(cast, sealed, topic="elsewhere"),
        "replayed": lambda: open_as(cast, sealed, window=window),
        "not_for_me": lambda: open_as(cast, sealed, cast.eve),
    }
    assert reason_of(attempts[case]) is reason
    assert calls == []


def test_property7_strict_parsing_reencoding_gives_the_same_bytes(cast: Cast, hidden: bool) -> None:
    """Defends against two byte strings meaning the same message (malleability, cache confusion).

    Fails if the codec accepts a non-canonical form or re-encodes differently.
    """
    sealed = seal(cast, hide_sender=hidden)
    envelope = parse_any(sealed)
    assert reencoded(envelope) == sealed
    assert encode_header(envelope.header) == envelope.header_bytes
    assert sealed.startswith(envelope.header_bytes)


@pytest.mark.parametrize(("index", "value"), [(3, 0), (3, 2), (3, 255), (4, 0), (4, 5), (4, 255)])
def test_property7_strict_parsing_unknown_version_or_suite_is_unsupported(
    cast: Cast, index: int, value: int
) -> None:
    """Defends against a downgrade or an algorithm the receiver never agreed to.

    Fails if an unknown version or suite byte is tolerated or misreported.
    """
    data = _with_byte(index, value)(seal(cast))
    assert reason_of(lambda: open_as(cast, data)) is Reason.UNSUPPORTED
    assert reason_of(lambda: parse_any(data)) is Reason.UNSUPPORTED


# --------------------------------------------------------------------------- property 8


def _replayed(cast: Cast) -> None:
    sealed, window = seal(cast), ReplayWindow()
    open_as(cast, sealed, window=window)
    open_as(cast, sealed, window=window)


def _untrusted(cast: Cast) -> None:
    pins = cast.pins()
    pins.revoke("alice")
    open_as(cast, seal(cast), trust=pins)


def _hidden_decrypt_failed(cast: Cast) -> None:
    sealed = seal(cast, hide_sender=True)
    open_as(cast, flip(sealed, len(sealed) - 20))


REASON_SCENARIOS: dict[Reason, Callable[[Cast], object]] = {
    Reason.OVER_LIMIT: lambda c: open_as(c, seal(c), limits=Limits(max_size=100)),
    Reason.MALFORMED: lambda c: open_as(c, forge(c, padding=b"\x00\x01")),
    Reason.UNSUPPORTED: lambda c: open_as(c, _with_byte(3, 9)(seal(c))),
    Reason.SUITE_NOT_ALLOWED: lambda c: letterlock.open(
        seal(c), identity=c.bob, trust=c.pins(), replay=ReplayWindow(), suites=[]
    ),
    Reason.NOT_YET_VALID: lambda c: open_as(c, seal(c, now=NOW + 3600)),
    Reason.EXPIRED: lambda c: open_as(c, seal(c, expires_in=1), now=NOW + 1),
    Reason.WRONG_TOPIC: lambda c: open_as(c, seal(c), topic="elsewhere"),
    Reason.REPLAYED: _replayed,
    Reason.NOT_FOR_ME: lambda c: open_as(c, seal(c), c.eve),
    Reason.UNKNOWN_SENDER: lambda c: open_as(c, seal(c), trust=make_pins()),
    Reason.UNTRUSTED: _untrusted,
    Reason.BAD_SIGNATURE: lambda c: open_as(c, forge(c, hidden=True, signer=c.mallory)),
    Reason.DECRYPT_FAILED: _hidden_decrypt_failed,
    Reason.BAD_COMMITMENT: lambda c: open_as(
        c, forge(c, keys={c.bob: b"\x01" * 32}, commit_key=b"\x02" * 32)
    ),
}


class _BlindStore(MemoryReplayStore):
    """A store whose cheap lookup misses, as when two consumers race: step 21 decides."""

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        return False


INTO_SCENARIOS: dict[str, tuple[Callable[[Cast], bytes], Reason]] = {
    "inner_padding": (lambda c: forge(c, padding=b"\x00\x01"), Reason.MALFORMED),
    "hidden_bad_signature": (
        lambda c: forge(c, hidden=True, signer=c.mallory),
        Reason.BAD_SIGNATURE,
    ),
    "hidden_unknown_sender": (
        lambda c: forge(c, hidden=True, claimed=c.eve.public),
        Reason.UNKNOWN_SENDER,
    ),
    "replayed_at_step_21": (lambda c: seal(c, hide_sender=True), Reason.REPLAYED),
}


@pytest.mark.parametrize("case", INTO_SCENARIOS)
def test_property8_rejected_message_leaves_no_plaintext_in_the_callers_buffer(
    cast: Cast, case: str
) -> None:
    """Defends against plaintext of a failed message being *written* where the caller reads.

    Opener.open(into=buffer) decrypts in place; each case fails after decryption (malformed
    inner plaintext, bad or unknown hidden signer, replay lost at the atomic record). The
    buffer must come back zeroed. Fails if a rejected message's plaintext is left behind.
    """
    build, expected = INTO_SCENARIOS[case]
    data = build(cast)
    window = ReplayWindow(_BlindStore())
    opener = letterlock.Opener(cast.bob, trust=cast.pins(), replay=window)
    if case == "replayed_at_step_21":
        opener.open(data, topic=TOPIC, now=NOW)
    buffer = bytearray(b"\xaa" * 7)
    assert reason_of(partial(opener.open_into, data, buffer, topic=TOPIC, now=NOW)) is expected
    assert buffer == bytes(len(buffer))


def test_property8_every_reason_code_has_a_scenario() -> None:
    """Keeps the next test complete: a new reason code needs a scenario that reaches it."""
    assert set(REASON_SCENARIOS) == set(Reason)


def _exception_text(exc: BaseException) -> str:
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_property8_one_failure_shape(cast: Cast, reason: Reason) -> None:
    """Defends against failures an attacker can tell apart by type, and plaintext in errors.

    Every reason code is reached through :func:`letterlock.open` and raises exactly Rejected
    (a LetterlockError) carrying that Reason; the exception chain holds no payload text, even
    for failures after decryption (malformed inner plaintext, bad hidden signature). Fails if
    any path raises another type, a wrong reason, or puts the payload in the error.
    """
    exc = rejection(lambda: REASON_SCENARIOS[reason](cast))
    assert type(exc) is Rejected
    assert isinstance(exc, LetterlockError)
    assert isinstance(exc.reason, Reason)
    assert exc.reason is reason
    text = _exception_text(exc)
    for leak in (MARKER.decode(), MARKER.hex(), repr(MARKER), "salary=123456"):
        assert leak not in text
    revived = pickle.loads(pickle.dumps(exc))
    assert (type(revived), revived.reason) == (Rejected, reason)


# --------------------------------------------------------------------------- property 9


def test_property9_metadata_hidden_sender_not_in_sealed_bytes(cast: Cast) -> None:
    """Defends against a relay learning who sent a message when the sender asked to be hidden.

    Neither alice's fingerprint, its 16-byte prefix nor her public key appear anywhere in the
    sealed bytes, yet bob learns it was alice. Fails if the sender key id leaks in the header.
    """
    sealed = seal(cast, hide_sender=True)
    fingerprint = cast.alice.public.fingerprint
    for secret in (fingerprint, fingerprint[:16], cast.alice.public.to_bytes()[7:39]):
        assert secret not in sealed
    assert parse_any(sealed).header.sender_key_id is None
    opened = open_as(cast, sealed)
    assert (opened.sender.name, opened.sender.key_id) == ("alice", fingerprint)
    assert fingerprint in seal(cast)  # control: the visible form does carry it


def test_property9_metadata_hidden_sender_has_no_visible_signature(cast: Cast) -> None:
    """Defends against a relay identifying a hidden sender by testing known public keys.

    The relay holds every public key and, worst case, guesses the payload. No window of the
    sealed bytes verifies as alice's signature over either signed message. Fails if the
    signature is left outside the ciphertext.
    """
    sealed = seal(cast, hide_sender=True)
    envelope = parse_any(sealed)
    assert envelope.signature is None
    suite, size = cast.suite, cast.suite.sizes.signature
    digest_ct = _crypto.digest(suite, envelope.ciphertext)
    digest_payload = _crypto.digest(suite, MARKER)
    ct_length = len(envelope.ciphertext)
    candidates = [cast.alice, cast.carol, cast.mallory]
    for candidate in candidates:
        fingerprint = candidate.public.fingerprint
        messages = (
            signed_visible(suite, envelope.header_bytes, digest_ct),
            signed_hidden(suite, envelope.header_bytes, ct_length, fingerprint, digest_payload),
        )
        starts = range(len(sealed) - size + 1) if candidate is cast.alice else [len(sealed) - size]
        for start in starts:
            window = sealed[start : start + size]
            assert not any(candidate.public.verify(window, m) for m in messages)
    if suite is Suite.X25519:  # Ed25519 is deterministic: the exact signature must not appear
        alice_fp = cast.alice.public.fingerprint
        signed = signed_hidden(suite, envelope.header_bytes, ct_length, alice_fp, digest_payload)
        assert cast.alice.sign(signed) not in sealed


def _ciphertext_length(data: bytes) -> int:
    return len(parse_any(data).ciphertext)


@pytest.mark.parametrize("hide_sender", [False, True], ids=["visible", "hidden"])
def test_property9_metadata_padme_makes_a_bucket_one_size(cast: Cast, hide_sender: bool) -> None:
    """Defends against a relay inferring the payload from its exact length.

    With pad="padme" the inner plaintext is exactly padme(inner length) long, so payloads of
    different lengths in one bucket give envelopes of one size. Fails if padding is ignored or
    computed on the wrong length.
    """
    prefix = 8 + (32 + cast.suite.sizes.signature if hide_sender else 0)
    sizes: dict[int, set[int]] = {}
    for length in range(990, 1040, 7):
        data = letterlock.seal(
            bytes(length), sender=cast.alice, recipients=[cast.bob.public], topic=TOPIC,
            now=NOW, hide_sender=hide_sender, pad="padme",
        )  # fmt: skip
        bucket = padme(prefix + length)
        assert _ciphertext_length(data) == bucket + 16
        sizes.setdefault(bucket, set()).add(len(data))
        assert open_as(cast, data, topic=TOPIC).payload == bytes(length)
    assert all(len(lengths) == 1 for lengths in sizes.values())
    assert len(sizes) < 8 / 2  # several lengths really shared a bucket


def test_property9_metadata_block_padding_makes_a_block_one_size(cast: Cast) -> None:
    """Defends the same as above with a fixed block size (pad=256): one size per block."""
    lengths = {}
    for payload_length in (0, 1, 100, 248, 249):
        data = letterlock.seal(
            bytes(payload_length), sender=cast.alice, recipients=[cast.bob.public],
            topic=TOPIC, now=NOW, pad=256,
        )  # fmt: skip
        lengths[payload_length] = _ciphertext_length(data) - 16
    assert lengths == {0: 256, 1: 256, 100: 256, 248: 256, 249: 512}
    unpadded = {
        len(letterlock.seal(bytes(n), sender=cast.alice, recipients=[cast.bob.public], topic=TOPIC))
        for n in (0, 1)
    }
    assert len(unpadded) == 2  # control: without padding the length shows


def test_property9_metadata_padme_bound_holds() -> None:
    """Checks Padmé against the spec (section 7): at most 12% overhead, O(log log L) bits leaked.

    padme(L) is the smallest length >= L whose low E - S bits are zero, E = floor(log2 L),
    S = floor(log2 E) + 1; so a length in [2^E, 2^(E+1)) pads to one of at most 2^S + 1 sizes.
    """
    for length in [*range(0, 1 << 14), *(2**k + d for k in range(14, 40) for d in (-1, 0, 1))]:
        padded = padme(length)
        assert padded >= length
        if length < 2:
            assert padded == length
            continue
        e = length.bit_length() - 1
        zero_bits = e - e.bit_length()
        assert padded % (1 << zero_bits) == 0
        assert padded - length < 1 << zero_bits
        assert (padded - length) / length <= 0.12
        assert padded <= 1 << (e + 1)
