"""Opening as a receiver whose encryption keys form a keyset (``docs/spec/keyset.md``).

A :class:`KeysetOpener` holds one :class:`letterlock.Opener` per key that may open messages
and, per message, picks the one the envelope's recipient block names. Whether a key may open
is the keyset's decision (:meth:`letterlock.trust.keysets.Keyset.opens_with`), taken at the
message's ``now``: a retired key opens queued messages until its deadline and not after; a
destroyed key has no private key here at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from letterlock._api import Opener
from letterlock.core.envelope import DEFAULT_LIMITS, Limits, parse_parts
from letterlock.core.keys import Identity
from letterlock.core.protocol import Opened, Received, wipe
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import TrustPolicy
from letterlock.errors import Reason, Rejected, UsageError
from letterlock.trust.keysets import Keyset, Purpose, Status

__all__ = ["KeysetOpener"]


class KeysetOpener(Opener):
    """Opens messages sent to any key of ``keyset`` that may open them at the time of opening.

    ``keys`` maps key ids to the private identities of the keyset's encryption keys (each must
    be the key the keyset certifies under that id); keys the keyset says are destroyed, and its
    signing keys, must be absent: a message sealed to a signing key is ``not_for_me``.
    The envelope's recipient block names the key; a message for a retired key past its
    deadline, or for a destroyed key, is refused as ``not_for_me``. An :class:`Opener`, so a
    consumer takes it as one: ``identity`` is the primary key's if it is given, and ``trust``
    and ``replay`` set on it reach every key's opener. Thread-safe if ``trust`` and ``replay``
    are.
    """

    def __init__(
        self,
        keyset: Keyset,
        keys: Mapping[int, Identity],
        *,
        trust: TrustPolicy,
        replay: ReplayWindow,
        suites: Iterable[Suite] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        cache_size: int = 4096,
    ) -> None:
        self.keyset = keyset
        self._openers: dict[int, Opener] = {}
        for key_id, identity in keys.items():
            key = keyset.key(key_id)
            if key.purpose is not Purpose.ENCRYPT:
                raise UsageError(f"key {key_id} is a signing key: it opens nothing")
            if key.status is Status.DESTROYED:
                raise UsageError(f"key {key_id} is destroyed; its private key must be gone")
            if not isinstance(identity, Identity) or identity.public != key.public:
                raise UsageError(f"key {key_id} is not the key the keyset certifies")
            self._openers[key_id] = Opener(
                identity, trust=trust, replay=replay, suites=suites, limits=limits,
                cache_size=cache_size,
            )  # fmt: skip
        if not self._openers:
            raise UsageError("a KeysetOpener needs the private key of at least one key")
        shown = keys.get(keyset.primary.key_id) or next(iter(keys.values()))
        super().__init__(shown, trust=trust, replay=replay, suites=suites, limits=limits,
                         cache_size=1)  # fmt: skip
        for opener in self._openers.values():
            opener.labels = self.labels  # one parse of a header serves the choice and the open
        primary = keyset.primary
        self._primary = self._openers.get(primary.key_id)
        self._primary_deadline = primary.deadline(keyset.grace)

    @property
    def trust(self) -> TrustPolicy:
        return self._trust

    @trust.setter
    def trust(self, trust: TrustPolicy) -> None:
        self._trust = trust
        for opener in getattr(self, "_openers", {}).values():
            opener.trust = trust

    @property
    def replay(self) -> ReplayWindow:
        return self._replay

    @replay.setter
    def replay(self, replay: ReplayWindow) -> None:
        self._replay = replay
        for opener in getattr(self, "_openers", {}).values():
            opener.replay = replay

    def open(
        self,
        data: bytes | bytearray | memoryview,
        *,
        topic: str | Topics | None = None,
        now: float | None = None,
        record: bool = True,
    ) -> Opened:
        """As :func:`letterlock.open`, with the key of the keyset the message is for."""
        seconds = int(time.time() if now is None else now)
        if self._primary is not None and seconds < self._primary_deadline:
            try:  # most messages are for the primary key: no choice to make
                return self._primary.open(data, topic=topic, now=seconds, record=record)
            except Rejected as exc:
                if exc.reason is not Reason.NOT_FOR_ME:
                    raise
        return self._opener(data, seconds).open(data, topic=topic, now=seconds, record=record)

    def open_into(
        self,
        data: bytes | bytearray | memoryview,
        buffer: bytearray,
        *,
        topic: str | Topics | None = None,
        now: float | None = None,
        record: bool = True,
    ) -> Received:
        """As :meth:`Opener.open_into`, with the key of the keyset the message is for."""
        seconds = int(time.time() if now is None else now)
        if self._primary is not None and seconds < self._primary_deadline:
            try:  # as in open: the primary key first (it leaves the buffer zeroed if refused)
                return self._primary.open_into(
                    data, buffer, topic=topic, now=seconds, record=record
                )
            except Rejected as exc:
                if exc.reason is not Reason.NOT_FOR_ME:
                    raise
        try:
            opener = self._opener(data, seconds)
        except BaseException:
            if isinstance(buffer, bytearray):
                wipe(buffer)
            raise
        return opener.open_into(data, buffer, topic=topic, now=seconds, record=record)

    def _opener(self, data: bytes | bytearray | memoryview, now: int) -> Opener:
        """The opener of the first key the envelope names that opens at ``now`` (keyset
        order), for a message the primary key did not open as ``not_for_me`` (so the checks
        before section 6's step 12 have passed once already); the header is parsed through the
        labels cache the key's opener then hits."""
        entries = parse_parts(data, suites=self.suites, limits=self.limits, labels=self.labels)[
            0
        ].entries
        usable = {key.key_id for key in self.keyset.opens_with(now)}
        refused = ""
        for key in self.keyset.keys:
            if key.public.recipient_id not in entries:
                continue
            opener = self._openers.get(key.key_id)
            if key.key_id in usable and opener is not None:
                return opener
            if not refused:
                refused = _why_not(self.keyset, key.key_id, now, have=opener is not None)
        raise Rejected(Reason.NOT_FOR_ME, refused)


def _why_not(keyset: Keyset, key_id: int, now: int, *, have: bool) -> str:
    key = keyset.key(key_id)
    if key.purpose is not Purpose.ENCRYPT:
        return f"for key {key_id}, a signing key (it opens nothing)"
    if key.status is Status.DESTROYED:
        return f"for key {key_id}, destroyed"
    if now >= key.deadline(keyset.grace):
        return f"for key {key_id}, past its deadline {key.deadline(keyset.grace)}"
    assert not have
    return f"for key {key_id}, whose private key is not loaded"
