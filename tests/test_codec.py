"""The envelope parser against the field rules of ``docs/spec/envelope-v1.md`` section 4.

Envelopes here are assembled field by field by :func:`raw`, written from the spec's table and
independent of :func:`letterlock.core.envelope.encode_header`, so each rule can be broken alone.
Parsing uses no cryptography, so wrapped keys, commitments and signatures are filler bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

import pytest

from conftest import reencoded
from letterlock import DEFAULT_LIMITS, Limits, Reason, Rejected, Suite, UsageError
from letterlock.core.envelope import Envelope, Header, RecipientEntry, encode_header, parse

ALL = frozenset(Suite)
SUITE = Suite.X25519
SIZES = SUITE.sizes
KID_A, KID_B = b"\x10" * 16, b"\x20" * 16
CREATED = 1_700_000_000
#: the smallest ciphertext the spec allows: inner length (8) + AEAD tag (16)
MIN_CT = 24


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def raw(
    *,
    magic: bytes = b"LLK",
    version: int = 1,
    suite: int = SUITE.value,
    flags: int = 0,
    message_id: bytes = b"\x42" * 16,
    created: int = CREATED,
    expires: int = 0,
    topic: bytes = b"orders.eu",
    topic_len: int | None = None,
    content_type: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    header_count: int | None = None,
    sender: bytes | None = b"\x5a" * 32,
    recipients: list[bytes] | None = None,
    recipient_count: int | None = None,
    wrapped_size: int = SIZES.wrapped,
    commitment: bytes = b"\xc0" * 32,
    ct_len: int | None = None,
    ciphertext: bytes = bytes(MIN_CT),
    signature: bytes | None = b"\x51" * SIZES.signature,
    trailing: bytes = b"",
) -> bytes:
    """An envelope built field by field from section 4; every field can be overridden."""
    headers = headers if headers is not None else [(b"kind", b"salary"), (b"tenant", b"acme")]
    recipients = recipients if recipients is not None else [KID_A, KID_B]
    parts = [
        magic,
        bytes([version, suite, flags]),
        message_id,
        struct.pack(">QQ", created, expires),
        u16(len(topic) if topic_len is None else topic_len),
        topic,
        bytes([len(content_type)]),
        content_type,
        bytes([len(headers) if header_count is None else header_count]),
    ]
    for name, value in headers:
        parts += [bytes([len(name)]), name, u16(len(value)), value]
    if sender is not None:
        parts.append(sender)
    parts.append(u16(len(recipients) if recipient_count is None else recipient_count))
    for key_id in recipients:
        parts += [key_id, b"\xee" * wrapped_size]
    parts += [commitment, struct.pack(">I", len(ciphertext) if ct_len is None else ct_len)]
    parts += [ciphertext, signature or b"", trailing]
    return b"".join(parts)


def hidden(
    *,
    flags: int = 0x01,
    ciphertext: bytes = bytes(MIN_CT + 32 + SIZES.signature),
    trailing: bytes = b"",
) -> bytes:
    """A hidden-sender envelope: flag set, no sender key id, no signature, longer ciphertext."""
    return raw(flags=flags, sender=None, signature=None, ciphertext=ciphertext, trailing=trailing)


def parse_all(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    return parse(data, suites=ALL, limits=limits)


def reason(data: bytes, limits: Limits = DEFAULT_LIMITS, suites: frozenset[Suite] = ALL) -> Reason:
    with pytest.raises(Rejected) as info:
        parse(data, suites=suites, limits=limits)
    return info.value.reason


# --------------------------------------------------------------------------- valid forms


@pytest.mark.parametrize(
    "data",
    [
        raw(),
        hidden(),
        raw(expires=CREATED + 1, content_type=b"application/json"),
        raw(headers=[], recipients=[KID_A]),
        raw(topic=b"x"),
        raw(topic="é/日本".encode()),
        raw(topic=b"t" * 1024),
        raw(content_type=bytes(range(0x20, 0x7F)) + b"x" * (255 - 95)),
        raw(headers=[(b"a" * 64, b"v" * 4096)]),
        raw(headers=[(bytes([c]), b"") for c in b"-.0123456789_abcdefghijklmnopqrstuvwxyz"]),
        raw(headers=[(b"h%02d" % i, b"") for i in range(64)]),
        raw(recipients=[bytes([i]) * 16 for i in range(1, 200)]),
        raw(ciphertext=bytes(1000)),
    ],
    ids=lambda data: f"{len(data)}B",
)
def test_valid_envelopes_parse_and_reencode_to_the_same_bytes(data: bytes) -> None:
    """Canonical form: re-encoding a parsed envelope gives the same bytes (section 1)."""
    envelope = parse_all(data)
    assert reencoded(envelope) == data
    assert encode_header(envelope.header) == envelope.header_bytes


def test_parsed_fields_match_the_bytes() -> None:
    envelope = parse_all(raw(expires=CREATED + 60, content_type=b"text/plain"))
    header = envelope.header
    assert (header.suite, header.message_id) == (SUITE, b"\x42" * 16)
    assert (header.created, header.expires) == (CREATED, CREATED + 60)
    assert (header.topic, header.content_type) == ("orders.eu", "text/plain")
    assert header.headers == (("kind", "salary"), ("tenant", "acme"))
    assert header.sender_key_id == b"\x5a" * 32
    assert [e.key_id for e in header.recipients] == [KID_A, KID_B]
    assert header.commitment == b"\xc0" * 32
    assert bytes(envelope.ciphertext) == bytes(MIN_CT)
    assert envelope.signature == b"\x51" * SIZES.signature


def test_zero_fields_mean_none() -> None:
    header = parse_all(raw(expires=0, content_type=b"")).header
    assert header.expires is None
    assert header.content_type is None


def test_hidden_sender_has_no_key_id_and_no_signature() -> None:
    envelope = parse_all(hidden())
    assert envelope.header.sender_key_id is None
    assert envelope.header.hidden_sender
    assert envelope.signature is None


@pytest.mark.parametrize("suite", list(Suite), ids=[s.label for s in Suite])
def test_each_suite_uses_its_own_sizes(suite: Suite) -> None:
    sizes = suite.sizes
    data = raw(suite=suite.value, wrapped_size=sizes.wrapped, signature=bytes(sizes.signature))
    assert parse_all(data).header.suite is suite
    wrong = raw(suite=suite.value, wrapped_size=sizes.wrapped + 1, signature=bytes(sizes.signature))
    assert reason(wrong) is Reason.MALFORMED


# --------------------------------------------------------------------------- steps 1 to 6

PREAMBLE_CASES: dict[str, tuple[bytes, Reason]] = {
    "empty": (b"", Reason.MALFORMED),
    "five_bytes": (b"LLK\x01\x03", Reason.MALFORMED),
    "bad_magic": (raw(magic=b"LLX"), Reason.MALFORMED),
    "lowercase_magic": (raw(magic=b"llk"), Reason.MALFORMED),
    "version_0": (raw(version=0), Reason.UNSUPPORTED),
    "version_2": (raw(version=2), Reason.UNSUPPORTED),
    "suite_0": (raw(suite=0), Reason.UNSUPPORTED),
    "suite_5": (raw(suite=5), Reason.UNSUPPORTED),
    "suite_255": (raw(suite=255), Reason.UNSUPPORTED),
    "flag_0x02": (raw(flags=0x02), Reason.UNSUPPORTED),
    "flag_0x80": (raw(flags=0x80), Reason.UNSUPPORTED),
    "flags_0x03": (hidden(flags=0x03), Reason.UNSUPPORTED),
    # the checks run in the spec's order: the first violated one decides
    "version_before_suite": (raw(version=2, suite=9), Reason.UNSUPPORTED),
    "magic_before_version": (raw(magic=b"XXX", version=2), Reason.MALFORMED),
    "short_preamble_only": (b"LLK\x01\x03\x00", Reason.MALFORMED),
}


@pytest.mark.parametrize("case", PREAMBLE_CASES)
def test_preamble_rules(case: str) -> None:
    data, expected = PREAMBLE_CASES[case]
    assert reason(data) is expected


def test_over_max_size_is_refused_first() -> None:
    """Step 1 runs before anything else: even garbage over the limit is over_limit."""
    limits = Limits(max_size=100)
    assert reason(b"garbage" * 20, limits) is Reason.OVER_LIMIT
    assert reason(raw(version=7), limits) is Reason.OVER_LIMIT
    assert reason(raw(), Limits(max_size=len(raw()) - 1)) is Reason.OVER_LIMIT
    assert reencoded(parse(raw(), suites=ALL, limits=Limits(max_size=len(raw())))) == raw()


def test_suite_not_allowed_comes_after_unknown_suite_and_before_flags() -> None:
    others = frozenset({Suite.P256})
    assert reason(raw(), suites=others) is Reason.SUITE_NOT_ALLOWED
    assert reason(raw(flags=0x80), suites=others) is Reason.SUITE_NOT_ALLOWED
    assert reason(raw(suite=9), suites=others) is Reason.UNSUPPORTED


# --------------------------------------------------------------------------- step 7

FIELD_CASES: dict[str, bytes] = {
    "expires_equal_to_created": raw(expires=CREATED),
    "expires_before_created": raw(expires=CREATED - 1),
    "topic_empty": raw(topic=b""),
    "topic_1025_bytes": raw(topic=b"t" * 1025),
    "topic_length_beyond_data": raw(topic=b"abc", topic_len=60000),
    "topic_invalid_utf8": raw(topic=b"\xff"),
    "topic_utf8_surrogate": raw(topic=b"\xed\xa0\x80"),
    "topic_utf8_overlong": raw(topic=b"\xc0\xaf"),
    "topic_utf8_truncated": raw(topic=b"ab\xe6\x97"),
    "content_type_control_char": raw(content_type=b"text/\x1fplain"),
    "content_type_del": raw(content_type=b"text\x7f"),
    "content_type_non_ascii": raw(content_type="tëxt".encode()),
    "header_name_empty": raw(headers=[(b"", b"v")]),
    "header_name_65": raw(headers=[(b"a" * 65, b"v")]),
    "header_name_uppercase": raw(headers=[(b"Kind", b"v")]),
    "header_name_space": raw(headers=[(b"a b", b"v")]),
    "header_name_slash": raw(headers=[(b"a/b", b"v")]),
    "header_name_colon": raw(headers=[(b"a:b", b"v")]),
    "header_name_non_ascii": raw(headers=[("ä".encode(), b"v")]),
    "header_names_unsorted": raw(headers=[(b"tenant", b"a"), (b"kind", b"b")]),
    "header_names_duplicate": raw(headers=[(b"kind", b"a"), (b"kind", b"b")]),
    "header_value_4097": raw(headers=[(b"big", b"v" * 4097)]),
    "header_value_invalid_utf8": raw(headers=[(b"kind", b"\xff\xfe")]),
    "header_value_surrogate": raw(headers=[(b"kind", b"\xed\xb0\x80")]),
    "header_count_beyond_data": raw(header_count=3),
    "recipient_count_zero": raw(recipients=[]),
    "recipients_unsorted": raw(recipients=[KID_B, KID_A]),
    "recipients_duplicate": raw(recipients=[KID_A, KID_A]),
    "recipient_count_beyond_data": raw(recipient_count=3),
    "ciphertext_23_bytes": raw(ciphertext=bytes(MIN_CT - 1)),
    "ciphertext_empty": raw(ciphertext=b""),
    "ct_len_beyond_data": raw(ct_len=MIN_CT + 1),
    "hidden_ciphertext_too_short": hidden(ciphertext=bytes(MIN_CT + 32 + SIZES.signature - 1)),
    "signature_missing": raw(signature=None),
    "signature_short": raw(signature=bytes(SIZES.signature - 1)),
    "trailing_byte": raw(trailing=b"\x00"),
    "hidden_with_signature": hidden(trailing=bytes(SIZES.signature)),
}


@pytest.mark.parametrize("case", FIELD_CASES)
def test_field_rule_violations_are_malformed(case: str) -> None:
    """Step 7: each rule of the section 4 table, broken alone, is refused as malformed."""
    assert reason(FIELD_CASES[case]) is Reason.MALFORMED


@pytest.mark.parametrize("data", [raw(), hidden()], ids=["visible", "hidden"])
def test_every_truncation_and_extension_is_malformed(data: bytes) -> None:
    """The envelope MUST end exactly after the signature (or ciphertext, if hidden)."""
    for end in range(len(data)):
        assert reason(data[:end]) is Reason.MALFORMED, end
    for extra in (b"\x00", b"\x00" * 100, data):
        assert reason(data + extra) is Reason.MALFORMED


def test_header_count_over_the_receivers_limit_is_over_limit() -> None:
    data = raw(headers=[(b"a", b""), (b"b", b""), (b"c", b"")])
    assert reason(data, Limits(max_headers=2)) is Reason.OVER_LIMIT
    assert parse_all(data, Limits(max_headers=3)).header.headers[2] == ("c", "")
    assert reason(raw(headers=[(b"a", b"")]), Limits(max_headers=0)) is Reason.OVER_LIMIT
    beyond_format = raw(headers=[(b"h%02d" % i, b"") for i in range(65)])
    assert reason(beyond_format) is Reason.OVER_LIMIT  # above 64 is above every receiver's limit


def test_recipient_count_over_the_receivers_limit_is_over_limit() -> None:
    assert reason(raw(), Limits(max_recipients=1)) is Reason.OVER_LIMIT
    assert len(parse_all(raw(), Limits(max_recipients=2)).header.recipients) == 2


def test_caps_are_checked_when_the_count_is_read_not_after_the_data() -> None:
    """A huge count is refused as over_limit right away, although its entries are missing."""
    assert reason(raw(recipient_count=65535), Limits(max_recipients=1000)) is Reason.OVER_LIMIT
    assert reason(raw(header_count=64), Limits(max_headers=8)) is Reason.OVER_LIMIT
    assert reason(raw(recipient_count=2000)) is Reason.OVER_LIMIT  # default max_recipients 1000


def test_recipient_count_at_the_format_maximum_is_only_refused_as_truncated() -> None:
    """65535 recipients are legal in the format; with too few entries it is plain truncation."""
    limits = Limits(max_recipients=65535)
    assert reason(raw(recipient_count=65535), limits) is Reason.MALFORMED


# --------------------------------------------------------------------------- hard caps


@pytest.mark.parametrize(
    "fields",
    [
        {"max_size": 0},
        {"max_recipients": 0},
        {"max_recipients": 65536},
        {"max_headers": -1},
        {"max_headers": 65},
        {"max_hidden_size": 0},
    ],
)
def test_limits_cannot_exceed_the_format(fields: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        Limits(**fields)  # type: ignore[arg-type]


def test_default_limits_are_the_spec_defaults() -> None:
    assert (
        Limits(
            max_size=64 * 1024 * 1024,
            max_recipients=1000,
            max_headers=64,
            hidden_sender=True,
            max_hidden_size=1024 * 1024,
        )
        == DEFAULT_LIMITS
    )


# --------------------------------------------------------------------------- the encoder


def _header() -> Header:
    return parse_all(raw()).header


HeaderEdit = Callable[[Header], Header]
ENCODER_REFUSALS: dict[str, HeaderEdit] = {
    "message_id_15": lambda h: dataclasses.replace(h, message_id=bytes(15)),
    "expires_not_after_created": lambda h: dataclasses.replace(h, expires=h.created),
    "topic_empty": lambda h: dataclasses.replace(h, topic=""),
    "topic_1025": lambda h: dataclasses.replace(h, topic="t" * 1025),
    "topic_surrogate": lambda h: dataclasses.replace(h, topic="\udc80"),
    "content_type_non_ascii": lambda h: dataclasses.replace(h, content_type="tëxt"),
    "content_type_control": lambda h: dataclasses.replace(h, content_type="a\nb"),
    "header_name_uppercase": lambda h: dataclasses.replace(h, headers=(("Kind", "v"),)),
    "headers_unsorted": lambda h: dataclasses.replace(h, headers=(("b", ""), ("a", ""))),
    "headers_duplicate": lambda h: dataclasses.replace(h, headers=(("a", ""), ("a", ""))),
    "header_value_4097": lambda h: dataclasses.replace(h, headers=(("a", "v" * 4097),)),
    "headers_65": lambda h: dataclasses.replace(
        h, headers=tuple((f"h{i:02d}", "") for i in range(65))
    ),
    "sender_key_id_31": lambda h: dataclasses.replace(h, sender_key_id=bytes(31)),
    "no_recipients": lambda h: dataclasses.replace(h, recipients=()),
    "recipients_unsorted": lambda h: dataclasses.replace(h, recipients=h.recipients[::-1]),
    "recipient_wrapped_short": lambda h: dataclasses.replace(
        h, recipients=(RecipientEntry(key_id=KID_A, wrapped=bytes(SIZES.wrapped - 1)),)
    ),
    "commitment_31": lambda h: dataclasses.replace(h, commitment=bytes(31)),
}


@pytest.mark.parametrize("case", ENCODER_REFUSALS)
def test_encoder_refuses_what_the_parser_would_refuse(case: str) -> None:
    """letterlock never sends what it would not accept."""
    with pytest.raises(UsageError):
        encode_header(ENCODER_REFUSALS[case](_header()))


def test_encoder_output_is_the_spec_layout() -> None:
    assert encode_header(_header()) == raw()[: len(parse_all(raw()).header_bytes)]
