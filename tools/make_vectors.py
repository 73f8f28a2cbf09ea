"""Generate the letterlock test vectors (``docs/spec/vectors.md``).

Usage: ``python tools/make_vectors.py OUTDIR`` writes ``OUTDIR/<suite>/<name>.json`` for the four
suites and removes any other ``*.json`` left in those directories.

Everything a vector states is fixed: keys, message ids, content keys, times. Only the bytes that
pyca/cryptography randomises itself (HPKE ephemeral keys, ECDSA and ML-DSA signatures) differ
between runs; the outcomes and every other field do not.

Keys. The private identity of role ``R`` (alice, bob, carol, dave, mallory) in suite ``X`` is
``"LLS" 0x01 suite_id || u16 len || sk || u16 len || ek`` (section 3.2) where ``sk || ek`` are
the first ``len(sk) + len(ek)`` bytes of SHAKE-256("letterlock test vector key X R"). An EC
scalar (the whole key for p256/p384, the last 48 bytes of each pq key) outside ``[1, n-1]`` is
replaced by SHAKE-256(label + " signature retry <i>") (or " encryption retry <i>") for
i = 1, 2, ... until it fits; no current label needs this.

Per vector ``V`` of suite ``X``: message id = SHA-256("letterlock test vector message id X V")
[:16], content key = SHA-256("letterlock test vector content key X V").

Cases marked "malicious" build the envelope by hand with the real algorithms (a sender that signs
whatever it likes); each breaks exactly one check of section 6, so its reason is unambiguous.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

# Pure-Python edwards25519 (stdlib only), shared with the tests that prove the Ed25519 cases.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from independent import edwards25519, mlkem1024_p384, rfc9180
from letterlock import (
    CredentialBlock,
    CredentialFormat,
    Identity,
    PublicIdentity,
    Reason,
    SealOptions,
    Suite,
    _crypto,
    hazmat,
)
from letterlock.core.envelope import (
    DEFAULT_LIMITS,
    Envelope,
    Header,
    encode_envelope,
    encode_header,
    parse,
)
from letterlock.core.protocol import (
    LABEL_WRAP,
    Padding,
    WrappedKey,
    _info,
    commitment_of,
    nonce_of,
    payload_key,
    signed_hidden,
    signed_visible,
)

FORMAT: Final = "letterlock-vector-v1"
NOW: Final = 1_800_000_000
CREATED: Final = NOW - 60
MAX_AGE: Final = 3600
SKEW: Final = 300
TOPIC: Final = "orders.eu"
PAYLOAD: Final = b"order 42: three crates of apples for Rotterdam"
ROLES: Final = ("alice", "bob", "carol", "dave", "mallory")
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_ORDER: Final = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)
ED25519_ORDER: Final = 2**252 + 27742317777372353535851937790883648493
EC_ORDER: Final = {Suite.P256: P256_ORDER, Suite.P384: P384_ORDER, Suite.PQ: P384_ORDER}
OTHER_SUITE: Final = {
    Suite.P256: Suite.X25519,
    Suite.P384: Suite.P256,
    Suite.X25519: Suite.P256,
    Suite.PQ: Suite.P256,
}
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


# --------------------------------------------------------------------------- fixed keys


def _fit_scalar(suite: Suite, key: bytes, label: bytes) -> bytes:
    """Re-hash the EC scalar at the end of ``key`` until it lies in [1, n-1]."""
    order = EC_ORDER.get(suite)
    if order is None:
        return key
    size = (order.bit_length() + 7) // 8
    seed, scalar = key[:-size], key[-size:]
    retry = 0
    while not 1 <= int.from_bytes(scalar, "big") < order:
        retry += 1
        scalar = hashlib.shake_256(label + b" retry " + str(retry).encode()).digest(size)
    return seed + scalar


def private_encoding(suite: Suite, role: str) -> bytes:
    """The fixed private identity of ``role`` in ``suite`` (see the module docstring)."""
    label = f"letterlock test vector key {suite.label} {role}".encode()
    sizes = suite.sizes
    stream = hashlib.shake_256(label).digest(sizes.sig_private + sizes.kem_private)
    sig = _fit_scalar(suite, stream[: sizes.sig_private], label + b" signature")
    kem = _fit_scalar(suite, stream[sizes.sig_private :], label + b" encryption")
    return b"".join(
        (b"LLS\x01", bytes([suite.value]), _U16.pack(len(sig)), sig, _U16.pack(len(kem)), kem)
    )


_IDENTITIES: dict[tuple[Suite, str], Identity] = {}


def identity(suite: Suite, role: str) -> Identity:
    key = (suite, role)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = hazmat.identity_from_private_bytes(private_encoding(suite, role))
    return _IDENTITIES[key]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class Trusted:
    name: str
    identity: PublicIdentity
    allowed: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """The receiver's situation, as ``vectors.md`` describes it."""

    identity: Identity
    suites: tuple[Suite, ...]
    trusted: tuple[Trusted, ...]
    max_size: int = DEFAULT_LIMITS.max_size
    max_recipients: int = DEFAULT_LIMITS.max_recipients
    max_headers: int = DEFAULT_LIMITS.max_headers
    max_age: int = MAX_AGE
    skew: int = SKEW
    now: int = NOW
    topic: str | None = TOPIC
    seen: tuple[tuple[bytes, bytes], ...] = ()  # (sender key id, message id)
    hidden_sender: bool = DEFAULT_LIMITS.hidden_sender
    max_hidden_size: int = DEFAULT_LIMITS.max_hidden_size
    max_credentials_size: int = DEFAULT_LIMITS.max_credentials_size


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """What a sender seals; for a success vector also the expected outcome (signed by alice)."""

    message_id: bytes
    content_key: bytes = field(repr=False)
    recipients: tuple[PublicIdentity, ...]
    payload: bytes = PAYLOAD
    topic: str = TOPIC
    created: int = CREATED
    expires: int | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    hide_sender: bool = False
    pad: Padding = None
    credentials: CredentialBlock | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What a case produces: the receiver, the envelope and the outcome it must reach."""

    receiver: Receiver
    envelope: bytes
    reason: Reason | None = None
    opened: Message | None = None
    signer: PublicIdentity | None = None  # a success's signer, listed as "alice"; None: alice


@dataclass(frozen=True, slots=True, kw_only=True)
class Kit:
    """The identities of one suite and the fixed values of one named vector."""

    suite: Suite
    name: str

    def __getattr__(self, role: str) -> Identity:
        if role not in ROLES:
            raise AttributeError(role)
        return identity(self.suite, role)

    def derive(self, what: str, size: int) -> bytes:
        text = f"letterlock test vector {what} {self.suite.label} {self.name}"
        return hashlib.sha256(text.encode()).digest()[:size]

    def message(self, **changes: Any) -> Message:
        base = Message(
            message_id=self.derive("message id", 16),
            content_key=self.derive("content key", 32),
            recipients=(self.bob.public,),
        )
        return replace(base, **changes)

    def receiver(self, **changes: Any) -> Receiver:
        base = Receiver(
            identity=self.bob,
            suites=(self.suite,),
            trusted=(Trusted(name="alice", identity=self.alice.public),),
        )
        return replace(base, **changes)


# --------------------------------------------------------------------------- sealing


def wrap(k: Kit, m: Message) -> WrappedKey:
    return hazmat.wrap_content_key(m.content_key, suite=k.suite, recipients=m.recipients)


def seal(k: Kit, m: Message) -> bytes:
    """An honest envelope from alice, through the deterministic hazmat path."""
    options = SealOptions(
        topic=m.topic,
        expires_in=None if m.expires is None else m.expires - m.created,
        content_type=m.content_type,
        headers=dict(m.headers),
        hide_sender=m.hide_sender,
        pad=m.pad,
    )
    sender = k.alice
    if m.credentials is not None:
        block = m.credentials
        sender = sender.with_credentials(
            block.format, block.items, status_version=block.status_version
        )
    return hazmat.seal_envelope(
        m.payload,
        sender=sender,
        wrapped=wrap(k, m),
        options=options,
        message_id=m.message_id,
        created=m.created,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RawHeader:
    """Header fields as bytes, encoded without any check, so that a case can break one rule."""

    magic: bytes = b"LLK"
    version: int = 1
    suite_id: int
    flags: int
    message_id: bytes
    created: int
    expires: int
    topic: bytes
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    sender_key_id: bytes | None
    recipients: tuple[tuple[bytes, bytes], ...]
    commitment: bytes
    credentials: bytes = b""  # the credential block's bytes (section 4.1), as given

    def encode(self) -> bytes:
        out = [
            self.magic,
            bytes([self.version, self.suite_id, self.flags]),
            self.message_id,
            struct.pack(">QQH", self.created, self.expires, len(self.topic)),
            self.topic,
            bytes([len(self.content_type)]),
            self.content_type,
            bytes([len(self.headers)]),
        ]
        for name, value in self.headers:
            out += [bytes([len(name)]), name, _U16.pack(len(value)), value]
        out += [self.sender_key_id or b"", self.credentials, _U16.pack(len(self.recipients))]
        for key_id, wrapped in self.recipients:
            out += [key_id, wrapped]
        out.append(self.commitment)
        return b"".join(out)


def raw_header(k: Kit, m: Message, wrapped: WrappedKey) -> RawHeader:
    """The header alice would send for ``m``, headers in the order ``m`` gives them."""
    return RawHeader(
        suite_id=k.suite.value,
        flags=(1 if m.hide_sender else 0) | (0 if m.credentials is None else 2),
        message_id=m.message_id,
        created=m.created,
        expires=m.expires or 0,
        topic=m.topic.encode("utf-8"),
        content_type=(m.content_type or "").encode("ascii"),
        headers=tuple((n.encode("ascii"), v.encode("utf-8")) for n, v in m.headers),
        sender_key_id=None if m.hide_sender else k.alice.public.fingerprint,
        recipients=tuple((e.key_id, e.wrapped) for e in wrapped.recipients),
        commitment=wrapped.commitment,
        credentials=b"" if m.credentials is None else m.credentials.encoded,
    )


def inner_plaintext(
    k: Kit,
    m: Message,
    header_bytes: bytes,
    *,
    signer: Identity | None = None,
    length: int | None = None,
    padding: bytes = b"",
    signed_padding: int | None = None,
) -> bytes:
    """Section 5.4's inner plaintext; a hidden sender claims alice, signed by ``signer``.

    ``signed_padding`` is the padding the hidden sender's signature (its ``ct_len``) vouches
    for, when a case wants it to differ from ``padding``.
    """
    prefix = b""
    if m.hide_sender:
        key_id = k.alice.public.fingerprint
        vouched = len(padding) if signed_padding is None else signed_padding
        ct_length = len(key_id) + k.suite.sizes.signature + 8 + len(m.payload) + vouched + 16
        digest = _crypto.digest(k.suite, m.payload)
        signed = signed_hidden(k.suite, header_bytes, ct_length, key_id, digest)
        prefix = key_id + (signer or k.alice).sign(signed)
    payload_len = len(m.payload) if length is None else length
    return prefix + _U64.pack(payload_len) + m.payload + padding


def _same(header: RawHeader) -> RawHeader:
    return header


def forge(
    k: Kit,
    m: Message,
    *,
    edit: Callable[[RawHeader], RawHeader] = _same,
    inner: Callable[[bytes], bytes] | None = None,
    key: bytes | None = None,
    nonce: bytes | None = None,
    aad: bytes | None = None,
    cut: int | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """A malicious sender's envelope: header edited, then encrypted and signed for real
    (by alice unless ``sign`` is given)."""
    header = edit(raw_header(k, m, wrap(k, m)))
    header_bytes = header.encode()
    plaintext = inner(header_bytes) if inner else inner_plaintext(k, m, header_bytes)
    pk = key or payload_key(k.suite, m.content_key)
    iv = nonce or nonce_of(k.suite, m.message_id)
    aad = header_bytes if aad is None else aad
    ciphertext = _crypto.PayloadCipher(k.suite, pk).seal(iv, plaintext, aad)[:cut]
    signature = None
    if not m.hide_sender:
        signed = signed_visible(k.suite, header_bytes, _crypto.digest(k.suite, ciphertext))
        signature = (sign or k.alice.sign)(signed)
    return encode_envelope(header_bytes, ciphertext, signature)


def check_raw_header(k: Kit) -> None:
    """The hand encoder agrees with the library's for a valid header (guards every forgery)."""
    m = k.message(content_type="a/b", headers=(("x", "1"), ("y", "é")), expires=NOW + 9)
    wrapped = wrap(k, m)
    header = Header(
        suite=k.suite,
        message_id=m.message_id,
        created=m.created,
        expires=m.expires,
        topic=m.topic,
        content_type=m.content_type,
        headers=m.headers,
        sender_key_id=k.alice.public.fingerprint,
        recipients=wrapped.recipients,
        commitment=wrapped.commitment,
    )
    if raw_header(k, m, wrapped).encode() != encode_header(header):
        raise AssertionError("RawHeader.encode disagrees with encode_header")


