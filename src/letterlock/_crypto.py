"""The only module that imports pyca/cryptography.

Everything above this module handles keys through the four small capability classes below
(:class:`Signer`, :class:`Verifier`, :class:`Encapsulator`, :class:`Decapsulator`) and the
functions :func:`hkdf`, :func:`aead_encrypt`, :func:`aead_decrypt` and :func:`digest`. No
primitive is written here: each is one call into pyca/cryptography, arranged as
``docs/spec/envelope-v1.md`` prescribes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Final, NoReturn

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from letterlock.core.suites import Suite

__all__ = [
    "Decapsulator",
    "Encapsulator",
    "PayloadCipher",
    "Signer",
    "Verifier",
    "aead_decrypt",
    "aead_encrypt",
    "argon2id",
    "digest",
    "generate_private",
    "hash_function",
    "hkdf",
    "load_private",
    "load_public",
    "random_bytes",
    "sealed_box_decrypt",
    "sealed_box_encrypt",
]

MLDSA_CONTEXT: Final = b"letterlock/v1"

_HPKE: Final = {
    Suite.P256: hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    Suite.P384: hpke.Suite(hpke.KEM.P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
    Suite.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
    Suite.PQ: hpke.Suite(hpke.KEM.MLKEM1024_P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
}
_HASH: Final[dict[Suite, type[hashes.HashAlgorithm]]] = {
    Suite.P256: hashes.SHA256,
    Suite.P384: hashes.SHA384,
    Suite.X25519: hashes.SHA256,
    Suite.PQ: hashes.SHA384,
}
_HASHES: Final = {suite: algorithm() for suite, algorithm in _HASH.items()}  # stateless
_ECDSA: Final = {suite: ec.ECDSA(_HASH[suite]()) for suite in (Suite.P256, Suite.P384, Suite.PQ)}
_HASHLIB: Final = {
    Suite.P256: hashlib.sha256,
    Suite.P384: hashlib.sha384,
    Suite.X25519: hashlib.sha256,
    Suite.PQ: hashlib.sha384,
}
_SCALAR: Final = {Suite.P256: 32, Suite.P384: 48, Suite.PQ: 48}  # bytes of r and of s
_CURVE: Final[dict[Suite, ec.EllipticCurve]] = {
    Suite.P256: ec.SECP256R1(),
    Suite.P384: ec.SECP384R1(),
    Suite.PQ: ec.SECP384R1(),
}
#: Field prime of Curve25519 / edwards25519 (RFC 7748, RFC 8032).
_P25519: Final = 2**255 - 19
#: y-coordinates (edwards25519) and u-coordinates (Curve25519) of the points of small order
#: (the eight-torsion). A key there is refused: an Ed25519 key of small order verifies
#: signatures nobody made, an X25519 key of small order yields a shared secret of zero.
#: ``tests/test_keys.py`` recomputes both sets from the curve equations.
_ED25519_SMALL_ORDER_Y: Final = frozenset({
    0, 1, _P25519 - 1,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    _P25519 - 2707385501144840649318225287225658788936804267575313519463743609750303402022,
})  # fmt: skip
_X25519_SMALL_ORDER_U: Final = frozenset({
    0, 1, _P25519 - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
})  # fmt: skip
#: Where the EC point of a wrapped key's ``enc`` starts (its format byte), per suite.
_ENC_POINT_AT: Final = {Suite.P256: 0, Suite.P384: 0, Suite.PQ: 1568}
_MLDSA87_SIG: Final = 4627
_MLDSA87_PUB: Final = 2592
_MLDSA_SEED: Final = 32
_MLKEM_SEED: Final = 64
_MLKEM1024_PUB: Final = 1568


def random_bytes(n: int) -> bytes:
    """Operating-system randomness (only the public recipe in ``_api`` draws from it)."""
    return os.urandom(n)


def hash_function(suite: Suite) -> Callable[[bytes], hashlib._Hash]:
    """The suite's hash H as a hashlib constructor (for callers that precompute it)."""
    return _HASHLIB[suite]


def digest(suite: Suite, data: bytes | memoryview) -> bytes:
    """The suite's hash H of ``data`` (hashlib releases the GIL on large buffers)."""
    return _HASHLIB[suite](data).digest()


