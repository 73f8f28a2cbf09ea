"""A replay store in SQLite: the window survives restarts and is shared by local processes.

Recording is one ``INSERT OR IGNORE`` in its own transaction, so of two processes opening
copies of one message exactly one records it. The floor is stored beside the ids.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from letterlock.errors import UsageError

__all__ = ["SQLiteReplayStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (id BLOB PRIMARY KEY, created INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_created ON seen (created);
CREATE TABLE IF NOT EXISTS floor (one INTEGER PRIMARY KEY CHECK (one = 1), value INTEGER NOT NULL);
INSERT OR IGNORE INTO floor (one, value) VALUES (1, -1);
"""


class SQLiteReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` in a SQLite file (WAL, durable commits)."""

    def __init__(self, path: str | Path, *, capacity: int = 10_000_000) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def floor(self) -> int:
        with self._lock:
            value: int = self._db.execute("SELECT value FROM floor").fetchone()[0]
            return value

    def contains(self, message_id: bytes) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM seen WHERE id = ?", (message_id,)).fetchone()
            return row is not None

    def add(self, message_id: bytes, created: int) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO seen (id, created) VALUES (?, ?)", (message_id, created)
                )
                added = cursor.rowcount == 1
                if added:
                    self._evict_over_capacity()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return added

    def _evict_over_capacity(self) -> None:
        (count,) = self._db.execute("SELECT count(*) FROM seen").fetchone()
        excess = count - self._capacity
        if excess <= 0:
            return
        (newest_evicted,) = self._db.execute(
            "SELECT max(created) FROM (SELECT created FROM seen ORDER BY created LIMIT ?)",
            (excess,),
        ).fetchone()
        self._db.execute("DELETE FROM seen WHERE created <= ?", (newest_evicted,))
        self._db.execute("UPDATE floor SET value = max(value, ?)", (newest_evicted,))

    def prune(self, cutoff: int) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM seen WHERE created < ?", (cutoff,))
                self._db.execute("UPDATE floor SET value = max(value, ?)", (cutoff - 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM seen").fetchone()
            return int(count)
