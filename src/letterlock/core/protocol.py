"""Sealing and opening envelopes (``docs/spec/envelope-v1.md`` sections 5 and 6).

Pure: every random value (message id, content key) and the time are arguments; the only
randomness used inside is HPKE's ephemeral key, drawn by pyca/cryptography. The public recipe
with the clock and the operating system's randomness is :mod:`letterlock._api`.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from letterlock import _crypto
from letterlock.core.envelope import (
    COMMITMENT_SIZE,
    BytesLike,
    Header,
    Limits,
    RecipientEntry,
    encode_envelope,
    encode_header,
    parse,
)
from letterlock.core.keys import SENDER_ID_SIZE, Identity, PublicIdentity
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.errors import Reason, Rejected, UsageError

if TYPE_CHECKING:
    from letterlock.trust.policy import TrustPolicy, VerifiedSender

__all__ = ["Opened", "Padding", "WrappedKey", "open_envelope", "seal_envelope", "wrap_content_key"]

CONTENT_KEY_SIZE: Final = 32
LABEL_WRAP: Final = b"letterlock/v1 content key"
LABEL_COMMIT: Final = b"letterlock/v1 key commitment"
LABEL_MESSAGE_KEY: Final = b"letterlock/v1 message key"
LABEL_SIGNATURE: Final = b"letterlock/v1 envelope\x00"
LABEL_HIDDEN_SIGNATURE: Final = b"letterlock/v1 hidden sender\x00"
_U64 = struct.Struct(">Q")

Padding = int | Literal["padme"] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    """A message that passed every check: its payload and who signed it."""

    payload: bytes = field(repr=False)
    sender: VerifiedSender
    topic: str
    message_id: bytes
    created: int
    expires: int | None
    content_type: str | None
    headers: Mapping[str, str]
    suite: Suite


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """A content key with its recipient block and commitment, ready to seal with.

    A sender may reuse one for several messages to the same recipients (section 5.1): every
    envelope still carries the whole block, and the per-message key differs per message id.
    """

    suite: Suite
    content_key: bytes = field(repr=False)
    recipients: tuple[RecipientEntry, ...]
    commitment: bytes


def _info(suite: Suite, label: bytes, extra: bytes = b"") -> bytes:
    return label + bytes([suite.value]) + extra


def commitment_of(suite: Suite, content_key: bytes) -> bytes:
    return _crypto.hkdf(
        suite, content_key, salt=None, info=_info(suite, LABEL_COMMIT), length=COMMITMENT_SIZE
    )


def message_key(suite: Suite, content_key: bytes, message_id: bytes) -> bytes:
    return _crypto.hkdf(
        suite,
        content_key,
        salt=message_id,
        info=_info(suite, LABEL_MESSAGE_KEY),
        length=suite.sizes.message_key,
    )


def wrap_content_key(
    content_key: bytes, *, suite: Suite, recipients: Sequence[PublicIdentity]
) -> WrappedKey:
    """Wrap ``content_key`` to every recipient with HPKE (one encapsulation each)."""
    if len(content_key) != CONTENT_KEY_SIZE:
        raise UsageError("content key must be 32 bytes")
    if not recipients:
        raise UsageError("at least one recipient is required")
    by_id: dict[bytes, PublicIdentity] = {}
    for recipient in recipients:
        if not isinstance(recipient, PublicIdentity):
            raise UsageError(f"recipients must be PublicIdentity objects, not {recipient!r}")
        if recipient.suite is not suite:
            raise UsageError(
                f"recipient {recipient.fingerprint_text} is {recipient.suite}, not {suite}"
            )
        by_id[recipient.recipient_id] = recipient
    entries = tuple(
        RecipientEntry(
            key_id=key_id,
            wrapped=by_id[key_id].wrap(content_key, _info(suite, LABEL_WRAP, key_id)),
        )
        for key_id in sorted(by_id)
    )
    return WrappedKey(
        suite=suite,
        content_key=content_key,
        recipients=entries,
        commitment=commitment_of(suite, content_key),
    )


def padme(length: int) -> int:
    """The Padmé padded size of ``length`` (PURBs, Nikitin et al. 2019)."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    mantissa_bits = exponent.bit_length()  # floor(log2(exponent)) + 1
    low_bits = exponent - mantissa_bits
    mask = (1 << low_bits) - 1
    return (length + mask) & ~mask


