"""An independent receiver for letterlock envelopes, written from the specification alone.

Why this exists: ``docs/spec/envelope-v1.md`` says that the document, not the code, defines the
format. This module is the evidence. It re-implements "parse, verify, decrypt" of a sealed
envelope following section 6 of that document step by step, with the exact reason codes, and
the test vectors in ``vectors/`` are checked against it as well as against the library. If the
library and the specification drift apart, one of the two checks fails.

Rules for this file, so that it stays independent:

- it MUST NOT import anything from the ``letterlock`` package;
- it imports only the Python standard library and ``cryptography`` (pyca);
- it is kept small and literal: each check names its step number in section 6.
- HPKE is built from primitives as section 3.3 writes it (``rfc9180.py``,
  ``mlkem1024_p384.py``), not taken from pyca's ``hpke`` module, so that text is what the
  vectors check.

The entry points are :func:`verify_vector` (one parsed vector, ``docs/spec/vectors.md``) and
:func:`open_envelope`, which never raises for a hostile envelope: every failure is an
:class:`Outcome` carrying a reason code. A broken *receiver* description (for example an invalid
point in the trust list) is a bug in the vector and does raise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import mlkem1024_p384, rfc9180

HIDDEN_SENDER = 0x01
CREDENTIALS = 0x02
# Section 4.1: the credential block's caps, and the receiver's default max_credentials_size.
MAX_CREDENTIAL_ITEMS = 5
MAX_CREDENTIAL_ITEM = 16384
DEFAULT_MAX_CREDENTIALS_SIZE = 32768
MLDSA_CONTEXT = b"letterlock/v1"
MLDSA87_SIG_LEN = 4627
# Section 4: ct_len is at least 24 = 8 + 16 (tag); 56 + S = 32 + S + 8 + 16 with a hidden sender.
MIN_CT_VISIBLE = 24
MIN_CT_HIDDEN_BASE = 56
# Section 4: the hard caps of the variable-length header fields.
MAX_TOPIC = 1024
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 4096
# vectors.md: a vector's replay window has forgotten nothing, so every floor is -1 (section 6).
FLOOR = -1


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None
    payload: bytes | None
    signer_name: str | None
    signer_fingerprint: str | None
    topic: str | None
    message_id: bytes | None
    created: int | None
    expires: int | None
    content_type: str | None
    headers: dict[str, str] | None
    #: (status version, format, items) of the credential block, None without one
    credentials: tuple[int, int, tuple[bytes, ...]] | None = None


@dataclass(frozen=True)
class _Suite:
    """One row of the two tables of section 2."""

    id: int
    name: str
    dhkem: rfc9180.Dhkem | None  # section 3.3; None: MLKEM1024-P384 (mlkem1024_p384)
    hash_name: str  # H, and the hash of HKDF and of ECDSA
    nk: int
    npk: int
    nepk: int
    nenc: int
    s: int

    @property
    def w(self) -> int:
        return self.nenc + 32 + 16

    def hash_alg(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self.hash_name == "sha256" else hashes.SHA384()

    def h(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()


SUITES: dict[int, _Suite] = {
    s.id: s
    for s in (
        _Suite(1, "p256", rfc9180.DHKEM_P256, "sha256", 16, 65, 65, 65, 64),
        _Suite(2, "p384", rfc9180.DHKEM_P384, "sha384", 32, 97, 97, 97, 96),
        _Suite(3, "x25519", rfc9180.DHKEM_X25519, "sha256", 32, 32, 32, 32, 64),
        _Suite(4, "pq", None, "sha384", 32, 2689, 1665, 1665, 4723),
    )
}  # fmt: skip


class _RejectError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Cursor:
    """Reads fixed-length big-endian fields; running out of bytes is ``malformed``."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise _RejectError("malformed")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def at_end(self) -> bool:
        return self.pos == len(self.data)


def fingerprint_text(fp: bytes) -> str:
    """Section 3.1: ``SHA256:`` and the unpadded standard base64 of the fingerprint."""
    return "SHA256:" + base64.b64encode(fp).decode("ascii").rstrip("=")


