"""Sealing and opening envelopes (``docs/spec/envelope-v1.md`` sections 5 and 6).

Pure: every random value (message id, content key) and the time are arguments; the only
randomness used inside is HPKE's ephemeral key, drawn by pyca/cryptography. The public recipe
with the clock and the operating system's randomness is :mod:`letterlock._api`.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal, TypedDict

from letterlock import _crypto
from letterlock.core.cache import UnwrapCache
from letterlock.core.carriage import CredentialBlock
from letterlock.core.envelope import (
    COMMITMENT_SIZE,
    MAX_RECIPIENTS,
    TAG_SIZE,
    BytesLike,
    Labels,
    LabelsLookup,
    Limits,
    RecipientEntry,
    encode_envelope_prefix,
    encode_header_front,
    parse_parts,
)
from letterlock.core.keys import SENDER_ID_SIZE, Identity, PublicIdentity
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender
from letterlock.errors import Reason, Rejected, UsageError

__all__ = [
    "Opened",
    "Padding",
    "Received",
    "SealKeywords",
    "SealOptions",
    "WrappedKey",
    "open_as",
    "open_envelope",
    "seal_envelope",
    "wrap_content_key",
]

CONTENT_KEY_SIZE: Final = 32
LABEL_WRAP: Final = b"letterlock/v1 content key"
LABEL_KEYS: Final = b"letterlock/v1 keys"
LABEL_NONCE: Final = b"letterlock/v1 nonce"
NONCE_SIZE: Final = 12
LABEL_SIGNATURE: Final = b"letterlock/v1 envelope\x00"
LABEL_HIDDEN_SIGNATURE: Final = b"letterlock/v1 hidden sender\x00"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: Inner plaintexts from this size are built in the envelope and encrypted in place (one copy
#: of the payload); smaller ones are joined and encrypted in one call (fewer Python steps).
_IN_PLACE_FROM: Final = 64 * 1024
_ZEROS: Final = bytes(64 * 1024)

Padding = int | Literal["padme"] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """A message that passed every check, its payload aside: who signed it, and what.

    What :meth:`letterlock.Opener.open_into` returns: the payload (``size`` bytes) is in the
    caller's buffer.
    """

    size: int
    sender: VerifiedSender
    topic: str
    message_id: bytes
    created: int
    expires: int | None
    content_type: str | None
    headers: Mapping[str, str]
    suite: Suite


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened(Received):
    """A message that passed every check: its payload and who signed it."""

    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """What a content key yields for sealing: its recipient block, commitment and payload cipher.

    A sender may reuse one for several messages to the same recipients (section 5.1): every
    envelope still carries the whole block and its own random message id, from which its AEAD
    nonce under the content key's payload key is derived (section 5.4).
    """

    suite: Suite
    recipients: tuple[RecipientEntry, ...]
    commitment: bytes
    block: bytes = field(repr=False)  # the encoded recipient block and commitment
    cipher: _crypto.PayloadCipher = field(repr=False, compare=False)


# The open path builds two values per message. Setting their slots directly skips the frozen
# dataclasses' generated __init__ (one object.__setattr__ call a field): about 1 us a value.
# Only for values whose fields need no checks; tests compare them with the normal constructor.
_O = tuple(getattr(Opened, f.name).__set__ for f in fields(Opened))
_C = tuple(getattr(TrustContext, f.name).__set__ for f in fields(TrustContext))


def _opened(  # noqa: PLR0917 - the fields of Received, then Opened's payload (None: none)
    size: int,
    sender: VerifiedSender,
    topic: str,
    message_id: bytes,
    created: int,
    expires: int | None,
    content_type: str | None,
    headers: Mapping[str, str],
    suite: Suite,
    payload: bytes | None,
) -> Opened | Received:
    made = object.__new__(Received if payload is None else Opened)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _O
    s0(made, size)
    s1(made, sender)
    s2(made, topic)
    s3(made, message_id)
    s4(made, created)
    s5(made, expires)
    s6(made, content_type)
    s7(made, headers)
    s8(made, suite)
    if payload is not None:
        s9(made, payload)
    return made


def _trust_context(  # noqa: PLR0917 - TrustContext's fields, in order
    topic: str,
    suite: Suite,
    content_type: str | None,
    headers: Mapping[str, str],
    created: int,
    now: int,
    credentials: CredentialBlock | None,
) -> TrustContext:
    made = object.__new__(TrustContext)
    s0, s1, s2, s3, s4, s5, s6, s7 = _C
    s0(made, topic)
    s1(made, suite)
    s2(made, content_type)
    s3(made, headers)
    s4(made, created)
    s5(made, now)
    s6(made, 0 if credentials is None else credentials.status_version)
    s7(made, credentials)
    return made


def _info(suite: Suite, label: bytes, extra: bytes = b"") -> bytes:
    return label + bytes([suite.value]) + extra


_KEYS: Final = {
    suite: (_info(suite, LABEL_KEYS), COMMITMENT_SIZE + suite.sizes.payload_key) for suite in Suite
}


def derive_keys(suite: Suite, content_key: bytes) -> tuple[bytes, bytes]:
    """``(C, K)``: the commitment and the payload key, from one HKDF of CK (section 5.3)."""
    info, length = _KEYS[suite]
    okm = _crypto.hkdf(suite, content_key, salt=None, info=info, length=length)
    return okm[:COMMITMENT_SIZE], okm[COMMITMENT_SIZE:]


def commitment_of(suite: Suite, content_key: bytes) -> bytes:
    """C alone, for tools and tests that build envelopes by hand."""
    return derive_keys(suite, content_key)[0]


def payload_key(suite: Suite, content_key: bytes) -> bytes:
    """K alone, for tools and tests that build envelopes by hand."""
    return derive_keys(suite, content_key)[1]


_NONCE: Final = {
    suite: (_crypto.hash_function(suite), _info(suite, LABEL_NONCE)) for suite in Suite
}


def nonce_of(suite: Suite, message_id: bytes) -> bytes:
    """The AEAD nonce of a message: the first 96 bits of ``H(label || suite || message id)``.

    It depends on all 128 bits of the id (section 5.4): ids that differ anywhere, even
    only in a counter in their last bytes, give different nonces (but for a hash collision).
    """
    hash_function, prefix = _NONCE[suite]
    return hash_function(prefix + message_id).digest()[:NONCE_SIZE]


def signed_visible(suite: Suite, header_bytes: bytes, ct_digest: bytes) -> bytes:
    """What a visible sender signs (section 5.5): the header and ``H(ciphertext)``."""
    return LABEL_SIGNATURE + header_bytes + ct_digest


def signed_hidden(
    suite: Suite, header_bytes: bytes, ct_length: int, sender_key_id: bytes, payload_digest: bytes
) -> bytes:
    """What a hidden sender signs (section 5.5): the header, ``ct_len`` (so the padding is
    fixed), its key id and ``H(payload)``."""
    return b"".join(
        (LABEL_HIDDEN_SIGNATURE, header_bytes, _U32.pack(ct_length), sender_key_id, payload_digest)
    )


def wipe(buffer: bytearray | memoryview) -> None:
    """Overwrite ``buffer`` with zeros in place, without allocating a buffer of its size."""
    with memoryview(buffer) as view, view.cast("B") as flat:
        size = len(flat)
        step = len(_ZEROS)
        for start in range(0, size - step + 1, step):
            flat[start : start + step] = _ZEROS
        tail = size % step
        if tail:
            flat[size - tail :] = _ZEROS[:tail]


def _all_zero(buffer: bytes | bytearray, start: int, end: int) -> bool:
    """True if ``buffer[start:end]`` is all zeros (checked in place, nothing allocated)."""
    return buffer.count(0, start, end) == end - start


_WRAP_INFO: Final = {suite: _info(suite, LABEL_WRAP) for suite in Suite}
_W = tuple(getattr(WrappedKey, f.name).__set__ for f in fields(WrappedKey))


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
        if type(recipient) is not PublicIdentity:  # a final class: the exact type is enough
            raise UsageError(f"recipients must be PublicIdentity objects, not {recipient!r}")
        if recipient.suite is not suite:
            raise UsageError(
                f"recipient {recipient.fingerprint_text} is {recipient.suite}, not {suite}"
            )
        by_id[recipient.recipient_id] = recipient
    if len(by_id) > MAX_RECIPIENTS:
        raise UsageError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    wrap_info, size = _WRAP_INFO[suite], suite.sizes.wrapped
    entries = []
    for key_id in sorted(by_id):
        wrapped = by_id[key_id].wrap(content_key, wrap_info + key_id)
        if len(wrapped) != size:
            raise AssertionError("HPKE gave a wrapped key of another size than section 5.2's")
        entries.append(RecipientEntry(key_id=key_id, wrapped=wrapped))
    commitment, key = derive_keys(suite, content_key)
    block = b"".join(
        (_U16.pack(len(entries)), *(e.key_id + e.wrapped for e in entries), commitment)
    )  # what encode_recipient_block gives, for entries made here (sorted, sized, unique)
    made = object.__new__(WrappedKey)
    set_suite, set_recipients, set_commitment, set_block, set_cipher = _W
    set_suite(made, suite)
    set_recipients(made, tuple(entries))
    set_commitment(made, commitment)
    set_block(made, block)
    set_cipher(made, _crypto.PayloadCipher(suite, key))
    return made


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


@dataclass(frozen=True, slots=True, kw_only=True)
class SealOptions:
    """What a sender chooses for one message besides payload, sender and recipients.

    One object carried from :func:`letterlock.seal` and :meth:`letterlock.Sealer.seal` (which
    build it from their keywords, :class:`SealKeywords`) through :func:`seal_envelope`: a new
    option is added here and in :class:`SealKeywords`, and read where the envelope is built.
    ``topic`` and ``headers`` are signed and readable by relays; ``expires_in`` seconds after
    the creation time the message is refused; ``hide_sender`` moves the sender's key id and
    signature inside the ciphertext; ``pad`` ("padme" or a block size) hides the exact size.
    Checked when sealing (a UsageError then).
    """

    topic: str
    headers: Mapping[str, str] | None = None
    content_type: str | None = None
    expires_in: float | None = None
    hide_sender: bool = False
    pad: Padding = None


class SealKeywords(TypedDict, total=False):
    """:class:`SealOptions` as keywords (all but the topic), for the public sealing calls."""

    headers: Mapping[str, str] | None
    content_type: str | None
    expires_in: float | None
    hide_sender: bool
    pad: Padding


_S = tuple(getattr(SealOptions, f.name).__set__ for f in fields(SealOptions))
_KEYWORDS: Final = frozenset(SealKeywords.__annotations__)


def seal_options(topic: str, keywords: SealKeywords) -> SealOptions:
    """``SealOptions(topic=topic, **keywords)``, built on the per-message path without the
    dataclass ``__init__``; an unknown keyword is a UsageError."""
    made = object.__new__(SealOptions)
    set_topic, set_headers, set_ctype, set_expires, set_hide, set_pad = _S
    set_topic(made, topic)
    if keywords:
        unknown = keywords.keys() - _KEYWORDS
        if unknown:
            raise UsageError(f"unknown sealing option(s): {', '.join(sorted(unknown))}")
    set_headers(made, keywords.get("headers"))
    set_ctype(made, keywords.get("content_type"))
    set_expires(made, keywords.get("expires_in"))
    set_hide(made, keywords.get("hide_sender", False))
    set_pad(made, keywords.get("pad"))
    return made


def expiry(created: int, expires_in: float | None) -> int | None:
    """The envelope's ``expires`` for a message created at ``created``."""
    if expires_in is None:
        return None
    if not expires_in > 0:
        raise UsageError("expires_in must be positive")
    return created + max(1, int(expires_in))


