"""The only module that imports pyca/cryptography.

Everything above this module handles keys through small capability classes: one signer and
one verifier per kind of signature key (:class:`EcdsaSigner`, :class:`Ed25519Signer`,
:class:`PqSigner`; :class:`EcdsaVerifier`, :class:`Ed25519Verifier`, :class:`PqVerifier`),
:class:`Encapsulator` and :class:`Decapsulator` for HPKE, :class:`PayloadCipher` for the
payload AEAD, and the functions :func:`hkdf` and :func:`digest`. No primitive is written here:
each is one call into pyca/cryptography, arranged as ``docs/spec/envelope-v1.md`` prescribes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from typing import Final, NoReturn

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from letterlock._suites import Suite

__all__ = [
    "Decapsulator",
    "EcdsaSigner",
    "EcdsaVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Encapsulator",
    "PayloadCipher",
    "PqSigner",
    "PqVerifier",
    "Signer",
    "Verifier",
    "argon2id",
    "digest",
    "ec_point_is_valid",
    "generate_private",
    "hash_function",
    "hkdf",
    "hpke_key_schedule",
    "hpke_open_after_dh",
    "load_kem_private",
    "load_private",
    "load_public",
    "pq_public",
    "pq_signer",
    "random_bytes",
    "sealed_box_decrypt",
    "sealed_box_encrypt",
    "signature_from_token",
    "spki_identity",
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
#
# One signer and one verifier class per kind of signature key (ECDSA for p256 and p384,
# Ed25519 for x25519, ML-DSA-87 with ECDSA P-384 for pq): each does exactly its suite's job,
# with no branching on which key happens to be set. The signers implement the
# ``letterlock.core.keys.Signer`` protocol; a signer whose key lives elsewhere (a token) is
# another implementation of it.


class _Secret:
    """Private-key holders: no secret in repr, no pickling."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled")


class EcdsaSigner(_Secret):
    """ECDSA with the suite's hash; the signature is the fixed-length ``r || s`` (section 2)."""

    __slots__ = ("_algorithm", "_key", "_n", "suite")

    def __init__(self, suite: Suite, key: ec.EllipticCurvePrivateKey) -> None:
        self.suite = suite
        self._key = key
        self._algorithm = _ECDSA[suite]
        self._n = _SCALAR[suite]

    def sign(self, message: bytes) -> bytes:
        return _rs_of(self._key.sign(message, self._algorithm), self._n)


class Ed25519Signer(_Secret):
    """Ed25519 (RFC 8032), the x25519 suite's signature."""

    __slots__ = ("_key", "suite")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self.suite = Suite.X25519
        self._key = key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class PqSigner(_Secret):
    """The pq suite's signature: ML-DSA-87 (context ``letterlock/v1``), then ECDSA P-384."""

    __slots__ = ("_ecdsa", "_mldsa", "suite")

    def __init__(self, mldsa_key: mldsa.MLDSA87PrivateKey, ecdsa_key: ec.EllipticCurvePrivateKey):
        self.suite = Suite.PQ
        self._mldsa = mldsa_key
        self._ecdsa = EcdsaSigner(Suite.PQ, ecdsa_key)

    def sign(self, message: bytes) -> bytes:
        return self._mldsa.sign(message, MLDSA_CONTEXT) + self._ecdsa.sign(message)


def signature_from_token(suite: Suite, raw: bytes) -> bytes:
    """Section 2's ``r || s`` of a signature a PKCS#11 token made with ``CKM_ECDSA``.

    PKCS#11 ("ECDSA without hashing") defines its output as ``r || s``, each as long
    as the curve order: letterlock's encoding already, so the conversion is a check of its
    length and of r and s not being zero. ValueError for anything else (a token that answers
    in DER, or a broken one), rather than a signature no receiver would verify.
    """
    n = _SCALAR[suite]
    if len(raw) != 2 * n or _der_of(raw, n) is None:
        raise ValueError(f"the token returned {len(raw)} bytes, not an ECDSA r || s of {2 * n}")
    return bytes(raw)


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