def hkdf(suite: Suite, ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with the suite's hash; ``salt=None`` means HashLen zero bytes."""
    return HKDF(algorithm=_HASHES[suite], length=length, salt=salt, info=info).derive(ikm)


def _aead(suite: Suite, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return ChaCha20Poly1305(key) if suite is Suite.X25519 else AESGCM(key)


class PayloadCipher:
    """The payload AEAD under one content key's payload key (section 5.4), built once.

    Sealing encrypts in place: OpenSSL supports exact in-place operation (input and output the
    same buffer), so a large payload, copied once into its envelope, is never copied again;
    ``tests/test_amortised.py`` checks the result equals the out-of-place AEAD for every suite.
    """

    __slots__ = ("_aead",)

    def __init__(self, suite: Suite, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key) if suite is Suite.X25519 else AESGCM(key)

    def __repr__(self) -> str:
        return "<PayloadCipher>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("keys cannot be pickled")

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """The ciphertext and tag of ``plaintext`` (one-shot)."""
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes) -> bytes | None:
        """The plaintext (one-shot), or None when the tag does not verify."""
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None

    def seal_in_place(self, nonce: bytes, region: memoryview, aad: bytes) -> None:
        """Encrypt ``region[:-16]`` in place; the tag fills the last 16 bytes of ``region``."""
        self._aead.encrypt_into(nonce, region[:-16], aad, region)

    def open_into(
        self, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes, out: memoryview
    ) -> bool:
        """Decrypt into ``out`` (ciphertext length - 16); ``ciphertext`` may be ``out``'s own
        buffer extended by the tag (in place). False on failure: the caller wipes ``out``."""
        try:
            self._aead.decrypt_into(nonce, ciphertext, aad, out)
        except InvalidTag:
            return False
        return True


def aead_encrypt(
    suite: Suite, key: bytes, nonce: bytes, plaintext: bytes | memoryview, aad: bytes
) -> bytes:
    """The payload AEAD, out of place (for tools and tests)."""
    return _aead(suite, key).encrypt(nonce, plaintext, aad)


def aead_decrypt(
    suite: Suite, key: bytes, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes
) -> bytes | None:
    """The plaintext, or None when the tag does not verify (for tools and tests)."""
    try:
        return _aead(suite, key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def sealed_box_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM for data at rest (key files); the caller supplies a random nonce."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def sealed_box_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def argon2id(
    passphrase: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int
) -> bytes:
    """A 32-byte key from a passphrase (RFC 9106 Argon2id)."""
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib)
    return kdf.derive(passphrase)


# --------------------------------------------------------------------------- signatures


class Signer:
    """Signs envelopes with an identity's private signature key (or keys, for pq)."""

    __slots__ = ("_ecdsa", "_ed", "_mldsa", "_suite")

    def __init__(
        self,
        suite: Suite,
        *,
        ecdsa: ec.EllipticCurvePrivateKey | None = None,
        ed: ed25519.Ed25519PrivateKey | None = None,
        ml: mldsa.MLDSA87PrivateKey | None = None,
    ) -> None:
        self._suite = suite
        self._ecdsa = ecdsa
        self._ed = ed
        self._mldsa = ml

    def __repr__(self) -> str:
        return f"<Signer {self._suite.label}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled")

    def sign(self, message: bytes) -> bytes:
        if self._ed is not None:
            return self._ed.sign(message)
        assert self._ecdsa is not None
        ecdsa = _ecdsa_sign(self._ecdsa, self._suite, message)
        if self._mldsa is not None:
            return self._mldsa.sign(message, MLDSA_CONTEXT) + ecdsa
        return ecdsa


def _ecdsa_sign(key: ec.EllipticCurvePrivateKey, suite: Suite, message: bytes) -> bytes:
    return _rs_of(key.sign(message, _ECDSA[suite]), _SCALAR[suite])


def _rs_of(der: bytes, n: int) -> bytes:
    """The fixed-length ``r || s`` of the DER signature OpenSSL just made (section 2).

    ``SEQUENCE { INTEGER r, INTEGER s }`` with one-byte lengths (P-256, P-384); each integer
    is minimal, so it has a leading zero when its top bit is set, or fewer than ``n`` bytes.
    """
    r_len = der[3]
    r = der[4 : 4 + r_len]
    s = der[6 + r_len : 6 + r_len + der[5 + r_len]]
    return r.rjust(n, b"\0")[-n:] + s.rjust(n, b"\0")[-n:]


def _der_of(signature: bytes, n: int) -> bytes | None:
    """The DER ``SEQUENCE { INTEGER r, INTEGER s }`` of a fixed-length ``r || s`` (section 2),
    or None if r or s is zero. Lengths stay below 128 for P-256 and P-384 (one-byte forms).
    ``tests/test_conformance.py`` checks it against Wycheproof's P1363 vectors."""
    r = signature[:n].lstrip(b"\0")
    s = signature[n:].lstrip(b"\0")
    if not r or not s:
        return None
    if r[0] & 0x80:
        r = b"\0" + r
    if s[0] & 0x80:
        s = b"\0" + s
    return b"".join((bytes((0x30, len(r) + len(s) + 4, 2, len(r))), r, bytes((2, len(s))), s))