# --------------------------------------------------------------------------- byte surgery


def layout(envelope: bytes) -> Envelope:
    return parse(envelope, suites=frozenset(Suite), limits=DEFAULT_LIMITS)


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def splice(data: bytes, start: int, new: bytes) -> bytes:
    return data[:start] + new + data[start + len(new) :]


def ct_start(envelope: bytes) -> int:
    return len(layout(envelope).header_bytes) + 4


def sig_start(k: Kit, envelope: bytes) -> int:
    return len(envelope) - k.suite.sizes.signature


def ecdsa_start(k: Kit, envelope: bytes) -> int:
    """Offset of the ECDSA r||s: the whole signature, or its tail for pq."""
    scalar = (EC_ORDER[k.suite].bit_length() + 7) // 8
    return len(envelope) - 2 * scalar


def middle_recipient(k: Kit, roles: tuple[str, ...]) -> Identity:
    people = sorted((identity(k.suite, r) for r in roles), key=lambda i: i.public.recipient_id)
    return people[len(people) // 2]


# --------------------------------------------------------------------------- cases

CaseFn = Callable[[Kit], Result]


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    name: str
    description: str
    build: CaseFn
    suites: frozenset[Suite]


CASES: list[Case] = []


def case(
    name: str, description: str, *, suites: tuple[Suite, ...] = tuple(Suite)
) -> Callable[[CaseFn], CaseFn]:
    """Register a case for ``suites`` (all four unless a check exists only in some)."""

    def register(build: CaseFn) -> CaseFn:
        CASES.append(
            Case(name=name, description=description, build=build, suites=frozenset(suites))
        )
        return build

    return register


def ok(k: Kit, m: Message, **receiver: Any) -> Result:
    return Result(receiver=k.receiver(**receiver), envelope=seal(k, m), opened=m)


def no(reason: Reason, k: Kit, envelope: bytes, **receiver: Any) -> Result:
    return Result(receiver=k.receiver(**receiver), envelope=envelope, reason=reason)


HEADERS: Final = (
    ("city", "Zürich"),
    ("priority", "high"),
    ("route", "eu-west"),
    ("trace.id", "4bf92f3577b34da6"),
    ("x-tenant_id", "acme"),
)


@case("success-basic", "visible sender, one recipient, no options")
def _success_basic(k: Kit) -> Result:
    return ok(k, k.message())


@case("success-hidden-sender", "sender key id and signature inside the ciphertext")
def _success_hidden(k: Kit) -> Result:
    return ok(k, k.message(hide_sender=True))


@case("success-padded-padme", "300-byte payload, Padme padding (inner 308 -> 320 bytes)")
def _success_padme(k: Kit) -> Result:
    return ok(k, k.message(payload=hashlib.shake_256(b"padme").digest(300), pad="padme"))


@case("success-padded-block", "50-byte payload padded to a 64-byte block (inner 58 -> 64)")
def _success_block(k: Kit) -> Result:
    return ok(k, k.message(payload=hashlib.shake_256(b"block").digest(50), pad=64))


@case("success-hidden-sender-padded", "hidden sender and Padme padding together")
def _success_hidden_padded(k: Kit) -> Result:
    return ok(k, k.message(hide_sender=True, pad="padme"))


@case("success-three-recipients-middle", "bob, carol, dave; the receiver holds the 2nd entry")
def _success_three(k: Kit) -> Result:
    roles = ("bob", "carol", "dave")
    m = k.message(recipients=tuple(identity(k.suite, r).public for r in roles))
    return ok(k, m, identity=middle_recipient(k, roles))


@case("success-content-type-and-headers", "content type and five application headers")
def _success_headers(k: Kit) -> Result:
    return ok(k, k.message(content_type="application/json; charset=utf-8", headers=HEADERS))


@case("success-expires-in-future", "expiry one hour after now")
def _success_expires(k: Kit) -> Result:
    return ok(k, k.message(expires=NOW + 3600))


@case("success-unicode-topic", "topic with 2-, 3- and 4-byte UTF-8 characters")
def _success_unicode(k: Kit) -> Result:
    topic = "commandes/été/東京/🚚"
    return ok(k, k.message(topic=topic), topic=topic)


@case("success-empty-payload", "zero-length payload")
def _success_empty(k: Kit) -> Result:
    return ok(k, k.message(payload=b""))


@case("success-receiver-any-topic", "the receiver expects no particular topic (null)")
def _success_any_topic(k: Kit) -> Result:
    return ok(k, k.message(topic="telemetry/42"), topic=None)


@case("success-at-limits", "created = now + skew; size, recipients, headers equal the limits")
def _success_limits(k: Kit) -> Result:
    m = k.message(created=NOW + SKEW, headers=HEADERS[:2])
    envelope = seal(k, m)
    receiver = k.receiver(max_size=len(envelope), max_recipients=1, max_headers=2)
    return Result(receiver=receiver, envelope=envelope, opened=m)


@case("success-at-window-edge", "created = now - max_age, expires = now + 1")
def _success_window_edge(k: Kit) -> Result:
    return ok(k, k.message(created=NOW - MAX_AGE, expires=NOW + 1))


# over_limit


@case("reject-over-limit-size", "envelope one byte longer than max_size")
def _over_size(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.OVER_LIMIT, k, envelope, max_size=len(envelope) - 1)


@case("reject-over-limit-recipients", "three recipients, max_recipients 2")
def _over_recipients(k: Kit) -> Result:
    m = k.message(recipients=(k.bob.public, k.carol.public, k.dave.public))
    return no(Reason.OVER_LIMIT, k, seal(k, m), max_recipients=2)


@case("reject-over-limit-headers", "three application headers, max_headers 2")
def _over_headers(k: Kit) -> Result:
    return no(Reason.OVER_LIMIT, k, seal(k, k.message(headers=HEADERS[:3])), max_headers=2)


@case("reject-over-limit-header-count-65", "malicious: 65 headers, above the format's 64")
def _over_headers_65(k: Kit) -> Result:
    m = k.message(headers=tuple((f"h{i:02d}", "") for i in range(65)))
    return no(Reason.OVER_LIMIT, k, forge(k, m))


# malformed: structure (step 2 and step 7)


def _edit(**changes: Any) -> Callable[[RawHeader], RawHeader]:
    return lambda header: replace(header, **changes)


def _one_header(name: bytes, value: bytes) -> Callable[[RawHeader], RawHeader]:
    """The header list replaced by one (name, value) pair, encoded as given."""
    return _edit(headers=((name, value),))


#: A topic of exactly 1024 bytes, the format's cap.
LONG_TOPIC: Final = "orders." + "x" * 1017


@case("reject-malformed-bad-magic", "malicious: magic 'LLX' instead of 'LLK'")
def _bad_magic(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_edit(magic=b"LLX")))