def seal_envelope(
    payload: BytesLike,
    *,
    sender: Identity,
    wrapped: WrappedKey,
    options: SealOptions,
    message_id: bytes,
    created: int,
    into: bytearray | None = None,
) -> bytes:
    """Seal ``payload`` from ``sender`` under an already wrapped content key.

    With ``into`` (resized to fit; ``b""`` is returned), or from 64 KiB up, the envelope is
    built in one buffer: the payload is copied once into place and encrypted there. Smaller
    messages returned as bytes are joined and encrypted in one call. Either way the
    ciphertext is hashed once for the signature, and both paths give the same bytes.
    """
    if sender.suite is not wrapped.suite:
        raise UsageError(f"sender is {sender.suite}, recipients are {wrapped.suite}")
    return seal_as(
        payload, sender.public.fingerprint, sender.signer.sign, wrapped, options, message_id,
        created, into, sender.credentials,
    )  # fmt: skip


def seal_as(  # noqa: PLR0917 - the per-message path passes its arguments positionally
    payload: BytesLike,
    fingerprint: bytes,
    sign: Callable[[bytes], bytes],
    wrapped: WrappedKey,
    options: SealOptions,
    message_id: bytes,
    created: int,
    into: bytearray | None,
    credentials: CredentialBlock | None = None,
) -> bytes:
    """:func:`seal_envelope` for a sender whose key id and signing call are already at hand
    (a :class:`letterlock.Sealer` looks them up once); the signer's suite must be the key's.
    ``credentials`` is the sender's credential block (section 4.1), carried unless None; a
    hidden sender carries none (UsageError)."""
    topic, headers, content_type = options.topic, options.headers, options.content_type
    hide_sender, pad = options.hide_sender, options.pad
    expires = None if options.expires_in is None else expiry(created, options.expires_in)
    suite = wrapped.suite
    front = encode_header_front(
        suite=suite,
        message_id=message_id,
        created=created,
        expires=expires,
        topic=topic,
        content_type=content_type,
        headers=tuple(sorted(headers.items())) if headers else (),
        sender_key_id=None if hide_sender else fingerprint,
        credentials=credentials,
    )
    header_bytes = front + wrapped.block
    if type(payload) is not bytes:
        payload = memoryview(payload).cast("B")
    payload_size = len(payload)
    inner_length = (SENDER_ID_SIZE + suite.sizes.signature if hide_sender else 0) + 8 + payload_size
    ct_length = (inner_length if pad is None else _padded_length(inner_length, pad)) + TAG_SIZE
    prefix = _U64.pack(payload_size)
    if hide_sender:  # the signature fixes ct_len, hence the padding (section 5.5)
        digest = _crypto.digest(suite, payload)
        signed = signed_hidden(suite, header_bytes, ct_length, fingerprint, digest)
        prefix = fingerprint + sign(signed) + prefix
    nonce = nonce_of(suite, message_id)
    if into is None and inner_length < _IN_PLACE_FROM:  # small: fewest steps, same bytes
        zeros = bytes(ct_length - TAG_SIZE - inner_length)
        ciphertext = wrapped.cipher.seal(nonce, b"".join((prefix, payload, zeros)), header_bytes)
        signature = b""
        if not hide_sender:
            ct_digest = _crypto.digest(suite, ciphertext)
            signature = sign(signed_visible(suite, header_bytes, ct_digest))
        return b"".join((encode_envelope_prefix(header_bytes, ct_length), ciphertext, signature))
    ct_start = len(header_bytes) + 4
    ct_end = ct_start + ct_length
    size = ct_end + (0 if hide_sender else suite.sizes.signature)
    out = bytearray(size) if into is None else _resized(into, size)
    view = memoryview(out)
    view[:ct_start] = encode_envelope_prefix(header_bytes, ct_length)
    body = ct_start + len(prefix)
    view[ct_start:body] = prefix
    padding = body + len(payload)
    view[body:padding] = payload  # the only copy of the payload
    wipe(view[padding : ct_end - TAG_SIZE])  # a reused buffer holds old bytes there
    wrapped.cipher.seal_in_place(nonce, view[ct_start:ct_end], header_bytes)
    if not hide_sender:
        ct_digest = _crypto.digest(suite, view[ct_start:ct_end])
        view[ct_end:] = sign(signed_visible(suite, header_bytes, ct_digest))
    view.release()
    return b"" if into is not None else bytes(out)


