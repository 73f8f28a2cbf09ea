"""Private: the SQLite files that hold letterlock's own schemas (the spool, the replay record).

One way to open such a file, so that every store gets the same guarantees:

1. The path is a regular file or nothing. A directory, FIFO, socket or device is refused before
   SQLite touches it, as is a symlink to nothing (no file is created through a symlink); an
   existing symlink to a file is followed. SQLite is told never to create the file itself
   (``mode=rw``), and gives its ``-wal`` and ``-shm`` files the mode of the database.
2. A new file is built complete beside the path (a ``mkstemp`` file: ``O_CREAT | O_EXCL``, mode
   0600; in WAL mode, schema and stamp committed) and then hard-linked into place, which fails if
   anything appeared there meanwhile. So no connection ever sees a new file half set up, and
   none races another to switch it to WAL or to create its tables: SQLite (3.40) answers such
   races with "database is locked" or an I/O error, without waiting for the busy timeout. A
   process that dies while building leaves a ``.<name>.*.new`` file beside the path, never a
   broken file at it. Where hard links are not supported, and for an empty file that is already
   there, the file is set up in place instead (created ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode
   0600), and each step that can lose such a race is retried with backoff until ``timeout``.
3. The stamp (``application_id``, ``user_version``) is read before anything is written: a file of
   another application, of the other store or of another version is refused and left byte for
   byte as it was, not even switched to WAL. A file of an earlier version that the schema knows
   how to upgrade (:attr:`Schema.migrations`) is upgraded in one ``BEGIN IMMEDIATE``
   transaction, steps and new stamp together, so a crash leaves it at the old version or the
   new one. Then WAL (persistent in the file) and, on every
   connection, ``synchronous=FULL``: a committed call survives a crash, and processes on one
   host share the file.

Afterwards every use runs under a thread lock, refuses to cross ``fork()`` (a connection must not
be shared by two processes) and leaves through :meth:`Database.translated`, the one place where
``sqlite3`` and ``OSError`` errors become the schema's own error (:attr:`Schema.error`: the spool's
:class:`~letterlock.errors.TransportError`, the replay record's
:class:`~letterlock.errors.StoreError`), through :func:`letterlock._edges.map_exceptions`.
:meth:`Database.transaction` is ``BEGIN IMMEDIATE`` ... ``COMMIT``, with a ``ROLLBACK`` whenever
the block or the ``COMMIT`` itself fails, so no failure leaves a transaction (and its write lock)
behind.
"""

from __future__ import annotations

import contextlib
import enum
import os
import random
import sqlite3
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.errors import LetterlockError, UsageError

__all__ = ["Database", "Schema"]

#: Extended I/O errors that SQLite (3.40) reports when connections race to switch one new file
#: to WAL: a rollback journal another connection deleted first, a read lock taken meanwhile.
_SET_UP_RACES: Final = frozenset({sqlite3.SQLITE_IOERR_DELETE_NOENT, sqlite3.SQLITE_IOERR_RDLOCK})
_FIRST_PAUSE: Final = 0.001  # seconds between set-up attempts, doubling up to _LAST_PAUSE
_LAST_PAUSE: Final = 0.05

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    """One of letterlock's file formats, as :class:`Database` creates and recognises it."""

    name: str  #: what the file is, in messages: "spool", "replay record"
    error: type[LetterlockError]  #: what every failure of such a file raises
    application_id: int
    version: int
    statements: tuple[str, ...]  #: run once, in the transaction that stamps a new file
    pragmas: tuple[str, ...] = ()  #: set on every connection, e.g. ``foreign_keys=ON``
    #: The refusal for an unstamped file that has tables (default: not a ``name``); a schema
    #: can recognise its own earlier, unstamped layout here and say what to do with it.
    unstamped: Callable[[Path, frozenset[str]], str] | None = None
    #: Upgrades of earlier versions: ``(version, statements)`` turns that version into the
    #: next; a file whose version starts an unbroken chain up to :attr:`version` is upgraded.
    migrations: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def upgradable(self, version: int) -> bool:
        steps = dict(self.migrations)
        while version in steps:
            version += 1
        return version == self.version