@case("reject-malformed-truncated-prefix", "only the first 5 bytes")
def _cut_prefix(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, seal(k, k.message())[:5])


@case("reject-malformed-truncated-in-topic", "cut 3 bytes into the topic")
def _cut_topic(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, seal(k, k.message())[: 6 + 16 + 16 + 2 + 3])


@case("reject-malformed-truncated-in-recipients", "cut in the middle of the wrapped key")
def _cut_recipients(k: Kit) -> Result:
    envelope = seal(k, k.message())
    end = len(layout(envelope).header_bytes) - 32 - k.suite.sizes.wrapped // 2
    return no(Reason.MALFORMED, k, envelope[:end])


@case("reject-malformed-truncated-in-ciphertext", "cut 10 bytes into the ciphertext")
def _cut_ciphertext(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.MALFORMED, k, envelope[: ct_start(envelope) + 10])


@case("reject-malformed-truncated-in-signature", "last byte of the signature missing")
def _cut_signature(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, seal(k, k.message())[:-1])


@case("reject-malformed-trailing-byte", "one 0x00 byte after the signature")
def _trailing(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, seal(k, k.message()) + b"\x00")


@case("reject-malformed-headers-unsorted", "malicious: header names 'route' before 'priority'")
def _headers_unsorted(k: Kit) -> Result:
    m = k.message(headers=(("route", "eu-west"), ("priority", "high")))
    return no(Reason.MALFORMED, k, forge(k, m))


@case("reject-malformed-headers-duplicate", "malicious: header name 'route' twice")
def _headers_duplicate(k: Kit) -> Result:
    m = k.message(headers=(("route", "eu-west"), ("route", "us-east")))
    return no(Reason.MALFORMED, k, forge(k, m))


@case("reject-malformed-header-name-uppercase", "malicious: header name 'Route'")
def _header_uppercase(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(headers=(("Route", "eu-west"),))))


@case(
    "reject-malformed-recipients-unsorted", "malicious: two recipient entries in descending order"
)
def _recipients_unsorted(k: Kit) -> Result:
    m = k.message(recipients=(k.bob.public, k.carol.public))

    def descending(header: RawHeader) -> RawHeader:
        return replace(header, recipients=header.recipients[::-1])

    return no(Reason.MALFORMED, k, forge(k, m, edit=descending))


@case("reject-malformed-recipients-zero", "malicious: recipient count 0")
def _recipients_zero(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_edit(recipients=())))


@case("reject-malformed-topic-empty", "malicious: topic length 0")
def _topic_empty(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_edit(topic=b"")), topic=None)


