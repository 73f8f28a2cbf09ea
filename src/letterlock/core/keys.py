"""Identity key handles (``docs/spec/envelope-v1.md`` section 3).

A :class:`PublicIdentity` is what others pin and encrypt to. An :class:`Identity` is a public
identity together with two capabilities: a :class:`Signer`, which signs what it sends, and a
:class:`Decapsulator`, which unwraps the content keys sent to it. They are protocols, as age's
``Identity`` and ``Recipient`` are interfaces: where the private keys live is the
implementation's business. :class:`PrivateKeys` is the implementation that holds them in this
process (made by :meth:`Identity.generate`, or loaded from a key file); a hardware token
(PKCS#11) is another, whose keys never leave it.

Handles are hard to misuse: no secret in ``repr``, no pickling, equality on the public encoding
only. Raw private bytes pass only through :mod:`letterlock.hazmat`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Callable, Iterable
from typing import Final, NoReturn, Protocol, final

from letterlock import _crypto
from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.suites import Suite
from letterlock.errors import ParseError, UsageError

__all__ = [
    "Decapsulator",
    "Identity",
    "PrivateKeys",
    "PublicIdentity",
    "Signer",
    "is_checked",
    "key_line_check",
    "signature_public_key",
]

PUBLIC_MAGIC: Final = b"LLP\x01"
PRIVATE_MAGIC: Final = b"LLS\x01"
RECIPIENT_ID_SIZE: Final = 16
SENDER_ID_SIZE: Final = 32
_TEXT_PREFIX: Final = "letterlock-"
_CHECK_SEPARATOR: Final = ":"
_CHECK_LABEL: Final = b"letterlock/v1 key line\x00"
CHECK_SIZE: Final = 4  # bytes of SHA-256 in a key line's check (8 hex digits)


def _split_identity(data: bytes, magic: bytes, what: str) -> tuple[Suite, bytes, bytes]:
    """Split ``magic || suite || u16 len || a || u16 len || b``; exact lengths or ParseError."""
    if len(data) < 7 or data[:4] != magic:
        raise ParseError(f"not a letterlock {what}")
    try:
        suite = Suite(data[4])
    except ValueError:
        raise ParseError(f"{what} of an unknown suite 0x{data[4]:02x}") from None
    (first_len,) = struct.unpack_from(">H", data, 5)
    first = data[7 : 7 + first_len]
    rest = 7 + first_len
    if len(first) != first_len or len(data) < rest + 2:
        raise ParseError(f"truncated {what}")
    (second_len,) = struct.unpack_from(">H", data, rest)
    second = data[rest + 2 : rest + 2 + second_len]
    if len(second) != second_len or len(data) != rest + 2 + second_len:
        raise ParseError(f"{what} has the wrong length")
    return suite, first, second


def signature_public_key(public: PublicIdentity) -> bytes:
    """The raw signature public key inside ``public`` (section 3.1): an Ed25519 key, an
    uncompressed EC point, or the pq suite's ML-DSA-87 key then its P-384 point."""
    return _split_identity(public.to_bytes(), PUBLIC_MAGIC, "public key")[1]


def _join_identity(magic: bytes, suite: Suite, first: bytes, second: bytes) -> bytes:
    return b"".join(
        (magic, bytes([suite.value]), struct.pack(">H", len(first)), first,
         struct.pack(">H", len(second)), second)
    )  # fmt: skip


def key_line_check(body: str) -> str:
    """The check of a key line's ``letterlock-<suite> <base64>`` part: 8 lowercase hex digits.

    A truncated SHA-256, not a signature: it catches typing and transmission errors (a wrong
    line passes with probability 2^-32), not an attacker, who can compute it; the fingerprint,
    compared over another channel, is what stops an attacker.
    """
    return hashlib.sha256(_CHECK_LABEL + body.encode("utf-8")).digest()[:CHECK_SIZE].hex()


