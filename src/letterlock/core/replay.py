"""The replay window: everything that decides whether a message is fresh lives here.

A message carries a random 128-bit id and its signed creation time. The window accepts a message
only if its time is inside ``[now - max_age, now + skew]``, it has not expired, and its id has not
been recorded. Ids are kept until their message would fail the time check anyway, so memory is
bounded by the message rate times ``max_age``; past a store's capacity the oldest ids are
forgotten and the *floor* rises with them, so a forgotten id can never be replayed (the window
fails closed: it rejects as ``expired`` rather than forgetting silently).

Decision table (``docs/spec/envelope-v1.md`` section 6, steps 8, 9, 11 and 21), first match wins:

==========================================  ==================  ================
message                                     id recorded?        outcome
==========================================  ==================  ================
created > now + skew                        -                   not_yet_valid
expires set and now >= expires              -                   expired
created < now - max_age                     -                   expired
created <= floor                            -                   expired
otherwise                                   yes                 replayed
otherwise                                   no                  fresh
==========================================  ==================  ================

Transitions of one id: ``fresh --record--> recorded --prune/evict--> forgotten`` (below the
floor). ``record`` is atomic in every store: of two concurrent copies exactly one wins, and only
an envelope that passed every other check is recorded, so a forged copy cannot block the
genuine message.

The window is pure (time is an argument); stores implement :class:`ReplayStore`:
:class:`MemoryReplayStore` here, :class:`letterlock.stores.sqlite.SQLiteReplayStore` on disk.
"""

from __future__ import annotations

import heapq
import threading
from typing import Protocol

from letterlock.errors import Reason, Rejected, UsageError

__all__ = ["MemoryReplayStore", "ReplayStore", "ReplayWindow"]


class ReplayStore(Protocol):
    """Where a window keeps recorded ids. Implementations must make :meth:`add` atomic."""

    def floor(self) -> int:
        """Messages created at or before this time are refused; it never decreases."""
        ...

    def contains(self, message_id: bytes) -> bool: ...

    def add(self, message_id: bytes, created: int) -> bool:
        """Record an id; False (and no change) if it is already recorded or ``created`` is at
        or below the floor. Atomic with respect to :meth:`prune` and eviction."""
        ...

    def prune(self, cutoff: int) -> None:
        """Forget ids created before ``cutoff`` and raise the floor to at least cutoff - 1."""
        ...

    def __len__(self) -> int:
        """How many ids are recorded."""
        ...


class MemoryReplayStore:
    """An in-process store with a capacity; thread-safe."""

    def __init__(self, *, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._seen: dict[bytes, int] = {}
        self._by_time: list[tuple[int, bytes]] = []
        self._floor = -1
        self._lock = threading.Lock()

    def floor(self) -> int:
        return self._floor

    def contains(self, message_id: bytes) -> bool:
        return message_id in self._seen

    def add(self, message_id: bytes, created: int) -> bool:
        with self._lock:
            if message_id in self._seen or created <= self._floor:
                return False
            self._seen[message_id] = created
            heapq.heappush(self._by_time, (created, message_id))
            while len(self._seen) > self._capacity:  # forget the oldest, as the SQLite store
                oldest, evicted = heapq.heappop(self._by_time)
                del self._seen[evicted]
                self._floor = max(self._floor, oldest)
            return True

    def prune(self, cutoff: int) -> None:
        with self._lock:
            while self._by_time and self._by_time[0][0] < cutoff:
                _, old = heapq.heappop(self._by_time)
                del self._seen[old]
            self._floor = max(self._floor, cutoff - 1)

    def __len__(self) -> int:
        return len(self._seen)


class ReplayWindow:
    """Refuses replayed, expired and future messages (see the module's decision table)."""

    def __init__(
        self,
        store: ReplayStore | None = None,
        *,
        max_age: int = 3600,
        skew: int = 300,
        prune_every: int = 1024,
    ) -> None:
        if max_age < 1 or skew < 0:
            raise UsageError("max_age must be positive and skew not negative")
        self.store: ReplayStore = store if store is not None else MemoryReplayStore()
        self.max_age = max_age
        self.skew = skew
        self._prune_every = prune_every
        self._since_prune = 0

    def check(self, *, message_id: bytes, created: int, expires: int | None, now: int) -> None:
        """Steps 8, 9 and 11: raise Rejected unless the message is fresh. Records nothing."""
        self.check_time(created=created, expires=expires, now=now)
        self.check_unseen(message_id)

    def check_time(self, *, created: int, expires: int | None, now: int) -> None:
        """Steps 8 and 9: the message's times against the window."""
        if created > now + self.skew:
            raise Rejected(Reason.NOT_YET_VALID, f"created {created - now}s in the future")
        if expires is not None and now >= expires:
            raise Rejected(Reason.EXPIRED, "past its expiry")
        if created < now - self.max_age or created <= self.store.floor():
            raise Rejected(Reason.EXPIRED, "older than the replay window")

    def check_unseen(self, message_id: bytes) -> None:
        """Step 11: a cheap early refusal of a recorded id (step 21 is the deciding one)."""
        if self.store.contains(message_id):
            raise Rejected(Reason.REPLAYED)

    def record(self, *, message_id: bytes, created: int, now: int) -> None:
        """Step 21: atomically record the id of a message that passed everything else."""
        self._since_prune += 1
        if self._since_prune >= self._prune_every:
            self._since_prune = 0
            self.store.prune(now - self.max_age)
        if not self.store.add(message_id, created):  # the floor is checked inside, atomically
            if created <= self.store.floor():  # the floor only rises: this is why add refused
                raise Rejected(Reason.EXPIRED, "older than the replay window")
            raise Rejected(Reason.REPLAYED)