def _bad_topic(topic: bytes) -> CaseFn:
    def build(k: Kit) -> Result:
        return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_edit(topic=topic)), topic=None)

    return build


#: Topics that break section 4, each signed validly: (name suffix, what, topic).
BAD_TOPICS: Final = (
    ("overlong-utf8", "topic 'orders' + overlong C0 AE", b"orders\xc0\xae"),
    ("surrogate", "topic 'orders.' + surrogate ED A0 80", b"orders.\xed\xa0\x80"),
    ("control-character", "topic 'orders' ESC '.eu'", b"orders\x1b.eu"),
    ("c1-control", "topic 'orders' U+0085 (C2 85) '.eu'", b"orders\xc2\x85.eu"),
)
for _suffix, _what, _topic in BAD_TOPICS:
    case(f"reject-malformed-topic-{_suffix}", f"malicious: {_what}")(_bad_topic(_topic))


@case("reject-malformed-header-value-newline", "malicious: header value 'eu' LF 'west'")
def _header_newline(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(headers=(("route", "eu\nwest"),))))


@case("reject-malformed-content-type-not-printable", "malicious: content type ends in 0x7F")
def _ctype_unprintable(k: Kit) -> Result:
    envelope = forge(k, k.message(), edit=_edit(content_type=b"text/plain\x7f"))
    return no(Reason.MALFORMED, k, envelope)


@case("reject-malformed-expires-not-after-created", "malicious: expires equals created")
def _expires_equal(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_edit(expires=CREATED)))


@case("reject-malformed-ct-len-too-small", "malicious: ct_len 23, below the minimum 24")
def _ct_short(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), cut=23))


@case("reject-malformed-ct-len-too-small-hidden", "malicious: hidden sender, ct_len 55 + S")
def _ct_short_hidden(k: Kit) -> Result:
    cut = 55 + k.suite.sizes.signature
    return no(Reason.MALFORMED, k, forge(k, k.message(hide_sender=True), cut=cut))


def _bad_header_value(value: bytes) -> CaseFn:
    def build(k: Kit) -> Result:
        return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_one_header(b"route", value)))

    return build


#: Header values that break section 4, each signed validly: (name suffix, what, value).
BAD_HEADER_VALUES: Final = (
    (
        "lone-continuation",
        "'eu' 0x80 'west' (a continuation byte with no lead byte)",
        b"eu\x80west",
    ),
    (
        "truncated-sequence",
        "'eu-west' E2 82 (a 3-byte sequence cut at the end of the field)",
        b"eu-west\xe2\x82",
    ),
    (
        "above-10ffff",
        "'eu' F4 90 80 80 (U+110000, above the last code point)",
        b"eu\xf4\x90\x80\x80",
    ),
    ("4097", "of 4097 bytes 'a'", b"a" * 4097),
)
for _suffix, _what, _value in BAD_HEADER_VALUES:
    case(f"reject-malformed-header-value-{_suffix}", f"malicious: header value {_what}")(
        _bad_header_value(_value)
    )


@case("reject-malformed-header-name-65", "malicious: header name of 65 bytes 'h'")
def _name_too_long(k: Kit) -> Result:
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_one_header(b"h" * 65, b"v")))


@case("reject-malformed-topic-1025", "malicious: topic of 1025 bytes ('orders.' and 1018 'x')")
def _topic_too_long(k: Kit) -> Result:
    envelope = forge(k, k.message(), edit=_edit(topic=LONG_TOPIC.encode() + b"x"))
    return no(Reason.MALFORMED, k, envelope, topic=None)


@case(
    "success-at-field-limits",
    "topic of 1024 bytes, a header name of 64 bytes and its value of 4096 bytes",
)
def _success_field_limits(k: Kit) -> Result:
    m = k.message(topic=LONG_TOPIC, headers=(("h" * 64, "v" * 4096),))
    return ok(k, m, topic=LONG_TOPIC)


@case(
    "reject-malformed-recipients-duplicate",
    "malicious: the receiver's own entry twice (two equal recipient key ids)",
)
def _recipients_duplicate(k: Kit) -> Result:
    def twice(header: RawHeader) -> RawHeader:
        return replace(header, recipients=header.recipients * 2)

    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=twice))


# which of malformed and over_limit wins (section 6, step 7: fields in order, a count's cap
# when the count is read)


@case(
    "reject-over-limit-headers-unsorted",
    "malicious: three headers, unsorted, max_headers 2: the count is read (and capped) first",
)
def _over_headers_unsorted(k: Kit) -> Result:
    m = k.message(headers=(("route", "eu-west"), ("priority", "high"), ("city", "Z")))
    return no(Reason.OVER_LIMIT, k, forge(k, m), max_headers=2)


@case(
    "reject-malformed-topic-before-header-count",
    "malicious: topic with ESC and three headers, max_headers 2: the topic comes first",
)
def _topic_before_header_count(k: Kit) -> Result:
    m = k.message(headers=HEADERS[:3])
    envelope = forge(k, m, edit=_edit(topic=b"orders\x1b.eu"))
    return no(Reason.MALFORMED, k, envelope, topic=None, max_headers=2)


@case(
    "reject-malformed-topic-before-recipient-count",
    "malicious: topic length 0 and three recipients, max_recipients 2: the topic comes first",
)
def _topic_before_recipient_count(k: Kit) -> Result:
    m = k.message(recipients=(k.bob.public, k.carol.public, k.dave.public))
    envelope = forge(k, m, edit=_edit(topic=b""))
    return no(Reason.MALFORMED, k, envelope, topic=None, max_recipients=2)


# unsupported, suite_not_allowed


@case("reject-unsupported-version-2", "malicious: version byte 0x02")
def _version_2(k: Kit) -> Result:
    return no(Reason.UNSUPPORTED, k, forge(k, k.message(), edit=_edit(version=2)))


@case("reject-unsupported-suite-0x09", "malicious: suite id 0x09")
def _suite_9(k: Kit) -> Result:
    return no(Reason.UNSUPPORTED, k, forge(k, k.message(), edit=_edit(suite_id=9)))


@case("reject-unsupported-flag-bit", "malicious: flags 0x04 (unknown bit, sender visible)")
def _flag_bit(k: Kit) -> Result:
    return no(Reason.UNSUPPORTED, k, forge(k, k.message(), edit=_edit(flags=0x04)))


# --------------------------------------------------------------- credential block (4.1)

#: Stand-ins for a leaf and an issuer certificate: the envelope carries them as opaque items.
LEAF_ITEM: Final = b"\x30\x82leaf certificate (opaque to the envelope)"
CA_ITEM: Final = b"\x30\x82issuing CA certificate"


def _raw_block(
    status_version: int, kind: int, items: list[bytes], count: int | None = None
) -> bytes:
    """A credential block encoded without any check (``count`` may lie)."""
    head = struct.pack(">QBB", status_version, kind, len(items) if count is None else count)
    return head + b"".join(_U16.pack(len(item)) + item for item in items)


def _carrying(**changes: Any) -> Callable[[RawHeader], RawHeader]:
    """The header with a raw credential block and the CREDENTIALS flag (plus ``changes``)."""
    return lambda header: replace(header, **({"flags": header.flags | 2} | changes))


@case("success-credentials-x509", "a credential block: status version 7, X.509 leaf and CA")
def _success_credentials(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.X509, [LEAF_ITEM, CA_ITEM], status_version=7)
    return ok(k, k.message(credentials=block))


@case("success-credentials-status-only", "a credential block with no items: status version 12")
def _success_status_only(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.NONE, [], status_version=12)
    return ok(k, k.message(credentials=block))


