"""Identity key handles (``docs/spec/envelope-v1.md`` section 3).

An :class:`Identity` holds a private signature key and a private encryption key of one suite;
its :class:`PublicIdentity` is what others pin and encrypt to. Handles are hard to misuse: no
secret in ``repr``, no pickling, equality on the public encoding only. Building an identity from
raw private bytes is deliberately kept out of this class: see :mod:`letterlock.hazmat`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from typing import Final, NoReturn, final

from letterlock import _crypto
from letterlock.core.suites import Suite
from letterlock.errors import UsageError

__all__ = ["Identity", "PublicIdentity"]

PUBLIC_MAGIC: Final = b"LLP\x01"
PRIVATE_MAGIC: Final = b"LLS\x01"
RECIPIENT_ID_SIZE: Final = 16
SENDER_ID_SIZE: Final = 32
_TEXT_PREFIX: Final = "letterlock-"


def _split_identity(data: bytes, magic: bytes, what: str) -> tuple[Suite, bytes, bytes]:
    """Split ``magic || suite || u16 len || a || u16 len || b``; exact lengths or ValueError."""
    if len(data) < 6 or data[:4] != magic:
        raise ValueError(f"not a letterlock {what}")
    try:
        suite = Suite(data[4])
    except ValueError:
        raise ValueError(f"{what} of an unknown suite 0x{data[4]:02x}") from None
    (first_len,) = struct.unpack_from(">H", data, 5)
    first = data[7 : 7 + first_len]
    rest = 7 + first_len
    if len(first) != first_len or len(data) < rest + 2:
        raise ValueError(f"truncated {what}")
    (second_len,) = struct.unpack_from(">H", data, rest)
    second = data[rest + 2 : rest + 2 + second_len]
    if len(second) != second_len or len(data) != rest + 2 + second_len:
        raise ValueError(f"{what} has the wrong length")
    return suite, first, second


def _join_identity(magic: bytes, suite: Suite, first: bytes, second: bytes) -> bytes:
    return b"".join(
        (magic, bytes([suite.value]), struct.pack(">H", len(first)), first,
         struct.pack(">H", len(second)), second)
    )  # fmt: skip


def format_fingerprint(fingerprint: bytes) -> str:
    """``SHA256:`` and the unpadded base64 of a fingerprint, as OpenSSH shows keys."""
    return "SHA256:" + base64.b64encode(fingerprint).decode("ascii").rstrip("=")


@final
class PublicIdentity:
    """Someone's public keys: what a sender encrypts to and a receiver verifies with."""

    __slots__ = (
        "_encapsulator",
        "_encoded",
        "_fingerprint",
        "_recipient_id",
        "_suite",
        "_verifier",
    )

    def __init__(self, encoded: bytes) -> None:
        """Parse the canonical encoding (section 3.1). Raises ValueError if it is not one."""
        suite, sig_public, kem_public = _split_identity(bytes(encoded), PUBLIC_MAGIC, "public key")
        self._verifier, self._encapsulator = _crypto.load_public(suite, sig_public, kem_public)
        self._suite = suite
        self._encoded = bytes(encoded)
        self._fingerprint = hashlib.sha256(self._encoded).digest()
        self._recipient_id = self._fingerprint[:RECIPIENT_ID_SIZE]

    @property
    def suite(self) -> Suite:
        return self._suite

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the encoding; also the sender key id in envelopes."""
        return self._fingerprint

    @property
    def recipient_id(self) -> bytes:
        """The 16-byte key id that names this identity in a recipient block."""
        return self._recipient_id

    @property
    def fingerprint_text(self) -> str:
        return format_fingerprint(self._fingerprint)

    def to_bytes(self) -> bytes:
        return self._encoded

    def to_text(self, name: str | None = None) -> str:
        """One line: ``letterlock-<suite> <base64> [name]``, like an OpenSSH public key."""
        line = f"{_TEXT_PREFIX}{self._suite.label} {base64.b64encode(self._encoded).decode()}"
        return f"{line} {name}" if name else line

    @classmethod
    def from_text(cls, line: str) -> tuple[PublicIdentity, str | None]:
        """Parse :meth:`to_text` output; returns the identity and the name, if any."""
        parts = line.strip().split(maxsplit=2)
        if len(parts) < 2 or not parts[0].startswith(_TEXT_PREFIX):
            raise ValueError("not a letterlock public key line")
        try:
            encoded = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise ValueError("public key is not valid base64") from None
        identity = cls(encoded)
        if parts[0] != _TEXT_PREFIX + identity.suite.label:
            raise ValueError("public key line names a different suite than its key")
        return identity, (parts[2] if len(parts) == 3 else None)

    def verify(self, signature: bytes, message: bytes) -> bool:
        return self._verifier.verify(signature, message)

    def wrap(self, content_key: bytes, info: bytes) -> bytes:
        return self._encapsulator.wrap(content_key, info)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicIdentity):
            return NotImplemented
        return hmac.compare_digest(self._encoded, other._encoded)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"<PublicIdentity {self._suite.label} {self.fingerprint_text}>"


@final
class Identity:
    """A private identity: signs what it sends, decrypts what is sent to it.

    Create one with :meth:`generate`; load one from a key file (:mod:`letterlock.keystore`).
    It has no secret in its repr and refuses to be pickled or copied into a string.
    """

    __slots__ = ("_decapsulator", "_private", "_public", "_signer")
    _decapsulator: _crypto.Decapsulator
    _private: bytes
    _public: PublicIdentity
    _signer: _crypto.Signer

    def __init__(self, *_: object, **__: object) -> None:
        raise TypeError("use Identity.generate() or a keystore to obtain an Identity")

    @classmethod
    def generate(cls, suite: Suite) -> Identity:
        """A fresh identity of ``suite`` from the operating system's randomness."""
        if not isinstance(suite, Suite):
            raise UsageError(f"suite must be a letterlock.Suite, not {suite!r}")
        sig_private, kem_private = _crypto.generate_private(suite)
        return cls._load(_join_identity(PRIVATE_MAGIC, suite, sig_private, kem_private))

    @classmethod
    def _load(cls, private_encoding: bytes) -> Identity:
        suite, sig_private, kem_private = _split_identity(
            private_encoding, PRIVATE_MAGIC, "private key"
        )
        signer, decapsulator, sig_public, kem_public = _crypto.load_private(
            suite, sig_private, kem_private
        )
        self = object.__new__(cls)
        self._signer = signer
        self._decapsulator = decapsulator
        self._private = bytes(private_encoding)
        self._public = PublicIdentity(_join_identity(PUBLIC_MAGIC, suite, sig_public, kem_public))
        return self

    @property
    def suite(self) -> Suite:
        return self._public.suite

    @property
    def public(self) -> PublicIdentity:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        return self._decapsulator.unwrap(wrapped, info)

    def __repr__(self) -> str:
        return f"<Identity {self.suite.label} {self._public.fingerprint_text}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Identity holds private keys and cannot be pickled")

    def __copy__(self) -> Identity:
        return self

    def __deepcopy__(self, memo: object) -> Identity:
        return self
