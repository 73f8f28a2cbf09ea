"""The four suites and their fixed sizes (``docs/spec/envelope-v1.md`` section 2).

Pure data: the parser needs these sizes before any cryptography runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from letterlock.errors import ParseError

__all__ = ["Suite", "SuiteSizes"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteSizes:
    sig_public: int
    kem_public: int
    sig_private: int
    kem_private: int
    enc: int
    signature: int
    payload_key: int

    @property
    def wrapped(self) -> int:
        """Bytes of one recipient's wrapped content key: HPKE enc, 32-byte key, 16-byte tag."""
        return self.enc + 32 + 16


class Suite(enum.Enum):
    """A complete choice of algorithms, fixed per identity."""

    P256 = 0x01
    P384 = 0x02
    X25519 = 0x03
    PQ = 0x04

    # Members are singletons: identity hashing is exact, and C-level instead of Enum's
    # Python-level hash of the name (suites key every per-message table lookup).
    __hash__ = object.__hash__

    @property
    def label(self) -> str:
        """The suite's name as users type it: ``p256``, ``p384``, ``x25519``, ``pq``."""
        return self.name.lower()

    @property
    def sizes(self) -> SuiteSizes:
        return _SIZES[self]

    @classmethod
    def from_label(cls, label: str) -> Suite:
        try:
            return cls[label.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ParseError(f"unknown suite {label!r} (choose from {names})") from None

    def __str__(self) -> str:
        return self.label


_SIZES = {
    Suite.P256: SuiteSizes(
        sig_public=65,
        kem_public=65,
        sig_private=32,
        kem_private=32,
        enc=65,
        signature=64,
        payload_key=16,
    ),
    Suite.P384: SuiteSizes(
        sig_public=97,
        kem_public=97,
        sig_private=48,
        kem_private=48,
        enc=97,
        signature=96,
        payload_key=32,
    ),
    Suite.X25519: SuiteSizes(
        sig_public=32,
        kem_public=32,
        sig_private=32,
        kem_private=32,
        enc=32,
        signature=64,
        payload_key=32,
    ),
    Suite.PQ: SuiteSizes(
        sig_public=2592 + 97,
        kem_public=1568 + 97,
        sig_private=32 + 48,
        kem_private=64 + 48,
        enc=1665,
        signature=4627 + 96,
        payload_key=32,
    ),
}
