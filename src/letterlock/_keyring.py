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
from letterlock.core.cache import LabelsCache
from letterlock.core.envelope import DEFAULT_LIMITS, Limits, parse_parts
from letterlock.core.keys import Identity
from letterlock.core.protocol import Opened
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import TrustPolicy
from letterlock.errors import Reason, Rejected, UsageError
from letterlock.trust.keysets import Keyset, Status

__all__ = ["KeysetOpener"]


class KeysetOpener:
    """Opens messages sent to any key of ``keyset`` that may open them at the time of opening.

    ``keys`` maps key ids to the private identities of the keyset's keys (each must be the key
    the keyset certifies under that id); keys the keyset says are destroyed must be absent.
    The envelope's recipient block names the key; a message for a retired key past its
    deadline, or for a destroyed key, is refused as ``not_for_me``. Thread-safe if ``trust``
    and ``replay`` are.
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
        self.limits = limits
        self._labels = LabelsCache()
        self._openers: dict[int, Opener] = {}
        for key_id, identity in keys.items():
            key = keyset.key(key_id)
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
        self.suites = next(iter(self._openers.values())).suites

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
        labels = parse_parts(data, suites=self.suites, limits=self.limits, labels=self._labels)[0]
        return self._opener(labels.entries, seconds).open(
            data, topic=topic, now=seconds, record=record
        )

    def _opener(self, entries: Mapping[bytes, bytes], now: int) -> Opener:
        """The opener of the first key the entries name that opens at ``now`` (keyset order)."""
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
    if key.status is Status.DESTROYED:
        return f"for key {key_id}, destroyed"
    if now >= key.deadline(keyset.grace):
        return f"for key {key_id}, past its deadline {key.deadline(keyset.grace)}"
    assert not have
    return f"for key {key_id}, whose private key is not loaded"