# --- keys (section 3) ---------------------------------------------------------------------------


def _curve(suite: _Suite) -> ec.EllipticCurve:
    return ec.SECP256R1() if suite.name == "p256" else ec.SECP384R1()


def _ec_key(curve: ec.EllipticCurve, scalar: bytes) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.derive_private_key(int.from_bytes(scalar, "big"), curve)
    return key, key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


#: The receiver's HPKE private key; pq: the ML-KEM-1024 key and the P-384 key (section 3.2).
_HpkeKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | x25519.X25519PrivateKey
    | tuple[mlkem.MLKEM1024PrivateKey, ec.EllipticCurvePrivateKey]
)


def _identity_fields(data: bytes, magic: bytes) -> tuple[_Suite, bytes, bytes]:
    """Split an "LLP"/"LLS" identity into suite and its two length-prefixed keys."""
    cur = _Cursor(data)
    if cur.take(4) != magic + b"\x01" or (suite := SUITES.get(cur.uint(1))) is None:
        raise ValueError("bad identity header")
    first = cur.take(cur.uint(2))
    second = cur.take(cur.uint(2))
    if not cur.at_end():
        raise ValueError("trailing bytes after identity")
    return suite, first, second


def _load_private_identity(data: bytes) -> tuple[_Suite, bytes, _HpkeKey]:
    """Section 3.2 -> (suite, public identity bytes of section 3.1, HPKE private key)."""
    suite, sk, ek = _identity_fields(data, b"LLS")
    hpke_key: _HpkeKey
    if suite.name in ("p256", "p384"):
        n = 32 if suite.name == "p256" else 48
        if len(sk) != n or len(ek) != n:
            raise ValueError("bad EC private key length")
        spk = _ec_key(_curve(suite), sk)[1]
        hpke_key, epk = _ec_key(_curve(suite), ek)
    elif suite.name == "x25519":
        if len(sk) != 32 or len(ek) != 32:
            raise ValueError("bad x25519 private key length")
        spk = ed25519.Ed25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()
        hpke_key = x25519.X25519PrivateKey.from_private_bytes(ek)
        epk = hpke_key.public_key().public_bytes_raw()
    else:
        if len(sk) != 32 + 48 or len(ek) != 64 + 48:
            raise ValueError("bad pq private key length")
        dsa = mldsa.MLDSA87PrivateKey.from_seed_bytes(sk[:32])
        spk = dsa.public_key().public_bytes_raw() + _ec_key(ec.SECP384R1(), sk[32:])[1]
        kem = mlkem.MLKEM1024PrivateKey.from_seed_bytes(ek[:64])
        p384, p384_point = _ec_key(ec.SECP384R1(), ek[64:])
        epk = kem.public_key().public_bytes_raw() + p384_point
        hpke_key = (kem, p384)
    public = b"LLP\x01" + bytes([suite.id])
    public += len(spk).to_bytes(2, "big") + spk + len(epk).to_bytes(2, "big") + epk
    return suite, public, hpke_key


_P25519 = 2**255 - 19
# Section 3.1: the y (edwards25519) and u (Curve25519) coordinates of the small-order points.
_ED_SMALL = {
    0,
    1,
    _P25519 - 1,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    55188659117513257062467267217118295137698188065244968500265048394206261417927,
}
_X_SMALL = {
    0,
    1,
    _P25519 - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
}


def _check_25519_keys(ed_key: bytes, x_key: bytes) -> None:
    """Section 3.1: canonical encodings, not of small order."""
    y = int.from_bytes(ed_key, "little") & ((1 << 255) - 1)
    u = int.from_bytes(x_key, "little")
    if y >= _P25519 or y in _ED_SMALL or u >= _P25519 or u in _X_SMALL:
        raise ValueError("x25519 public identity with a non-canonical or small-order key")