def _resized(buffer: bytearray, size: int) -> bytearray:
    """``buffer`` resized to ``size`` in place; its contents are for the caller to overwrite."""
    if len(buffer) != size:
        # Re-initialising resizes in place; building bytes(size) first would cost another copy.
        bytearray.__init__(buffer, size)
    return buffer


def _check_sender(  # noqa: PLR0917 - called from two places of the per-message path
    trust: TrustPolicy,
    key_id: bytes,
    labels: Labels,
    created: int,
    now: int,
    signature: bytes,
    signed: bytes,
) -> VerifiedSender:
    """Steps 13 to 15 (and 20 for a hidden sender): known, admitted, and its signature good.

    A sender refused at step 13 or 14 costs a verification all the same (:func:`_decoy_verify`).
    """
    try:
        public, sender = _admit(trust, key_id, labels, created, now)
    except Rejected:
        _decoy_verify(labels.suite, signature, signed)
        raise
    if not public.verify(signature, signed):
        raise Rejected(Reason.BAD_SIGNATURE)
    return sender


def _admit(
    trust: TrustPolicy, key_id: bytes, labels: Labels, created: int, now: int
) -> tuple[PublicIdentity, VerifiedSender]:
    """Steps 13 and 14: the sender's public identity and the policy's verdict."""
    carried = labels.credentials
    candidate = trust.lookup(key_id) if carried is None else trust.lookup(key_id, carried)
    if candidate is None or not hmac.compare_digest(candidate.fingerprint, key_id):
        raise Rejected(Reason.UNKNOWN_SENDER)
    if candidate.suite is not labels.suite:
        raise Rejected(Reason.UNTRUSTED, "sender key of another suite")
    # read-only headers: a policy cannot alter what open returns
    context = _trust_context(
        labels.topic, labels.suite, labels.content_type, labels.header_map, created, now, carried
    )
    decision = trust.admit(candidate, context)
    if type(decision) is not VerifiedSender:
        if isinstance(decision, Refusal):
            raise Rejected(decision.reason, decision.detail, transient=decision.transient)
        raise UsageError(
            f"a trust policy admits with a VerifiedSender or a Refusal, not {decision!r}"
        )
    if decision.key_id != candidate.fingerprint:  # replay records and callers key on it
        raise UsageError("the trust policy admitted the sender under another key id")
    return candidate, decision