class _Stamp(enum.Enum):
    NEW = "new"  # no stamp and no tables: ours to set up
    OURS = "ours"
    EARLIER = "earlier"  # ours, of a version the schema upgrades


class _Busy(Exception):
    """A set-up step met a lock it may get by trying again."""


class Database:
    """An open file of one :class:`Schema`: checked, in WAL mode, used under a thread lock."""

    def __init__(self, path: str | Path, schema: Schema, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.schema = schema
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._mappings: dict[str, ExceptionMapping] = {}  # by ``what``: built once, not per call
        self._durable = True  # synchronous=FULL, set in _set_up
        with self.translated("opening"):
            if not _file_or_nothing(self.path, schema.error):
                _build(self.path, schema)
                _file_or_nothing(self.path, schema.error)  # whatever is there now: a file
            uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=rw"
            self._db = sqlite3.connect(
                uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._set_up(time.monotonic() + timeout)
            except BaseException:
                self._db.close()
                raise

    # plumbing ---------------------------------------------------------------------------

    def translated(self, what: str = "") -> contextlib.AbstractContextManager[None]:
        """Turn ``sqlite3`` and ``OSError`` errors into the schema's error (the one place)."""
        mapping = self._mappings.get(what)
        if mapping is None:  # a store's every call passes through here: build each one once
            where = f"{self.schema.name} {self.path}: " + (f"{what} failed: " if what else "")
            error = self.schema.error
            mapping = self._mappings[what] = {
                sqlite3.Error: lambda exc: error(f"{where}{exc}"),
                OSError: lambda exc: error(where + (getattr(exc, "strerror", None) or str(exc))),
                _Busy: lambda exc: error(str(exc)),  # a set-up race lost until the deadline
            }
        return map_exceptions(mapping)

    @contextlib.contextmanager
    def read(self, what: str = "") -> Iterator[sqlite3.Connection]:
        """The connection, for statements that need no transaction of their own."""
        if os.getpid() != self._pid:
            raise UsageError(
                f"this {self.schema.name} was opened before fork(); open it again in this process"
            )
        with self._lock, self.translated(what):
            yield self._db

    @contextlib.contextmanager
    def transaction(self, what: str = "", *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``; ``COMMIT`` if the block returns, ``ROLLBACK`` if anything fails.

        ``durable=False`` commits with ``synchronous=NORMAL``: in WAL mode the commit survives
        the death of the process (it is in the WAL, which every process on the host reads) but
        not a power loss until the next durable commit, whose sync covers every frame before
        it. Only for state that matters among live processes (a claim), never for a record.
        """
        with self.read(what) as db:
            if durable is not self._durable:
                db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
                self._durable = durable
            with _immediate(db):
                yield db

    def close(self) -> None:
        with self._lock, self.translated("closing"):
            self._db.close()

    # set-up -----------------------------------------------------------------------------

    def _set_up(self, deadline: float) -> None:
        stamp = _retrying(deadline, self._read_stamp)  # before anything is written
        _retrying(deadline, self._use_wal)
        for pragma in ("synchronous=FULL", *self.schema.pragmas):
            self._db.execute(f"PRAGMA {pragma}")
        if stamp is _Stamp.NEW:
            _retrying(deadline, self._create)
        elif stamp is _Stamp.EARLIER:
            _retrying(deadline, self._upgrade)

    def _read_stamp(self) -> _Stamp:
        with _deferred(self._db) as db:
            return self._stamp(db)

    def _stamp(self, db: sqlite3.Connection) -> _Stamp:
        """Which file this is; raises the schema's error for any file that is not ours."""
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        schema = self.schema
        if (app_id, version) == (schema.application_id, schema.version):
            return _Stamp.OURS
        if app_id == schema.application_id and schema.upgradable(version):
            return _Stamp.EARLIER
        if app_id == schema.application_id:
            raise schema.error(f"{self.path}: unsupported {schema.name} (schema {version})")
        names = frozenset(row[0] for row in db.execute("SELECT name FROM sqlite_schema"))
        if (app_id, version, names) == (0, 0, frozenset()):
            return _Stamp.NEW
        if (app_id, version) == (0, 0) and schema.unstamped is not None:
            raise schema.error(schema.unstamped(self.path, names))
        raise schema.error(f"{self.path} is a SQLite file but not a {schema.name}")

    def _use_wal(self) -> None:
        (mode,) = self._db.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal":
            (mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode != "wal":  # SQLite keeps the old mode when it cannot switch right now
            raise _Busy(f"{self.path}: cannot switch to WAL (journal mode {mode})")

    def _upgrade(self) -> None:
        with _immediate(self._db) as db:
            if self._stamp(db) is not _Stamp.EARLIER:
                return  # another connection upgraded it meanwhile
            (version,) = db.execute("PRAGMA user_version").fetchone()
            steps = dict(self.schema.migrations)
            while version < self.schema.version:
                for statement in steps[version]:
                    db.execute(statement)
                version += 1
            db.execute(f"PRAGMA user_version={self.schema.version}")

    def _create(self) -> None:
        with _immediate(self._db) as db:
            if self._stamp(db) is _Stamp.NEW:  # unless another connection was quicker
                _stamp_new(db, self.schema)


def _file_or_nothing(path: Path, error: type[LetterlockError]) -> bool:
    """True if ``path`` is (or leads to) a regular file, False if nothing is there; else refuse."""
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    try:
        mode = path.stat().st_mode  # an existing symlink to a file is followed: it was put there
    except FileNotFoundError:
        raise error(f"{path} is a symlink to nothing; no file is created through it") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path} is not a regular file")
    return True


def _build(path: Path, schema: Schema) -> None:
    """Create ``path`` complete: built beside it, then linked into place (module step 2).

    The link fails if anything appeared at ``path`` meanwhile, and never follows a symlink.
    Where hard links are not supported, leave an empty file there to be set up in place.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    new = Path(name)
    try:
        os.fchmod(fd, 0o600)  # exactly, whatever the umask
        os.close(fd)
        db = sqlite3.connect(new, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            with _immediate(db):
                _stamp_new(db, schema)
        finally:
            db.close()
        try:
            os.link(new, path)
        except FileExistsError:
            return  # another opener was quicker; what is there now gets checked
        except OSError:
            _create_empty(path)
            return
        _sync_directory(path.parent)
    finally:
        new.unlink()


def _create_empty(path: Path) -> None:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    """Make a new name in ``directory`` survive a crash (where directories can be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp_new(db: sqlite3.Connection, schema: Schema) -> None:
    for statement in schema.statements:
        db.execute(statement)
    db.execute(f"PRAGMA application_id={schema.application_id}")
    db.execute(f"PRAGMA user_version={schema.version}")


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    with _ended(db):
        yield db


@contextlib.contextmanager
def _deferred(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN")
    with _ended(db):
        yield db


@contextlib.contextmanager
def _ended(db: sqlite3.Connection) -> Iterator[None]:
    """COMMIT inside the try: a failing COMMIT rolls back too, and never leaves a lock held."""
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                db.close()  # the only other way to give up the lock; later calls then fail
        raise


def _retrying(deadline: float, step: Callable[[], T]) -> T:
    """``step()``, again after a pause while it loses a race for a lock, until ``deadline``."""
    pause = _FIRST_PAUSE
    while True:
        try:
            return step()
        except (_Busy, sqlite3.OperationalError) as exc:
            busy = isinstance(exc, _Busy) or _lost_a_race(exc)
            if not busy or time.monotonic() + pause > deadline:
                raise  # translated where the file is opened (Database.translated)
        time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
        pause = min(pause * 2, _LAST_PAUSE)


def _lost_a_race(exc: sqlite3.OperationalError) -> bool:
    """True for "database is locked" and the I/O errors of racing set-ups: try again."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "database is locked" in str(exc)
    return code & 0xFF == sqlite3.SQLITE_BUSY or code in _SET_UP_RACES  # low byte: primary code