def _verify_signature(suite: _Suite, public_key: bytes, sig: bytes, msg: bytes) -> None:
    """Section 2 "Signatures". Raises (anything) unless the signature verifies."""

    def ecdsa(curve: ec.EllipticCurve, point: bytes, rs: bytes) -> None:
        n = len(rs) // 2
        der = encode_dss_signature(int.from_bytes(rs[:n], "big"), int.from_bytes(rs[n:], "big"))
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        key.verify(der, msg, ec.ECDSA(suite.hash_alg()))

    if len(sig) != suite.s or len(public_key) != suite.npk:
        raise ValueError("size mismatch")
    if suite.name in ("p256", "p384"):
        ecdsa(_curve(suite), public_key, sig)
    elif suite.name == "x25519":
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(sig, msg)
    else:  # pq: both parts MUST verify
        dsa = mldsa.MLDSA87PublicKey.from_public_bytes(public_key[:2592])
        dsa.verify(sig[:MLDSA87_SIG_LEN], msg, context=MLDSA_CONTEXT)
        ecdsa(ec.SECP384R1(), public_key[2592:], sig[MLDSA87_SIG_LEN:])


# --- receiver (vectors.md) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Trusted:
    name: str
    suite: _Suite
    signature_key: bytes
    allowed: bool


@dataclass(frozen=True)
class _Receiver:
    suite: _Suite
    key_id: bytes
    hpke_key: _HpkeKey
    suites: frozenset[str]
    max_size: int
    max_recipients: int
    max_headers: int
    max_age: int
    skew: int
    now: int
    topic: bytes | None
    hidden_sender: bool
    max_hidden_size: int
    max_credentials_size: int
    seen: frozenset[tuple[bytes, bytes]]  # (sender key id, message id)
    trusted: dict[bytes, _Trusted]


def _load_receiver(r: dict[str, Any]) -> _Receiver:
    suite, public, hpke_key = _load_private_identity(bytes.fromhex(r["private_identity"]))
    trusted: dict[bytes, _Trusted] = {}
    for entry in r["trusted"]:  # vectors.md: every entry parses, no key or name twice
        identity = bytes.fromhex(entry["public_identity"])
        t_suite, spk, epk = _identity_fields(identity, b"LLP")
        if len(spk) != t_suite.npk or len(epk) != t_suite.nepk:
            raise ValueError("public identity key length differs from the suite's")
        if t_suite.name == "x25519":
            _check_25519_keys(spk, epk)
        fingerprint = hashlib.sha256(identity).digest()
        if fingerprint in trusted or entry["name"] in {t.name for t in trusted.values()}:
            raise ValueError("a key or a name listed twice in the trust list")
        trusted[fingerprint] = _Trusted(entry["name"], t_suite, spk, bool(entry["allowed"]))
    topic = r["topic"]
    return _Receiver(
        suite=suite,
        key_id=hashlib.sha256(public).digest()[:16],
        hpke_key=hpke_key,
        suites=frozenset(r["suites"]),
        max_size=r["max_size"],
        max_recipients=r["max_recipients"],
        max_headers=r["max_headers"],
        max_age=r["max_age"],
        skew=r["skew"],
        now=r["now"],
        topic=None if topic is None else topic.encode("utf-8"),
        hidden_sender=bool(r["hidden_sender"]),
        max_hidden_size=r["max_hidden_size"],
        max_credentials_size=r.get("max_credentials_size", DEFAULT_MAX_CREDENTIALS_SIZE),
        seen=frozenset(
            (bytes.fromhex(x["sender"]), bytes.fromhex(x["message_id"])) for x in r["seen"]
        ),
        trusted=trusted,
    )


# --- the envelope (section 4) -------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    suite: _Suite
    hidden: bool
    message_id: bytes
    created: int
    expires: int
    topic: bytes
    content_type: str
    headers: dict[str, str]
    sender_key_id: bytes | None
    credentials: tuple[int, int, tuple[bytes, ...]] | None
    recipients: dict[bytes, bytes]  # key id -> wrapped key
    commitment: bytes
    header: bytes  # offset 0 through the end of the commitment
    ciphertext: bytes
    signature: bytes | None


_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-._")


