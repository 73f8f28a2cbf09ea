"""The RFC 9180 key schedule (base mode) and DHKEM's ExtractAndExpand, from HMAC.

Used by the independent verifier for the pq suite (``mlkem1024_p384``) and by tests that
build HPKE ciphertexts around a chosen ``enc`` and DH output (Wycheproof's key-agreement cases,
odd point encodings) to see what letterlock's receiver makes of them. HMAC from the standard
library, the AEADs from pyca/cryptography; nothing from ``letterlock``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

VERSION = b"HPKE-v1"
MODE_BASE = b"\x00"


@dataclass(frozen=True)
class Suite:
    """One HPKE ciphersuite: the identifiers of RFC 9180 section 7 and what the schedule needs."""

    kem_id: int
    kdf_id: int
    aead_id: int
    hash_name: str  # the KDF's hash, for hashlib
    nk: int  # AEAD key length
    nn: int = 12  # AEAD nonce length

    @property
    def suite_id(self) -> bytes:
        """Section 5.1: "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2)."""
        ids = (self.kem_id, self.kdf_id, self.aead_id)
        return b"HPKE" + b"".join(i.to_bytes(2, "big") for i in ids)

    @property
    def kem_suite_id(self) -> bytes:
        """Section 4.1: "KEM" || I2OSP(kem_id, 2), for the KEM's own derivations."""
        return b"KEM" + self.kem_id.to_bytes(2, "big")


def extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract; an empty salt is HashLen zero bytes."""
    size = hashlib.new(hash_name).digest_size
    return hmac.new(salt or bytes(size), ikm, hash_name).digest()


def expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True)
class Labeled:
    """Section 4's LabeledExtract and LabeledExpand for one hash and one suite_id."""

    hash_name: str
    suite_id: bytes

    def extract(self, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        """Extract(salt, "HPKE-v1" || suite_id || label || ikm)."""
        return extract(self.hash_name, salt, VERSION + self.suite_id + label + ikm)

    def expand(self, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        """Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)."""
        labeled_info = length.to_bytes(2, "big") + VERSION + self.suite_id + label + info
        return expand(self.hash_name, prk, labeled_info, length)


def key_schedule(suite: Suite, shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    """Section 5.1 in base mode (psk and psk_id empty): (key, base_nonce)."""
    labeled = Labeled(suite.hash_name, suite.suite_id)
    psk_id_hash = labeled.extract(b"", b"psk_id_hash", b"")
    info_hash = labeled.extract(b"", b"info_hash", info)
    context = MODE_BASE + psk_id_hash + info_hash
    secret = labeled.extract(shared_secret, b"secret", b"")
    key = labeled.expand(secret, b"key", context, suite.nk)
    base_nonce = labeled.expand(secret, b"base_nonce", context, suite.nn)
    return key, base_nonce


def dhkem_shared_secret(
    suite: Suite, dh: bytes, kem_context: bytes, *, kem_hash: str, nsecret: int
) -> bytes:
    """Section 4.1, DHKEM's ExtractAndExpand; kem_context = enc || pkRm."""
    labeled = Labeled(kem_hash, suite.kem_suite_id)
    eae_prk = labeled.extract(b"", b"eae_prk", dh)
    return labeled.expand(eae_prk, b"shared_secret", kem_context, nsecret)


@dataclass(frozen=True)
class Dhkem:
    """A DHKEM of section 4.1 inside one HPKE suite: the KEM's hash and Nsecret."""

    suite: Suite
    kem_hash: str
    nsecret: int

    def seal(self, *, enc: bytes, dh: bytes, pk_rm: bytes, plaintext: bytes, info: bytes) -> bytes:
        """``enc || ciphertext`` of a base-mode single-shot seal (empty aad) whose KEM output
        is ``enc`` with DH output ``dh``, for the receiver whose public key is ``pk_rm``."""
        shared = dhkem_shared_secret(
            self.suite, dh, enc + pk_rm, kem_hash=self.kem_hash, nsecret=self.nsecret
        )
        key, nonce = key_schedule(self.suite, shared, info)
        return enc + self._aead(key).encrypt(nonce, plaintext, b"")

    def open(self, *, enc: bytes, ciphertext: bytes, dh: bytes, pk_rm: bytes, info: bytes) -> bytes:
        """The plaintext of a base-mode single-shot open (empty aad); raises on failure."""
        shared = dhkem_shared_secret(
            self.suite, dh, enc + pk_rm, kem_hash=self.kem_hash, nsecret=self.nsecret
        )
        key, nonce = key_schedule(self.suite, shared, info)
        return self._aead(key).decrypt(nonce, ciphertext, b"")

    def _aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        return ChaCha20Poly1305(key) if self.suite.aead_id == 0x0003 else AESGCM(key)


#: The DHKEM suites of letterlock's p256, p384 and x25519 suites (spec section 2).
DHKEM_P256 = Dhkem(Suite(0x0010, 0x0001, 0x0001, "sha256", 16), "sha256", 32)
DHKEM_P384 = Dhkem(Suite(0x0011, 0x0002, 0x0002, "sha384", 32), "sha384", 48)
DHKEM_X25519 = Dhkem(Suite(0x0020, 0x0001, 0x0003, "sha256", 32), "sha256", 32)