class EcdsaVerifier:
    """Verifies ECDSA ``r || s`` (r and s in [1, n-1]: OpenSSL refuses the rest)."""

    __slots__ = ("_algorithm", "_key", "_n")

    def __init__(self, suite: Suite, key: ec.EllipticCurvePublicKey) -> None:
        self._key = key
        self._algorithm = _ECDSA[suite]
        self._n = _SCALAR[suite]

    def verify(self, signature: bytes, message: bytes) -> bool:
        n = self._n
        der = _der_of(signature, n) if len(signature) == 2 * n else None
        if der is None:
            return False
        try:
            self._key.verify(der, message, self._algorithm)
        except InvalidSignature:
            return False
        return True


class Ed25519Verifier:
    """Verifies Ed25519 as section 2 says (cofactorless, ``R`` compared by its encoding)."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class PqVerifier:
    """Verifies the pq signature: valid only if both ML-DSA-87 and ECDSA P-384 verify."""

    __slots__ = ("_ecdsa", "_mldsa")

    def __init__(self, mldsa_key: mldsa.MLDSA87PublicKey, ecdsa_key: ec.EllipticCurvePublicKey):
        self._mldsa = mldsa_key
        self._ecdsa = EcdsaVerifier(Suite.PQ, ecdsa_key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != Suite.PQ.sizes.signature:
            return False
        try:
            self._mldsa.verify(signature[:_MLDSA87_SIG], message, MLDSA_CONTEXT)
        except InvalidSignature:
            return False
        return self._ecdsa.verify(signature[_MLDSA87_SIG:], message)


Verifier = EcdsaVerifier | Ed25519Verifier | PqVerifier
Signer = EcdsaSigner | Ed25519Signer | PqSigner


# --------------------------------------------------------------------------- HPKE


_HpkePublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey | hpke.MLKEM1024P384PublicKey
_HpkePrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | hpke.MLKEM1024P384PrivateKey


class Encapsulator:
    """Wraps a content key to one recipient's public encryption key with HPKE (section 5.2)."""

    __slots__ = ("_hpke", "_key")

    def __init__(self, suite: Suite, key: _HpkePublic) -> None:
        self._hpke = _HPKE[suite]
        self._key = key

    def wrap(self, content_key: bytes, info: bytes) -> bytes:
        return self._hpke.encrypt(content_key, self._key, info=info)


class Decapsulator(_Secret):
    """Unwraps a content key with the receiver's private encryption key (HPKE, section 5.2).

    Implements the ``letterlock.core.keys.Decapsulator`` protocol.
    """

    __slots__ = ("_hpke", "_key", "_point_at", "suite")

    def __init__(self, suite: Suite, key: _HpkePrivate) -> None:
        self.suite = suite
        self._hpke = _HPKE[suite]
        self._key = key
        self._point_at = _ENC_POINT_AT.get(suite)

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        """The content key, or None if HPKE refuses (wrong key, tampered entry).

        An EC point in ``enc`` (p256, p384; pq's ``ct_T``) must be uncompressed (spec section
        3.3): OpenSSL alone would also decode the X9.62 hybrid form (0x06/0x07), which RFC 9180
        and other receivers refuse, so two receivers would disagree on such an entry.
        """
        point_at = self._point_at
        if point_at is not None and wrapped[point_at : point_at + 1] != b"\x04":
            return None
        try:
            return self._hpke.decrypt(wrapped, self._key, info=info)
        except Exception:
            return None


# --------------------------------------------------------------------------- HPKE around a token
#
# A token that keeps the encryption key does the one private-key step of HPKE, the DH of DHKEM
# (PKCS#11 ``CKM_ECDH1_DERIVE``); the rest of RFC 9180 base mode is here: ExtractAndExpand
# (section 4.1), the key schedule (5.1) and the AEAD open of sequence number 0 (5.2), as
# pyca's HPKE does it for in-process keys. ``tests/test_keystore_pkcs11.py`` checks it against
# the RFC 9180 test vectors (``cryptography_vectors/HPKE/test-vectors.json``).

#: kem_id -> (hash of its HKDF, Nsecret); kdf_id -> hash; aead_id -> Nk (Nn is 12 for all).
_HPKE_KEMS: Final = {0x0010: (hashes.SHA256(), 32), 0x0011: (hashes.SHA384(), 48)}
_HPKE_KDFS: Final = {0x0001: hashes.SHA256(), 0x0002: hashes.SHA384(), 0x0003: hashes.SHA512()}
_HPKE_AEADS: Final = {0x0001: 16, 0x0002: 32, 0x0003: 32}
_HPKE_IDS: Final = {Suite.P256: (0x0010, 0x0001, 0x0001), Suite.P384: (0x0011, 0x0002, 0x0002)}
_HPKE_NN: Final = 12


