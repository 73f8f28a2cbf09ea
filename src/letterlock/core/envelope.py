"""The envelope codec: strict, canonical, capped (``docs/spec/envelope-v1.md`` section 4).

:func:`parse` is the only code that reads untrusted bytes. It checks the receiver's limits as it
meets each count, before any cryptography, and raises :class:`~letterlock.errors.Rejected` for
every violation. :func:`encode_header` is its inverse and refuses (with
:class:`~letterlock.errors.UsageError`) anything the parser would refuse, so letterlock never
sends what it would not accept. ``encode(parse(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from letterlock.core.keys import RECIPIENT_ID_SIZE, SENDER_ID_SIZE
from letterlock.core.suites import Suite
from letterlock.errors import Reason, Rejected, UsageError

__all__ = [
    "DEFAULT_LIMITS",
    "Envelope",
    "Header",
    "Limits",
    "RecipientEntry",
    "encode_envelope",
    "encode_envelope_prefix",
    "encode_header",
    "parse",
]

MAGIC: Final = b"LLK"
VERSION: Final = 0x01
FLAG_HIDDEN_SENDER: Final = 0x01
KNOWN_FLAGS: Final = FLAG_HIDDEN_SENDER
MESSAGE_ID_SIZE: Final = 16
COMMITMENT_SIZE: Final = 32
MAX_TOPIC: Final = 1024
MAX_CONTENT_TYPE: Final = 255
MAX_HEADERS: Final = 64
MAX_HEADER_NAME: Final = 64
MAX_HEADER_VALUE: Final = 4096
MAX_RECIPIENTS: Final = 65535
INNER_LENGTH_SIZE: Final = 8
TAG_SIZE: Final = 16
BytesLike = bytes | bytearray | memoryview
_HEADER_NAME = re.compile(rb"[a-z0-9._-]{1,64}")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TIMES = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What a receiver is willing to parse; checked before any cryptography."""

    max_size: int = 64 * 1024 * 1024
    max_recipients: int = 1000
    max_headers: int = MAX_HEADERS

    def __post_init__(self) -> None:
        if self.max_size < 1 or not 1 <= self.max_recipients <= MAX_RECIPIENTS:
            raise UsageError("limits must be positive and within the format's hard limits")
        if not 0 <= self.max_headers <= MAX_HEADERS:
            raise UsageError(f"max_headers must be between 0 and {MAX_HEADERS}")


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientEntry:
    key_id: bytes
    wrapped: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """Every field a relay can read; all of it is signed and AEAD-authenticated."""

    suite: Suite
    message_id: bytes
    created: int
    expires: int | None
    topic: str
    content_type: str | None
    headers: tuple[tuple[str, str], ...]
    sender_key_id: bytes | None  # None when the sender is hidden
    recipients: tuple[RecipientEntry, ...]
    commitment: bytes

    @property
    def hidden_sender(self) -> bool:
        return self.sender_key_id is None

    @property
    def header_map(self) -> Mapping[str, str]:
        return dict(self.headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    header: Header
    header_bytes: bytes = field(repr=False)
    ciphertext: memoryview = field(repr=False)
    signature: bytes | None = field(repr=False)

    def to_bytes(self) -> bytes:
        return encode_envelope(self.header_bytes, self.ciphertext, self.signature)


# --------------------------------------------------------------------------- encoding


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not encodable as UTF-8") from None


def _ascii(text: str, what: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be ASCII") from None


def encode_header(header: Header) -> bytes:
    """The canonical header bytes. Raises UsageError for anything the parser would refuse."""
    sizes = header.suite.sizes
    if len(header.message_id) != MESSAGE_ID_SIZE:
        raise UsageError("message id must be 16 bytes")
    if not 0 <= header.created < 2**64:
        raise UsageError("created must fit in 64 bits")
    if header.expires is not None and not header.created < header.expires < 2**64:
        raise UsageError("expires must be after created")
    topic = _utf8(header.topic, "topic")
    if not 1 <= len(topic) <= MAX_TOPIC:
        raise UsageError(f"topic must be 1 to {MAX_TOPIC} bytes of UTF-8")
    ctype = _ascii(header.content_type or "", "content type")
    if len(ctype) > MAX_CONTENT_TYPE or not all(0x20 <= c <= 0x7E for c in ctype):
        raise UsageError("content type must be at most 255 printable ASCII characters")
    if len(header.headers) > MAX_HEADERS:
        raise UsageError(f"at most {MAX_HEADERS} application headers")
    parts = [
        MAGIC,
        bytes(
            [VERSION, header.suite.value, FLAG_HIDDEN_SENDER if header.sender_key_id is None else 0]
        ),
        header.message_id,
        _TIMES.pack(header.created, header.expires or 0),
        _U16.pack(len(topic)),
        topic,
        bytes([len(ctype)]),
        ctype,
        bytes([len(header.headers)]),
    ]
    previous = b""
    for name, value in header.headers:
        raw_name = _ascii(name, "header name")
        if not _HEADER_NAME.fullmatch(raw_name):
            raise UsageError(f"header name {name!r} must be 1-64 of a-z 0-9 . _ -")
        if raw_name <= previous:
            raise UsageError("header names must be unique and sorted")
        previous = raw_name
        raw_value = _utf8(value, f"header {name!r}")
        if len(raw_value) > MAX_HEADER_VALUE:
            raise UsageError(f"header {name!r} is longer than {MAX_HEADER_VALUE} bytes")
        parts += [bytes([len(raw_name)]), raw_name, _U16.pack(len(raw_value)), raw_value]
    if header.sender_key_id is not None:
        if len(header.sender_key_id) != SENDER_ID_SIZE:
            raise UsageError("sender key id must be 32 bytes")
        parts.append(header.sender_key_id)
    if not 1 <= len(header.recipients) <= MAX_RECIPIENTS:
        raise UsageError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    parts.append(_U16.pack(len(header.recipients)))
    previous = b""
    for entry in header.recipients:
        if len(entry.key_id) != RECIPIENT_ID_SIZE or len(entry.wrapped) != sizes.wrapped:
            raise UsageError("recipient entry of the wrong size for the suite")
        if entry.key_id <= previous:
            raise UsageError("recipients must be unique and sorted by key id")
        previous = entry.key_id
        parts += [entry.key_id, entry.wrapped]
    if len(header.commitment) != COMMITMENT_SIZE:
        raise UsageError("commitment must be 32 bytes")
    parts.append(header.commitment)
    return b"".join(parts)


def encode_envelope_prefix(header_bytes: bytes, ct_length: int) -> bytes:
    """The header and ``ct_len``: everything before the ciphertext."""
    if ct_length >= 2**32:
        raise UsageError("ciphertext longer than the format allows (4 GiB)")
    return header_bytes + _U32.pack(ct_length)


def encode_envelope(
    header_bytes: bytes, ciphertext: bytes | memoryview, signature: bytes | None
) -> bytes:
    prefix = encode_envelope_prefix(header_bytes, len(ciphertext))
    return b"".join((prefix, ciphertext, signature or b""))


# --------------------------------------------------------------------------- parsing


class _Reader:
    """A cursor over untrusted bytes; every read is bounds-checked."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self._data):
            raise Rejected(Reason.MALFORMED, "truncated")
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def text(self, n: int, what: str) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError:
            raise Rejected(Reason.MALFORMED, f"{what} is not UTF-8") from None

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos


def parse(data: BytesLike, *, suites: frozenset[Suite], limits: Limits) -> Envelope:
    """Parse an envelope in the order of section 6, steps 1 to 7. Raises Rejected."""
    view = memoryview(data).cast("B")
    if len(view) > limits.max_size:
        raise Rejected(Reason.OVER_LIMIT, f"{len(view)} bytes > max_size {limits.max_size}")
    if len(view) < 6 or bytes(view[:3]) != MAGIC:
        raise Rejected(Reason.MALFORMED, "not a letterlock envelope")
    if view[3] != VERSION:
        raise Rejected(Reason.UNSUPPORTED, f"envelope version {view[3]}")
    try:
        suite = Suite(view[4])
    except ValueError:
        raise Rejected(Reason.UNSUPPORTED, f"suite 0x{view[4]:02x}") from None
    if suite not in suites:
        raise Rejected(Reason.SUITE_NOT_ALLOWED, suite.label)
    flags = view[5]
    if flags & ~KNOWN_FLAGS:
        raise Rejected(Reason.UNSUPPORTED, f"flags 0x{flags:02x}")
    sizes = suite.sizes
    r = _Reader(view)
    r.pos = 6
    message_id = bytes(r.take(MESSAGE_ID_SIZE))
    created, expires = _TIMES.unpack(r.take(16))
    if expires and expires <= created:
        raise Rejected(Reason.MALFORMED, "expires before created")
    topic_len = r.u16()
    if not 1 <= topic_len <= MAX_TOPIC:
        raise Rejected(Reason.MALFORMED, "topic length")
    topic = r.text(topic_len, "topic")
    ctype = bytes(r.take(r.u8()))
    if not all(0x20 <= c <= 0x7E for c in ctype):
        raise Rejected(Reason.MALFORMED, "content type is not printable ASCII")
    count = r.u8()
    if count > limits.max_headers:  # max_headers <= MAX_HEADERS, so this covers the hard cap
        raise Rejected(Reason.OVER_LIMIT, f"{count} headers > max_headers {limits.max_headers}")
    headers: list[tuple[str, str]] = []
    previous = b""
    for _ in range(count):
        name_len = r.u8()
        if not 1 <= name_len <= MAX_HEADER_NAME:
            raise Rejected(Reason.MALFORMED, "header name length")
        name = bytes(r.take(name_len))
        if not _HEADER_NAME.fullmatch(name):
            raise Rejected(Reason.MALFORMED, "header name characters")
        if name <= previous:
            raise Rejected(Reason.MALFORMED, "header names not sorted or not unique")
        previous = name
        value_len = r.u16()
        if value_len > MAX_HEADER_VALUE:
            raise Rejected(Reason.MALFORMED, "header value length")
        headers.append((name.decode("ascii"), r.text(value_len, "header value")))
    hidden = bool(flags & FLAG_HIDDEN_SENDER)
    sender_key_id = None if hidden else bytes(r.take(SENDER_ID_SIZE))
    recipient_count = r.u16()
    if recipient_count == 0:
        raise Rejected(Reason.MALFORMED, "no recipients")
    if recipient_count > limits.max_recipients:
        raise Rejected(
            Reason.OVER_LIMIT, f"{recipient_count} recipients > max {limits.max_recipients}"
        )
    recipients: list[RecipientEntry] = []
    previous = b""
    for _ in range(recipient_count):
        key_id = bytes(r.take(RECIPIENT_ID_SIZE))
        if key_id <= previous:
            raise Rejected(Reason.MALFORMED, "recipients not sorted or not unique")
        previous = key_id
        recipients.append(RecipientEntry(key_id=key_id, wrapped=bytes(r.take(sizes.wrapped))))
    commitment = bytes(r.take(COMMITMENT_SIZE))
    header_end = r.pos
    ct_len: int = _U32.unpack(r.take(4))[0]
    minimum = INNER_LENGTH_SIZE + TAG_SIZE + (SENDER_ID_SIZE + sizes.signature if hidden else 0)
    if ct_len < minimum:
        raise Rejected(Reason.MALFORMED, "ciphertext too short")
    ciphertext = r.take(ct_len)
    signature = None if hidden else bytes(r.take(sizes.signature))
    if r.remaining:
        raise Rejected(Reason.MALFORMED, "trailing bytes")
    header = Header(
        suite=suite,
        message_id=message_id,
        created=created,
        expires=expires or None,
        topic=topic,
        content_type=ctype.decode("ascii") or None,
        headers=tuple(headers),
        sender_key_id=sender_key_id,
        recipients=tuple(recipients),
        commitment=commitment,
    )
    return Envelope(
        header=header,
        header_bytes=bytes(view[:header_end]),
        ciphertext=ciphertext,
        signature=signature,
    )
