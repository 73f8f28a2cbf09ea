"""The floor: the least cryptography a signed, encrypted message needs, as raw pyca calls.

Per letterlock suite, with that suite's algorithms (``_crypto.py``):

* warm: one AEAD encryption under a long-lived key (random nonce), one hash of the
  ciphertext, one signature of that hash; opening verifies, then decrypts.
* cold: as warm, plus a fresh content key HPKE-encrypted to each recipient (the signature
  also covers those entries); opening adds one HPKE decryption.
* bulk (1 MiB and up): one AEAD pass and one hash pass, nothing else. The nonce travels
  beside the message (the case looks it up by tag), so no copy is measured either.

No framing beyond 4-byte length prefixes, no header, no replay or trust checks: what any
design must at least do, so ``letterlock / floor`` is letterlock's own overhead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from compare.base import Case, Contender, Mode, OpenFailed, join_frames, payload_of, split_frames

__all__ = ["contenders", "name_of"]

_INFO: Final = b"letterlock bench floor"
_ZERO_NONCE: Final = bytes(12)

_Aead = AESGCM | ChaCha20Poly1305
_KemPrivate = ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | hpke.MLKEM1024P384PrivateKey


@dataclass(frozen=True, slots=True, kw_only=True)
class _Algorithms:
    """One letterlock suite's primitives, as ``_crypto.py`` picks them."""

    hash: str
    aead: Callable[[bytes], _Aead]
    key_size: int
    hpke: hpke.Suite
    new_kem_key: Callable[[], _KemPrivate]


def _ec_kem(curve: ec.EllipticCurve) -> Callable[[], _KemPrivate]:
    return lambda: ec.generate_private_key(curve)


def _pq_kem() -> _KemPrivate:
    return hpke.MLKEM1024P384PrivateKey(
        mlkem.MLKEM1024PrivateKey.generate(), ec.generate_private_key(ec.SECP384R1())
    )


_SUITES: Final = {
    "p256": _Algorithms(
        hash="sha256",
        aead=AESGCM,
        key_size=16,
        hpke=hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
        new_kem_key=_ec_kem(ec.SECP256R1()),
    ),
    "p384": _Algorithms(
        hash="sha384",
        aead=AESGCM,
        key_size=32,
        hpke=hpke.Suite(hpke.KEM.P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
        new_kem_key=_ec_kem(ec.SECP384R1()),
    ),
    "x25519": _Algorithms(
        hash="sha256",
        aead=ChaCha20Poly1305,
        key_size=32,
        hpke=hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
        new_kem_key=x25519.X25519PrivateKey.generate,
    ),
    "pq": _Algorithms(
        hash="sha384",
        aead=AESGCM,
        key_size=32,
        hpke=hpke.Suite(hpke.KEM.MLKEM1024_P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
        new_kem_key=_pq_kem,
    ),
}
_PREHASH: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
}


class _Signature:
    """The suite's signature over a digest: ECDSA, Ed25519, or ML-DSA-87 and ECDSA P-384."""

    def __init__(self, suite: str) -> None:
        self._ed = ed25519.Ed25519PrivateKey.generate() if suite == "x25519" else None
        curve = ec.SECP256R1() if suite == "p256" else ec.SECP384R1()
        self._ec = ec.generate_private_key(curve)
        self._ml = mldsa.MLDSA87PrivateKey.generate() if suite == "pq" else None
        self._ecdsa = ec.ECDSA(Prehashed(_PREHASH[_SUITES[suite].hash]))

    def sign(self, digest: bytes) -> bytes:
        if self._ed is not None:
            return self._ed.sign(digest)
        signature = self._ec.sign(digest, self._ecdsa)
        if self._ml is not None:
            return join_frames([self._ml.sign(digest), signature])
        return signature

    def verify(self, signature: bytes, digest: bytes) -> None:
        try:
            if self._ed is not None:
                self._ed.public_key().verify(signature, digest)
                return
            if self._ml is not None:
                ml, signature = (bytes(p) for p in split_frames(signature))
                self._ml.public_key().verify(ml, digest)
            self._ec.public_key().verify(signature, digest, self._ecdsa)
        except (InvalidSignature, ValueError) as error:
            raise OpenFailed("bad signature") from error


def _decrypt(aead: _Aead, nonce: bytes, ciphertext: memoryview | bytes) -> bytes:
    try:
        return aead.decrypt(nonce, ciphertext, None)
    except InvalidTag as error:
        raise OpenFailed("AEAD tag") from error


class _Warm:
    """Signature + AEAD under a long-lived key: what letterlock's warm path must at least do."""

    def __init__(self, suite: str, size: int, recipients: int) -> None:
        del recipients  # the key is already shared: no per-recipient work
        self.payload = payload_of(size)
        self._algorithms = _SUITES[suite]
        self._signature = _Signature(suite)
        self._aead = self._algorithms.aead(os.urandom(self._algorithms.key_size))

    def seal(self) -> bytes:
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, self.payload, None)
        hashed = hashlib.new(self._algorithms.hash, nonce)
        hashed.update(ciphertext)
        return join_frames([nonce, ciphertext, self._signature.sign(hashed.digest())])

    def open(self, sealed: bytes) -> bytes:
        parts = split_frames(sealed)
        if len(parts) != 3:
            raise OpenFailed("frames")
        nonce, ciphertext, signature = bytes(parts[0]), parts[1], bytes(parts[2])
        hashed = hashlib.new(self._algorithms.hash, nonce)
        hashed.update(ciphertext)
        self._signature.verify(signature, hashed.digest())
        return _decrypt(self._aead, nonce, ciphertext)


