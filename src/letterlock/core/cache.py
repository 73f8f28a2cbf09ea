"""Key caches that amortise HPKE without touching message independence (spec section 5.1).

* :class:`WrapCache` (sender side): one :class:`~letterlock.core.protocol.WrappedKey` per
  (suite, recipient set), reused for at most ``max_messages`` envelopes and ``max_age`` seconds.
  Every envelope still carries the whole recipient block and its own random message id, so each
  opens alone; its AEAD nonce is derived from the whole id, unique with overwhelming probability
  within the reuse bound.
* :class:`UnwrapCache` (receiver side): a bounded LRU from the exact bytes of the receiver's
  recipient entry to what the content key HPKE gave for it yields (its commitment and payload
  cipher). Decapsulation is a deterministic function of (private key, entry, info), so a hit
  returns exactly what a miss would compute: the cache cannot change any outcome. Only entries
  of envelopes that opened completely are inserted.
* :class:`LabelsCache` (receiver side): parsed header labels (topic through commitment) by their
  exact bytes, so a stream from one sealer is parsed field by field once. Parsing is a pure
  function of the bytes, the suite, the flags and the limits, all of which a hit must match.

Pure: time is an argument, and both caches take a lock so one sealer or opener can serve threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from letterlock.errors import UsageError

if TYPE_CHECKING:
    from letterlock._crypto import PayloadCipher
    from letterlock.core.envelope import Labels
    from letterlock.core.protocol import WrappedKey
    from letterlock.core.suites import Suite

__all__ = ["LabelsCache", "UnwrapCache", "WrapCache"]

#: Default reuse bounds of one wrapped content key: see docs/design-notes.md.
DEFAULT_MAX_MESSAGES = 1 << 16
DEFAULT_MAX_AGE = 600
#: Hard bounds: the spec's 2^32 envelopes under one content key (random 96-bit nonces, NIST
#: SP 800-38D), and a day, past which a content key is no longer "amortised" but long-lived.
LIMIT_MAX_MESSAGES = 1 << 32
LIMIT_MAX_AGE = 24 * 3600


class _Slot:
    """One wrapped content key in use: when it was made, how often it sealed."""

    __slots__ = ("born", "uses", "wrapped")

    def __init__(self, wrapped: WrappedKey, born: int) -> None:
        self.wrapped = wrapped
        self.born = born
        self.uses = 0


class WrapCache:
    """Wrapped content keys per recipient set, each reused within bounds (sender side)."""

    def __init__(
        self,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_age: int = DEFAULT_MAX_AGE,
        max_sets: int = 1024,
    ) -> None:
        if not 1 <= max_messages <= LIMIT_MAX_MESSAGES:
            raise UsageError(
                f"max_messages must be 1 to 2**32 (the spec's bound on envelopes under one "
                f"content key), not {max_messages}"
            )
        if not 0 <= max_age <= LIMIT_MAX_AGE:
            raise UsageError(f"max_age must be 0 to {LIMIT_MAX_AGE} seconds, not {max_age}")
        if max_sets < 1:
            raise UsageError("max_sets must be positive")
        self.max_messages = max_messages
        self.max_age = max_age
        self._max_sets = max_sets
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: int, make: Callable[[], WrappedKey]) -> WrappedKey:
        """The wrapped key for ``key`` (the recipient set), making a fresh one if due."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and (
                slot.uses >= self.max_messages or not slot.born <= now < slot.born + self.max_age
            ):
                del self._slots[key]
                slot = None
            if slot is None:
                slot = self._slots[key] = _Slot(make(), now)
                if len(self._slots) > self._max_sets:
                    self._slots.popitem(last=False)
            elif len(self._slots) > 1:
                self._slots.move_to_end(key)
            slot.uses += 1
            return slot.wrapped

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def __len__(self) -> int:
        return len(self._slots)


class UnwrapCache:
    """Content keys by the exact bytes of the receiver's recipient entry (receiver side).

    One cache belongs to one receiver identity, so the entry's wrapped key (with the suite,
    checked on a hit) is all HPKE's output depends on. What is stored is what the content key
    yields: its commitment and its payload cipher (section 5.3), derived once, so a hit spares
    HPKE and the HKDF. The envelope's commitment is still compared on every open. First in,
    first out; lookups take no lock (entries are immutable), insertions do.
    """

    def __init__(self, *, size: int = 4096) -> None:
        if size < 1:
            raise UsageError("cache size must be positive")
        self._size = size
        self._keys: dict[bytes, tuple[Suite, bytes, PayloadCipher]] = {}
        self._lock = threading.Lock()
        self.hits = 0  # statistics only: not updated atomically
        self.misses = 0

    def get(self, suite: Suite, wrapped: bytes) -> tuple[bytes, PayloadCipher] | None:
        """(commitment, payload cipher) of this entry's content key, or None."""
        found = self._keys.get(wrapped)
        if found is None or found[0] is not suite:
            self.misses += 1
            return None
        self.hits += 1
        return found[1], found[2]

    def put(self, suite: Suite, wrapped: bytes, commitment: bytes, cipher: PayloadCipher) -> None:
        with self._lock:
            self._keys[wrapped] = (suite, commitment, cipher)
            while len(self._keys) > self._size:
                del self._keys[next(iter(self._keys))]

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)


class LabelsCache:
    """Parsed header labels by their exact bytes (receiver side), first in, first out.

    A hit is only used by :func:`letterlock.core.envelope.parse_parts` when the suite, the
    flags and the limits object also match. Labels are immutable, so lookups take no lock.
    """

    def __init__(self, *, size: int = 1024) -> None:
        if size < 1:
            raise UsageError("cache size must be positive")
        self._size = size
        self._labels: dict[bytes, Labels] = {}
        self._lock = threading.Lock()
        self.hits = 0  # statistics only: not updated atomically
        self.misses = 0

    def get(self, key: bytes) -> Labels | None:
        found = self._labels.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: bytes, labels: Labels) -> None:
        with self._lock:
            self._labels[key] = labels
            while len(self._labels) > self._size:
                del self._labels[next(iter(self._labels))]

    def clear(self) -> None:
        with self._lock:
            self._labels.clear()

    def __len__(self) -> int:
        return len(self._labels)