def _ecdsa_verify(
    key: ec.EllipticCurvePublicKey, suite: Suite, signature: bytes, message: bytes
) -> bool:
    n = _SCALAR[suite]
    der = _der_of(signature, n) if len(signature) == 2 * n else None
    if der is None:
        return False
    try:
        key.verify(der, message, _ECDSA[suite])
    except InvalidSignature:
        return False
    return True


class Verifier:
    """Verifies signatures with an identity's public signature key (or keys, for pq)."""

    __slots__ = ("_ecdsa", "_ed", "_mldsa", "_suite")

    def __init__(
        self,
        suite: Suite,
        *,
        ecdsa: ec.EllipticCurvePublicKey | None = None,
        ed: ed25519.Ed25519PublicKey | None = None,
        ml: mldsa.MLDSA87PublicKey | None = None,
    ) -> None:
        self._suite = suite
        self._ecdsa = ecdsa
        self._ed = ed
        self._mldsa = ml

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True only if the signature is valid; for pq, only if both signatures are valid."""
        if len(signature) != self._suite.sizes.signature:
            return False
        if self._ed is not None:
            try:
                self._ed.verify(signature, message)
            except InvalidSignature:
                return False
            return True
        assert self._ecdsa is not None
        if self._mldsa is not None:
            ml_sig, ec_sig = signature[:_MLDSA87_SIG], signature[_MLDSA87_SIG:]
            try:
                self._mldsa.verify(ml_sig, message, MLDSA_CONTEXT)
            except InvalidSignature:
                return False
            return _ecdsa_verify(self._ecdsa, self._suite, ec_sig, message)
        return _ecdsa_verify(self._ecdsa, self._suite, signature, message)


# --------------------------------------------------------------------------- HPKE


_HpkePublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey | hpke.MLKEM1024P384PublicKey
_HpkePrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | hpke.MLKEM1024P384PrivateKey


class Encapsulator:
    """Wraps a content key to one recipient's public encryption key with HPKE."""

    __slots__ = ("_key", "_suite")

    def __init__(self, suite: Suite, key: _HpkePublic) -> None:
        self._suite = suite
        self._key = key

    def wrap(self, content_key: bytes, info: bytes) -> bytes:
        return _HPKE[self._suite].encrypt(content_key, self._key, info=info)


class Decapsulator:
    """Unwraps a content key with the receiver's private encryption key."""

    __slots__ = ("_key", "_suite")

    def __init__(self, suite: Suite, key: _HpkePrivate) -> None:
        self._suite = suite
        self._key = key

    def __repr__(self) -> str:
        return f"<Decapsulator {self._suite.label}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled")

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        """The content key, or None if HPKE refuses (wrong key, tampered entry).

        An EC point in ``enc`` (p256, p384; pq's ``ct_T``) must be uncompressed (spec section
        3.3): OpenSSL alone would also decode the X9.62 hybrid form (0x06/0x07), which RFC 9180
        and other receivers refuse, so two receivers would disagree on such an entry.
        """
        point_at = _ENC_POINT_AT.get(self._suite)
        if point_at is not None and wrapped[point_at : point_at + 1] != b"\x04":
            return None
        try:
            return _HPKE[self._suite].decrypt(wrapped, self._key, info=info)
        except Exception:
            return None


# --------------------------------------------------------------------------- key encodings


def _ec_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _ec_private(scalar: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(scalar, "big"), curve)


def _ec_scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    n = (key.curve.key_size + 7) // 8
    return key.private_numbers().private_value.to_bytes(n, "big")


def generate_private(suite: Suite) -> tuple[bytes, bytes]:
    """Fresh private key material: (signature private key, encryption private key) bytes."""
    if suite is Suite.X25519:
        ed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        return ed, x25519.X25519PrivateKey.generate().private_bytes_raw()
    if suite is Suite.PQ:
        p384 = ec.SECP384R1()
        sig = mldsa.MLDSA87PrivateKey.generate().private_bytes_raw() + _ec_scalar(
            ec.generate_private_key(p384)
        )
        kem = mlkem.MLKEM1024PrivateKey.generate().private_bytes_raw() + _ec_scalar(
            ec.generate_private_key(p384)
        )
        return sig, kem
    curve = _CURVE[suite]
    return (
        _ec_scalar(ec.generate_private_key(curve)),
        _ec_scalar(ec.generate_private_key(curve)),
    )