@case("success-credentials-letterlock", "a credential block of format 1, one credential")
def _success_credentials_letterlock(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.LETTERLOCK, [b"LLC\x01 a credential"])
    return ok(k, k.message(credentials=block))


@case("success-credentials-keyset", "a credential block of format 3: a keyset and a signature")
def _success_credentials_keyset(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.KEYSET, [b"LLE\x01 a keyset", b"a signature"])
    return ok(k, k.message(credentials=block))


@case("reject-credentials-hidden-sender", "malicious: HIDDEN_SENDER and CREDENTIALS together")
def _credentials_hidden(k: Kit) -> Result:
    edit = _carrying(credentials=_raw_block(1, 0, []))
    return no(Reason.UNSUPPORTED, k, forge(k, k.message(hide_sender=True), edit=edit))


@case("reject-credentials-unknown-format", "malicious: credential format 4")
def _credentials_format(k: Kit) -> Result:
    edit = _carrying(credentials=_raw_block(1, 4, [LEAF_ITEM]))
    return no(Reason.UNSUPPORTED, k, forge(k, k.message(), edit=edit))


@case("reject-credentials-too-many-items", "malicious: 6 credential items (at most 5)")
def _credentials_six(k: Kit) -> Result:
    edit = _carrying(credentials=_raw_block(1, 2, [CA_ITEM] * 6))
    return no(Reason.OVER_LIMIT, k, forge(k, k.message(), edit=edit))


@case("reject-credentials-empty-item", "malicious: a credential item of length 0")
def _credentials_empty(k: Kit) -> Result:
    edit = _carrying(credentials=_raw_block(1, 2, [LEAF_ITEM, b""]))
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=edit))


@case("reject-credentials-count-without-format", "malicious: format 0 (none) with one item")
def _credentials_none_with_item(k: Kit) -> Result:
    edit = _carrying(credentials=_raw_block(1, 0, [LEAF_ITEM]))
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=edit))


@case("reject-credentials-over-limit", "a block of 96 bytes; the receiver allows 64")
def _credentials_over(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.X509, [bytes(84)])
    envelope = seal(k, k.message(credentials=block))
    return no(Reason.OVER_LIMIT, k, envelope, max_credentials_size=64)


@case("reject-credentials-truncated", "malicious: an item length past the envelope's end")
def _credentials_truncated(k: Kit) -> Result:
    block = _raw_block(1, 2, [LEAF_ITEM])
    lying = block[:10] + _U16.pack(16000) + block[12:]
    return no(Reason.MALFORMED, k, forge(k, k.message(), edit=_carrying(credentials=lying)))


@case("reject-bad-signature-credentials-altered", "the block's status version changed in transit")
def _credentials_altered(k: Kit) -> Result:
    block = CredentialBlock.of(CredentialFormat.X509, [LEAF_ITEM], status_version=7)
    envelope = seal(k, k.message(credentials=block))
    at = envelope.index(block.encoded)
    return no(Reason.BAD_SIGNATURE, k, splice(envelope, at, (8).to_bytes(8, "big")))


@case("reject-unsupported-hidden-sender-refused", "the receiver accepts no hidden senders")
def _hidden_refused(k: Kit) -> Result:
    envelope = seal(k, k.message(hide_sender=True))
    return no(Reason.UNSUPPORTED, k, envelope, hidden_sender=False)


@case(
    "reject-over-limit-hidden-size",
    "hidden-sender envelope one byte longer than max_hidden_size (below max_size)",
)
def _hidden_too_large(k: Kit) -> Result:
    envelope = seal(k, k.message(hide_sender=True))
    return no(Reason.OVER_LIMIT, k, envelope, max_hidden_size=len(envelope) - 1)