def _utf8(data: bytes) -> str:
    """Section 4: well-formed UTF-8 with no control character (U+0000-U+001F, U+007F-U+009F)."""
    try:
        text = data.decode("utf-8")  # strict: rejects surrogates and overlong forms
    except UnicodeDecodeError:
        raise _RejectError("malformed") from None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise _RejectError("malformed")
    return text


def _strictly_ascending(previous: bytes, current: bytes) -> bool:
    """Section 4, canonical order: bytewise strictly ascending, so no two are equal."""
    return current > previous


def _topic_expected(expected: bytes, topic: bytes) -> bool:
    """Step 10: the bytes, compared as they are (no Unicode normalisation, no case folding)."""
    return topic == expected


def _window_start(now: int, max_age: int) -> int:
    """Step 9: ``now - max_age`` on mathematical integers; negative when now < max_age."""
    return now - max_age


def _payload_len(cur: _Cursor) -> int:
    """Section 5.4: ``payload_len`` is a u64, all 64 bits of it."""
    return cur.uint(8)


def _parse(env: bytes, suite: _Suite, me: _Receiver) -> _Envelope:
    """Step 7: the fields after magic, version, suite and flags, in order."""
    hidden = bool(env[5] & HIDDEN_SENDER)
    cur = _Cursor(env, 6)
    message_id = cur.take(16)
    created, expires = cur.uint(8), cur.uint(8)
    if expires != 0 and expires <= created:
        raise _RejectError("malformed")
    topic_len = cur.uint(2)
    if not 1 <= topic_len <= MAX_TOPIC:
        raise _RejectError("malformed")
    topic = cur.take(topic_len)
    _utf8(topic)
    content_type = cur.take(cur.uint(1))
    if any(not 0x20 <= b <= 0x7E for b in content_type):
        raise _RejectError("malformed")
    count = cur.uint(1)
    if count > me.max_headers:  # max_headers <= 64: this is also the format's hard cap
        raise _RejectError("over_limit")
    headers: dict[str, str] = {}
    previous = b""
    for _ in range(count):
        name_len = cur.uint(1)
        if not 1 <= name_len <= MAX_HEADER_NAME:
            raise _RejectError("malformed")
        name = cur.take(name_len)
        if not set(name) <= _NAME_CHARS or not _strictly_ascending(previous, name):
            raise _RejectError("malformed")
        previous = name
        value_len = cur.uint(2)
        if value_len > MAX_HEADER_VALUE:
            raise _RejectError("malformed")
        headers[name.decode("ascii")] = _utf8(cur.take(value_len))
    sender_key_id = None if hidden else cur.take(32)
    credentials = _credential_block(cur, me) if env[5] & CREDENTIALS else None
    recipient_count = cur.uint(2)
    if recipient_count == 0:
        raise _RejectError("malformed")
    if recipient_count > me.max_recipients:
        raise _RejectError("over_limit")
    recipients: dict[bytes, bytes] = {}
    previous = b""
    for _ in range(recipient_count):
        key_id = cur.take(16)
        if not _strictly_ascending(previous, key_id):
            raise _RejectError("malformed")
        previous = key_id
        recipients[key_id] = cur.take(suite.w)
    commitment = cur.take(32)
    header = env[: cur.pos]
    ct_len = cur.uint(4)
    if ct_len < (MIN_CT_HIDDEN_BASE + suite.s if hidden else MIN_CT_VISIBLE):
        raise _RejectError("malformed")
    ciphertext = cur.take(ct_len)
    signature = None if hidden else cur.take(suite.s)
    if not cur.at_end():
        raise _RejectError("malformed")
    return _Envelope(
        suite=suite,
        hidden=hidden,
        message_id=message_id,
        created=created,
        expires=expires,
        topic=topic,
        content_type=content_type.decode("ascii"),
        headers=headers,
        sender_key_id=sender_key_id,
        credentials=credentials,
        recipients=recipients,
        commitment=commitment,
        header=header,
        ciphertext=ciphertext,
        signature=signature,
    )


