"""A replay store in SQLite: the window survives restarts and is shared by local processes.

Recording is one transaction (``BEGIN IMMEDIATE``) that applies the decision of
:meth:`letterlock.core.replay.ReplayStore.add` to one sender's ids, floor and count, so of two
processes opening copies of one message exactly one records it, and an id forgotten by a
concurrent prune or eviction can never be recorded again. Floors and counts are kept per sender
beside the ids, so no operation scans the table.

Schema version 2 (``PRAGMA application_id`` "LLRP", ``user_version`` 2) keys ids on (sender key
id, message id). A file of the earlier layout (one floor and one id space for all senders) is
refused with a message saying what to do: its ids name no sender, so no safe conversion exists.
Every ``sqlite3`` error is translated into :class:`~letterlock.errors.TransportError` here.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from letterlock.core.replay import DEFAULT_CAPACITY, AddResult
from letterlock.errors import TransportError, UsageError

__all__ = ["SQLiteReplayStore"]

APPLICATION_ID: Final = 0x4C4C5250  # "LLRP"
SCHEMA_VERSION: Final = 2

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen (sender BLOB NOT NULL, id BLOB NOT NULL, "
    "created INTEGER NOT NULL, PRIMARY KEY (sender, id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS seen_by_time ON seen (sender, created)",
    "CREATE TABLE IF NOT EXISTS senders (sender BLOB PRIMARY KEY, floor INTEGER NOT NULL, "
    "count INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (one INTEGER PRIMARY KEY CHECK (one = 1), "
    "floor INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (one, floor) VALUES (1, -1)",
)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise TransportError(f"replay store: {what} failed: {exc}") from exc


class SQLiteReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` in a SQLite file (WAL, durable commits).

    ``capacity`` is the number of ids kept per sender.
    """

    def __init__(self, path: str | Path, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._lock = threading.Lock()
        self.path = Path(path)
        with _translated(f"opening {path}"):
            self._db = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            try:
                self._setup()
            except BaseException:
                self._db.close()
                raise

    def _setup(self) -> None:
        with self._transaction("checking the schema") as db:
            (app_id,) = db.execute("PRAGMA application_id").fetchone()
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if (app_id, version) == (0, 0):
                names = {row[0] for row in db.execute("SELECT name FROM sqlite_schema")}
                if "seen" in names and "meta" in names:
                    raise TransportError(
                        f"{self.path} is a replay record of an earlier letterlock (one id space "
                        "for all senders), which cannot be converted: keep it aside until the "
                        "messages it covers are past your window (max_age), then delete it"
                    )
                if names:
                    raise TransportError(f"{self.path} is a SQLite file but not a replay record")
            elif (app_id, version) != (APPLICATION_ID, SCHEMA_VERSION):
                raise TransportError(f"{self.path}: unsupported replay record (schema {version})")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        with self._lock, _translated("setting the journal mode"):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        with self._lock, _translated("closing"):
            self._db.close()

    def __enter__(self) -> SQLiteReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    self._db.execute("ROLLBACK")
                raise

    def floor(self, sender: bytes | None = None) -> int:
        with self._lock, _translated("reading the floor"):
            value: int = self._db.execute(
                "SELECT max(m.floor, coalesce((SELECT floor FROM senders WHERE sender = ?), -1)) "
                "FROM meta m",
                (sender,),
            ).fetchone()[0]
            return value

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        with self._lock, _translated("looking up an id"):
            row = self._db.execute(
                "SELECT 1 FROM seen WHERE sender = ? AND id = ?", (sender, message_id)
            ).fetchone()
            return row is not None

    def add(self, sender: bytes, message_id: bytes, created: int, *, now: int) -> AddResult:
        with self._transaction("recording an id") as db:
            floor, count = db.execute(
                "SELECT max(m.floor, coalesce(s.floor, -1)), coalesce(s.count, 0) "
                "FROM meta m LEFT JOIN senders s ON s.sender = ?",
                (sender,),
            ).fetchone()
            if created <= floor:
                return AddResult.BELOW_FLOOR
            seen = db.execute(
                "SELECT 1 FROM seen WHERE sender = ? AND id = ?", (sender, message_id)
            ).fetchone()
            if seen is not None:
                return AddResult.SEEN
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
                "INSERT INTO seen (sender, id, created) VALUES (?, ?, ?)",
                (sender, message_id, created),
            )
            db.execute(
                "INSERT INTO senders (sender, floor, count) VALUES (?, -1, 1) "
                "ON CONFLICT (sender) DO UPDATE SET count = count + 1",
                (sender,),
            )
            return AddResult.ADDED

    def prune(self, cutoff: int) -> None:
        with self._transaction("pruning") as db:
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
        with self._lock, _translated("counting ids"):
            (count,) = self._db.execute("SELECT coalesce(sum(count), 0) FROM senders").fetchone()
            return int(count)