def open_envelope(
    data: BytesLike,
    *,
    identity: Identity,
    trust: TrustPolicy,
    replay: ReplayWindow,
    now: int,
    topic: str | Topics | None = None,
    suites: frozenset[Suite],
    limits: Limits,
    unwrap_cache: UnwrapCache | None = None,
    labels_cache: LabelsLookup | None = None,
    into: bytearray | None = None,
    record: bool = True,
) -> Opened | Received:
    """Open an envelope, checking everything in the order of section 6. Raises Rejected.

    With ``unwrap_cache``, step 16 looks the receiver's exact recipient entry up before running
    HPKE; the entry is cached only once the whole envelope has opened. With ``labels_cache``,
    header labels already seen are not parsed field by field again (they must match byte for
    byte). Without ``into`` the result is an :class:`Opened` with its payload; with ``into``
    the payload is decrypted into that buffer (resized to the payload) and the result is a
    :class:`Received`; if the message is refused, at any step, the buffer is left zeroed.

    ``topic`` is the receiver's own expectation (step 10): one topic, or :class:`Topics`.
    With ``record=False`` step 21 is the caller's: it records the id (``replay.record``, or a
    consumer's ``replay.claim``, both atomic) once the payload is safely delivered. Only a
    hidden sender's id is checked here first (steps 9 and 11 could not see whose it is); a
    visible sender's was checked at steps 9 and 11, and is not looked up again.

    The ciphertext is hashed and decrypted from one snapshot: an envelope passed as anything
    but ``bytes`` (a bytearray, a memoryview of shared memory) is first copied into the
    output buffer, so nobody who can write to the caller's buffer can swap the ciphertext
    between the signature check and the decryption.
    """
    if into is None:
        return open_as(
            data, identity, trust, replay, now, topic, suites, limits, unwrap_cache,
            labels_cache, None, record,
        )  # fmt: skip
    if into is data:
        raise UsageError("into must be another buffer than the envelope")
    try:
        return open_as(
            data, identity, trust, replay, now, topic, suites, limits, unwrap_cache,
            labels_cache, into, record,
        )  # fmt: skip
    except BaseException:
        wipe(into)  # no byte of a refused message, nor of an earlier one, stays behind
        raise