def is_checked(line: str) -> bool:
    """True if the key field of public key ``line`` carries a check (it may still be wrong)."""
    parts = line.strip().split(" ", 2)
    return len(parts) >= 2 and _CHECK_SEPARATOR in parts[1]


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
        """Parse the canonical encoding (section 3.1). Raises ParseError if it is not one."""
        suite, sig_public, kem_public = _split_identity(bytes(encoded), PUBLIC_MAGIC, "public key")
        try:
            self._verifier, self._encapsulator = _crypto.load_public(suite, sig_public, kem_public)
        except ValueError as exc:  # ours, or pyca's for a point off the curve
            raise ParseError(f"not a valid {suite} public key: {exc}") from None
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
        """One line: ``letterlock-<suite> <base64>:<check> [name]``, like an OpenSSH public key.

        ``check`` (``docs/spec/envelope-v1.md`` section 3.1) makes a mistyped or damaged line
        fail to parse instead of naming another valid key.
        """
        body = f"{_TEXT_PREFIX}{self._suite.label} {base64.b64encode(self._encoded).decode()}"
        line = f"{body}{_CHECK_SEPARATOR}{key_line_check(body)}"
        return f"{line} {name}" if name else line

    @classmethod
    def from_text(
        cls, line: str, *, allow_unchecked: bool = False
    ) -> tuple[PublicIdentity, str | None]:
        """Parse :meth:`to_text` output; returns the identity and the name, if any.

        A line without its check (written before checks existed) is refused unless
        ``allow_unchecked``: a caller that allows it must confirm the key another way (its
        fingerprint) or trust where the line came from. :func:`is_checked` tells them apart.
        """
        parts = line.strip().split(" ", 2)  # exactly one space, as written: see the spec
        if len(parts) < 2 or not parts[0].startswith(_TEXT_PREFIX):
            raise ParseError("not a letterlock public key line")
        key, separator, check = parts[1].partition(_CHECK_SEPARATOR)
        if separator:
            expected = key_line_check(f"{parts[0]} {key}")
            if not hmac.compare_digest(check.encode(), expected.encode()):
                raise ParseError("public key line fails its check (mistyped or damaged)")
        elif not allow_unchecked:
            raise ParseError(
                "public key line has no check (an old export?): confirm its fingerprint"
            )
        try:
            encoded = base64.b64decode(key, validate=True)
        except binascii.Error:
            raise ParseError("public key is not valid base64") from None
        if base64.b64encode(encoded).decode() != key:
            raise ParseError("public key is not canonical base64")
        identity = cls(encoded)
        if parts[0] != _TEXT_PREFIX + identity.suite.label:
            raise ParseError("public key line names a different suite than its key")
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


class Signer(Protocol):
    """Signs for one identity (section 5.5): a capability, wherever the private key lives."""

    @property
    def suite(self) -> Suite: ...

    def sign(self, message: bytes) -> bytes:
        """The suite's signature of ``message`` (section 2's encoding)."""
        ...


class Decapsulator(Protocol):
    """Unwraps the content keys sent to one identity (section 5.2), wherever its key lives."""

    @property
    def suite(self) -> Suite: ...

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        """The content key in ``wrapped`` (HPKE base mode with ``info``), or None."""
        ...


