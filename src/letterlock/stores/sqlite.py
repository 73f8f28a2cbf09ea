"""A replay store in SQLite: the window survives restarts and is shared by local processes.

Recording is one transaction (``BEGIN IMMEDIATE``) that applies the decision of
:meth:`letterlock.core.replay.ReplayStore.add` to one sender's ids, floor and count, so of two
processes opening copies of one message exactly one records it, and an id forgotten by a
concurrent prune or eviction can never be recorded again. Floors and counts are kept per sender
beside the ids, so no operation scans the table.

Schema version 3 (``PRAGMA application_id`` "LLRP", ``user_version`` 3) keys ids on (sender key
id, message id), and keeps a consumer's claim on an id beside it (``holder``, NULL once the
message is handled, and ``until``). A version 2 file (the same, without claims) is upgraded in
place on first open. A file of the earlier, unstamped layout (one floor and one id space for all
senders) is refused with a message saying what to do: its ids name no sender, so no safe
conversion exists.
The file is opened as :mod:`letterlock._sqlite` opens all of letterlock's files (mode 0600, checked
before anything is written, WAL, durable commits; a claim's commits skip their own sync, see
:meth:`SQLiteReplayStore.add`), which also translates every ``sqlite3`` and
``OSError`` error into :class:`~letterlock.errors.StoreError`: a replay store is not a transport.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from letterlock._sqlite import Database, Schema
from letterlock.core.replay import DEFAULT_CAPACITY, AddResult
from letterlock.errors import StoreError, UsageError

__all__ = ["SQLiteReplayStore"]

_TABLES = (
    "CREATE TABLE IF NOT EXISTS seen (sender BLOB NOT NULL, id BLOB NOT NULL, "
    "created INTEGER NOT NULL, holder BLOB, until REAL NOT NULL DEFAULT 0, "
    "PRIMARY KEY (sender, id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS seen_by_time ON seen (sender, created)",
    "CREATE TABLE IF NOT EXISTS senders (sender BLOB PRIMARY KEY, floor INTEGER NOT NULL, "
    "count INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (one INTEGER PRIMARY KEY CHECK (one = 1), "
    "floor INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (one, floor) VALUES (1, -1)",
)


def _unstamped(path: Path, tables: frozenset[str]) -> str:
    if {"seen", "meta"} <= tables:
        return (
            f"{path} is a replay record of an earlier letterlock (one id space for all "
            "senders), which cannot be converted: keep it aside until the messages it covers "
            "are past your window (max_age), then delete it"
        )
    return f"{path} is a SQLite file but not a replay record"


SCHEMA: Final = Schema(
    name="replay record",
    error=StoreError,
    application_id=0x4C4C5250,  # "LLRP"
    version=3,
    statements=_TABLES,
    unstamped=_unstamped,
    migrations=(
        # 2 -> 3: claims (a holder and its until); every id of a version 2 file is handled
        (2, (
            "ALTER TABLE seen ADD COLUMN holder BLOB",
            "ALTER TABLE seen ADD COLUMN until REAL NOT NULL DEFAULT 0",
        )),
    ),
)  # fmt: skip


class SQLiteReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` in a SQLite file (WAL; every handled id
    is synced, a claim survives the process but is synced only with the next handled id).

    ``capacity`` is the number of ids kept per sender.
    """

    def __init__(self, path: str | Path, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._database = Database(path, SCHEMA)
        self.path = self._database.path

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> SQLiteReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def floor(self, sender: bytes | None = None) -> int:
        with self._database.read("reading the floor") as db:
            value: int = db.execute(
                "SELECT max(m.floor, coalesce((SELECT floor FROM senders WHERE sender = ?), -1)) "
                "FROM meta m",
                (sender,),
            ).fetchone()[0]
            return value

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        with self._database.read("looking up an id") as db:
            row = db.execute(
                "SELECT 1 FROM seen WHERE sender = ? AND id = ? AND holder IS NULL",
                (sender, message_id),
            ).fetchone()
            return row is not None

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        """:meth:`floor` and :meth:`contains` in one statement."""
        with self._database.read("looking up an id") as db:
            floor, seen = db.execute(
                "SELECT max(m.floor, coalesce((SELECT floor FROM senders WHERE sender = ?), -1)), "
                "EXISTS (SELECT 1 FROM seen WHERE sender = ? AND id = ? AND holder IS NULL) "
                "FROM meta m",
                (sender, sender, message_id),
            ).fetchone()
            return int(floor), seen == 1

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
        # A claim commits without a sync of its own (durable=False): it only keeps live
        # consumers apart, and after a power loss no holder is alive (a lost claim is a message
        # handed on at once instead of after ``until``, as it would be anyway). The handled id
        # (finish, or a record without a holder) is synced, and its sync covers the claim.
        with self._database.transaction("recording an id", durable=holder is None) as db:
            floor, count = db.execute(
                "SELECT max(m.floor, coalesce(s.floor, -1)), coalesce(s.count, 0) "
                "FROM meta m LEFT JOIN senders s ON s.sender = ?",
                (sender,),
            ).fetchone()
            if created <= floor:
                return AddResult.BELOW_FLOOR
            seen = db.execute(
                "SELECT holder, until FROM seen WHERE sender = ? AND id = ?", (sender, message_id)
            ).fetchone()
            if seen is not None:
                if seen[0] is None or holder is None:
                    return AddResult.SEEN
                if seen[1] > now:
                    return AddResult.BUSY
                db.execute(
                    "UPDATE seen SET holder = ?, until = ? WHERE sender = ? AND id = ?",
                    (holder, until, sender, message_id),
                )
                return AddResult.TAKEN_OVER
            if count >= self._capacity:
                (oldest,) = db.execute(
                    "SELECT min(created) FROM seen WHERE sender = ?", (sender,)
                ).fetchone()
                if oldest > now:
                    return AddResult.FULL
                if created <= oldest:
                    return AddResult.BELOW_FLOOR
                removed = db.execute(
                    "DELETE FROM seen WHERE sender = ? AND created <= ?", (sender, oldest)
                ).rowcount
                db.execute(
                    "UPDATE senders SET floor = max(floor, ?), count = count - ? WHERE sender = ?",
                    (oldest, removed, sender),
                )
            db.execute(
                "INSERT INTO seen (sender, id, created, holder, until) VALUES (?, ?, ?, ?, ?)",
                (sender, message_id, created, holder, until if holder is not None else 0.0),
            )
            db.execute(
                "INSERT INTO senders (sender, floor, count) VALUES (?, -1, 1) "
                "ON CONFLICT (sender) DO UPDATE SET count = count + 1",
                (sender,),
            )
            return AddResult.ADDED

    def finish(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        with self._database.transaction("finishing a claim") as db:
            return _changed(db.execute(
                "UPDATE seen SET holder = NULL, until = 0 WHERE sender = ? AND id = ? "
                "AND holder = ?", (sender, message_id, holder),
            ))  # fmt: skip

    def release(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        with self._database.transaction("releasing a claim", durable=False) as db:
            cursor = db.execute(
                "DELETE FROM seen WHERE sender = ? AND id = ? AND holder = ?",
                (sender, message_id, holder),
            )
            if not _changed(cursor):
                return False
            db.execute("UPDATE senders SET count = count - 1 WHERE sender = ?", (sender,))
            return True

    def extend(self, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        with self._database.transaction("extending a claim", durable=False) as db:
            return _changed(db.execute(
                "UPDATE seen SET until = ? WHERE sender = ? AND id = ? AND holder = ?",
                (until, sender, message_id, holder),
            ))  # fmt: skip

    def prune(self, cutoff: int) -> None:
        with self._database.transaction("pruning") as db:
            senders = [row[0] for row in db.execute("SELECT sender FROM senders")]
            for sender in senders:
                removed = db.execute(
                    "DELETE FROM seen WHERE sender = ? AND created < ?", (sender, cutoff)
                ).rowcount
                if removed:
                    db.execute(
                        "UPDATE senders SET count = count - ? WHERE sender = ?", (removed, sender)
                    )
            db.execute("UPDATE meta SET floor = max(floor, ?)", (cutoff - 1,))
            db.execute("DELETE FROM senders WHERE count = 0 AND floor <= (SELECT floor FROM meta)")

    def __len__(self) -> int:
        with self._database.read("counting ids") as db:
            (count,) = db.execute("SELECT coalesce(sum(count), 0) FROM senders").fetchone()
            return int(count)


def _changed(cursor: sqlite3.Cursor) -> bool:
    """Whether the statement changed the one row it names (a claim of its holder)."""
    return cursor.rowcount == 1