def open_as(  # noqa: PLR0917 - the per-message path passes its arguments positionally
    data: BytesLike,
    identity: Identity,
    trust: TrustPolicy,
    replay: ReplayWindow,
    now: int,
    topic: str | Topics | None,
    suites: frozenset[Suite],
    limits: Limits,
    unwrap_cache: UnwrapCache | None,
    labels_cache: LabelsLookup | None,
    into: bytearray | None,
    record: bool,
) -> Opened | Received:
    """:func:`open_envelope`'s arguments, positionally: what a :class:`letterlock.Opener` calls
    per message (as :func:`seal_as` for a Sealer). A buffer ``into`` is left as it was at a
    refusal: :func:`open_envelope` zeroes it."""
    labels, message_id, created, expires, header_bytes, ciphertext, signature = parse_parts(
        data, suites=suites, limits=limits, labels=labels_cache
    )  # steps 1-7
    suite = labels.suite
    claimed = labels.sender_key_id  # None when hidden: steps 9 and 11 wait for step 21
    seen: bool | None = None  # step 11's answer, when the store gave it with step 9's
    if claimed is None:
        replay.check_time(sender=None, created=created, expires=expires, now=now)  # 8, 9
    else:  # 8, 9, and step 11's lookup in the same store call where the store can
        seen = replay.check_fresh(
            sender=claimed, message_id=message_id, created=created, expires=expires, now=now
        )
    if topic is not None and not (
        topic == labels.topic if type(topic) is str else labels.topic in topic
    ):  # step 10
        raise Rejected(Reason.WRONG_TOPIC, f"for {_shown(labels.topic)}, expected {_shown(topic)}")
    if seen:
        raise Rejected(Reason.REPLAYED)  # step 11
    if seen is None and claimed is not None:
        replay.check_unseen(claimed, message_id)  # step 11, asked on its own
    my_id = identity.public.recipient_id
    wrapped = labels.entries.get(my_id)
    if wrapped is None or identity.suite is not suite:  # step 12
        raise Rejected(Reason.NOT_FOR_ME)
    ct_size = len(ciphertext)
    buffer: bytearray | None = None  # the output buffer, when the payload is decrypted into one
    if into is not None or ct_size >= _IN_PLACE_FROM:
        buffer = bytearray() if into is None else into
    snapshot: bytes | memoryview = ciphertext
    if type(data) is not bytes:  # a buffer others may write: hash and decrypt one snapshot
        if buffer is None:
            snapshot = bytes(ciphertext)
        else:
            _resized(buffer, ct_size)
            memoryview(buffer)[:] = ciphertext
            snapshot = memoryview(buffer)
    sender: VerifiedSender | None = None
    if claimed is not None:  # steps 13-15
        assert signature is not None
        signed = LABEL_SIGNATURE + header_bytes + _crypto.digest(suite, snapshot)
        sender = _check_sender(trust, claimed, labels, created, now, signature, signed)
    cached = None if unwrap_cache is None else unwrap_cache.get(suite, wrapped)
    if cached is None:
        content_key = identity.unwrap(wrapped, _WRAP_INFO[suite] + my_id)
        if content_key is None or len(content_key) != CONTENT_KEY_SIZE:  # step 16
            raise Rejected(Reason.DECRYPT_FAILED, "recipient entry")
        commitment, key = derive_keys(suite, content_key)
        cipher = _crypto.PayloadCipher(suite, key)
    else:
        commitment, cipher = cached  # what step 16 derives from these exact entry bytes
    if not hmac.compare_digest(commitment, labels.commitment):  # step 17, hit or miss
        raise Rejected(Reason.BAD_COMMITMENT)
    nonce = nonce_of(suite, message_id)
    inner: bytes | bytearray
    decrypted: bytes | None = None
    if buffer is None:  # small: one call, the plaintext in a new bytes object
        decrypted = cipher.open(nonce, snapshot, header_bytes)
        if decrypted is None:
            raise Rejected(Reason.DECRYPT_FAILED, "ciphertext")  # step 18
        inner = decrypted
    else:
        size = ct_size - TAG_SIZE
        if snapshot is ciphertext:  # immutable input: decrypt out of place
            _resized(buffer, size)
        with memoryview(buffer) as out, out[:size] as plain:
            opened = cipher.open_into(nonce, snapshot, header_bytes, plain)
        if snapshot is not ciphertext and isinstance(snapshot, memoryview):
            snapshot.release()  # the snapshot, decrypted in place: let the buffer shrink
        if not opened:
            raise Rejected(Reason.DECRYPT_FAILED, "ciphertext")  # step 18
        del buffer[size:]  # the tag, when the snapshot was decrypted in place
        inner = buffer
    if sender is not None and _U64.unpack_from(inner)[0] == len(inner) - _U64.size:
        start, length = _U64.size, len(inner) - _U64.size  # step 19: visible, no padding
    else:
        start, length, signer, hidden_signature = _split_inner(inner, suite, sender is None)
    if sender is None:  # step 20
        payload_digest = _crypto.digest(suite, memoryview(inner)[start : start + length])
        signed = signed_hidden(suite, header_bytes, ct_size, signer, payload_digest)
        sender = _check_sender(trust, signer, labels, created, now, hidden_signature, signed)
    else:
        assert claimed is not None
        signer = claimed
    # step 21, under the key that verified (never a policy's say-so)
    if record:
        replay.record(sender=signer, message_id=message_id, created=created, now=now)
    elif claimed is None:  # hidden: steps 9 and 11 could not look at this sender's record
        replay.check(
            sender=signer, message_id=message_id, created=created, expires=expires, now=now
        )
    # visible, not recorded: steps 9 and 11 asked the store this very question (same sender,
    # id, times); asking again decides nothing, as only the caller's atomic record or claim can
    if cached is None and unwrap_cache is not None:
        unwrap_cache.put(suite, wrapped, commitment, cipher)  # only now: the envelope opened
    payload: bytes | None
    if into is not None:
        del into[start + length :]
        del into[:start]  # bytearray drops a prefix in place
        payload = None  # the caller's buffer holds it: a Received, not an Opened
    elif buffer is not None:
        payload = bytes(memoryview(buffer)[start : start + length])
    else:
        assert decrypted is not None
        payload = decrypted[start : start + length]
    return _opened(
        length, sender, labels.topic, message_id, created, expires, labels.content_type,
        labels.header_map.copy(), suite, payload,
    )  # fmt: skip