class _Cold:
    """Signature + one HPKE per recipient + AEAD under a fresh key: first contact."""

    def __init__(self, suite: str, size: int, recipients: int) -> None:
        self.payload = payload_of(size)
        self._algorithms = _SUITES[suite]
        self._signature = _Signature(suite)
        self._reader = self._algorithms.new_kem_key()
        others = [self._algorithms.new_kem_key() for _ in range(recipients - 1)]
        self._public = [k.public_key() for k in (self._reader, *others)]

    def seal(self) -> bytes:
        algorithms = self._algorithms
        key = os.urandom(algorithms.key_size)
        entries = [algorithms.hpke.encrypt(key, p, info=_INFO) for p in self._public]
        ciphertext = algorithms.aead(key).encrypt(_ZERO_NONCE, self.payload, None)
        hashed = hashlib.new(algorithms.hash, b"".join(entries))
        hashed.update(ciphertext)
        signature = self._signature.sign(hashed.digest())
        return join_frames([*entries, ciphertext, signature])

    def open(self, sealed: bytes) -> bytes:
        parts = split_frames(sealed)
        if len(parts) != len(self._public) + 2:
            raise OpenFailed("frames")
        entries, ciphertext, signature = parts[:-2], parts[-2], bytes(parts[-1])
        hashed = hashlib.new(self._algorithms.hash, b"".join(entries))
        hashed.update(ciphertext)
        self._signature.verify(signature, hashed.digest())
        try:
            key = self._algorithms.hpke.decrypt(bytes(entries[0]), self._reader, info=_INFO)
        except Exception as error:  # pyca raises several types for a bad HPKE message
            raise OpenFailed("HPKE") from error
        return _decrypt(self._algorithms.aead(key), _ZERO_NONCE, ciphertext)


class _Bulk:
    """One AEAD pass and one hash pass: the memory-speed ceiling for large payloads."""

    def __init__(self, suite: str, size: int, recipients: int) -> None:
        del recipients
        self.payload = payload_of(size)
        self._algorithms = _SUITES[suite]
        self._aead = self._algorithms.aead(os.urandom(self._algorithms.key_size))
        self._nonces: dict[bytes, bytes] = {}  # tag -> nonce: the nonce travels out of band

    def seal(self) -> bytes:
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, self.payload, None)
        hashlib.new(self._algorithms.hash, ciphertext).digest()
        self._nonces[ciphertext[-16:]] = nonce
        return ciphertext

    def open(self, sealed: bytes) -> bytes:
        hashlib.new(self._algorithms.hash, sealed).digest()
        tag = sealed[-16:]
        nonce = self._nonces.get(tag)
        if nonce is None:
            raise OpenFailed("unknown tag")
        payload = _decrypt(self._aead, nonce, sealed)
        del self._nonces[tag]
        return payload


_WHAT: Final = {
    "warm": "signature of H(ciphertext) + AEAD under a long-lived key",
    "cold": "signature + one HPKE per recipient + AEAD under a fresh key",
    "bulk": "one AEAD pass + one hash pass, no signature (throughput ceiling)",
}
_MODES: Final[tuple[Mode, ...]] = ("warm", "cold", "bulk")


def name_of(suite: str, mode: Mode) -> str:
    """The contender name of the floor for ``suite`` and ``mode``."""
    return f"floor {suite} {mode}"


def _contender(suite: str, mode: Mode) -> Contender:
    makers: dict[Mode, Callable[[str, int, int], Case]] = {
        "warm": _Warm,
        "cold": _Cold,
        "bulk": _Bulk,
    }
    make = makers[mode]

    def setup(size: int, recipients: int) -> Case:
        return make(suite, size, recipients)

    return Contender(
        name=name_of(suite, mode),
        kind="floor",
        what=f"{suite}: raw pyca/cryptography, {_WHAT[mode]}",
        setup=setup,
        suite=suite,
        mode=mode,
        min_size=1 << 20 if mode == "bulk" else 0,
    )


def contenders(suites: list[str]) -> list[Contender]:
    """The warm, cold and bulk floors of each of ``suites``."""
    return [_contender(suite, mode) for suite in suites for mode in _MODES]