@case("success-hidden-at-size-limit", "hidden-sender envelope exactly max_hidden_size bytes")
def _hidden_at_limit(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    envelope = seal(k, m)
    receiver = k.receiver(max_hidden_size=len(envelope))
    return Result(receiver=receiver, envelope=envelope, opened=m)


@case(
    "success-visible-ignores-hidden-settings",
    "visible sender; the receiver refuses hidden senders and caps them at 1 byte",
)
def _visible_hidden_settings(k: Kit) -> Result:
    return ok(k, k.message(), hidden_sender=False, max_hidden_size=1)


@case("reject-suite-not-allowed", "the receiver accepts only another suite")
def _suite_not_allowed(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.SUITE_NOT_ALLOWED, k, envelope, suites=(OTHER_SUITE[k.suite],))


# time, topic, replay


@case("reject-not-yet-valid", "created = now + skew + 1")
def _not_yet_valid(k: Kit) -> Result:
    return no(Reason.NOT_YET_VALID, k, seal(k, k.message(created=NOW + SKEW + 1)))


@case("reject-expired-past-expiry", "expires = now")
def _expired(k: Kit) -> Result:
    return no(Reason.EXPIRED, k, seal(k, k.message(created=NOW - 120, expires=NOW)))


@case("reject-expired-older-than-max-age", "created = now - max_age - 1")
def _too_old(k: Kit) -> Result:
    return no(Reason.EXPIRED, k, seal(k, k.message(created=NOW - MAX_AGE - 1)))


@case("reject-wrong-topic", "sealed for 'orders.eu', re-routed to a receiver of 'orders.us'")
def _wrong_topic(k: Kit) -> Result:
    return no(Reason.WRONG_TOPIC, k, seal(k, k.message()), topic="orders.us")


@case("reject-replayed", "(alice, the message id) is among the pairs the window has recorded")
def _replayed(k: Kit) -> Result:
    m = k.message()
    alice = k.alice.public.fingerprint
    seen = tuple(sorted(((alice, m.message_id), (alice, k.derive("unrelated id", 16)))))
    return no(Reason.REPLAYED, k, seal(k, m), seen=seen)


@case("reject-replayed-hidden", "hidden sender: (alice, id) recorded; refused at step 21")
def _replayed_hidden(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    return no(Reason.REPLAYED, k, seal(k, m), seen=((k.alice.public.fingerprint, m.message_id),))


@case(
    "success-same-id-recorded-for-another-sender",
    "carol's message with this id was recorded: the record is per sender (id squatting)",
)
def _same_id_other_sender(k: Kit) -> Result:
    m = k.message()
    seen = ((k.carol.public.fingerprint, m.message_id),)
    trusted = (
        Trusted(name="alice", identity=k.alice.public),
        Trusted(name="carol", identity=k.carol.public),
    )
    return ok(k, m, seen=seen, trusted=trusted)


@case(
    "success-hidden-same-id-recorded-for-another-sender",
    "hidden sender; carol's message with this id was recorded: per-sender record",
)
def _same_id_other_sender_hidden(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    return ok(k, m, seen=((k.carol.public.fingerprint, m.message_id),))


@case(
    "success-now-below-max-age",
    "now = 100 < max_age = 3600, created = 50: now - max_age is negative (signed arithmetic)",
)
def _now_below_max_age(k: Kit) -> Result:
    return ok(k, k.message(created=50), now=100)


@case("success-created-zero", "created = 0 (the epoch), now = 100: 0 is above the floor -1")
def _created_zero(k: Kit) -> Result:
    return ok(k, k.message(created=0), now=100)


#: "orders.café" with the é precomposed (NFC, U+00E9) and decomposed (NFD, e U+0301).
CAFE_NFC: Final = "orders.caf\u00e9"
CAFE_NFD: Final = "orders.cafe\u0301"


@case(
    "reject-wrong-topic-nfd-sealed-nfc-expected",
    "sealed for 'orders.cafe' + U+0301 (NFD); the receiver expects U+00E9 (NFC): bytes differ",
)
def _topic_nfd(k: Kit) -> Result:
    return no(Reason.WRONG_TOPIC, k, seal(k, k.message(topic=CAFE_NFD)), topic=CAFE_NFC)


@case(
    "reject-wrong-topic-nfc-sealed-nfd-expected",
    "sealed for 'orders.caf' + U+00E9 (NFC); the receiver expects e + U+0301 (NFD)",
)
def _topic_nfc(k: Kit) -> Result:
    return no(Reason.WRONG_TOPIC, k, seal(k, k.message(topic=CAFE_NFC)), topic=CAFE_NFD)


# recipient and trust


@case("reject-not-for-me", "sealed for carol and dave only")
def _not_for_me(k: Kit) -> Result:
    m = k.message(recipients=(k.carol.public, k.dave.public))
    return no(Reason.NOT_FOR_ME, k, seal(k, m))


@case(
    "reject-not-for-me-suite-differs",
    "malicious: an envelope of another (accepted) suite lists the receiver's key id",
)
def _not_for_me_suite(k: Kit) -> Result:
    other = Kit(suite=OTHER_SUITE[k.suite], name=k.name)
    m = other.message(recipients=(other.carol.public,))
    junk = (k.bob.public.recipient_id, k.derive("junk", 32) * 60)
    size = other.suite.sizes.wrapped
    entry = (junk[0], junk[1][:size])

    def add_entry(header: RawHeader) -> RawHeader:
        return replace(header, recipients=tuple(sorted((*header.recipients, entry))))

    trusted = (
        Trusted(name="alice", identity=k.alice.public),
        Trusted(name="alice-" + other.suite.label, identity=other.alice.public),
    )
    envelope = forge(other, m, edit=add_entry)
    return no(Reason.NOT_FOR_ME, k, envelope, suites=(k.suite, other.suite), trusted=trusted)


@case("reject-unknown-sender", "alice is not in the trust list (carol is)")
def _unknown(k: Kit) -> Result:
    trusted = (Trusted(name="carol", identity=k.carol.public),)
    return no(Reason.UNKNOWN_SENDER, k, seal(k, k.message()), trusted=trusted)


@case("reject-unknown-sender-hidden", "hidden sender alice is not in the trust list (step 20)")
def _unknown_hidden(k: Kit) -> Result:
    trusted = (Trusted(name="carol", identity=k.carol.public),)
    return no(Reason.UNKNOWN_SENDER, k, seal(k, k.message(hide_sender=True)), trusted=trusted)


@case("reject-untrusted", "alice is known but not allowed")
def _untrusted(k: Kit) -> Result:
    trusted = (Trusted(name="alice", identity=k.alice.public, allowed=False),)
    return no(Reason.UNTRUSTED, k, seal(k, k.message()), trusted=trusted)


@case("reject-untrusted-hidden", "hidden sender alice is known but not allowed (step 20)")
def _untrusted_hidden(k: Kit) -> Result:
    trusted = (Trusted(name="alice", identity=k.alice.public, allowed=False),)
    return no(Reason.UNTRUSTED, k, seal(k, k.message(hide_sender=True)), trusted=trusted)


@case(
    "reject-untrusted-sender-of-other-suite",
    "malicious: sender key id is the fingerprint of a trusted identity of another suite",
)
def _untrusted_other_suite(k: Kit) -> Result:
    stranger = identity(OTHER_SUITE[k.suite], "alice").public
    envelope = forge(k, k.message(), edit=_edit(sender_key_id=stranger.fingerprint))
    trusted = (
        Trusted(name="alice", identity=k.alice.public),
        Trusted(name="alice-" + stranger.suite.label, identity=stranger),
    )
    return no(Reason.UNTRUSTED, k, envelope, trusted=trusted)


# bad_signature


@case("reject-bad-signature-flipped", "signature byte 10 flipped")
def _sig_flipped(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.BAD_SIGNATURE, k, flip(envelope, sig_start(k, envelope) + 10))


@case("reject-bad-signature-flipped-ciphertext", "ciphertext byte 5 flipped")
def _ct_flipped(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.BAD_SIGNATURE, k, flip(envelope, ct_start(envelope) + 5))


@case("reject-bad-signature-flipped-header-value", "header value 'eu-west' changed to 'du-west'")
def _header_flipped(k: Kit) -> Result:
    envelope = seal(k, k.message(headers=(("route", "eu-west"),)))
    assert envelope.count(b"eu-west") == 1
    return no(Reason.BAD_SIGNATURE, k, flip(envelope, envelope.index(b"eu-west")))


@case("reject-bad-signature-other-key", "malicious: claims alice's key id, signed by mallory")
def _sig_other_key(k: Kit) -> Result:
    return no(Reason.BAD_SIGNATURE, k, forge(k, k.message(), sign=k.mallory.sign))


@case(
    "reject-bad-signature-hidden-repadded",
    "malicious co-recipient: 16 zero bytes of padding added; the signed ct_len differs",
)
def _sig_hidden_repadded(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    envelope = forge(
        k, m, inner=lambda hb: inner_plaintext(k, m, hb, padding=bytes(16), signed_padding=0)
    )
    return no(Reason.BAD_SIGNATURE, k, envelope)


@case("reject-bad-signature-hidden-inner", "malicious: hidden sender claims alice, mallory signs")
def _sig_hidden(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    envelope = forge(k, m, inner=lambda hb: inner_plaintext(k, m, hb, signer=k.mallory))
    return no(Reason.BAD_SIGNATURE, k, envelope)


_EC = (Suite.P256, Suite.P384, Suite.PQ)


@case("reject-bad-signature-ecdsa-r-zero", "ECDSA r replaced by 0", suites=_EC)
def _ecdsa_r_zero(k: Kit) -> Result:
    envelope = seal(k, k.message())
    scalar = (EC_ORDER[k.suite].bit_length() + 7) // 8
    return no(Reason.BAD_SIGNATURE, k, splice(envelope, ecdsa_start(k, envelope), bytes(scalar)))


@case("reject-bad-signature-ecdsa-s-order", "ECDSA s replaced by the group order n", suites=_EC)
def _ecdsa_s_order(k: Kit) -> Result:
    envelope = seal(k, k.message())
    order = EC_ORDER[k.suite]
    scalar = (order.bit_length() + 7) // 8
    start = ecdsa_start(k, envelope) + scalar
    return no(Reason.BAD_SIGNATURE, k, splice(envelope, start, order.to_bytes(scalar, "big")))


@case(
    "reject-bad-signature-ecdsa-part-flipped",
    "last byte (ECDSA part) flipped; the ML-DSA part still verifies",
    suites=(Suite.PQ,),
)
def _pq_ecdsa_flipped(k: Kit) -> Result:
    envelope = seal(k, k.message())
    return no(Reason.BAD_SIGNATURE, k, flip(envelope, len(envelope) - 1))


@case(
    "reject-bad-signature-ed25519-s-not-reduced",
    "Ed25519 S replaced by S + L (non-canonical, RFC 8032 requires S < L)",
    suites=(Suite.X25519,),
)
def _ed25519_s_plus_l(k: Kit) -> Result:
    envelope = seal(k, k.message())
    start = len(envelope) - 32
    s = int.from_bytes(envelope[start:], "little") + ED25519_ORDER
    return no(Reason.BAD_SIGNATURE, k, splice(envelope, start, s.to_bytes(32, "little")))


# Ed25519 signatures no honest signer makes (section 2: the verification rule). Only the key
# holder can make them: they need alice's secret scalar a.


def _alice_scalar(k: Kit) -> int:
    """alice's Ed25519 secret scalar (RFC 8032 5.1.5: SHA-512 of the seed, clamped)."""
    seed = private_encoding(k.suite, "alice")[7:39]
    a = int.from_bytes(hashlib.sha512(seed).digest()[:32], "little")
    return (a & ((1 << 254) - 8)) | (1 << 254)


def _ed25519_key(identity: PublicIdentity) -> bytes:
    return identity.to_bytes()[7:39]


def _signs_with_r(k: Kit, r_encoded: bytes) -> Callable[[bytes], bytes]:
    """alice's signature with the given R and S = k*a (nonce 0): [S]B - [k]A is the identity,
    so the cofactorless equation holds only if ``r_encoded`` is the identity's encoding."""
    a, public = _alice_scalar(k), _ed25519_key(k.alice.public)
    return lambda message: edwards25519.sign_raw(a, public, message, nonce=0, r_encoded=r_encoded)


def torsion_identity(k: Kit) -> PublicIdentity:
    """alice's public identity with a point of order 8 added to her Ed25519 key A = aB: a key of
    mixed order (not of small order, so section 3.1 accepts it)."""
    point = edwards25519.add(
        edwards25519.multiply(_alice_scalar(k), edwards25519.BASE),
        edwards25519.small_order_points()[1],
    )
    ed_key = edwards25519.encode(point)
    x_key = k.alice.public.to_bytes()[41:]
    encoded = b"LLP\x01" + bytes([k.suite.value]) + _U16.pack(32) + ed_key + _U16.pack(32) + x_key
    return hazmat.public_identity_from_bytes(encoded)


def _signs_with_torsion(k: Kit, *, cofactorless_holds: bool) -> Callable[[bytes], bytes]:
    """Signatures under :func:`torsion_identity`: R = rB, S = r + k*a. The cofactored equation
    always holds; the cofactorless one exactly when k = 0 mod 8. The nonce r is re-drawn
    (deterministically from the message) until that is as asked."""
    a, public = _alice_scalar(k), _ed25519_key(torsion_identity(k))

    def sign(message: bytes) -> bytes:
        for attempt in itertools.count():
            seed = b"letterlock test vector ed25519 nonce %d " % attempt + message
            nonce = int.from_bytes(hashlib.sha512(seed).digest(), "little") % ED25519_ORDER
            signature = edwards25519.sign_raw(a, public, message, nonce=nonce)
            challenge = edwards25519.challenge(signature[:32], public, message)
            if (challenge % 8 == 0) == cofactorless_holds:
                return signature
        raise AssertionError("unreachable")

    return sign


_ED = (Suite.X25519,)


@case(
    "success-ed25519-r-identity",
    "alice signs with R = the identity point (nonce 0), S = k*a: the cofactorless equation holds",
    suites=_ED,
)
def _ed25519_r_identity(k: Kit) -> Result:
    m = k.message()
    identity = edwards25519.encode(edwards25519.IDENTITY)
    return Result(
        receiver=k.receiver(), envelope=forge(k, m, sign=_signs_with_r(k, identity)), opened=m
    )


@case(
    "reject-bad-signature-ed25519-r-small-order",
    "alice signs with R = a point of order 8, S = k*a: only the cofactored equation holds",
    suites=_ED,
)
def _ed25519_r_small_order(k: Kit) -> Result:
    r = edwards25519.encode(edwards25519.small_order_points()[1])
    return no(Reason.BAD_SIGNATURE, k, forge(k, k.message(), sign=_signs_with_r(k, r)))


@case(
    "reject-bad-signature-ed25519-r-not-canonical",
    "alice signs with R = the identity encoded with y = p + 1, S = k*a (holds if y is reduced)",
    suites=_ED,
)
def _ed25519_r_not_canonical(k: Kit) -> Result:
    r = (edwards25519.P + 1).to_bytes(32, "little")
    return no(Reason.BAD_SIGNATURE, k, forge(k, k.message(), sign=_signs_with_r(k, r)))


def _torsion_case(*, cofactorless_holds: bool) -> CaseFn:
    """alice, trusted under :func:`torsion_identity`, signs so that the cofactorless
    equation holds (success) or fails (bad_signature; the cofactored one always holds)."""

    def build(k: Kit) -> Result:
        torsion = torsion_identity(k)
        m = k.message()
        sign = _signs_with_torsion(k, cofactorless_holds=cofactorless_holds)
        envelope = forge(k, m, edit=_edit(sender_key_id=torsion.fingerprint), sign=sign)
        receiver = k.receiver(trusted=(Trusted(name="alice", identity=torsion),))
        if cofactorless_holds:
            return Result(receiver=receiver, envelope=envelope, opened=m, signer=torsion)
        return Result(receiver=receiver, envelope=envelope, reason=Reason.BAD_SIGNATURE)

    return build


case(
    "success-ed25519-mixed-order-key",
    "sender key aB + (a point of order 8), trusted; k = 0 mod 8: both equations hold",
    suites=_ED,
)(_torsion_case(cofactorless_holds=True))
case(
    "reject-bad-signature-ed25519-mixed-order-key",
    "sender key aB + (a point of order 8), trusted; k != 0 mod 8: only the cofactored one holds",
    suites=_ED,
)(_torsion_case(cofactorless_holds=False))


# decrypt_failed, bad_commitment, malformed inner


def _replace_entry(key_id: bytes, wrapped: bytes) -> Callable[[RawHeader], RawHeader]:
    def edit(header: RawHeader) -> RawHeader:
        entries = tuple((kid, wrapped if kid == key_id else w) for kid, w in header.recipients)
        return replace(header, recipients=entries)

    return edit


@case("reject-decrypt-failed-tampered-entry", "malicious: receiver's entry altered, re-signed")
def _entry_tampered(k: Kit) -> Result:
    m = k.message()
    entry = wrap(k, m).recipients[0]
    edit = _replace_entry(entry.key_id, flip(entry.wrapped, len(entry.wrapped) - 1))
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, edit=edit))


def _hybrid_entry(k: Kit, content_key: bytes, info: bytes) -> bytes:
    """The receiver's entry with its EC point (p256/p384 ``enc``, pq ``ct_T``) in the X9.62
    hybrid encoding (0x06/0x07): a point OpenSSL decodes, RFC 9180 and section 3.3 refuse."""

    def hybrid(point: bytes) -> bytes:
        return bytes([0x06 | (point[-1] & 1)]) + point[1:]

    kem_public = k.bob.public.to_bytes()[-k.suite.sizes.kem_public :]
    if k.suite is Suite.PQ:
        ml = mlkem.MLKEM1024PublicKey.from_public_bytes(kem_public[:1568])
        ek_t = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), kem_public[1568:])
        ss_pq, ct_pq = ml.encapsulate()
        return mlkem1024_p384.seal_base(ct_pq, ss_pq, ek_t, content_key, info, reencode=hybrid)
    curve = ec.SECP256R1() if k.suite is Suite.P256 else ec.SECP384R1()
    dhkem = rfc9180.DHKEM_P256 if k.suite is Suite.P256 else rfc9180.DHKEM_P384
    ephemeral = ec.generate_private_key(curve)
    receiver = ec.EllipticCurvePublicKey.from_encoded_point(curve, kem_public)
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return dhkem.seal(
        enc=hybrid(point),
        dh=ephemeral.exchange(ec.ECDH(), receiver),
        pk_rm=kem_public,
        plaintext=content_key,
        info=info,
    )


@case(
    "reject-decrypt-failed-enc-hybrid-point",
    "malicious: the receiver's entry with its EC point in X9.62 hybrid form (0x06/0x07), signed",
    suites=(Suite.P256, Suite.P384, Suite.PQ),
)
def _entry_hybrid_point(k: Kit) -> Result:
    m = k.message()
    my_id = k.bob.public.recipient_id
    edit = _replace_entry(my_id, _hybrid_entry(k, m.content_key, _info(k.suite, LABEL_WRAP, my_id)))
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, edit=edit))


