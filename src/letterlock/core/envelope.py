"""The envelope codec: strict, canonical, capped (``docs/spec/envelope-v1.md`` section 4).

:func:`parse` is the only code that reads untrusted bytes. It checks the receiver's limits as it
meets each count, before any cryptography, and raises :class:`~letterlock.errors.Rejected` for
every violation. :func:`encode_header` is its inverse and refuses (with
:class:`~letterlock.errors.UsageError`) anything the parser would refuse, so letterlock never
sends what it would not accept. ``encode(parse(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Final, Protocol

from letterlock.core.carriage import (
    BLOCK_FRONT,
    MAX_CREDENTIAL_ITEM,
    MAX_CREDENTIAL_ITEMS,
    CredentialBlock,
    CredentialFormat,
    block_of,
)
from letterlock.core.keys import RECIPIENT_ID_SIZE, SENDER_ID_SIZE
from letterlock.core.suites import Suite
from letterlock.errors import Reason, Rejected, UsageError

__all__ = [
    "DEFAULT_LIMITS",
    "Envelope",
    "Header",
    "Labels",
    "LabelsLookup",
    "Limits",
    "Parts",
    "RecipientEntry",
    "encode_envelope",
    "encode_envelope_prefix",
    "encode_header",
    "encode_header_front",
    "encode_recipient_block",
    "parse",
    "parse_parts",
]

MAGIC: Final = b"LLK"
VERSION: Final = 0x01
FLAG_HIDDEN_SENDER: Final = 0x01
FLAG_CREDENTIALS: Final = 0x02
KNOWN_FLAGS: Final = FLAG_HIDDEN_SENDER | FLAG_CREDENTIALS
MESSAGE_ID_SIZE: Final = 16
COMMITMENT_SIZE: Final = 32
MAX_TOPIC: Final = 1024
MAX_CONTENT_TYPE: Final = 255
MAX_HEADERS: Final = 64
MAX_HEADER_NAME: Final = 64
MAX_HEADER_VALUE: Final = 4096
MAX_RECIPIENTS: Final = 65535
INNER_LENGTH_SIZE: Final = 8
#: The largest credential block the format allows (section 4.1).
MAX_CREDENTIALS_SIZE: Final = BLOCK_FRONT + MAX_CREDENTIAL_ITEMS * (2 + MAX_CREDENTIAL_ITEM)
TAG_SIZE: Final = 16
BytesLike = bytes | bytearray | memoryview
_HEADER_NAME = re.compile(rb"[a-z0-9._-]{1,64}")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")
#: Control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F) as they appear in UTF-8.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]")
_SUITES: Final = {suite.value: suite for suite in Suite}
_SUITE_IDS: Final = {suite: suite.value for suite in Suite}
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_FORMATS: Final = {kind.value: kind for kind in CredentialFormat}
_ID_TIMES = struct.Struct(">16sQQ")
_FRONT = struct.Struct(">3sBBB16sQQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What a receiver is willing to parse; checked before any cryptography."""

    max_size: int = 64 * 1024 * 1024
    max_recipients: int = 1000
    max_headers: int = MAX_HEADERS
    #: Accept envelopes whose sender is hidden? Their signature is inside the ciphertext, so
    #: anyone with the receiver's public key can make it run HPKE and decrypt before any
    #: signature is checked (spec section 6, step 6).
    hidden_sender: bool = True
    #: The largest hidden-sender envelope accepted: bounds that unauthenticated work.
    max_hidden_size: int = 1024 * 1024
    #: The largest credential block accepted (section 4.1), in bytes, status version included.
    max_credentials_size: int = 32 * 1024

    def __post_init__(self) -> None:
        if self.max_size < 1 or not 1 <= self.max_recipients <= MAX_RECIPIENTS:
            raise UsageError("limits must be positive and within the format's hard limits")
        if not 0 <= self.max_headers <= MAX_HEADERS:
            raise UsageError(f"max_headers must be between 0 and {MAX_HEADERS}")
        if self.max_hidden_size < 1:
            raise UsageError("max_hidden_size must be positive (hidden_sender=False refuses all)")
        if not BLOCK_FRONT <= self.max_credentials_size <= MAX_CREDENTIALS_SIZE:
            raise UsageError(
                f"max_credentials_size must be between {BLOCK_FRONT} and {MAX_CREDENTIALS_SIZE}"
            )


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
    credentials: CredentialBlock | None = None  # the CREDENTIALS flag's block (section 4.1)

    @property
    def hidden_sender(self) -> bool:
        return self.sender_key_id is None

    @property
    def header_map(self) -> dict[str, str]:
        """The application headers as a new dict."""
        return dict(self.headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    header: Header
    header_bytes: bytes = field(repr=False)
    ciphertext: memoryview = field(repr=False)
    signature: bytes | None = field(repr=False)


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
    return encode_header_front(
        suite=header.suite,
        message_id=header.message_id,
        created=header.created,
        expires=header.expires,
        topic=header.topic,
        content_type=header.content_type,
        headers=header.headers,
        sender_key_id=header.sender_key_id,
        credentials=header.credentials,
    ) + encode_recipient_block(header.suite, header.recipients, header.commitment)


def encode_header_front(
    *,
    suite: Suite,
    message_id: bytes,
    created: int,
    expires: int | None,
    topic: str,
    content_type: str | None,
    headers: tuple[tuple[str, str], ...],
    sender_key_id: bytes | None,
    credentials: CredentialBlock | None = None,
) -> bytes:
    """The header up to the sender key id and the credential block: what changes from message
    to message."""
    if len(message_id) != MESSAGE_ID_SIZE:
        raise UsageError("message id must be 16 bytes")
    if not 0 <= created < 2**64:
        raise UsageError("created must fit in 64 bits")
    if expires is not None and not created < expires < 2**64:
        raise UsageError("expires must be after created")
    flags = FLAG_HIDDEN_SENDER if sender_key_id is None else 0
    if credentials is not None:
        if sender_key_id is None:
            raise UsageError("a hidden sender carries no credential block (section 4.1)")
        flags |= FLAG_CREDENTIALS
    fixed = _FRONT.pack(MAGIC, VERSION, _SUITE_IDS[suite], flags, message_id, created, expires or 0)
    labels = _labels(topic, content_type, headers, sender_key_id)
    return fixed + labels if credentials is None else fixed + labels + credentials.encoded


@functools.lru_cache(maxsize=256)
def _labels(
    topic: str,
    content_type: str | None,
    headers: tuple[tuple[str, str], ...],
    sender_key_id: bytes | None,
) -> bytes:
    """Topic, content type, headers and sender key id, encoded and checked (a stream of
    messages repeats them, so the result is cached; refusals raise and are not)."""
    raw_topic = _utf8(topic, "topic")
    if not 1 <= len(raw_topic) <= MAX_TOPIC:
        raise UsageError(f"topic must be 1 to {MAX_TOPIC} bytes of UTF-8")
    if _CONTROL.search(raw_topic):
        raise UsageError("topic must not contain control characters")
    ctype = _ascii(content_type or "", "content type")
    if len(ctype) > MAX_CONTENT_TYPE or not _PRINTABLE.fullmatch(ctype):
        raise UsageError("content type must be at most 255 printable ASCII characters")
    if len(headers) > MAX_HEADERS:
        raise UsageError(f"at most {MAX_HEADERS} application headers")
    parts = [
        _U16.pack(len(raw_topic)),
        raw_topic,
        bytes([len(ctype)]),
        ctype,
        bytes([len(headers)]),
    ]
    previous = b""
    for name, value in headers:
        raw_name = _ascii(name, "header name")
        if not _HEADER_NAME.fullmatch(raw_name):
            raise UsageError(f"header name {name!r} must be 1-64 of a-z 0-9 . _ -")
        if raw_name <= previous:
            raise UsageError("header names must be unique and sorted")
        previous = raw_name
        raw_value = _utf8(value, f"header {name!r}")
        if len(raw_value) > MAX_HEADER_VALUE:
            raise UsageError(f"header {name!r} is longer than {MAX_HEADER_VALUE} bytes")
        if _CONTROL.search(raw_value):
            raise UsageError(f"header {name!r} must not contain control characters")
        parts += [bytes([len(raw_name)]), raw_name, _U16.pack(len(raw_value)), raw_value]
    if sender_key_id is not None:
        if len(sender_key_id) != SENDER_ID_SIZE:
            raise UsageError("sender key id must be 32 bytes")
        parts.append(sender_key_id)
    return b"".join(parts)


def encode_recipient_block(
    suite: Suite, recipients: tuple[RecipientEntry, ...], commitment: bytes
) -> bytes:
    """The header from the recipient count to the commitment: fixed for one content key."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise UsageError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    parts = [_U16.pack(len(recipients))]
    previous = b""
    for entry in recipients:
        if len(entry.key_id) != RECIPIENT_ID_SIZE or len(entry.wrapped) != suite.sizes.wrapped:
            raise UsageError("recipient entry of the wrong size for the suite")
        if entry.key_id <= previous:
            raise UsageError("recipients must be unique and sorted by key id")
        previous = entry.key_id
        parts += [entry.key_id, entry.wrapped]
    if len(commitment) != COMMITMENT_SIZE:
        raise UsageError("commitment must be 32 bytes")
    parts.append(commitment)
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


def _truncated() -> Rejected:
    return Rejected(Reason.MALFORMED, "truncated")


def _text(raw: bytes, what: str) -> str:
    """Well-formed UTF-8 without control characters (section 4), decoded."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(Reason.MALFORMED, f"{what} is not UTF-8") from None
    if _CONTROL.search(raw):
        raise Rejected(Reason.MALFORMED, f"{what} has a control character")
    return text


@functools.lru_cache(maxsize=64)
def _header_bound(suite: Suite, limits: Limits, flags: int) -> int:
    """The most bytes a header within ``limits`` can take (to copy only the header region);
    a credential block's room only with the CREDENTIALS flag."""
    carried = limits.max_credentials_size if flags & FLAG_CREDENTIALS else 0
    per_header = 1 + MAX_HEADER_NAME + 2 + MAX_HEADER_VALUE
    per_recipient = RECIPIENT_ID_SIZE + suite.sizes.wrapped
    return (
        6 + MESSAGE_ID_SIZE + 16 + 2 + MAX_TOPIC + 1 + MAX_CONTENT_TYPE + 1
        + limits.max_headers * per_header + SENDER_ID_SIZE + carried + 2
        + limits.max_recipients * per_recipient + COMMITMENT_SIZE + 4
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Labels:
    """The header after its fixed front (topic through commitment), parsed and checked.

    A stream of messages from one sealer repeats these bytes exactly, so a receiver may keep
    them (:class:`letterlock.core.cache.LabelsCache`): a later header whose bytes from the topic
    length to the commitment are identical, under the same suite, flags and limits, has this
    same parse. ``entries`` maps recipient key ids to wrapped keys (a header's
    :class:`RecipientEntry` values are made from it only for :func:`parse`); ``header_map`` is
    read-only.
    """

    suite: Suite
    flags: int
    limits: Limits
    topic: str
    content_type: str | None
    headers: tuple[tuple[str, str], ...]
    sender_key_id: bytes | None
    #: recipient key id -> wrapped key, in the envelope's (ascending) order
    entries: Mapping[bytes, bytes] = field(repr=False)
    commitment: bytes
    header_map: MappingProxyType[str, str] = field(repr=False)
    #: the credential block (section 4.1), None when the CREDENTIALS flag is clear
    credentials: CredentialBlock | None = None


_L = tuple(getattr(Labels, f.name).__set__ for f in fields(Labels))


def _labels_of(*values: object) -> Labels:
    """A Labels from its fields in order, without the frozen ``__init__`` (parsed values)."""
    made = object.__new__(Labels)
    for setter, value in zip(_L, values, strict=True):
        setter(made, value)
    return made


class LabelsLookup(Protocol):
    """Where :func:`parse_parts` may find and keep :class:`Labels` by their exact bytes."""

    def get(self, key: bytes) -> Labels | None: ...

    def put(self, key: bytes, labels: Labels) -> None: ...

    def __len__(self) -> int:
        """How many labels are kept (an empty lookup is skipped)."""
        ...


#: What :func:`parse_parts` returns: (labels, message id, created, expires, header bytes,
#: ciphertext view, signature or None).
Parts = tuple[Labels, bytes, int, int | None, bytes, memoryview, bytes | None]


def _front(view: memoryview, suites: frozenset[Suite], limits: Limits) -> tuple[Suite, int]:
    """Steps 1 to 6: size, magic, version, suite, the receiver's suites, flags."""
    size = len(view)
    if size > limits.max_size:
        raise Rejected(Reason.OVER_LIMIT, f"{size} bytes > max_size {limits.max_size}")
    if size < 6 or bytes(view[:3]) != MAGIC:
        raise Rejected(Reason.MALFORMED, "not a letterlock envelope")
    if view[3] != VERSION:
        raise Rejected(Reason.UNSUPPORTED, f"envelope version {view[3]}")
    suite = _SUITES.get(view[4])
    if suite is None:
        raise Rejected(Reason.UNSUPPORTED, f"suite 0x{view[4]:02x}")
    if suite not in suites:
        raise Rejected(Reason.SUITE_NOT_ALLOWED, suite.label)
    flags = view[5]
    if flags & ~KNOWN_FLAGS:
        raise Rejected(Reason.UNSUPPORTED, f"flags 0x{flags:02x}")
    if flags & FLAG_HIDDEN_SENDER:
        if flags & FLAG_CREDENTIALS:
            raise Rejected(Reason.UNSUPPORTED, "hidden sender with a credential block")
        if not limits.hidden_sender:
            raise Rejected(Reason.UNSUPPORTED, "hidden sender not accepted")
        if size > limits.max_hidden_size:
            raise Rejected(
                Reason.OVER_LIMIT, f"{size} bytes > max_hidden_size {limits.max_hidden_size}"
            )
    return suite, flags


def _labels_end(view: memoryview, suite: Suite, flags: int) -> int:
    """Where the header would end, reading only the length fields (no checks).

    Raises IndexError or struct.error on a truncated header: the caller then parses properly.
    """
    pos: int = 40 + _U16.unpack_from(view, 38)[0]
    pos += 1 + view[pos]  # content type
    count = view[pos]
    pos += 1
    for _ in range(count):
        pos += 1 + view[pos]
        pos += 2 + _U16.unpack_from(view, pos)[0]
    if not flags & FLAG_HIDDEN_SENDER:
        pos += SENDER_ID_SIZE
    if flags & FLAG_CREDENTIALS:
        pos += BLOCK_FRONT
        for _ in range(view[pos - 1]):
            pos += 2 + _U16.unpack_from(view, pos)[0]
    recipients: int = _U16.unpack_from(view, pos)[0]
    return pos + 2 + recipients * (RECIPIENT_ID_SIZE + suite.sizes.wrapped) + COMMITMENT_SIZE


def parse_parts(
    data: BytesLike,
    *,
    suites: frozenset[Suite],
    limits: Limits,
    labels: LabelsLookup | None = None,
) -> Parts:
    """Steps 1 to 7 of section 6, as the pieces :func:`letterlock.core.protocol` needs.

    With ``labels``, a header whose labels (topic through commitment) are byte for byte those
    of an earlier header that parsed under the same suite, flags and limits reuses that parse;
    the fixed front and everything after the header are checked every time.
    """
    view = memoryview(data) if type(data) is bytes else memoryview(data).cast("B")
    suite, flags = _front(view, suites, limits)
    size = len(view)
    if labels and size >= 40:  # an empty cache cannot hit: a new receiver parses at once
        try:
            end = _labels_end(view, suite, flags)
        except (IndexError, struct.error):
            end = 0
        if 40 < end <= size - 4:
            known = labels.get(bytes(view[38:end]))
            if (
                known is not None
                and known.limits is limits
                and known.flags == flags
                and known.suite is suite
            ):
                header_bytes = bytes(view[:end])
                message_id, created, expires = _ID_TIMES.unpack_from(header_bytes, 6)
                if expires and expires <= created:
                    raise Rejected(Reason.MALFORMED, "expires before created")
                ciphertext, signature = _body(view, suite, flags, end)
                return (
                    known,
                    message_id,
                    created,
                    expires or None,
                    header_bytes,
                    ciphertext,
                    (signature),
                )
    parts = _parse_labels(view, suite, flags, limits)
    if labels is not None:
        labels.put(parts[4][38:], parts[0])
    return parts


def _body(
    view: memoryview, suite: Suite, flags: int, header_end: int
) -> tuple[memoryview, bytes | None]:
    """``ct_len``, the ciphertext and the signature; the envelope must end there."""
    (ct_len,) = _U32.unpack_from(view, header_end)
    hidden = flags & FLAG_HIDDEN_SENDER
    signature_size = 0 if hidden else suite.sizes.signature
    minimum = INNER_LENGTH_SIZE + TAG_SIZE
    if hidden:
        minimum += SENDER_ID_SIZE + suite.sizes.signature
    if ct_len < minimum:
        raise Rejected(Reason.MALFORMED, "ciphertext too short")
    ct_start = header_end + 4
    ct_end = ct_start + ct_len
    signature_end = ct_end + signature_size
    if signature_end > len(view):
        raise _truncated()
    if signature_end < len(view):
        raise Rejected(Reason.MALFORMED, "trailing bytes")
    signature = bytes(view[ct_end:signature_end]) if signature_size else None
    return view[ct_start:ct_end], signature


def _parse_labels(view: memoryview, suite: Suite, flags: int, limits: Limits) -> Parts:
    """Step 7 field by field, for a header whose labels are not known yet."""
    sizes = suite.sizes
    hidden = bool(flags & FLAG_HIDDEN_SENDER)
    # The header region is parsed from one bytes copy (small); the ciphertext stays a view.
    head = bytes(view[: _header_bound(suite, limits, flags)])
    end = len(head)
    if end < 40:
        raise _truncated()
    message_id, created, expires = _ID_TIMES.unpack_from(head, 6)
    if expires and expires <= created:
        raise Rejected(Reason.MALFORMED, "expires before created")
    (topic_len,) = _U16.unpack_from(head, 38)
    if not 1 <= topic_len <= MAX_TOPIC:
        raise Rejected(Reason.MALFORMED, "topic length")
    pos = 40 + topic_len
    if pos + 1 > end:
        raise _truncated()
    topic = _text(head[40:pos], "topic")
    ctype_end = pos + 1 + head[pos]
    ctype = head[pos + 1 : ctype_end]
    if ctype_end + 1 > end:
        raise _truncated()
    if not _PRINTABLE.fullmatch(ctype):
        raise Rejected(Reason.MALFORMED, "content type is not printable ASCII")
    count = head[ctype_end]
    pos = ctype_end + 1
    if count > limits.max_headers:  # max_headers <= MAX_HEADERS, so this covers the hard cap
        raise Rejected(Reason.OVER_LIMIT, f"{count} headers > max_headers {limits.max_headers}")
    headers: list[tuple[str, str]] = []
    previous = b""
    for _ in range(count):
        if pos + 1 > end:
            raise _truncated()
        name_len = head[pos]
        if not 1 <= name_len <= MAX_HEADER_NAME:
            raise Rejected(Reason.MALFORMED, "header name length")
        name = head[pos + 1 : pos + 1 + name_len]
        pos += 1 + name_len
        if pos + 2 > end:
            raise _truncated()
        if not _HEADER_NAME.fullmatch(name):
            raise Rejected(Reason.MALFORMED, "header name characters")
        if name <= previous:
            raise Rejected(Reason.MALFORMED, "header names not sorted or not unique")
        previous = name
        (value_len,) = _U16.unpack_from(head, pos)
        if value_len > MAX_HEADER_VALUE:
            raise Rejected(Reason.MALFORMED, "header value length")
        value = head[pos + 2 : pos + 2 + value_len]
        pos += 2 + value_len
        if pos > end:
            raise _truncated()
        headers.append((name.decode("ascii"), _text(value, "header value")))
    sender_key_id = None
    if not hidden:
        sender_key_id = head[pos : pos + SENDER_ID_SIZE]
        pos += SENDER_ID_SIZE
    credentials = None
    if flags & FLAG_CREDENTIALS:
        credentials, pos = _parse_credentials(head, pos, end, limits)
    if pos + 2 > end:
        raise _truncated()
    (recipient_count,) = _U16.unpack_from(head, pos)
    pos += 2
    if recipient_count == 0:
        raise Rejected(Reason.MALFORMED, "no recipients")
    if recipient_count > limits.max_recipients:
        raise Rejected(
            Reason.OVER_LIMIT, f"{recipient_count} recipients > max {limits.max_recipients}"
        )
    entries: dict[bytes, bytes] = {}
    previous = b""
    entry_size = RECIPIENT_ID_SIZE + sizes.wrapped
    if pos + recipient_count * entry_size > end:
        raise _truncated()
    for _ in range(recipient_count):
        key_id = head[pos : pos + RECIPIENT_ID_SIZE]
        if key_id <= previous:
            raise Rejected(Reason.MALFORMED, "recipients not sorted or not unique")
        previous = key_id
        entries[key_id] = head[pos + RECIPIENT_ID_SIZE : pos + entry_size]
        pos += entry_size
    header_end = pos + COMMITMENT_SIZE
    if header_end + 4 > end:
        raise _truncated()
    commitment = head[pos:header_end]
    ciphertext, signature = _body(view, suite, flags, header_end)
    labels = _labels_of(
        suite, flags, limits, topic, ctype.decode("ascii") or None, tuple(headers),
        sender_key_id, entries, commitment, MappingProxyType(dict(headers)), credentials,
    )  # fmt: skip
    header_bytes = head[:header_end]
    return labels, message_id, created, expires or None, header_bytes, ciphertext, signature


def _parse_credentials(
    head: bytes, pos: int, end: int, limits: Limits
) -> tuple[CredentialBlock, int]:
    """Section 4.1: the credential block at ``pos``, checked field by field; and its end."""
    start = pos
    if pos + BLOCK_FRONT > end:
        raise _truncated()
    (status_version,) = _U64.unpack_from(head, pos)
    kind, count = head[pos + 8], head[pos + 9]
    pos += BLOCK_FRONT
    if kind not in _FORMATS:
        raise Rejected(Reason.UNSUPPORTED, f"credential format {kind}")
    if count > MAX_CREDENTIAL_ITEMS:
        raise Rejected(Reason.OVER_LIMIT, f"{count} credential items > {MAX_CREDENTIAL_ITEMS}")
    if (kind == CredentialFormat.NONE) != (count == 0):
        raise Rejected(Reason.MALFORMED, "credential format and count disagree")
    items: list[bytes] = []
    for _ in range(count):
        if pos + 2 > end:
            raise _truncated()
        (length,) = _U16.unpack_from(head, pos)
        if not 1 <= length <= MAX_CREDENTIAL_ITEM:
            raise Rejected(Reason.MALFORMED, "credential item length")
        if pos + 2 + length - start > limits.max_credentials_size:
            raise Rejected(
                Reason.OVER_LIMIT, f"credential block > {limits.max_credentials_size} bytes"
            )
        pos += 2
        if pos + length > end:
            raise _truncated()
        items.append(head[pos : pos + length])
        pos += length
    block = block_of(status_version, _FORMATS[kind], tuple(items), head[start:pos])
    return block, pos


def parse(data: BytesLike, *, suites: frozenset[Suite], limits: Limits) -> Envelope:
    """Parse an envelope in the order of section 6, steps 1 to 7. Raises Rejected."""
    labels, message_id, created, expires, header_bytes, ciphertext, signature = parse_parts(
        data, suites=suites, limits=limits
    )
    header = Header(
        suite=labels.suite,
        message_id=message_id,
        created=created,
        expires=expires,
        topic=labels.topic,
        content_type=labels.content_type,
        headers=labels.headers,
        sender_key_id=labels.sender_key_id,
        recipients=tuple(
            RecipientEntry(key_id=key_id, wrapped=wrapped)
            for key_id, wrapped in labels.entries.items()
        ),
        commitment=labels.commitment,
        credentials=labels.credentials,
    )
    return Envelope(
        header=header,
        header_bytes=header_bytes,
        ciphertext=ciphertext,
        signature=signature,
    )