_DECOYS: dict[Suite, PublicIdentity] = {}


def _decoy_verify(suite: Suite, signature: bytes, signed: bytes) -> None:
    """Spend on a sender refused at step 13 or 14 what step 15 spends on a bad signature.

    An unknown or refused sender is decided before the signature is checked, so without this
    it would be refused one verification sooner than a forgery that names a trusted key: a
    broker timing settlements could tell whom the receiver trusts. The outcome is discarded.
    """
    decoy = _DECOYS.get(suite)
    if decoy is None:
        decoy = _DECOYS.setdefault(suite, Identity.generate(suite).public)
    decoy.verify(signature, signed)


def _shown(topic: str | Topics, limit: int = 80) -> str:
    """A topic (or the receiver's topics) for an error's detail: quoted, at most ``limit``."""
    text = repr(topic) if isinstance(topic, str) else f"one of {topic!s}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split_inner(
    inner: bytes | bytearray, suite: Suite, hidden: bool
) -> tuple[int, int, bytes, bytes]:
    """Step 19: (payload offset, payload length, hidden sender key id, hidden signature).

    The padding is checked in place: nothing of the inner plaintext's size is allocated.
    """
    sender_id = signature = b""
    pos = 0
    if hidden:
        sender_id = bytes(inner[:SENDER_ID_SIZE])
        pos = SENDER_ID_SIZE + suite.sizes.signature
        signature = bytes(inner[SENDER_ID_SIZE:pos])
    (length,) = _U64.unpack_from(inner, pos)
    start = pos + _U64.size
    end = len(inner)
    if length > end - start:
        raise Rejected(Reason.MALFORMED, "inner length")
    if not _all_zero(inner, start + length, end):
        raise Rejected(Reason.MALFORMED, "non-zero padding")
    return start, length, sender_id, signature
