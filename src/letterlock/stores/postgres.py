"""A replay store in PostgreSQL, shared by every consumer of a group on any host.

The record lives in a schema of its own (``schema``), in three tables: ``seen`` (one row per
(sender, id): its creation time and, while a consumer handles it, the claim's ``holder`` and
``until``), ``senders`` (each sender's floor and count, so no operation counts rows) and
``meta`` (the common floor, and the stamp: application and schema version).

Each operation is one transaction on the store's own connection in autocommit mode (psycopg 3):
a statement that stands alone commits by itself, and ``add``, ``release`` and ``prune`` are
``BEGIN`` ... ``COMMIT`` that apply the decision of :meth:`letterlock.core.replay.ReplayStore.add`:

* ``add`` takes a shared advisory lock of the record (``prune`` takes it exclusively, so an id a
  prune forgets can never be recorded by an add that read the old floor), then locks the
  sender's row (``INSERT ... ON CONFLICT DO UPDATE``), so one sender's adds, evictions and
  count are serialised: of two consumers adding copies of one message exactly one gets ADDED.
* Locks are always taken in one order (the record, then senders, then ids), so no two of the
  store's transactions deadlock.

Each commit waits for the server's WAL flush (``synchronous_commit``, on by default): a recorded
id survives a server crash, and a claim and its finish cost one flush each. A role or URL that
sets ``synchronous_commit=off`` (``?options=-csynchronous_commit%3Doff``) trades the last
moments of records before a crash (so a replay within them) for speed.

Set-up is serialised by a transaction-level advisory lock too: the first open creates the schema
(or uses it empty, as an administrator made it) and stamps it (``meta.version``
:data:`VERSION`); a record of an earlier version is upgraded by the steps in :data:`MIGRATIONS`,
in that one transaction; a schema of anything else (tables without the stamp, another
application, a later version) is refused, untouched. Every ``psycopg`` exception (and
``OSError``) becomes :class:`~letterlock.errors.StoreError` at this module's edge, as the
SQLite store's do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Final

import psycopg
from psycopg import sql

from letterlock._edges import map_exceptions
from letterlock.core.replay import DEFAULT_CAPACITY, AddResult
from letterlock.errors import StoreError, UsageError

__all__ = ["DEFAULT_SCHEMA", "MIGRATIONS", "VERSION", "PostgresReplayStore"]

DEFAULT_SCHEMA: Final = "letterlock_replay"
APPLICATION: Final = "letterlock replay record"
#: The schema version this module writes; :data:`MIGRATIONS` upgrades earlier ones to it.
VERSION: Final = 1
#: ``(version, statements)`` turns a record of that version into the next (none yet).
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ()

_TABLES: Final = (
    "CREATE TABLE {s}.seen (sender bytea NOT NULL, id bytea NOT NULL, created bigint NOT NULL, "
    "holder bytea, until double precision NOT NULL DEFAULT 0, PRIMARY KEY (sender, id))",
    "CREATE INDEX seen_by_time ON {s}.seen (sender, created)",
    "CREATE INDEX seen_by_age ON {s}.seen (created)",
    "CREATE TABLE {s}.senders (sender bytea PRIMARY KEY, floor bigint NOT NULL, "
    "count bigint NOT NULL)",
    "CREATE TABLE {s}.meta (one integer PRIMARY KEY CHECK (one = 1), floor bigint NOT NULL, "
    "application text NOT NULL, version integer NOT NULL)",
)


class PostgresReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` in a PostgreSQL schema, shared by a group.

    ``connection`` is a ``postgresql://`` URL (the store opens its own connection, again in a
    child after ``fork()``, and closes it) or a ``psycopg.Connection`` of the caller's in
    autocommit mode (:meth:`close` leaves it open; not usable across ``fork()``). ``schema``
    names this record: stores with one schema share it. ``capacity`` is the number of ids kept
    per sender. Thread-safe: the threads of a process take turns on its one connection.
    """

    def __init__(
        self,
        connection: str | psycopg.Connection[tuple[object, ...]],
        *,
        schema: str = DEFAULT_SCHEMA,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        if not schema:
            raise UsageError("schema must not be empty")
        self.schema = schema
        self._capacity = capacity
        self._lock = threading.Lock()
        self._url = connection if isinstance(connection, str) else None
        if not isinstance(connection, str) and not connection.autocommit:
            raise UsageError("the connection must be in autocommit mode (the store commits)")
        self._pid = os.getpid()
        self._inherited: list[psycopg.Connection[tuple[object, ...]]] = []
        with self._translated("connecting"):
            self._db = self._connect() if isinstance(connection, str) else connection
        self._statements = _Statements(sql.Identifier(schema))
        try:
            with self._translated("setting up"):
                self._record_key = self._set_up()
        except BaseException:
            self.close()
            raise

    # plumbing ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        assert self._url is not None
        return psycopg.connect(self._url, autocommit=True)

    def _translated(self, what: str) -> contextlib.AbstractContextManager[None]:
        where = f"PostgreSQL replay record {self.schema!r}: {what} failed: "
        return map_exceptions(
            {
                psycopg.Error: lambda exc: StoreError(f"{where}{exc}"),
                OSError: lambda exc: StoreError(f"{where}{exc}"),
            }
        )

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """One transaction on this process's connection, under the thread lock."""
        with self._connection(what) as db, db.transaction():
            yield db

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """This process's connection, under the thread lock, for one autocommitted statement."""
        with self._lock, self._translated(what):
            if os.getpid() != self._pid:
                if self._url is None:
                    raise UsageError(
                        "this replay store's connection was opened before fork(); "
                        "give the store a URL, or open it again in this process"
                    )
                # the parent's connection stays the parent's: kept, never used nor closed here
                self._inherited.append(self._db)
                self._db = self._connect()
                self._pid = os.getpid()
            yield self._db

    def _set_up(self) -> int:
        """Create, check or upgrade the schema; the key of the record's advisory lock."""
        with self._transaction("setting up") as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"set up {self.schema}",))
            exists = db.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
            tables = {  # every relation, whatever this role may see of it
                str(row[0])
                for row in db.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN "
                    "('r', 'p', 'v', 'm', 'f')",
                    (self.schema,),
                )
            }
            name = sql.Identifier(self.schema)
            if not tables:
                if exists is None:  # a schema made ready by an administrator is used as it is
                    db.execute(sql.SQL("CREATE SCHEMA {}").format(name))
                for statement in _TABLES:
                    db.execute(sql.SQL(statement).format(s=name))
                db.execute(
                    sql.SQL(
                        "INSERT INTO {}.meta (one, floor, application, version) "
                        "VALUES (1, -1, %s, %s)"
                    ).format(name),
                    (APPLICATION, VERSION),
                )
            else:
                self._upgrade(db, tables)
            row = db.execute("SELECT hashtext(%s)", (f"record {self.schema}",)).fetchone()
            assert row is not None
            key = row[0]
            assert isinstance(key, int)
            return key

    def _upgrade(self, db: psycopg.Connection[tuple[object, ...]], tables: set[str]) -> None:
        """Check the stamp of an existing schema; upgrade an earlier version in place."""
        name = sql.Identifier(self.schema)
        stamp = None
        if "meta" in tables:
            # a savepoint: a foreign meta table is not an error of this transaction
            with contextlib.suppress(psycopg.errors.UndefinedColumn), db.transaction():
                stamp = db.execute(
                    sql.SQL("SELECT application, version FROM {}.meta").format(name)
                ).fetchone()
        if stamp is None or stamp[0] != APPLICATION:
            raise StoreError(
                f"PostgreSQL schema {self.schema!r} holds tables but not a replay record; "
                "choose another schema"
            )
        version = stamp[1]
        assert isinstance(version, int)
        steps = dict(MIGRATIONS)
        if version != VERSION and not _upgradable(version, steps):
            raise StoreError(
                f"PostgreSQL replay record {self.schema!r}: unsupported schema version {version}"
            )
        if version == VERSION:
            return
        while version < VERSION:
            for statement in steps[version]:
                db.execute(sql.SQL(statement).format(s=name))
            version += 1
        db.execute(sql.SQL("UPDATE {}.meta SET version = %s").format(name), (VERSION,))

    def close(self) -> None:
        """Close the connection if this store opened it (from a URL)."""
        with self._lock:
            if self._url is not None and os.getpid() == self._pid:
                with self._translated("closing"):
                    self._db.close()

    def __enter__(self) -> PostgresReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the store --------------------------------------------------------------------------

    def floor(self, sender: bytes | None = None) -> int:
        with self._connection("reading the floor") as db:
            return _one_int(db.execute(self._statements.floor, (sender,)))

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        with self._connection("looking up an id") as db:
            return (
                db.execute(self._statements.contains, (sender, message_id)).fetchone() is not None
            )

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        """:meth:`floor` and :meth:`contains` in one query: one round trip a message."""
        with self._connection("looking up an id") as db:
            row = db.execute(
                self._statements.floor_and_contains, (sender, sender, message_id)
            ).fetchone()
        assert row is not None  # one meta row, always (as for floor)
        floor, seen = row
        assert isinstance(floor, int)
        return floor, seen is True

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
        s = self._statements
        with self._transaction("recording an id") as db:
            row = db.execute(s.lock_sender, (sender, self._record_key)).fetchone()
            assert row is not None
            own, count = row
            state = db.execute(s.state, (sender, message_id)).fetchone()
            assert state is not None
            common, seen_holder, seen_until = state
            assert isinstance(own, int)
            assert isinstance(count, int)
            assert isinstance(common, int)
            if created <= max(common, own):
                return AddResult.BELOW_FLOOR
            if seen_until is not None:  # recorded (until is never NULL for a row)
                if seen_holder is None or holder is None:
                    return AddResult.SEEN
                assert isinstance(seen_until, float)
                if seen_until > now:
                    return AddResult.BUSY
                db.execute(s.take_over, (holder, until, sender, message_id))
                return AddResult.TAKEN_OVER
            if count >= self._capacity:
                oldest = _one_int(db.execute(s.oldest, (sender,)))
                if oldest > now:
                    return AddResult.FULL
                if created <= oldest:
                    return AddResult.BELOW_FLOOR
                db.execute(s.evict, (sender, oldest, oldest, sender))
            db.execute(
                s.insert,
                (sender, message_id, created, holder, until if holder is not None else 0.0, sender),
            )
            return AddResult.ADDED

    def finish(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        with self._connection("finishing a claim") as db:
            return db.execute(self._statements.finish, (sender, message_id, holder)).rowcount == 1

    def release(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        s = self._statements
        with self._transaction("releasing a claim") as db:
            db.execute(s.lock_existing_sender, (sender,))  # senders before ids, as everywhere
            if db.execute(s.release, (sender, message_id, holder)).rowcount != 1:
                return False
            db.execute(s.uncount, (sender,))
            return True

    def extend(self, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        with self._connection("extending a claim") as db:
            changed = db.execute(self._statements.extend, (until, sender, message_id, holder))
            return changed.rowcount == 1

    def prune(self, cutoff: int) -> None:
        s = self._statements
        with self._transaction("pruning") as db:
            db.execute(s.lock_record, (self._record_key,))
            db.execute(s.lock_all_senders)
            db.execute(s.prune_ids, (cutoff,))
            db.execute(s.raise_common_floor, (cutoff - 1,))
            db.execute(s.forget_senders)

    def __len__(self) -> int:
        with self._connection("counting ids") as db:
            return _one_int(db.execute(self._statements.count))


class _Statements:
    """The store's statements, composed once for its schema."""

    def __init__(self, name: sql.Identifier) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=name)

        self.floor = q(
            "SELECT greatest(m.floor, coalesce((SELECT floor FROM {s}.senders "
            "WHERE sender = %s), -1)) FROM {s}.meta m"
        )
        self.contains = q("SELECT 1 FROM {s}.seen WHERE sender = %s AND id = %s AND holder IS NULL")
        self.floor_and_contains = q(
            "SELECT greatest(m.floor, coalesce((SELECT floor FROM {s}.senders "
            "WHERE sender = %s), -1)), EXISTS (SELECT 1 FROM {s}.seen WHERE sender = %s "
            "AND id = %s AND holder IS NULL) FROM {s}.meta m"
        )
        # the record's shared lock, then the sender's row (created if new), its floor and count
        self.lock_sender = q(
            "INSERT INTO {s}.senders (sender, floor, count) "
            "SELECT %s::bytea, -1, 0 FROM (SELECT pg_advisory_xact_lock_shared(%s)) AS locked "
            "ON CONFLICT (sender) DO UPDATE SET count = {s}.senders.count "
            "RETURNING floor, count"
        )
        # a statement of its own: its snapshot is taken after the locks above were granted
        self.state = q(
            "SELECT m.floor, seen.holder, seen.until FROM {s}.meta m "
            "LEFT JOIN {s}.seen ON seen.sender = %s AND seen.id = %s"
        )
        self.take_over = q(
            "UPDATE {s}.seen SET holder = %s, until = %s WHERE sender = %s AND id = %s"
        )
        self.oldest = q("SELECT min(created) FROM {s}.seen WHERE sender = %s")
        self.evict = q(
            "WITH gone AS (DELETE FROM {s}.seen WHERE sender = %s AND created <= %s "
            "RETURNING 1) UPDATE {s}.senders SET floor = greatest(floor, %s), "
            "count = count - (SELECT count(*) FROM gone) WHERE sender = %s"
        )
        self.insert = q(
            "WITH added AS (INSERT INTO {s}.seen (sender, id, created, holder, until) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING 1) "
            "UPDATE {s}.senders SET count = count + (SELECT count(*) FROM added) "
            "WHERE sender = %s"
        )
        self.finish = q(
            "UPDATE {s}.seen SET holder = NULL, until = 0 "
            "WHERE sender = %s AND id = %s AND holder = %s"
        )
        self.lock_existing_sender = q("SELECT 1 FROM {s}.senders WHERE sender = %s FOR UPDATE")
        self.release = q("DELETE FROM {s}.seen WHERE sender = %s AND id = %s AND holder = %s")
        self.uncount = q("UPDATE {s}.senders SET count = count - 1 WHERE sender = %s")
        self.extend = q(
            "UPDATE {s}.seen SET until = %s WHERE sender = %s AND id = %s AND holder = %s"
        )
        self.lock_record = q("SELECT pg_advisory_xact_lock(%s)")
        self.lock_all_senders = q("SELECT 1 FROM {s}.senders ORDER BY sender FOR UPDATE")
        self.prune_ids = q(
            "WITH gone AS (DELETE FROM {s}.seen WHERE created < %s RETURNING sender), "
            "counts AS (SELECT sender, count(*) AS n FROM gone GROUP BY sender) "
            "UPDATE {s}.senders SET count = {s}.senders.count - counts.n FROM counts "
            "WHERE {s}.senders.sender = counts.sender"
        )
        self.raise_common_floor = q("UPDATE {s}.meta SET floor = greatest(floor, %s)")
        self.forget_senders = q(
            "DELETE FROM {s}.senders WHERE count = 0 AND floor <= (SELECT floor FROM {s}.meta)"
        )
        self.count = q("SELECT coalesce(sum(count), 0)::bigint FROM {s}.senders")


def _one_int(cursor: psycopg.Cursor[tuple[object, ...]]) -> int:
    row = cursor.fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, int)
    return value


def _upgradable(version: int, steps: dict[int, tuple[str, ...]]) -> bool:
    while version in steps:
        version += 1
    return version == VERSION
