"""A replay store in SQLite: the window survives restarts and is shared by local processes.

Recording is one transaction (``BEGIN IMMEDIATE``) that inserts the id only if it is new and
above the floor, so of two processes opening copies of one message exactly one records it, and
an id forgotten by a concurrent prune or eviction can never be recorded again. The floor and
the number of ids are kept beside them, so no operation scans the table. Every ``sqlite3``
error is translated into :class:`~letterlock.errors.TransportError` at this edge.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from letterlock.errors import TransportError, UsageError

__all__ = ["SQLiteReplayStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (id BLOB PRIMARY KEY, created INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_created ON seen (created);
CREATE TABLE IF NOT EXISTS meta (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    floor INTEGER NOT NULL,
    count INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (one, floor, count) VALUES (1, -1, 0);
"""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise TransportError(f"replay store: {what} failed: {exc}") from exc


class SQLiteReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` in a SQLite file (WAL, durable commits)."""

    def __init__(self, path: str | Path, *, capacity: int = 10_000_000) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        self._capacity = capacity
        self._lock = threading.Lock()
        with _translated(f"opening {path}"):
            self._db = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

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

    def floor(self) -> int:
        with self._lock, _translated("reading the floor"):
            value: int = self._db.execute("SELECT floor FROM meta").fetchone()[0]
            return value

    def contains(self, message_id: bytes) -> bool:
        with self._lock, _translated("looking up an id"):
            row = self._db.execute("SELECT 1 FROM seen WHERE id = ?", (message_id,)).fetchone()
            return row is not None

    def add(self, message_id: bytes, created: int) -> bool:
        with self._transaction("recording an id") as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen (id, created) "
                "SELECT ?1, ?2 WHERE ?2 > (SELECT floor FROM meta)",
                (message_id, created),
            )
            if cursor.rowcount != 1:
                return False
            (count,) = db.execute("UPDATE meta SET count = count + 1 RETURNING count").fetchone()
            if count > self._capacity:
                self._evict(db, count - self._capacity)
            return True

    @staticmethod
    def _evict(db: sqlite3.Connection, excess: int) -> None:
        """Forget the ``excess`` oldest ids (and any tied with the newest of them)."""
        (newest_evicted,) = db.execute(
            "SELECT max(created) FROM (SELECT created FROM seen ORDER BY created LIMIT ?)",
            (excess,),
        ).fetchone()
        removed = db.execute("DELETE FROM seen WHERE created <= ?", (newest_evicted,)).rowcount
        db.execute(
            "UPDATE meta SET floor = max(floor, ?), count = count - ?", (newest_evicted, removed)
        )

    def prune(self, cutoff: int) -> None:
        with self._transaction("pruning") as db:
            removed = db.execute("DELETE FROM seen WHERE created < ?", (cutoff,)).rowcount
            db.execute(
                "UPDATE meta SET floor = max(floor, ?), count = count - ?", (cutoff - 1, removed)
            )

    def __len__(self) -> int:
        with self._lock, _translated("counting ids"):
            (count,) = self._db.execute("SELECT count FROM meta").fetchone()
            return int(count)
