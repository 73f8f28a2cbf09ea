"""HPKE base-mode open for the pq suite, built from primitives as section 3.3 of the spec says.

The independent verifier opens a pq recipient entry with this module, not with pyca's
``hpke.Suite``, so the text of ``docs/spec/envelope-v1.md`` section 3.3 (the MLKEM1024-P384
combiner, its label, the ECDH output encoding, the order of the inputs and the RFC 9180 key
schedule with its ``suite_id``) is checked byte for byte by every pq vector.

Primitives from pyca/cryptography: ML-KEM-1024 decapsulation, P-384 ECDH, AES-256-GCM; SHA3-256
and HMAC-SHA-384 from the standard library. Nothing from ``letterlock``.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEM_ID = 0x0051  # MLKEM1024-P384
KDF_ID = 0x0002  # HKDF-SHA384
AEAD_ID = 0x0002  # AES-256-GCM
#: RFC 9180 section 5.1: suite_id = "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || ...
SUITE_ID = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big")
SUITE_ID += AEAD_ID.to_bytes(2, "big")
LABEL = b"MLKEM1024-P384"
VERSION = b"HPKE-v1"
MODE_BASE = b"\x00"
MLKEM_CT = 1568
P384_POINT = 97
NENC = MLKEM_CT + P384_POINT
NK, NN = 32, 12
_HASH_LEN = 48


def _extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-384; an empty salt is HashLen zero bytes."""
    return hmac.new(salt or bytes(_HASH_LEN), ikm, hashlib.sha384).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-384."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha384).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 section 4: Extract(salt, "HPKE-v1" || suite_id || label || ikm)."""
    return _extract(salt, VERSION + SUITE_ID + label + ikm)


def labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 section 4: Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)."""
    return _expand(prk, length.to_bytes(2, "big") + VERSION + SUITE_ID + label + info, length)


def key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 section 5.1, base mode (psk and psk_id empty): (key, base_nonce)."""
    psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(b"", b"info_hash", info)
    context = MODE_BASE + psk_id_hash + info_hash
    secret = labeled_extract(shared_secret, b"secret", b"")
    key = labeled_expand(secret, b"key", context, NK)
    base_nonce = labeled_expand(secret, b"base_nonce", context, NN)
    return key, base_nonce


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def decapsulate(
    enc: bytes, mlkem_key: mlkem.MLKEM1024PrivateKey, p384_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """The combiner: SHA3-256(ss_PQ || ss_T || ct_T || ek_T || "MLKEM1024-P384").

    Raises ValueError for an encapsulation of the wrong size or a ct_T that is not an
    uncompressed P-384 point (first byte 0x04) on the curve.
    """
    if len(enc) != NENC:
        raise ValueError("MLKEM1024-P384 encapsulation is 1665 bytes")
    ct_pq, ct_t = enc[:MLKEM_CT], enc[MLKEM_CT:]
    if ct_t[0] != 0x04:
        raise ValueError("ct_T must be an uncompressed SEC1 point")
    ss_pq = mlkem_key.decapsulate(ct_pq)
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), ct_t)
    ss_t = p384_key.exchange(ec.ECDH(), ephemeral)  # the x-coordinate, 48 bytes big-endian
    ek_t = _point(p384_key.public_key())
    return hashlib.sha3_256(ss_pq + ss_t + ct_t + ek_t + LABEL).digest()


def open_base(
    wrapped: bytes,
    mlkem_key: mlkem.MLKEM1024PrivateKey,
    p384_key: ec.EllipticCurvePrivateKey,
    info: bytes,
) -> bytes:
    """Single-shot HPKE base-mode open (aad empty, sequence number 0). Raises on failure."""
    enc, ciphertext = wrapped[:NENC], wrapped[NENC:]
    key, base_nonce = key_schedule(decapsulate(enc, mlkem_key, p384_key), info)
    return AESGCM(key).decrypt(base_nonce, ciphertext, b"")
