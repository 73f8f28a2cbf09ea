"""The safe recipe: :func:`seal` and :func:`open` with the clock and fresh randomness.

These are the calls applications use. They draw the message id and content key from the
operating system and read the clock when ``now`` is not given; everything else happens in the
pure :mod:`letterlock.core.protocol`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Unpack

from letterlock import _crypto
from letterlock.core.cache import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_MESSAGES,
    LabelsCache,
    UnwrapCache,
    WrapCache,
)
from letterlock.core.carriage import CredentialFormat
from letterlock.core.envelope import DEFAULT_LIMITS, MESSAGE_ID_SIZE, Envelope, Limits, parse
from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.protocol import (
    CONTENT_KEY_SIZE,
    Opened,
    Received,
    SealKeywords,
    SealOptions,
    WrappedKey,
    open_as,
    open_envelope,
    seal_as,
    seal_options,
    wrap_content_key,
)
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import TrustPolicy
from letterlock.errors import ParseError, UsageError
from letterlock.trust.keysets import Keyset

__all__ = ["Opener", "Sealer", "inspect", "open", "seal"]

_PLAIN_TOPICS = 256  # topics a Sealer keeps a ready SealOptions for


def _seconds(now: float | None) -> int:
    return int(time.time() if now is None else now)


def seal(
    payload: bytes | bytearray | memoryview,
    *,
    sender: Identity,
    recipients: Iterable[PublicIdentity],
    topic: str,
    now: float | None = None,
    **options: Unpack[SealKeywords],
) -> bytes:
    """Sign ``payload`` as ``sender`` and encrypt it to every recipient, bound to ``topic``.

    The options (:class:`letterlock.SealOptions`): ``headers`` stay readable to brokers (for
    routing) but are signed; ``content_type`` is signed; ``expires_in`` seconds after ``now``
    the message is refused; ``hide_sender`` moves the sender's key id and signature inside the
    ciphertext; ``pad`` ("padme" or a block size) hides the exact payload size.
    """
    return Sealer(sender, max_messages=1).seal(  # a fresh content key: nothing is cached
        payload, recipients=recipients, topic=topic, now=now, **options
    )


def open(
    data: bytes | bytearray | memoryview,
    *,
    identity: Identity,
    trust: TrustPolicy,
    replay: ReplayWindow,
    topic: str | Topics | None = None,
    now: float | None = None,
    suites: Iterable[Suite] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    record: bool = True,
) -> Opened:
    """Verify and decrypt an envelope addressed to ``identity``; raise Rejected otherwise.

    ``topic`` is where this receiver expects messages to be bound: one topic, or
    :class:`Topics` (exact topics and ``*``/``#`` patterns). Take it from your own
    configuration, never from what the broker reports for a delivery (a broker can put any
    message in any queue and report anything). ``suites`` are the suites accepted (default:
    the identity's own). No payload byte is returned unless the signature, the trust policy,
    the replay window and the decryption all agree.

    ``record=False`` checks the replay window without recording the message: call
    ``replay.record(sender=opened.sender.key_id, message_id=opened.message_id,
    created=opened.created, now=...)`` once the payload is safely delivered (it raises
    Rejected if a concurrent copy was recorded first).
    """
    opened = open_envelope(
        data,
        identity=identity,
        trust=trust,
        replay=replay,
        now=_seconds(now),
        topic=topic,
        suites=_accepted(identity, suites),
        limits=limits,
        record=record,
    )
    assert isinstance(opened, Opened)
    return opened


def inspect(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """What a relay sees: the parsed envelope (header, sizes), nothing decrypted or verified.

    Useful for routing and diagnostics. Nothing in the result is authenticated until
    :func:`open` succeeds; raises Rejected if the bytes are not a well-formed envelope.
    Hidden-sender envelopes are shown up to ``limits.max_size`` whatever the receiver's
    hidden-sender settings: inspecting runs no cryptography.
    """
    shown = dataclasses.replace(limits, hidden_sender=True, max_hidden_size=limits.max_size)
    return parse(data, suites=frozenset(Suite), limits=shown)


class Sealer:
    """Seals many messages as one sender, amortising HPKE across messages.

    One wrapped content key per recipient set is reused for at most ``max_messages`` envelopes
    (at most 2**32, the spec's bound) and ``max_age`` seconds (at most a day); the defaults are
    65,536 and 600 s (see docs/design-notes.md). Each envelope still carries the full recipient
    block and its own random message id, from which its AEAD nonce is derived, so it opens
    alone (spec section 5.4). Messages with a hidden sender never reuse a content key: a
    repeated recipient block would let a relay group a hidden sender's messages. Thread-safe.
    """

    def __init__(
        self,
        sender: Identity,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_age: int = DEFAULT_MAX_AGE,
    ) -> None:
        if not isinstance(sender, Identity):
            raise UsageError("sender must be a letterlock.Identity (a private identity)")
        self.sender = sender
        self._cache = WrapCache(max_messages=max_messages, max_age=max_age)
        self._suite = sender.suite
        self._fingerprint = sender.public.fingerprint
        self._sign = sender.signer.sign
        self._credentials = sender.credentials
        self._window = _signing_window(sender)
        self._plain: dict[str, SealOptions] = {}  # topic -> its options when none are given

    def seal(
        self,
        payload: bytes | bytearray | memoryview,
        *,
        recipients: Iterable[PublicIdentity],
        topic: str,
        now: float | None = None,
        **options: Unpack[SealKeywords],
    ) -> bytes:
        """As :func:`letterlock.seal`: the envelope, as bytes."""
        if options:
            return self._seal(payload, recipients, seal_options(topic, options), now, None)
        plain = self._plain.get(topic)  # a stream repeats its topic: one SealOptions for it
        if plain is None:
            plain = seal_options(topic, {})
            if len(self._plain) < _PLAIN_TOPICS:
                self._plain[topic] = plain
        return self._seal(payload, recipients, plain, now, None)

    def seal_into(
        self,
        payload: bytes | bytearray | memoryview,
        buffer: bytearray,
        *,
        recipients: Iterable[PublicIdentity],
        topic: str,
        now: float | None = None,
        **options: Unpack[SealKeywords],
    ) -> int:
        """As :meth:`seal`, building the envelope in ``buffer`` (resized to fit): the payload is
        copied once into place and encrypted there, no other copy of a large message is made.
        Returns the envelope's length (``len(buffer)``)."""
        if not isinstance(buffer, bytearray):
            raise UsageError("seal_into builds the envelope in a bytearray")
        self._seal(payload, recipients, seal_options(topic, options), now, buffer)
        return len(buffer)

    def _seal(
        self,
        payload: bytes | bytearray | memoryview,
        recipients: Iterable[PublicIdentity],
        options: SealOptions,
        now: float | None,
        into: bytearray | None,
    ) -> bytes:
        created = _seconds(now)
        if self._window is not None and not self._window[0] <= created < self._window[1]:
            raise UsageError(
                "the delegated signing key is outside its lifetime: receivers would refuse the "
                "message (docs/spec/keyset.md section 9); sign with a current key"
            )
        readers: Sequence[PublicIdentity] = (
            recipients if isinstance(recipients, list | tuple) else list(recipients)
        )
        suite = self._suite

        def fresh() -> WrappedKey:
            key = _crypto.random_bytes(CONTENT_KEY_SIZE)
            return wrap_content_key(key, suite=suite, recipients=readers)

        if options.hide_sender:  # a reused recipient block would link a hidden sender's messages
            wrapped = fresh()
        else:
            wrapped = self._cache.get(_recipient_set(readers), created, fresh)
        return seal_as(
            payload, self._fingerprint, self._sign, wrapped, options,
            _crypto.random_bytes(MESSAGE_ID_SIZE), created, into, self._credentials,
        )  # fmt: skip


class Opener:
    """Opens many messages as one receiver, caching HPKE decapsulations.

    The cache maps the exact bytes of this receiver's recipient entry to what its content key
    yields (commitment, payload cipher); a hit gives what a miss would compute, and only
    envelopes that opened completely are cached, so the cache never changes an outcome.
    Thread-safe if ``trust`` and ``replay`` are.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        trust: TrustPolicy,
        replay: ReplayWindow,
        suites: Iterable[Suite] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        cache_size: int = 4096,
    ) -> None:
        self.suites = _accepted(identity, suites)
        self.identity = identity
        self.trust = trust
        self.replay = replay
        self.limits = limits
        self.cache = UnwrapCache(size=cache_size)
        self.labels = LabelsCache()

    def open(
        self,
        data: bytes | bytearray | memoryview,
        *,
        topic: str | Topics | None = None,
        now: float | None = None,
        record: bool = True,
    ) -> Opened:
        """As :func:`letterlock.open`."""
        # open_envelope without into, minus two calls with a dozen keywords each, a message
        opened = open_as(
            data, self.identity, self.trust, self.replay,
            int(time.time() if now is None else now),  # _seconds(now), inline
            topic, self.suites, self.limits, self.cache, self.labels, None, record,
        )  # fmt: skip
        assert isinstance(opened, Opened)
        return opened

    def open_into(
        self,
        data: bytes | bytearray | memoryview,
        buffer: bytearray,
        *,
        topic: str | Topics | None = None,
        now: float | None = None,
        record: bool = True,
    ) -> Received:
        """As :meth:`open`, decrypting the payload into ``buffer`` (resized to the payload:
        ``Received.size`` bytes) instead of a new bytes object. If the message is refused, at
        any step, the buffer is left zeroed."""
        if not isinstance(buffer, bytearray):
            raise UsageError("open_into decrypts into a bytearray")
        received = self._open(data, buffer, topic=topic, now=now, record=record)
        assert isinstance(received, Received)
        return received

    def _open(
        self,
        data: bytes | bytearray | memoryview,
        into: bytearray | None,
        *,
        topic: str | Topics | None,
        now: float | None,
        record: bool,
    ) -> Opened | Received:
        return open_envelope(
            data,
            identity=self.identity,
            trust=self.trust,
            replay=self.replay,
            now=_seconds(now),
            topic=topic,
            suites=self.suites,
            limits=self.limits,
            unwrap_cache=self.cache,
            labels_cache=self.labels,
            into=into,
            record=record,
        )


def _accepted(identity: Identity, suites: Iterable[Suite] | None) -> frozenset[Suite]:
    """The suites a receiver accepts: those named, else its own. Checks the identity."""
    if not isinstance(identity, Identity):
        raise UsageError("identity must be a letterlock.Identity (a private identity)")
    return frozenset(suites) if suites is not None else frozenset({identity.suite})


def _signing_window(sender: Identity) -> tuple[int, int] | None:
    """The lifetime of ``sender``'s key if it signs as a delegated signing key (its messages
    carry a keyset, ``docs/spec/keyset.md`` section 9), else None."""
    block = sender.credentials
    if block is None or block.format is not CredentialFormat.KEYSET or not block.items:
        return None
    try:
        key = Keyset.decode(block.items[0]).signer(sender.public.fingerprint)
    except ParseError:
        key = None
    if key is None:
        raise UsageError("the keyset this identity carries does not list it as a signing key")
    return key.not_before, key.not_after


def _recipient_set(readers: Sequence[PublicIdentity]) -> tuple[bytes, ...]:
    """The recipients' fingerprints, sorted: what a wrapped content key is cached under."""
    ids = []
    for reader in readers:
        if type(reader) is not PublicIdentity:  # final class: an exact check is enough
            raise UsageError(f"recipients must be PublicIdentity objects, not {reader!r}")
        ids.append(reader.fingerprint)
    ids.sort()
    return tuple(ids)
