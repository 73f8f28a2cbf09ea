"""The credential block an envelope may carry (``docs/spec/envelope-v1.md`` section 4.1). Pure.

A sender whose receivers may never have seen it carries its credentials in the signed header:
the status version it knows and a chain (X.509 certificates, or letterlock credentials), leaf
first, or the keyset by which its identity key certifies the signing key that signed. A
:class:`CredentialBlock` is that block, encoded and checked; receivers get it from the parser,
senders attach one to their identity (:meth:`letterlock.Identity.with_credentials`).

The block is only the sender's claim: a trust policy verifies the chain against its own anchors
and never takes a certificate's word for whom it certifies or what it may do.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from letterlock.errors import UsageError

__all__ = [
    "MAX_CREDENTIAL_ITEM",
    "MAX_CREDENTIAL_ITEMS",
    "CredentialBlock",
    "CredentialFormat",
]

#: The most items a block carries (an X.509 leaf and at most 4 intermediates).
MAX_CREDENTIAL_ITEMS: Final = 5
#: The largest item, in bytes (x509.md section 4's certificate cap).
MAX_CREDENTIAL_ITEM: Final = 16384
#: status version (8), format (1), count (1)
BLOCK_FRONT: Final = 10
_FRONT = struct.Struct(">QBB")
_U16 = struct.Struct(">H")


class CredentialFormat(enum.IntEnum):
    """What a block's items are."""

    NONE = 0  #: no items: the block carries only a status version
    LETTERLOCK = 1  #: letterlock credentials (``docs/spec/credentials.md``), leaf first
    X509 = 2  #: X.509 certificates, DER, leaf first (``docs/spec/x509.md``)
    KEYSET = 3  #: a keyset and its identity key's signature (``docs/spec/keyset.md`` 9)


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialBlock:
    """A credential block: its fields, its bytes, and the digest policies cache chains by.

    ``chain_digest`` is SHA-256 of the block after its status version (format, count and
    items): a chain verified once is known by it, whatever status version a later message
    carries. Build one with :meth:`of` (sender) or get one from the parser (receiver).
    """

    status_version: int
    format: CredentialFormat
    items: tuple[bytes, ...] = field(repr=False)
    encoded: bytes = field(repr=False, compare=False)
    chain_digest: bytes = field(repr=False, compare=False)

    @classmethod
    def of(
        cls,
        format: CredentialFormat,
        items: Iterable[bytes],
        *,
        status_version: int = 0,
    ) -> CredentialBlock:
        """A block, checked as the parser checks it (UsageError for what it would refuse)."""
        chain = tuple(bytes(item) for item in items)
        if not 0 <= status_version < 2**64:
            raise UsageError("status_version must fit in 64 bits")
        try:
            kind = CredentialFormat(format)
        except ValueError:
            raise UsageError(f"unknown credential format {format!r}") from None
        if len(chain) > MAX_CREDENTIAL_ITEMS:
            raise UsageError(f"a credential block carries at most {MAX_CREDENTIAL_ITEMS} items")
        if (kind is CredentialFormat.NONE) != (not chain):
            raise UsageError("format NONE carries no items; the other formats at least one")
        for item in chain:
            if not 1 <= len(item) <= MAX_CREDENTIAL_ITEM:
                raise UsageError(f"a credential item is 1 to {MAX_CREDENTIAL_ITEM} bytes")
        encoded = _FRONT.pack(status_version, kind, len(chain)) + b"".join(
            _U16.pack(len(item)) + item for item in chain
        )
        return block_of(status_version, kind, chain, encoded)


def block_of(
    status_version: int, kind: CredentialFormat, items: tuple[bytes, ...], encoded: bytes
) -> CredentialBlock:
    """A block from fields already checked (the parser's and :meth:`CredentialBlock.of`'s)."""
    made = object.__new__(CredentialBlock)
    object.__setattr__(made, "status_version", status_version)
    object.__setattr__(made, "format", kind)
    object.__setattr__(made, "items", items)
    object.__setattr__(made, "encoded", encoded)
    object.__setattr__(made, "chain_digest", hashlib.sha256(encoded[8:]).digest())
    return made