@case(
    "reject-decrypt-failed-entry-info-other-kid",
    "malicious: entry wrapped to the receiver with carol's key id in the HPKE info",
)
def _entry_info(k: Kit) -> Result:
    m = k.message()
    info = _info(k.suite, LABEL_WRAP, k.carol.public.recipient_id)
    edit = _replace_entry(k.bob.public.recipient_id, k.bob.public.wrap(m.content_key, info))
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, edit=edit))


@case(
    "reject-decrypt-failed-other-nonce",
    "malicious: ciphertext under the nonce of another message id, signed",
)
def _other_nonce(k: Kit) -> Result:
    m = k.message()
    nonce = nonce_of(k.suite, k.derive("other message id", 16))
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, nonce=nonce))


@case(
    "reject-decrypt-failed-nonce-is-id-prefix",
    "malicious: nonce = the first 96 bits of the message id instead of the derived nonce",
)
def _nonce_prefix(k: Kit) -> Result:
    m = k.message()
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, nonce=m.message_id[:12]))


@case(
    "reject-decrypt-failed-other-payload-key",
    "malicious: ciphertext under the payload key of another content key, signed",
)
def _other_key(k: Kit) -> Result:
    m = k.message()
    key = payload_key(k.suite, k.derive("other content key", 32))
    return no(Reason.DECRYPT_FAILED, k, forge(k, m, key=key))


