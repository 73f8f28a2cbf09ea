"""The SQLite files of the spool and the replay record: created private, checked before any write.

Every test runs on both stores, which open their files the same way (``letterlock._sqlite``) and
differ only in the error they raise: the spool a TransportError, the replay record a StoreError.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from letterlock import LetterlockError, StoreError, TransportError, UsageError
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.transports import Spool

Opener = Callable[[Path], object]


def _open_spool(path: Path) -> object:
    spool = Spool(path, timeout=5)
    spool.bind("q", "#")
    spool.publish("t", b"sealed")
    spool.close()
    return spool


def _open_replay(path: Path) -> object:
    store = SQLiteReplayStore(path)
    store.add(b"sender", os.urandom(16), 100, now=100)
    store.close()
    return store


STORES: dict[str, Opener] = {"spool": _open_spool, "replay": _open_replay}
FOREIGN = {"spool": "not a spool", "replay": "not a replay record"}
ERROR: dict[str, type[LetterlockError]] = {"spool": TransportError, "replay": StoreError}


@pytest.fixture(params=sorted(STORES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _files(path: Path) -> dict[str, bytes]:
    """The database and everything SQLite keeps beside it (-wal, -shm, -journal)."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.glob(path.name + "*"))}


# new files -----------------------------------------------------------------------------