@final
class Identity:
    """A private identity: a public identity, a signer and a decapsulator of its suite.

    Create one with :meth:`generate`, load one from a key file (:mod:`letterlock.keystore`), or
    build one from capabilities whose keys live elsewhere: ``Identity(public, signer=...,
    decapsulator=...)`` (their keys must be the public identity's: a mismatch only makes
    signatures that do not verify and entries that do not open). It has no secret in its repr
    and refuses to be pickled.
    """

    __slots__ = ("_credentials", "_decapsulator", "_public", "_signer")

    def __init__(
        self,
        public: PublicIdentity,
        *,
        signer: Signer,
        decapsulator: Decapsulator,
        credentials: CredentialBlock | None = None,
    ) -> None:
        if type(public) is not PublicIdentity:
            raise UsageError(f"an Identity needs a PublicIdentity, not {public!r}")
        if signer.suite is not public.suite or decapsulator.suite is not public.suite:
            raise UsageError(f"signer and decapsulator must be of the suite {public.suite}")
        self._public = public
        self._signer = signer
        self._decapsulator = decapsulator
        if credentials is not None and type(credentials) is not CredentialBlock:
            raise UsageError(f"credentials must be a CredentialBlock, not {credentials!r}")
        self._credentials = credentials

    def with_credentials(
        self,
        format: CredentialFormat,
        items: Iterable[bytes],
        *,
        status_version: int = 0,
    ) -> Identity:
        """This identity, presenting a credential block in every message it seals
        (``docs/spec/envelope-v1.md`` section 4.1): a chain of ``format``, leaf first (the
        leaf must certify this identity; receivers check), and the status version the sender
        holds. ``format`` NONE with no items carries only the status version."""
        block = CredentialBlock.of(format, items, status_version=status_version)
        return Identity(
            self._public, signer=self._signer, decapsulator=self._decapsulator, credentials=block
        )

    @property
    def credentials(self) -> CredentialBlock | None:
        """The credential block this identity's messages carry, or None."""
        return self._credentials

    @classmethod
    def generate(cls, suite: Suite) -> Identity:
        """A fresh identity of ``suite`` from the operating system's randomness."""
        return PrivateKeys.generate(suite).identity()

    @property
    def suite(self) -> Suite:
        return self._public.suite

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def signer(self) -> Signer:
        return self._signer

    @property
    def decapsulator(self) -> Decapsulator:
        return self._decapsulator

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


@final
class PrivateKeys:
    """An identity's private keys held in this process: a :class:`Signer` and a
    :class:`Decapsulator` at once, and the private encoding (section 3.2) a key file stores.

    Obtain one with :meth:`generate` or :func:`letterlock.hazmat.private_keys_from_bytes`.
    """

    __slots__ = ("_decapsulator", "_encoding", "_public", "_signer", "sign", "suite", "unwrap")
    suite: Suite
    sign: Callable[[bytes], bytes]
    unwrap: Callable[[bytes, bytes], bytes | None]
    _signer: _crypto.Signer
    _decapsulator: _crypto.Decapsulator
    _encoding: bytes
    _public: PublicIdentity

    def __init__(self, *_: object, **__: object) -> None:
        raise TypeError("use PrivateKeys.generate() or letterlock.hazmat to obtain PrivateKeys")

    @classmethod
    def generate(cls, suite: Suite) -> PrivateKeys:
        """Fresh private keys of ``suite`` from the operating system's randomness."""
        if not isinstance(suite, Suite):
            raise UsageError(f"suite must be a letterlock.Suite, not {suite!r}")
        sig_private, kem_private = _crypto.generate_private(suite)
        return cls._load(_join_identity(PRIVATE_MAGIC, suite, sig_private, kem_private))

    @classmethod
    def _load(cls, private_encoding: bytes) -> PrivateKeys:
        suite, sig_private, kem_private = _split_identity(
            bytes(private_encoding), PRIVATE_MAGIC, "private key"
        )
        try:
            signer, decapsulator, sig_public, kem_public = _crypto.load_private(
                suite, sig_private, kem_private
            )
        except ValueError as exc:
            raise ParseError(f"not a valid {suite} private key: {exc}") from None
        self = object.__new__(cls)
        self.suite = suite
        self._signer = signer
        self._decapsulator = decapsulator
        self.sign = signer.sign  # the capabilities, called without another frame
        self.unwrap = decapsulator.unwrap
        self._encoding = bytes(private_encoding)
        self._public = PublicIdentity(_join_identity(PUBLIC_MAGIC, suite, sig_public, kem_public))
        return self

    @property
    def public(self) -> PublicIdentity:
        return self._public

    def identity(self) -> Identity:
        """The identity these keys sign and decrypt for."""
        return Identity(self._public, signer=self, decapsulator=self)

    def _private_encoding(self) -> bytes:
        return self._encoding

    def __repr__(self) -> str:
        return f"<PrivateKeys {self.suite.label} {self._public.fingerprint_text}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("private keys cannot be pickled")

    def __copy__(self) -> PrivateKeys:
        return self

    def __deepcopy__(self, memo: object) -> PrivateKeys:
        return self