def _labeled_extract(
    algorithm: hashes.HashAlgorithm, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes
) -> bytes:
    return HKDF.extract(algorithm, salt or None, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(
    algorithm: hashes.HashAlgorithm, suite_id: bytes, prk: bytes, label: bytes, info: bytes,
    *, length: int,
) -> bytes:  # fmt: skip
    labeled = struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(algorithm, length, labeled).derive(prk)


def hpke_key_schedule(
    ids: tuple[int, int, int], dh: bytes, enc: bytes, kem_public: bytes, info: bytes
) -> tuple[bytes, bytes, bytes]:
    """(shared_secret, key, base_nonce) of RFC 9180 base mode for ``ids`` (kem_id, kdf_id,
    aead_id), from the DHKEM's DH output ``dh``, the sender's ``enc`` and the receiver's
    public key. KeyError for ids other than DHKEM(P-256 | P-384) and the AES-GCM/ChaCha AEADs.
    """
    kem_id, kdf_id, aead_id = ids
    kem_hash, n_secret = _HPKE_KEMS[kem_id]
    kdf_hash, n_key = _HPKE_KDFS[kdf_id], _HPKE_AEADS[aead_id]
    kem_suite = b"KEM" + struct.pack(">H", kem_id)
    eae_prk = _labeled_extract(kem_hash, kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(
        kem_hash, kem_suite, eae_prk, b"shared_secret", enc + kem_public, length=n_secret
    )
    suite_id = b"HPKE" + struct.pack(">HHH", kem_id, kdf_id, aead_id)
    psk_id_hash = _labeled_extract(kdf_hash, suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(kdf_hash, suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = _labeled_extract(kdf_hash, suite_id, shared, b"secret", b"")
    key = _labeled_expand(kdf_hash, suite_id, secret, b"key", context, length=n_key)
    nonce = _labeled_expand(kdf_hash, suite_id, secret, b"base_nonce", context, length=_HPKE_NN)
    return shared, key, nonce


def ec_point_is_valid(suite: Suite, point: bytes) -> bool:
    """True if ``point`` is an uncompressed point on the suite's curve (p256, p384)."""
    if len(point) != suite.sizes.kem_public or point[:1] != b"\x04":
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(_CURVE[suite], point)
    except ValueError:
        return False
    return True


def hpke_open_after_dh(
    suite: Suite, dh: bytes, *, enc: bytes, kem_public: bytes, ciphertext: bytes, info: bytes
) -> bytes | None:
    """What :class:`Decapsulator` unwraps (single-shot open, empty aad), given the DH output
    of the receiver's key and ``enc`` made elsewhere (a token); None if the AEAD refuses."""
    _, key, base_nonce = hpke_key_schedule(_HPKE_IDS[suite], dh, enc, kem_public, info)
    try:
        return AESGCM(key).decrypt(base_nonce, ciphertext, b"")
    except InvalidTag:
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
            Ed25519Signer(ed),
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
        return PqSigner(ml, sig_ec), Decapsulator(suite, hybrid), sig_pub, kem_pub
    curve = _CURVE[suite]
    sig_key = _ec_private(sig_private, curve)
    kem_key = _ec_private(kem_private, curve)
    return (
        EcdsaSigner(suite, sig_key),
        Decapsulator(suite, kem_key),
        _ec_point(sig_key.public_key()),
        _ec_point(kem_key.public_key()),
    )


def load_kem_private(suite: Suite, kem_private: bytes) -> tuple[Decapsulator, bytes]:
    """The decapsulator of a p256 or p384 encryption key and its public point (uncompressed).

    For a store that keeps the encryption key apart from the signing key (a PKCS#11 token, whose
    signing key never leaves it). Raises ValueError when the bytes are not a key of ``suite``.
    """
    if suite not in (Suite.P256, Suite.P384) or len(kem_private) != suite.sizes.kem_private:
        raise ValueError(f"not a {suite} encryption private key")
    key = _ec_private(kem_private, _CURVE[suite])
    return Decapsulator(suite, key), _ec_point(key.public_key())


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
            Ed25519Verifier(ed25519.Ed25519PublicKey.from_public_bytes(sig_public)),
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
            PqVerifier(ml, sig_ec),
            Encapsulator(suite, hpke.MLKEM1024P384PublicKey(kem_ml, kem_ec)),
        )
    curve = _CURVE[suite]
    if sig_public[0] != 0x04 or kem_public[0] != 0x04:
        raise ValueError("EC points must be uncompressed")
    return (
        EcdsaVerifier(suite, ec.EllipticCurvePublicKey.from_encoded_point(curve, sig_public)),
        Encapsulator(suite, ec.EllipticCurvePublicKey.from_encoded_point(curve, kem_public)),
    )


# --------------------------------------------------------------------------- TUF root keys


def spki_identity(keytype: str, public: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a TUF key's public value, re-encoded by pyca.

    ``public`` is hex for ``ed25519`` and PEM otherwise, as securesystemslib writes them. The
    re-encoding is canonical (named curve, uncompressed point), so one key written two ways
    (compressed, explicit curve parameters, other PEM line breaks) has one identity; the
    threshold counts keys by it (``docs/spec/root.md``). Raises ValueError on anything else.
    """
    if keytype == "ed25519":
        key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | mldsa.MLDSA87PublicKey = (
            ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
        )
    else:
        loaded = serialization.load_pem_public_key(public.encode("ascii"))
        if not isinstance(
            loaded, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | mldsa.MLDSA87PublicKey
        ):
            raise ValueError("not an ECDSA, Ed25519 or ML-DSA-87 public key")
        key = loaded
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tuf_public_key(suite: Suite, sig_public: bytes) -> tuple[str, str, str]:
    """(keytype, scheme, public) of a p256, p384 or x25519 signature key as securesystemslib
    writes it: hex of the raw key for Ed25519, PEM SubjectPublicKeyInfo for ECDSA."""
    if suite is Suite.X25519:
        return "ed25519", "ed25519", sig_public.hex()
    if suite not in (Suite.P256, Suite.P384):
        raise ValueError(f"a {suite} key is not a plain TUF key")
    point = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE[suite], sig_public)
    pem = point.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return "ecdsa", f"ecdsa-sha2-nistp{256 if suite is Suite.P256 else 384}", pem


def tuf_signature(suite: Suite, signature: bytes) -> bytes:
    """A letterlock signature as securesystemslib verifies it: DER for ECDSA (from section 2's
    ``r || s``), the signature itself for Ed25519. ValueError for a malformed ``r || s``."""
    if suite is Suite.X25519:
        return signature
    n = _SCALAR[suite]
    der = _der_of(signature, n) if len(signature) == 2 * n else None
    if der is None:
        raise ValueError("not an ECDSA r || s signature")
    return der


def pq_public(sig_public: bytes) -> tuple[PqVerifier, bytes, bytes]:
    """The pq suite's signature key (ML-DSA-87 then a P-384 point, section 2) as a verifier
    and the DER SubjectPublicKeyInfo of each half, for :func:`spki_identity` comparisons.
    Raises ValueError when the bytes are not such a key."""
    if len(sig_public) != Suite.PQ.sizes.sig_public or sig_public[_MLDSA87_PUB] != 0x04:
        raise ValueError("not a pq signature public key (ML-DSA-87 || uncompressed P-384)")
    ml = mldsa.MLDSA87PublicKey.from_public_bytes(sig_public[:_MLDSA87_PUB])
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), sig_public[_MLDSA87_PUB:])
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return PqVerifier(ml, point), ml.public_bytes(der, spki), point.public_bytes(der, spki)


def pq_signer(sig_private: bytes) -> tuple[PqSigner, bytes]:
    """A pq signer from its private bytes (ML-DSA-87 seed || P-384 scalar) and its public key."""
    if len(sig_private) != Suite.PQ.sizes.sig_private:
        raise ValueError("not a pq signature private key")
    ml = mldsa.MLDSA87PrivateKey.from_seed_bytes(sig_private[:_MLDSA_SEED])
    sig_ec = _ec_private(sig_private[_MLDSA_SEED:], ec.SECP384R1())
    public = ml.public_key().public_bytes_raw() + _ec_point(sig_ec.public_key())
    return PqSigner(ml, sig_ec), public