def test_new_files_are_private(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "new.db"
    old = os.umask(0o022)  # the usual umask, which leaves new files world-readable
    try:
        STORES[kind](path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for beside in path.parent.glob(path.name + "-*"):  # -wal and -shm, if still there
        assert stat.S_IMODE(beside.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("new.db")] == []


def test_a_symlink_is_not_followed_to_create_a_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "elsewhere.db"
    path = tmp_path / "link.db"
    path.symlink_to(target)
    with pytest.raises(ERROR[kind], match="symlink"):
        STORES[kind](path)
    assert not target.exists()


def test_an_existing_file_behind_a_symlink_is_used(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "real.db"
    STORES[kind](target)
    path = tmp_path / "link.db"
    path.symlink_to(target)
    STORES[kind](path)


# what is not a regular file ------------------------------------------------------------


def test_a_directory_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "a-directory"
    path.mkdir()
    with pytest.raises(ERROR[kind], match="not a regular file"):
        STORES[kind](path)
    assert list(path.iterdir()) == []


_OPEN_IN_A_CHILD = """
import sys
from pathlib import Path
from letterlock import StoreError, TransportError
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.transports import Spool
kind, path = sys.argv[1], Path(sys.argv[2])
try:
    (Spool if kind == "spool" else SQLiteReplayStore)(path)
except (TransportError if kind == "spool" else StoreError) as exc:
    print("refused:", exc)
else:
    print("opened")
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "a-fifo"
    os.mkfifo(path)
    try:  # in a child: SQLite reading a FIFO would block forever
        child = subprocess.run(
            [sys.executable, "-c", _OPEN_IN_A_CHILD, kind, str(path)],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO blocked")
    assert child.stdout.startswith("refused:"), child.stdout + child.stderr
    assert "not a regular file" in child.stdout
    assert stat.S_ISFIFO(path.lstat().st_mode)


# foreign files are refused before anything is written ----------------------------------


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (name TEXT)")
    db.execute("INSERT INTO accounts VALUES ('someone else''s data')")
    db.commit()
    db.close()


def test_a_foreign_file_is_left_untouched(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "theirs.db"
    _foreign(path)
    before = _files(path)
    with pytest.raises(ERROR[kind], match=FOREIGN[kind]):
        STORES[kind](path)
    assert _files(path) == before  # byte for byte, and no -wal or -shm beside it
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # still not WAL
    db.close()


def test_the_other_stores_file_is_left_untouched(tmp_path: Path, kind: str) -> None:
    other = "replay" if kind == "spool" else "spool"
    path = tmp_path / "other.db"
    STORES[other](path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = _files(path)
    with pytest.raises(ERROR[kind]):
        STORES[kind](path)
    assert _files(path) == before


def test_a_newer_version_is_left_untouched(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "newer.db"
    STORES[kind](path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    before = _files(path)
    with pytest.raises(ERROR[kind], match="unsupported"):
        STORES[kind](path)
    assert _files(path) == before


def test_a_store_refuses_to_cross_fork(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Spool | SQLiteReplayStore = (
        Spool(tmp_path / "x.db") if kind == "spool" else SQLiteReplayStore(tmp_path / "x.db")
    )
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a child after fork()
    with pytest.raises(UsageError, match="fork"):
        len(store) if isinstance(store, SQLiteReplayStore) else store.bindings()
    monkeypatch.undo()
    store.close()


# transactions --------------------------------------------------------------------------


def test_a_failing_commit_leaves_no_half_transaction(tmp_path: Path) -> None:
    """A COMMIT that fails (here: a deferred foreign key) must roll back and free the lock."""
    path = tmp_path / "spool.db"
    spool = Spool(path, timeout=1)
    db = sqlite3.connect(path)
    db.executescript(  # a trap: every new binding inserts a row whose reference is missing
        """
        CREATE TABLE trap (ref INTEGER REFERENCES messages (seq) DEFERRABLE INITIALLY DEFERRED);
        CREATE TRIGGER spring AFTER INSERT ON bindings BEGIN INSERT INTO trap VALUES (-1); END;
        """
    )
    db.close()
    with pytest.raises(TransportError, match="FOREIGN KEY"):
        spool.bind("q", "#")  # the COMMIT fails, not the INSERT
    assert spool.bindings() == []  # rolled back
    other = Spool(path, timeout=1)  # another handle can write at once: no lock is left behind
    other.publish("t", b"sealed", mandatory=False)
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER spring; DROP TABLE trap;")
    db.close()
    spool.bind("q", "#")  # and the first handle is usable again
    other.bind("other", "#")
    assert [b.queue for b in spool.bindings()] == ["other", "q"]
    spool.close()
    other.close()


# many openers of one new file ----------------------------------------------------------

_OPENER = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from letterlock.stores.sqlite import SQLiteReplayStore
    from letterlock.transports import Spool

    directory, rounds, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    errors = []
    if sys.argv[4] == "no hard links":
        def link(*args, **kwargs):
            raise PermissionError(1, "Operation not permitted")
        os.link = link

    def one(round):
        try:
            with Spool(directory / f"spool-{round}.db", timeout=30) as spool:
                spool.publish("t", b"sealed", mandatory=False)
            with SQLiteReplayStore(directory / f"replay-{round}.db") as store:
                store.add(os.urandom(8), os.urandom(16), 100, now=100)
        except Exception as exc:
            code = getattr(exc.__cause__, "sqlite_errorname", "")
            errors.append(f"round {round}: {type(exc).__name__}: {exc} {code}")

    for round in range(rounds):
        (directory / f"ready-{round}-{os.getpid()}").touch()
        while not (directory / f"go-{round}").exists():
            time.sleep(0.0005)
        workers = [threading.Thread(target=one, args=(round,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    print("\\n".join(errors) or "ok")
    """
)


@pytest.mark.parametrize(
    ("start", "rounds"), [("nothing", 20), ("an empty file", 8), ("no hard links", 8)]
)
def test_many_threads_and_processes_open_a_new_file_at_once(
    tmp_path: Path, start: str, rounds: int
) -> None:
    """Switching a new file to WAL and creating its schema can fail ('database is locked', or
    an I/O error of the race) without waiting for the busy timeout; set-up must not."""
    processes, threads = 4, 6
    if start == "an empty file":  # as an older letterlock left it when it died while creating
        for round_ in range(rounds):
            for name in (f"spool-{round_}.db", f"replay-{round_}.db"):
                (tmp_path / name).touch(mode=0o600)
    command = [sys.executable, "-c", _OPENER, str(tmp_path), str(rounds), str(threads), start]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for round_ in range(rounds):  # all processes start each round together
            while len(list(tmp_path.glob(f"ready-{round_}-*"))) < processes:
                assert all(child.poll() is None for child in children), "a child died"
                time.sleep(0.0005)
            (tmp_path / f"go-{round_}").touch()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [out for out, _ in outputs] == ["ok\n"] * processes, outputs
    for round_ in range(rounds):
        with Spool(tmp_path / f"spool-{round_}.db") as spool:
            assert spool.publish("t", b"", mandatory=False) == processes * threads + 1
        with SQLiteReplayStore(tmp_path / f"replay-{round_}.db") as store:
            assert len(store) == processes * threads