def _padded_length(length: int, pad: Padding) -> int:
    if pad is None:
        return length
    if pad == "padme":
        return padme(length)
    if isinstance(pad, int) and not isinstance(pad, bool) and pad > 0:
        return -(-length // pad) * pad
    raise UsageError(f"pad must be None, 'padme' or a positive block size, not {pad!r}")


def seal_envelope(
    payload: BytesLike,
    *,
    sender: Identity,
    wrapped: WrappedKey,
    topic: str,
    message_id: bytes,
    created: int,
    expires: int | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    hide_sender: bool = False,
    pad: Padding = None,
) -> bytes:
    """Seal ``payload`` from ``sender`` under an already wrapped content key."""
    suite = wrapped.suite
    if sender.suite is not suite:
        raise UsageError(f"sender is {sender.suite}, recipients are {suite}")
    header = Header(
        suite=suite,
        message_id=message_id,
        created=created,
        expires=expires,
        topic=topic,
        content_type=content_type,
        headers=tuple(sorted((headers or {}).items())),
        sender_key_id=None if hide_sender else sender.public.fingerprint,
        recipients=wrapped.recipients,
        commitment=wrapped.commitment,
    )
    header_bytes = encode_header(header)
    payload = memoryview(payload).cast("B")
    prefix = b""
    if hide_sender:
        signed = (
            LABEL_HIDDEN_SIGNATURE
            + header_bytes
            + sender.public.fingerprint
            + _crypto.digest(suite, payload)
        )
        prefix = sender.public.fingerprint + sender.sign(signed)
    prefix += _U64.pack(len(payload))
    inner_length = len(prefix) + len(payload)
    padding = bytes(_padded_length(inner_length, pad) - inner_length)
    inner = b"".join((prefix, payload, padding))
    key = message_key(suite, wrapped.content_key, message_id)
    ciphertext = _crypto.aead_encrypt(suite, key, inner, header_bytes)
    signature = None
    if not hide_sender:
        signature = sender.sign(LABEL_SIGNATURE + header_bytes + _crypto.digest(suite, ciphertext))
    return encode_envelope(header_bytes, ciphertext, signature)


def _admit(
    trust: TrustPolicy, key_id: bytes, header: Header, now: int
) -> tuple[PublicIdentity, VerifiedSender]:
    """Steps 13 and 14: the sender's public identity and the policy's verdict."""
    from letterlock.trust.policy import TrustContext  # noqa: PLC0415 - trust sits above core

    candidate = trust.lookup(key_id)
    if candidate is None or not hmac.compare_digest(candidate.fingerprint, key_id):
        raise Rejected(Reason.UNKNOWN_SENDER)
    if candidate.suite is not header.suite:
        raise Rejected(Reason.UNTRUSTED, "sender key of another suite")
    context = TrustContext(
        topic=header.topic,
        suite=header.suite,
        content_type=header.content_type,
        headers=header.header_map,
        created=header.created,
        now=now,
    )
    decision = trust.admit(candidate, context)
    if isinstance(decision, str):
        raise Rejected(Reason.UNTRUSTED, decision)
    return candidate, decision


def open_envelope(
    data: BytesLike,
    *,
    identity: Identity,
    trust: TrustPolicy,
    replay: ReplayWindow,
    now: int,
    topic: str | None = None,
    suites: frozenset[Suite],
    limits: Limits,
) -> Opened:
    """Open an envelope, checking everything in the order of section 6. Raises Rejected."""
    envelope = parse(data, suites=suites, limits=limits)  # steps 1-7
    header = envelope.header
    suite = header.suite
    replay.check_time(created=header.created, expires=header.expires, now=now)  # steps 8, 9
    if topic is not None and topic != header.topic:  # step 10
        raise Rejected(Reason.WRONG_TOPIC, f"for {header.topic!r}, expected {topic!r}")
    replay.check_unseen(header.message_id)  # step 11
    my_id = identity.public.recipient_id
    entry = next((e for e in header.recipients if e.key_id == my_id), None)
    if entry is None or identity.suite is not suite:  # step 12
        raise Rejected(Reason.NOT_FOR_ME)
    sender: VerifiedSender | None = None
    if header.sender_key_id is not None:  # steps 13-15
        public, sender = _admit(trust, header.sender_key_id, header, now)
        signed = (
            LABEL_SIGNATURE + envelope.header_bytes + _crypto.digest(suite, envelope.ciphertext)
        )
        assert envelope.signature is not None
        if not public.verify(envelope.signature, signed):
            raise Rejected(Reason.BAD_SIGNATURE)
    content_key = identity.unwrap(entry.wrapped, _info(suite, LABEL_WRAP, my_id))  # step 16
    if content_key is None or len(content_key) != CONTENT_KEY_SIZE:
        raise Rejected(Reason.DECRYPT_FAILED, "recipient entry")
    if not hmac.compare_digest(commitment_of(suite, content_key), header.commitment):  # step 17
        raise Rejected(Reason.BAD_COMMITMENT)
    key = message_key(suite, content_key, header.message_id)
    inner = _crypto.aead_decrypt(suite, key, envelope.ciphertext, envelope.header_bytes)
    if inner is None:  # step 18
        raise Rejected(Reason.DECRYPT_FAILED, "ciphertext")
    payload, hidden_id, hidden_signature = _split_inner(inner, suite, hidden=sender is None)
    if sender is None:  # step 20: hidden sender, checked on the inner key id and signature
        public, sender = _admit(trust, hidden_id, header, now)
        signed = (
            LABEL_HIDDEN_SIGNATURE
            + envelope.header_bytes
            + hidden_id
            + _crypto.digest(suite, payload)
        )
        if not public.verify(hidden_signature, signed):
            raise Rejected(Reason.BAD_SIGNATURE)
    replay.record(message_id=header.message_id, created=header.created, now=now)  # step 21
    return Opened(
        payload=bytes(payload),
        sender=sender,
        topic=header.topic,
        message_id=header.message_id,
        created=header.created,
        expires=header.expires,
        content_type=header.content_type,
        headers=header.header_map,
        suite=suite,
    )


def _split_inner(inner: bytes, suite: Suite, *, hidden: bool) -> tuple[memoryview, bytes, bytes]:
    """Step 19: (payload, hidden sender key id, hidden signature) of the inner plaintext."""
    view = memoryview(inner)
    sender_id = signature = b""
    pos = 0
    if hidden:
        sender_id = bytes(view[:SENDER_ID_SIZE])
        pos = SENDER_ID_SIZE + suite.sizes.signature
        signature = bytes(view[SENDER_ID_SIZE:pos])
    (length,) = _U64.unpack_from(view, pos)
    start = pos + _U64.size
    if length > len(view) - start:
        raise Rejected(Reason.MALFORMED, "inner length")
    padding = view[start + length :]
    if padding != bytes(len(padding)):
        raise Rejected(Reason.MALFORMED, "non-zero padding")
    return view[start : start + length], sender_id, signature
