"""Hazardous materials: raw key bytes and the deterministic sealing path.

Nothing here is needed to use letterlock. It exists for key stores, test vectors and
interoperability tests. Misuse (a repeated message id, a leaked private encoding) breaks the
security of every message involved.
"""

from __future__ import annotations

from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.protocol import seal_envelope, wrap_content_key

__all__ = [
    "identity_from_private_bytes",
    "identity_to_private_bytes",
    "public_identity_from_bytes",
    "seal_envelope",
    "wrap_content_key",
]


def identity_from_private_bytes(encoded: bytes) -> Identity:
    """An Identity from its private encoding (``docs/spec/envelope-v1.md`` section 3.2)."""
    return Identity._load(encoded)


def identity_to_private_bytes(identity: Identity) -> bytes:
    """The private encoding of an identity. Encrypt it before it touches a disk."""
    return identity._private


def public_identity_from_bytes(encoded: bytes) -> PublicIdentity:
    return PublicIdentity(encoded)