def _credential_block(cur: _Cursor, me: _Receiver) -> tuple[int, int, tuple[bytes, ...]]:
    """Section 4.1, in the order step 7 reads it."""
    start = cur.pos
    status_version = cur.uint(8)
    kind = cur.uint(1)
    if kind not in (0, 1, 2, 3):
        raise _RejectError("unsupported")
    count = cur.uint(1)
    if count > MAX_CREDENTIAL_ITEMS:
        raise _RejectError("over_limit")
    if (kind == 0) != (count == 0):
        raise _RejectError("malformed")
    items = []
    for _ in range(count):
        length = cur.uint(2)
        if not 1 <= length <= MAX_CREDENTIAL_ITEM:
            raise _RejectError("malformed")
        if cur.pos + length - start > me.max_credentials_size:
            raise _RejectError("over_limit")
        items.append(cur.take(length))
    return status_version, kind, tuple(items)


# --- opening (section 6) ------------------------------------------------------------------------


def _hkdf(suite: _Suite, ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    # salt None is RFC 5869's HashLen zero bytes, which is what the spec's empty salt means.
    return HKDF(algorithm=suite.hash_alg(), length=length, salt=salt, info=info).derive(ikm)


def _hpke_open(suite: _Suite, key: _HpkeKey, wrapped: bytes, info: bytes) -> bytes:
    """Section 5.2: HPKE base-mode open of a recipient entry (single shot, empty aad), built
    from the primitives as section 3.3 writes it, so that text is checked as written. Raises
    on failure."""
    if isinstance(key, tuple):
        return mlkem1024_p384.open_base(wrapped, key[0], key[1], info)
    assert suite.dhkem is not None
    enc, ciphertext = wrapped[: suite.nenc], wrapped[suite.nenc :]
    if isinstance(key, x25519.X25519PrivateKey):
        # RFC 7748 decoding of any 32 bytes; pyca raises on an all-zero shared secret.
        dh = key.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
        pk_rm = key.public_key().public_bytes_raw()
    else:
        if enc[0] != 0x04:
            raise ValueError("enc must be an uncompressed SEC1 point")
        dh = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(key.curve, enc))
        pk_rm = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return suite.dhkem.open(enc=enc, ciphertext=ciphertext, dh=dh, pk_rm=pk_rm, info=info)


def _check_sender(me: _Receiver, suite: _Suite, key_id: bytes, sig: bytes, msg: bytes) -> _Trusted:
    """Steps 13, 14 and 15 (and, for a hidden sender, step 20)."""
    signer = me.trusted.get(key_id)
    if signer is None:
        raise _RejectError("unknown_sender")  # 13
    if signer.suite is not suite or not signer.allowed:
        raise _RejectError("untrusted")  # 14
    try:
        _verify_signature(suite, signer.signature_key, sig, msg)
    except Exception:
        raise _RejectError("bad_signature") from None  # 15
    return signer