@case("reject-decrypt-failed-aad-not-header", "malicious: ciphertext with empty AAD, signed")
def _empty_aad(k: Kit) -> Result:
    return no(Reason.DECRYPT_FAILED, k, forge(k, k.message(), aad=b""))


@case("reject-decrypt-failed-hidden-flipped-ciphertext", "hidden sender, ciphertext byte flipped")
def _hidden_ct_flipped(k: Kit) -> Result:
    envelope = seal(k, k.message(hide_sender=True))
    return no(Reason.DECRYPT_FAILED, k, flip(envelope, ct_start(envelope) + 5))


@case("reject-bad-commitment", "malicious: commitment of another content key, signed")
def _bad_commitment(k: Kit) -> Result:
    commitment = commitment_of(k.suite, k.derive("other content key", 32))
    return no(Reason.BAD_COMMITMENT, k, forge(k, k.message(), edit=_edit(commitment=commitment)))


@case("reject-malformed-inner-nonzero-padding", "malicious: padding 00 00 00 01, signed")
def _inner_padding(k: Kit) -> Result:
    m = k.message()
    envelope = forge(k, m, inner=lambda hb: inner_plaintext(k, m, hb, padding=b"\0\0\0\1"))
    return no(Reason.MALFORMED, k, envelope)


@case("reject-malformed-inner-length-too-large", "malicious: payload_len one more than present")
def _inner_length(k: Kit) -> Result:
    m = k.message()
    length = len(m.payload) + 1
    return no(
        Reason.MALFORMED, k, forge(k, m, inner=lambda hb: inner_plaintext(k, m, hb, length=length))
    )


@case("reject-malformed-inner-hidden-nonzero-padding", "malicious: hidden sender, padding 01")
def _inner_hidden_padding(k: Kit) -> Result:
    m = k.message(hide_sender=True)
    envelope = forge(k, m, inner=lambda hb: inner_plaintext(k, m, hb, padding=b"\1"))
    return no(Reason.MALFORMED, k, envelope)


@case(
    "reject-malformed-inner-payload-len-above-32-bits",
    "malicious: payload_len = 2^32 + the real length (right to a reader of the low 32 bits)",
)
def _inner_length_high(k: Kit) -> Result:
    m = k.message()
    length = 2**32 + len(m.payload)
    return no(
        Reason.MALFORMED, k, forge(k, m, inner=lambda hb: inner_plaintext(k, m, hb, length=length))
    )


# --------------------------------------------------------------------------- output


def _receiver_json(r: Receiver) -> dict[str, Any]:
    optional: dict[str, Any] = {}
    if r.max_credentials_size != DEFAULT_LIMITS.max_credentials_size:
        optional["max_credentials_size"] = r.max_credentials_size
    return optional | {
        "private_identity": hazmat.identity_to_private_bytes(r.identity).hex(),
        "suites": [s.label for s in r.suites],
        "max_size": r.max_size,
        "max_recipients": r.max_recipients,
        "max_headers": r.max_headers,
        "max_age": r.max_age,
        "skew": r.skew,
        "now": r.now,
        "topic": r.topic,
        "hidden_sender": r.hidden_sender,
        "max_hidden_size": r.max_hidden_size,
        "seen": [{"sender": s.hex(), "message_id": i.hex()} for s, i in r.seen],
        "trusted": [
            {"name": t.name, "public_identity": t.identity.to_bytes().hex(), "allowed": t.allowed}
            for t in r.trusted
        ],
    }


def _outcome_json(k: Kit, result: Result) -> dict[str, Any]:
    if result.reason is not None:
        return {"expect": "reject", "reason": result.reason.value}
    m = result.opened
    assert m is not None
    signer = result.signer or k.alice.public
    return {
        "expect": "success",
        "payload": m.payload.hex(),
        "signer": {"name": "alice", "fingerprint": signer.fingerprint_text},
        "topic": m.topic,
        "message_id": m.message_id.hex(),
        "created": m.created,
        "expires": m.expires or 0,
        "content_type": m.content_type or "",
        "headers": dict(m.headers),
    } | _credentials_json(m.credentials)


def _credentials_json(block: CredentialBlock | None) -> dict[str, Any]:
    """vectors.md: ``credentials`` only for a success whose envelope carries a block."""
    if block is None:
        return {}
    return {
        "credentials": {
            "status_version": block.status_version,
            "format": int(block.format),
            "items": [item.hex() for item in block.items],
        }
    }


def vector(suite: Suite, c: Case) -> dict[str, Any]:
    k = Kit(suite=suite, name=c.name)
    result = c.build(k)
    return {
        "format": FORMAT,
        "name": c.name,
        "description": c.description,
        "suite": suite.label,
        "receiver": _receiver_json(result.receiver),
        "envelope": result.envelope.hex(),
        **_outcome_json(k, result),
    }


def vectors() -> Iterator[tuple[str, dict[str, Any]]]:
    """(relative path, vector) for every case of every suite."""
    for suite in Suite:
        check_raw_header(Kit(suite=suite, name="raw header self-check"))
        for c in CASES:
            if suite in c.suites:
                yield f"{suite.label}/{c.name}.json", vector(suite, c)


def write(outdir: Path) -> list[Path]:
    written: list[Path] = []
    for relative, content in vectors():
        path = outdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    for suite in Suite:
        for stale in set((outdir / suite.label).glob("*.json")) - set(written):
            stale.unlink()
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: make_vectors.py OUTDIR\n")
        return 2
    write(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
