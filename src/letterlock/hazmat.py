"""Hazardous materials: raw key bytes and the deterministic sealing path.

Nothing here is needed to use letterlock. It exists for key stores, test vectors and
interoperability tests. Misuse (a repeated message id, a leaked private encoding) breaks the
security of every message involved.
"""

from __future__ import annotations

from letterlock.core.keys import Identity, PrivateKeys, PublicIdentity
from letterlock.core.protocol import seal_envelope, wrap_content_key
from letterlock.errors import UsageError

__all__ = [
    "identity_from_private_bytes",
    "identity_to_private_bytes",
    "private_keys_from_bytes",
    "public_identity_from_bytes",
    "seal_envelope",
    "wrap_content_key",
]


def private_keys_from_bytes(encoded: bytes) -> PrivateKeys:
    """Private keys from their encoding (``docs/spec/envelope-v1.md`` section 3.2).

    Raises ParseError if the bytes are not a valid private identity.
    """
    return PrivateKeys._load(encoded)


def identity_from_private_bytes(encoded: bytes) -> Identity:
    """An Identity whose keys are held in this process, from their private encoding."""
    return private_keys_from_bytes(encoded).identity()


def identity_to_private_bytes(identity: Identity) -> bytes:
    """The private encoding of an identity whose keys are held in this process.

    Encrypt it before it touches a disk. An identity whose keys live elsewhere (a token) has
    none to give: UsageError.
    """
    keys = identity.signer
    if not isinstance(keys, PrivateKeys) or identity.decapsulator is not keys:
        raise UsageError("the private keys of this identity are not held in this process")
    return keys._private_encoding()


def public_identity_from_bytes(encoded: bytes) -> PublicIdentity:
    return PublicIdentity(encoded)