def load_private(
    suite: Suite, sig_private: bytes, kem_private: bytes
) -> tuple[Signer, Decapsulator, bytes, bytes]:
    """Private key objects and the matching public key bytes.

    Raises ValueError when the bytes are not valid keys of ``suite``.
    """
    sizes = suite.sizes
    if len(sig_private) != sizes.sig_private or len(kem_private) != sizes.kem_private:
        raise ValueError("private key of the wrong length for its suite")
    if suite is Suite.X25519:
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(sig_private)
        xk = x25519.X25519PrivateKey.from_private_bytes(kem_private)
        return (
            Signer(suite, ed=ed),
            Decapsulator(suite, xk),
            ed.public_key().public_bytes_raw(),
            xk.public_key().public_bytes_raw(),
        )
    if suite is Suite.PQ:
        p384 = ec.SECP384R1()
        ml = mldsa.MLDSA87PrivateKey.from_seed_bytes(sig_private[:_MLDSA_SEED])
        sig_ec = _ec_private(sig_private[_MLDSA_SEED:], p384)
        kem_ml = mlkem.MLKEM1024PrivateKey.from_seed_bytes(kem_private[:_MLKEM_SEED])
        kem_ec = _ec_private(kem_private[_MLKEM_SEED:], p384)
        sig_pub = ml.public_key().public_bytes_raw() + _ec_point(sig_ec.public_key())
        kem_pub = kem_ml.public_key().public_bytes_raw() + _ec_point(kem_ec.public_key())
        hybrid = hpke.MLKEM1024P384PrivateKey(kem_ml, kem_ec)
        return Signer(suite, ecdsa=sig_ec, ml=ml), Decapsulator(suite, hybrid), sig_pub, kem_pub
    curve = _CURVE[suite]
    sig_key = _ec_private(sig_private, curve)
    kem_key = _ec_private(kem_private, curve)
    return (
        Signer(suite, ecdsa=sig_key),
        Decapsulator(suite, kem_key),
        _ec_point(sig_key.public_key()),
        _ec_point(kem_key.public_key()),
    )


def _curve25519_coordinate(encoded: bytes, *, sign_bit: bool) -> int:
    """The coordinate an Ed25519 (``sign_bit``) or X25519 key encodes; canonical or ValueError."""
    value = int.from_bytes(encoded, "little")
    if sign_bit:
        value &= (1 << 255) - 1  # the top bit is the sign of x
    elif value >> 255:
        raise ValueError("X25519 public key has its top bit set (not canonical)")
    if value >= _P25519:
        raise ValueError("public key is not canonically encoded (coordinate >= p)")
    return value


def _check_curve25519_keys(sig_public: bytes, kem_public: bytes) -> None:
    """Refuse non-canonical and small-order Ed25519 and X25519 public keys (spec section 3.1)."""
    if _curve25519_coordinate(sig_public, sign_bit=True) in _ED25519_SMALL_ORDER_Y:
        raise ValueError("Ed25519 public key of small order")
    if _curve25519_coordinate(kem_public, sign_bit=False) in _X25519_SMALL_ORDER_U:
        raise ValueError("X25519 public key of small order")


def load_public(
    suite: Suite, sig_public: bytes, kem_public: bytes
) -> tuple[Verifier, Encapsulator]:
    """Public key objects. Raises ValueError when the bytes are not valid keys of ``suite``."""
    sizes = suite.sizes
    if len(sig_public) != sizes.sig_public or len(kem_public) != sizes.kem_public:
        raise ValueError("public key of the wrong length for its suite")
    if suite is Suite.X25519:
        _check_curve25519_keys(sig_public, kem_public)
        return (
            Verifier(suite, ed=ed25519.Ed25519PublicKey.from_public_bytes(sig_public)),
            Encapsulator(suite, x25519.X25519PublicKey.from_public_bytes(kem_public)),
        )
    if suite is Suite.PQ:
        p384 = ec.SECP384R1()
        ml = mldsa.MLDSA87PublicKey.from_public_bytes(sig_public[:_MLDSA87_PUB])
        sig_ec = ec.EllipticCurvePublicKey.from_encoded_point(p384, sig_public[_MLDSA87_PUB:])
        kem_ml = mlkem.MLKEM1024PublicKey.from_public_bytes(kem_public[:_MLKEM1024_PUB])
        kem_ec = ec.EllipticCurvePublicKey.from_encoded_point(p384, kem_public[_MLKEM1024_PUB:])
        if kem_public[_MLKEM1024_PUB] != 0x04 or sig_public[_MLDSA87_PUB] != 0x04:
            raise ValueError("EC points must be uncompressed")
        return (
            Verifier(suite, ecdsa=sig_ec, ml=ml),
            Encapsulator(suite, hpke.MLKEM1024P384PublicKey(kem_ml, kem_ec)),
        )
    curve = _CURVE[suite]
    if sig_public[0] != 0x04 or kem_public[0] != 0x04:
        raise ValueError("EC points must be uncompressed")
    return (
        Verifier(suite, ecdsa=ec.EllipticCurvePublicKey.from_encoded_point(curve, sig_public)),
        Encapsulator(suite, ec.EllipticCurvePublicKey.from_encoded_point(curve, kem_public)),
    )
