"""The replay window: everything that decides whether a message is fresh lives here.

A message carries a random 128-bit id and its signed creation time. The window accepts a message
only if its time is inside ``[now - max_age, now + skew]``, it has not expired, and the pair
(sender key id, message id) has not been recorded. The record is kept **per sender**: ids,
floors and capacity belong to one sender key, so one sender can never squat another's ids (by
copying an id it saw on the broker), evict another's ids, or raise another's floor.

Ids are kept until their message would fail the time check anyway, so memory is bounded by the
message rate times ``max_age``. Past a sender's capacity its oldest ids are forgotten and *that
sender's* floor rises to their creation time, so a forgotten id can never be replayed (the
window fails closed). A floor never passes the receiver's clock: an id created after ``now`` is
never evicted, and a sender whose record is full of such ids is refused (``over_limit``) until
time catches up. Pruning by age raises a floor common to all senders to ``now - max_age - 1``.

Decision table (``docs/spec/envelope-v1.md`` section 6, steps 8, 9, 11 and 21), first match wins:

=============================================  ==================  ================
message                                        recorded?           outcome
=============================================  ==================  ================
created > now + skew                           -                   not_yet_valid
expires set and now >= expires                 -                   expired
created < now - max_age                        -                   expired
created <= floor(sender)                       -                   expired
(sender, id) recorded                          yes                 replayed
sender's record full of ids created > now      no                  over_limit
otherwise                                      no                  fresh
=============================================  ==================  ================

``floor(sender) = max(common floor, sender's own floor)``. When the sender is hidden, the early
steps (9 and 11) use the common floor only and skip the recorded check; step 21 decides with the
verified sender. Recording a fresh message at a full record first forgets that sender's oldest
ids (all ids tied at the oldest creation time) and raises its floor to that time; a message
created at or before that time is refused instead, leaving the record unchanged.

Transitions of one (sender, id), where a *claim* is a consumer's hold on a message its handler
is working on (``holder``, a random token of that consumer, until ``until`` on the receiver's
clock)::

    fresh --add--------------------------------------> handled --prune/evict--> forgotten
    fresh --add(holder)--> claimed --finish(holder)--> handled
                           claimed --release(holder)-> fresh      (the handler failed: retry)
                           claimed --extend(holder)--> claimed    (a heartbeat: a later until)
                           claimed, until passed --add(other holder)--> claimed by the other
                                                                  (its holder died: taken over)

``add`` is atomic in every store: of two concurrent copies exactly one wins (ADDED), and only an
envelope that passed every other check is recorded, so a forged copy cannot block the genuine
message. A copy meeting a live claim is BUSY (another consumer is handling it: try later); one
meeting a handled id is SEEN (replayed). ``finish``, ``release`` and ``extend`` act only for the
claim's own holder, so one consumer can never complete, drop or prolong another's claim.
``contains`` (the early step 11) sees handled ids only: a claimed id is decided at step 21.

The window is pure (time is an argument); stores implement :class:`ReplayStore`:
:class:`MemoryReplayStore` here, :class:`letterlock.stores.sqlite.SQLiteReplayStore` on disk, and
:class:`letterlock.stores.redis.RedisReplayStore` and
:class:`letterlock.stores.postgres.PostgresReplayStore` shared by the consumers of a group.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from letterlock.errors import Reason, Rejected, UsageError

__all__ = [
    "DEFAULT_CAPACITY",
    "AddResult",
    "Claim",
    "MemoryReplayStore",
    "ReplayStore",
    "ReplayWindow",
]

#: Ids kept per sender before the oldest are forgotten (and that sender's floor rises).
DEFAULT_CAPACITY: Final = 1_000_000


class AddResult(enum.Enum):
    """What :meth:`ReplayStore.add` did."""

    ADDED = "added"  #: recorded now (handled, or claimed by the holder)
    TAKEN_OVER = "taken_over"  #: a claim whose ``until`` had passed is now the holder's
    BELOW_FLOOR = "below_floor"  #: created at or before the sender's floor: refused, expired
    SEEN = "seen"  #: this sender's id is recorded as handled (or claimed, for a plain add)
    BUSY = "busy"  #: claimed by another holder until a time not yet reached: try later
    FULL = "full"  #: the sender's record is full of ids created after now: over_limit


class Claim(enum.Enum):
    """What :meth:`ReplayWindow.claim` gave the consumer that asked."""

    CLAIMED = "claimed"  #: the message is this consumer's to handle
    TAKEN_OVER = "taken_over"  #: it was claimed by a consumer that stopped renewing: now ours
    BUSY = "busy"  #: another consumer is handling it now: settle it to come back later


# Per-message comparisons use these: an attribute of an Enum class costs a Python-level
# __getattr__ hook on 3.11 (EnumType defines one), a global does not.
_ADDED: Final = AddResult.ADDED
_CLAIMED: Final = Claim.CLAIMED


class LooksUpAtOnce(Protocol):
    """What a :class:`ReplayStore` may add: steps 9 and 11's two questions in one call.

    A store across a network (Redis, PostgreSQL) answers :meth:`ReplayStore.floor` and
    :meth:`ReplayStore.contains` in one round trip this way, instead of two per message. The
    answers are those two methods' at one moment; like theirs, they only refuse early (the
    atomic :meth:`ReplayStore.add` decides).
    """

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        """``(floor(sender), contains(sender, message_id))``."""
        ...


class ReplayStore(Protocol):
    """Where a window keeps recorded ids, per sender. :meth:`add` must be atomic."""

    def floor(self, sender: bytes | None = None) -> int:
        """Messages of ``sender`` created at or before this are refused; it never decreases.

        ``None``: the floor common to all senders (raised by :meth:`prune` only).
        """
        ...

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        """Whether ``(sender, message_id)`` is recorded as handled (claims are not)."""
        ...

    def add(
        self,
        sender: bytes,
        message_id: bytes,
        created: int,
        *,
        now: float,
        holder: bytes | None = None,
        until: float = 0.0,
    ) -> AddResult:
        """Record ``(sender, message_id)`` unless refused; atomic with pruning and eviction.

        Without ``holder`` the id is recorded as handled; with one, as claimed by ``holder``
        until ``until``. In order: BELOW_FLOOR if ``created <= floor(sender)``; if the id is
        recorded: SEEN if handled, or if claimed and this is a plain add; BUSY if claimed by
        another holder (or this one) with ``until > now``; else (a claim whose time passed)
        it becomes ``holder``'s until ``until``: TAKEN_OVER. At the sender's capacity, FULL if
        its oldest id was created after ``now``, BELOW_FLOOR if ``created`` is not after that
        oldest id, else forget the oldest ids (those tied at the oldest time, claimed or not)
        and raise the sender's floor to their time; then record: ADDED.
        """
        ...

    def finish(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        """``holder``'s claim becomes handled; False (nothing changed) if it is not its claim."""
        ...

    def release(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        """Forget ``holder``'s claim (the id may be added again); False if not its claim."""
        ...

    def extend(self, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        """Move ``holder``'s claim to ``until``; False (nothing changed) if not its claim."""
        ...

    def prune(self, cutoff: int) -> None:
        """Forget ids created before ``cutoff`` and raise the common floor to cutoff - 1."""
        ...

    def __len__(self) -> int:
        """How many ids are recorded, over all senders."""
        ...


@dataclass(slots=True)
class _SenderRecord:
    seen: dict[bytes, int] = field(default_factory=dict)
    by_time: list[tuple[int, bytes]] = field(default_factory=list)
    claims: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)  # id -> holder, until
    floor: int = -1


class MemoryReplayStore:
    """An in-process store; ``capacity`` ids per sender. Thread-safe."""

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._senders: dict[bytes, _SenderRecord] = {}
        self._floor = -1
        self._count = 0
        self._lock = threading.Lock()

    def floor(self, sender: bytes | None = None) -> int:
        record = self._senders.get(sender) if sender is not None else None
        if record is None or record.floor < self._floor:
            return self._floor
        return record.floor

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        record = self._senders.get(sender)
        return record is not None and message_id in record.seen and message_id not in record.claims

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        record = self._senders.get(sender)
        if record is None:
            return self._floor, False
        seen = message_id in record.seen and message_id not in record.claims
        return max(record.floor, self._floor), seen

    def add(
        self,
        sender: bytes,
        message_id: bytes,
        created: int,
        *,
        now: float,
        holder: bytes | None = None,
        until: float = 0.0,
    ) -> AddResult:
        with self._lock:
            record = self._senders.get(sender)
            if record is None:
                record = self._senders[sender] = _SenderRecord()
            if created <= self._floor or created <= record.floor:
                return AddResult.BELOW_FLOOR
            if message_id in record.seen:
                claim = record.claims.get(message_id)
                if claim is None or holder is None:
                    return AddResult.SEEN
                if claim[1] > now:
                    return AddResult.BUSY
                record.claims[message_id] = (holder, until)
                return AddResult.TAKEN_OVER
            if len(record.seen) >= self._capacity:
                oldest = record.by_time[0][0]
                if oldest > now:
                    return AddResult.FULL
                if created <= oldest:
                    return AddResult.BELOW_FLOOR
                while record.by_time and record.by_time[0][0] == oldest:
                    self._forget(record, heapq.heappop(record.by_time)[1])
                record.floor = oldest
            record.seen[message_id] = created
            heapq.heappush(record.by_time, (created, message_id))
            if holder is not None:
                record.claims[message_id] = (holder, until)
            self._count += 1
            return _ADDED

    def _forget(self, record: _SenderRecord, message_id: bytes) -> None:
        del record.seen[message_id]
        record.claims.pop(message_id, None)
        self._count -= 1

    def _held(self, sender: bytes, message_id: bytes, holder: bytes) -> _SenderRecord | None:
        record = self._senders.get(sender)
        if record is None:
            return None
        claim = record.claims.get(message_id)
        return record if claim is not None and claim[0] == holder else None

    def finish(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        with self._lock:  # _held, inline: every handled message comes here
            record = self._senders.get(sender)
            if record is None:
                return False
            claim = record.claims.get(message_id)
            if claim is None or claim[0] != holder:
                return False
            del record.claims[message_id]
            return True

    def release(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        with self._lock:
            record = self._held(sender, message_id, holder)
            if record is None:
                return False
            created = record.seen[message_id]
            record.by_time.remove((created, message_id))
            heapq.heapify(record.by_time)
            self._forget(record, message_id)
            return True

    def extend(self, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        with self._lock:
            record = self._held(sender, message_id, holder)
            if record is None:
                return False
            record.claims[message_id] = (holder, until)
            return True

    def prune(self, cutoff: int) -> None:
        with self._lock:
            self._floor = max(self._floor, cutoff - 1)
            for sender, record in list(self._senders.items()):
                while record.by_time and record.by_time[0][0] < cutoff:
                    self._forget(record, heapq.heappop(record.by_time)[1])
                if not record.seen and record.floor <= self._floor:
                    del self._senders[sender]  # nothing left that the common floor does not say

    def __len__(self) -> int:
        return self._count


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
        if prune_every < 1:
            raise UsageError("prune_every must be positive")
        self.store: ReplayStore = store if store is not None else MemoryReplayStore()
        self.max_age = max_age
        self.skew = skew
        self._prune_every = prune_every
        # Counts adds; an Opener may record from several threads, and next() on a count is
        # one atomic step (no lock to take per message).
        self._adds = itertools.count(1)

    def check(
        self,
        *,
        sender: bytes | None,
        message_id: bytes,
        created: int,
        expires: int | None,
        now: int,
    ) -> None:
        """Steps 8, 9 and 11: raise Rejected unless the message is fresh. Records nothing."""
        if sender is None:
            self.check_time(sender=None, created=created, expires=expires, now=now)
            return
        seen = self.check_fresh(
            sender=sender, message_id=message_id, created=created, expires=expires, now=now
        )
        if seen is None:
            self.check_unseen(sender, message_id)
        elif seen:
            raise Rejected(Reason.REPLAYED)

    def check_time(
        self, *, sender: bytes | None, created: int, expires: int | None, now: int
    ) -> None:
        """Steps 8 and 9: the message's times against the window (``sender`` None: hidden)."""
        self._check_clock(created, expires, now)
        if created <= self.store.floor(sender):
            raise Rejected(Reason.EXPIRED, "older than the replay window")

    def check_fresh(
        self, *, sender: bytes, message_id: bytes, created: int, expires: int | None, now: int
    ) -> bool | None:
        """Steps 8 and 9 for a visible sender, as :meth:`check_time`, and step 11's question.

        Returns whether the id is recorded as handled, asked of the store in the same call as
        its floor when the store can (:class:`LooksUpAtOnce`: one round trip, not two); the
        caller refuses it as ``replayed`` at step 11, after step 10. None: the store answers
        one question a call, and step 11 is :meth:`check_unseen`'s.
        """
        self._check_clock(created, expires, now)
        at_once: Callable[[bytes, bytes], tuple[int, bool]] | None = getattr(
            self.store, "floor_and_contains", None
        )
        if at_once is None:
            if created <= self.store.floor(sender):
                raise Rejected(Reason.EXPIRED, "older than the replay window")
            return None
        floor, seen = at_once(sender, message_id)
        if created <= floor:
            raise Rejected(Reason.EXPIRED, "older than the replay window")
        return seen

    def _check_clock(self, created: int, expires: int | None, now: int) -> None:
        """Step 8, and step 9 against the clock (``max_age``): no store involved."""
        if created > now + self.skew:
            raise Rejected(Reason.NOT_YET_VALID, f"created {created - now}s in the future")
        if expires is not None and now >= expires:
            raise Rejected(Reason.EXPIRED, "past its expiry")
        if created < now - self.max_age:
            raise Rejected(Reason.EXPIRED, "older than the replay window")

    def check_unseen(self, sender: bytes, message_id: bytes) -> None:
        """Step 11: a cheap early refusal of a recorded id (step 21 is the deciding one)."""
        if self.store.contains(sender, message_id):
            raise Rejected(Reason.REPLAYED)

    def record(self, *, sender: bytes, message_id: bytes, created: int, now: float) -> None:
        """Step 21: atomically record the id of a message that passed everything else."""
        result = self._add(sender, message_id, created, now=now, holder=None, until=0.0)
        assert result is _ADDED  # a plain add is never BUSY nor TAKEN_OVER

    def claim(
        self,
        *,
        sender: bytes,
        message_id: bytes,
        created: int,
        now: float,
        holder: bytes,
        until: float,
    ) -> Claim:
        """Step 21 for a consumer: claim the message for ``holder`` until ``until``.

        The claim lasts while the handler works (:meth:`extend` it, as a heartbeat); then
        :meth:`finish` records the message as handled, or :meth:`release` forgets it so that a
        later copy can be handled. Raises Rejected as :meth:`record` does (a handled id is
        ``replayed``); BUSY if another holder's claim is still live.
        """
        if not holder:
            raise UsageError("a claim needs a holder")
        result = self._add(sender, message_id, created, now=now, holder=holder, until=until)
        if result is _ADDED:
            return _CLAIMED
        if result is AddResult.BUSY:
            return Claim.BUSY
        return Claim.TAKEN_OVER if result is AddResult.TAKEN_OVER else Claim.CLAIMED

    def finish(self, *, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        """The handler is done: the claim becomes a handled id. False if it was not ours."""
        return self.store.finish(sender, message_id, holder)

    def release(self, *, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        """The handler failed: forget the claim so the message can be handled again."""
        return self.store.release(sender, message_id, holder)

    def extend(self, *, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        """A heartbeat: the claim lasts until ``until``. False if it is no longer ours."""
        return self.store.extend(sender, message_id, holder, until)

    def _add(
        self,
        sender: bytes,
        message_id: bytes,
        created: int,
        *,
        now: float,
        holder: bytes | None,
        until: float,
    ) -> AddResult:
        if next(self._adds) % self._prune_every == 0:
            self.store.prune(int(now) - self.max_age)
        result = self.store.add(sender, message_id, created, now=now, holder=holder, until=until)
        if result is _ADDED:  # the usual case: one comparison
            return result
        if result is AddResult.BELOW_FLOOR:
            raise Rejected(Reason.EXPIRED, "older than the replay window")
        if result is AddResult.SEEN:
            raise Rejected(Reason.REPLAYED)
        if result is AddResult.FULL:
            raise Rejected(Reason.OVER_LIMIT, "the sender's replay record is full of future ids")
        return result
