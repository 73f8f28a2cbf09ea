"""HPKE base mode with the pq suite's KEM, built from primitives as section 3.3 of the spec says.

The independent verifier opens a pq recipient entry with :func:`open_base`, not with pyca's
``hpke.Suite``, so the text of ``docs/spec/envelope-v1.md`` section 3.3 (the MLKEM1024-P384
combiner, its label, the ECDH output encoding, the order of the inputs and the RFC 9180 key
schedule with its ``suite_id``) is checked byte for byte by every pq vector. :func:`seal_base`
is the sender's side with the ML-KEM part given, for tests that feed letterlock's receiver
chosen ML-KEM ciphertexts (Wycheproof's).

Primitives from pyca/cryptography: ML-KEM-1024 decapsulation, P-384 ECDH, AES-256-GCM; SHA3-256
and HMAC-SHA-384 from the standard library. Nothing from ``letterlock``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import rfc9180

#: KEM MLKEM1024-P384 (0x0051), KDF HKDF-SHA384 (0x0002), AEAD AES-256-GCM (0x0002).
SUITE = rfc9180.Suite(kem_id=0x0051, kdf_id=0x0002, aead_id=0x0002, hash_name="sha384", nk=32)
LABEL = b"MLKEM1024-P384"
MLKEM_CT = 1568
P384_POINT = 97
NENC = MLKEM_CT + P384_POINT


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def combine(ss_pq: bytes, ss_t: bytes, ct_t: bytes, ek_t: bytes) -> bytes:
    """The combiner: SHA3-256(ss_PQ || ss_T || ct_T || ek_T || "MLKEM1024-P384")."""
    return hashlib.sha3_256(ss_pq + ss_t + ct_t + ek_t + LABEL).digest()


def decapsulate(
    enc: bytes, mlkem_key: mlkem.MLKEM1024PrivateKey, p384_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """The KEM's shared secret. Raises ValueError for an encapsulation of the wrong size or a
    ct_T that is not an uncompressed P-384 point (first byte 0x04) on the curve."""
    if len(enc) != NENC:
        raise ValueError("MLKEM1024-P384 encapsulation is 1665 bytes")
    ct_pq, ct_t = enc[:MLKEM_CT], enc[MLKEM_CT:]
    if ct_t[0] != 0x04:
        raise ValueError("ct_T must be an uncompressed SEC1 point")
    ss_pq = mlkem_key.decapsulate(ct_pq)
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), ct_t)
    ss_t = p384_key.exchange(ec.ECDH(), ephemeral)  # the x-coordinate, 48 bytes big-endian
    return combine(ss_pq, ss_t, ct_t, _point(p384_key.public_key()))


def open_base(
    wrapped: bytes,
    mlkem_key: mlkem.MLKEM1024PrivateKey,
    p384_key: ec.EllipticCurvePrivateKey,
    info: bytes,
) -> bytes:
    """Single-shot HPKE base-mode open (aad empty, sequence number 0). Raises on failure."""
    enc, ciphertext = wrapped[:NENC], wrapped[NENC:]
    key, base_nonce = rfc9180.key_schedule(SUITE, decapsulate(enc, mlkem_key, p384_key), info)
    return AESGCM(key).decrypt(base_nonce, ciphertext, b"")


def seal_base(
    ct_pq: bytes,
    ss_pq: bytes,
    ek_t: ec.EllipticCurvePublicKey,
    plaintext: bytes,
    info: bytes,
    *,
    reencode: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The sender's side with the ML-KEM ciphertext and its shared secret given and a fresh
    ephemeral P-384 key. ``reencode`` turns the ephemeral point's uncompressed encoding into
    other bytes for ct_T (used as they are in the combiner), to see what a receiver makes of
    them."""
    ephemeral = ec.generate_private_key(ec.SECP384R1())
    ss_t = ephemeral.exchange(ec.ECDH(), ek_t)
    ct_t = _point(ephemeral.public_key())
    if reencode is not None:
        ct_t = reencode(ct_t)
    key, base_nonce = rfc9180.key_schedule(SUITE, combine(ss_pq, ss_t, ct_t, _point(ek_t)), info)
    return ct_pq + ct_t + AESGCM(key).encrypt(base_nonce, plaintext, b"")
