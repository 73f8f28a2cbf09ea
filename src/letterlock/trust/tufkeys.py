"""The keys a letterlock root may list, as securesystemslib keys (``docs/spec/root.md`` section 2).

ECDSA P-256 and P-384, Ed25519 and ML-DSA-87 are securesystemslib's own ``SSlibKey`` types, so
any TUF tool can sign a letterlock root with them. The pq suite's dual key (ML-DSA-87 and ECDSA
P-384, both of which must verify) has no TUF key type: :class:`DualKey` is one, registered with
securesystemslib as ``letterlock-pq``, and :class:`DualSigner` signs with it.

Thresholds count *keys*, not key ids: :func:`key_identities` names each key by the canonical
encoding of its public key(s), so one key under two ids, or written two ways, counts once, and
a dual key counts as the same holder as a plain key that shares one of its halves.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Final, NoReturn

from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import (
    KEY_FOR_TYPE_AND_SCHEME,
    Key,
    SecretsHandler,
    Signature,
    Signer,
    SSlibKey,
)

from letterlock import _crypto
from letterlock._suites import Suite
from letterlock.core.keys import Identity, PublicIdentity, signature_public_key
from letterlock.errors import UsageError

__all__ = [
    "DUAL_CONTEXT",
    "SUPPORTED",
    "DualKey",
    "DualSigner",
    "IdentitySigner",
    "key_identities",
    "tuf_key",
]

#: Prefixed to the signed bytes before a dual key signs them, so a dual root key's signature can
#: never be taken for an envelope signature by the same key, nor the other way round.
DUAL_CONTEXT: Final = b"letterlock/tuf-dual/v1\x00"

#: (keytype, scheme) of the keys a root may list; anything else is refused when it is read.
SUPPORTED: Final = frozenset({
    ("ecdsa", "ecdsa-sha2-nistp256"),
    ("ecdsa", "ecdsa-sha2-nistp384"),
    ("ed25519", "ed25519"),
    ("ml-dsa", "ml-dsa-87/1"),
    ("letterlock-pq", "ml-dsa-87+ecdsa-sha2-nistp384"),
})  # fmt: skip


class DualKey(Key):
    """The pq suite's signature key as a TUF key: valid only if ML-DSA-87 and ECDSA P-384 verify.

    ``keyval`` is ``{"public": hex}`` of the suite's 2689-byte signature public key (ML-DSA-87,
    then the uncompressed P-384 point), the same bytes a letterlock pq identity carries.
    """

    KEYTYPE: Final = "letterlock-pq"
    SCHEME: Final = "ml-dsa-87+ecdsa-sha2-nistp384"

    def __init__(
        self,
        keyid: str,
        keytype: str,
        scheme: str,
        keyval: dict[str, Any],
        unrecognized_fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(keyid, keytype, scheme, keyval, unrecognized_fields)
        if (keytype, scheme) != (self.KEYTYPE, self.SCHEME):
            raise ValueError(f"not a {self.KEYTYPE} key")
        public = keyval.get("public")
        if not isinstance(public, str):
            raise TypeError("a dual key's keyval needs a hex 'public'")
        verifier, ml_spki, ec_spki = _crypto.pq_public(bytes.fromhex(public))
        self._verifier = verifier
        self.identities = frozenset({ml_spki, ec_spki})

    @classmethod
    def from_public(cls, public: bytes) -> DualKey:
        """The key with the default TUF key id (SHA-256 of its canonical JSON)."""
        keyval = {"public": public.hex()}
        return cls(_default_keyid(cls.KEYTYPE, cls.SCHEME, keyval), cls.KEYTYPE, cls.SCHEME, keyval)

    @classmethod
    def from_dict(cls, keyid: str, key_dict: dict[str, Any]) -> DualKey:
        keytype, scheme, keyval = cls._from_dict(key_dict)
        return cls(keyid, keytype, scheme, keyval, key_dict)

    def to_dict(self) -> dict[str, Any]:
        return self._to_dict()

    def verify_signature(self, signature: Signature, data: bytes) -> None:
        try:
            raw = bytes.fromhex(signature.signature)
        except ValueError:
            raise UnverifiedSignatureError(f"signature by {self.keyid} is not hex") from None
        if signature.keyid != self.keyid or not self._verifier.verify(raw, DUAL_CONTEXT + data):
            raise UnverifiedSignatureError(f"failed to verify signature by {self.keyid}")


class _LocalSigner(Signer):
    """A signer whose private key lives in this process: never from a key URI, never pickled."""

    _loaded_as: ClassVar[str]

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> NoReturn:
        raise UsageError(f"{cls._loaded_as} are loaded from a letterlock key store, not a key URI")

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled")


class DualSigner(_LocalSigner):
    """Signs TUF metadata with a pq dual key held in this process (no repr, never pickled)."""

    _loaded_as = "dual keys"

    def __init__(self, sig_private: bytes) -> None:
        try:
            self._signer, public = _crypto.pq_signer(sig_private)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._public = DualKey.from_public(public)

    @classmethod
    def generate(cls) -> DualSigner:
        return cls(_crypto.generate_private(Suite.PQ)[0])

    @property
    def public_key(self) -> DualKey:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        raw = self._signer.sign(DUAL_CONTEXT + payload)
        return Signature(self._public.keyid, raw.hex())

    def __repr__(self) -> str:
        return "<DualSigner>"


def tuf_key(public: PublicIdentity) -> Key:
    """The signature key of a letterlock identity as the TUF key a root lists: Ed25519 for
    x25519, ECDSA for p256 and p384 (securesystemslib's own types, default key ids), and a
    :class:`DualKey` for pq."""
    raw = signature_public_key(public)
    if public.suite is Suite.PQ:
        return DualKey.from_public(raw)
    keytype, scheme, text = _crypto.tuf_public_key(public.suite, raw)
    keyval = {"public": text}
    return SSlibKey(_default_keyid(keytype, scheme, keyval), keytype, scheme, keyval)


class IdentitySigner(_LocalSigner):
    """Signs TUF metadata with a letterlock identity's signing key (a key file's, or a token's:
    only its :class:`~letterlock.core.keys.Signer` capability is used). Its public key is
    :func:`tuf_key` of the identity. Like :class:`DualSigner`, a pq identity signs
    :data:`DUAL_CONTEXT` and the payload; the others sign the payload as securesystemslib
    verifies it (ECDSA with the curve's hash, in DER; Ed25519)."""

    _loaded_as = "identity signers"

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._public = tuf_key(identity.public)

    @property
    def public_key(self) -> Key:
        return self._public

    def sign(self, payload: bytes) -> Signature:
        suite = self._identity.suite
        if suite is Suite.PQ:
            return Signature(self._public.keyid, self._identity.sign(DUAL_CONTEXT + payload).hex())
        raw = _crypto.tuf_signature(suite, self._identity.sign(payload))
        return Signature(self._public.keyid, raw.hex())

    def __repr__(self) -> str:
        return f"<IdentitySigner {self._public.keyid[:16]}>"


def key_identities(key: Key) -> frozenset[bytes]:
    """The canonical public key(s) behind ``key``.

    Raises ValueError or TypeError for a key a root may not list (``SUPPORTED``).
    """
    if (key.keytype, key.scheme) not in SUPPORTED:
        raise ValueError(f"unsupported key type {key.keytype}/{key.scheme}")
    if isinstance(key, DualKey):
        return key.identities
    if not isinstance(key, SSlibKey) or not isinstance(key.keyval.get("public"), str):
        raise TypeError(f"key {key.keyid} is not a plain public key")
    return frozenset({_crypto.spki_identity(key.keytype, key.keyval["public"])})


def _default_keyid(keytype: str, scheme: str, keyval: dict[str, Any]) -> str:
    canonical = encode_canonical({"keytype": keytype, "scheme": scheme, "keyval": keyval})
    assert isinstance(canonical, str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


KEY_FOR_TYPE_AND_SCHEME[(DualKey.KEYTYPE, DualKey.SCHEME)] = DualKey