def _open(env: bytes, me: _Receiver) -> Outcome:
    if len(env) > me.max_size:
        raise _RejectError("over_limit")  # 1
    if len(env) < 6 or env[:3] != b"LLK":
        raise _RejectError("malformed")  # 2
    if env[3] != 0x01:
        raise _RejectError("unsupported")  # 3
    suite = SUITES.get(env[4])
    if suite is None:
        raise _RejectError("unsupported")  # 4
    if suite.name not in me.suites:
        raise _RejectError("suite_not_allowed")  # 5
    if env[5] & ~(HIDDEN_SENDER | CREDENTIALS):
        raise _RejectError("unsupported")  # 6
    if env[5] & HIDDEN_SENDER and env[5] & CREDENTIALS:
        raise _RejectError("unsupported")  # 6, section 4.1
    if env[5] & HIDDEN_SENDER and not me.hidden_sender:
        raise _RejectError("unsupported")  # 6
    if env[5] & HIDDEN_SENDER and len(env) > me.max_hidden_size:
        raise _RejectError("over_limit")  # 6
    e = _parse(env, suite, me)  # 7
    if e.created > me.now + me.skew:
        raise _RejectError("not_yet_valid")  # 8
    if e.expires != 0 and me.now >= e.expires:
        raise _RejectError("expired")  # 9
    if e.created < _window_start(me.now, me.max_age) or e.created <= FLOOR:
        raise _RejectError("expired")  # 9
    if me.topic is not None and not _topic_expected(me.topic, e.topic):
        raise _RejectError("wrong_topic")  # 10
    if not e.hidden and (e.sender_key_id, e.message_id) in me.seen:
        raise _RejectError("replayed")  # 11
    if me.suite is not suite or me.key_id not in e.recipients:
        raise _RejectError("not_for_me")  # 12
    signer: _Trusted | None = None
    sender_key_id = b""  # a hidden sender's key id is read from the inner plaintext (step 19)
    if not e.hidden:  # 13, 14, 15
        assert e.sender_key_id is not None
        assert e.signature is not None
        msg = b"letterlock/v1 envelope\x00" + e.header + suite.h(e.ciphertext)
        signer = _check_sender(me, suite, e.sender_key_id, e.signature, msg)
        sender_key_id = e.sender_key_id
    sid = bytes([suite.id])
    try:
        info = b"letterlock/v1 content key" + sid + me.key_id  # 5.2
        ck = _hpke_open(suite, me.hpke_key, e.recipients[me.key_id], info)
    except Exception:
        raise _RejectError("decrypt_failed") from None  # 16
    keys = _hkdf(suite, ck, None, b"letterlock/v1 keys" + sid, 32 + suite.nk)  # 5.3
    commitment, key = keys[:32], keys[32:]
    if not hmac.compare_digest(commitment, e.commitment):
        raise _RejectError("bad_commitment")  # 17
    aead = ChaCha20Poly1305(key) if suite.name == "x25519" else AESGCM(key)
    nonce = suite.h(b"letterlock/v1 nonce" + sid + e.message_id)[:12]  # 5.4
    try:
        inner = aead.decrypt(nonce, e.ciphertext, e.header)
    except Exception:
        raise _RejectError("decrypt_failed") from None  # 18
    cur = _Cursor(inner)  # 19: running out of bytes is malformed
    if e.hidden:
        sender_key_id, inner_sig = cur.take(32), cur.take(suite.s)
    payload = cur.take(_payload_len(cur))
    if any(cur.rest()):
        raise _RejectError("malformed")  # 19: non-zero padding
    if e.hidden:  # 20
        ct_len = len(e.ciphertext).to_bytes(4, "big")
        msg = b"letterlock/v1 hidden sender\x00" + e.header + ct_len + sender_key_id
        signer = _check_sender(me, suite, sender_key_id, inner_sig, msg + suite.h(payload))
    assert signer is not None
    if (sender_key_id, e.message_id) in me.seen:
        raise _RejectError("replayed")  # 21: a vector's window records exactly `seen`
    return Outcome(
        ok=True,
        reason=None,
        payload=payload,
        signer_name=signer.name,
        signer_fingerprint=fingerprint_text(sender_key_id),
        topic=e.topic.decode("utf-8"),
        message_id=e.message_id,
        created=e.created,
        expires=e.expires,
        content_type=e.content_type,
        headers=e.headers,
        credentials=e.credentials,
    )


def _rejected(reason: str) -> Outcome:
    return Outcome(
        ok=False,
        reason=reason,
        payload=None,
        signer_name=None,
        signer_fingerprint=None,
        topic=None,
        message_id=None,
        created=None,
        expires=None,
        content_type=None,
        headers=None,
    )


def open_envelope(envelope: bytes, receiver: dict[str, Any]) -> Outcome:
    """Section 6 for a vector's receiver (``vectors.md``). Never raises for the envelope."""
    me = _load_receiver(receiver)  # a broken receiver is a broken vector: let it raise
    try:
        return _open(envelope, me)
    except _RejectError as rejected:
        return _rejected(rejected.reason)


def verify_vector(vector: dict[str, Any]) -> Outcome:
    return open_envelope(bytes.fromhex(vector["envelope"]), vector["receiver"])
