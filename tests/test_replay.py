"""The one shared test suite of every replay store, and the window's decision table, row by row.

Every test that takes ``store``, ``window`` or ``make_store`` runs on every store in
:data:`STORES`: :class:`MemoryReplayStore`, :class:`SQLiteReplayStore` (a fresh file),
``RedisReplayStore`` (a fresh prefix) and ``PostgresReplayStore`` (a fresh schema) on the
servers of this machine (:func:`services.require`: skipped without one, failed in CI), their
keys and schemas removed afterwards. Beyond the rows, a differential property runs random
operation sequences on every store against the memory store. Times are small integers; ``now``
is 10_000 unless a row needs another. Processes sharing one record: ``test_replay_shared.py``.

How a new store joins: write a factory ``(capacity, name, tmp_path) -> store`` that builds a
fresh, empty store (``name`` tells apart two records that must not share anything; the same name
twice must give two handles on one shared record) and returns it with a way to close it, and add
it to :data:`STORES`. Every test here must then pass unchanged; tests of one store's own
guarantees (a file surviving a reopen) go at the end, named after the store.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock import (
    AddResult,
    Claim,
    MemoryReplayStore,
    Reason,
    Rejected,
    ReplayStore,
    ReplayWindow,
    StoreError,
    UsageError,
)
from letterlock.stores import SQLiteReplayStore
from services import SERVICES, require

NOW = 10_000
A = b"\xa1" * 32  # alice's sender key id
M = b"\x3a" * 32  # mallory's
ADDED = AddResult.ADDED
MAX_AGE = 3600
SKEW = 300

StoreFactory = Callable[..., ReplayStore]
T = TypeVar("T")
#: Builds one store: (capacity, name, tmp_path) -> (the store, how to close it).
Opens = Callable[[int, str, Path], tuple[ReplayStore, Callable[[], None]]]


def _memory(capacity: int, name: str, tmp_path: Path) -> tuple[ReplayStore, Callable[[], None]]:
    return MemoryReplayStore(capacity=capacity), lambda: None


def _sqlite(capacity: int, name: str, tmp_path: Path) -> tuple[ReplayStore, Callable[[], None]]:
    store = SQLiteReplayStore(tmp_path / name, capacity=capacity)
    return store, store.close


_RUN = secrets.token_hex(4)  # this session's records on the shared servers, apart from others'


def shared_name(name: str, tmp_path: Path) -> str:
    """A record name on a shared server: the same for one test and ``name``, unique otherwise."""
    digest = hashlib.sha256(f"{tmp_path}\0{name}".encode()).hexdigest()[:12]
    return f"ll_test_{_RUN}_{digest}"


def _redis(capacity: int, name: str, tmp_path: Path) -> tuple[ReplayStore, Callable[[], None]]:
    from letterlock.stores.redis import RedisReplayStore

    service = require("redis")
    prefix = shared_name(name, tmp_path)
    store = RedisReplayStore(service.url, prefix=prefix, capacity=capacity)

    def close() -> None:
        store.close()
        drop_redis_prefix(prefix)

    return store, close


def drop_redis_prefix(prefix: str) -> None:
    """Delete every key of one test's record (and nobody else's) from the shared server."""
    import redis

    with redis.Redis.from_url(SERVICES["redis"].url) as client:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)


def _postgres(capacity: int, name: str, tmp_path: Path) -> tuple[ReplayStore, Callable[[], None]]:
    from letterlock.stores.postgres import PostgresReplayStore

    service = require("postgres")
    schema = shared_name(name, tmp_path)
    store = PostgresReplayStore(service.url, schema=schema, capacity=capacity)

    def close() -> None:
        store.close()
        drop_postgres_schema(schema)

    return store, close


def drop_postgres_schema(schema: str) -> None:
    """Drop one test's schema (and nobody else's) from the shared server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(SERVICES["postgres"].url, autocommit=True) as db:
        db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


#: Every store of ``letterlock.stores``; each test of the shared suite runs on each.
STORES: dict[str, Opens] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of one kind; stores of a shared kind share one record unless named apart."""
    closers: list[Callable[[], None]] = []

    def factory(*, capacity: int = 1000, name: str = "replay.sqlite3") -> ReplayStore:
        store, close = STORES[request.param](capacity, name, tmp_path)
        closers.append(close)
        return store

    yield factory
    for close in closers:
        close()


@pytest.fixture
def store(make_store: StoreFactory) -> ReplayStore:
    return make_store()


@pytest.fixture
def window(store: ReplayStore) -> ReplayWindow:
    return ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def check(
    window: ReplayWindow,
    n: int = 1,
    *,
    created: int = NOW,
    expires: int | None = None,
    sender: bytes = A,
) -> None:
    window.check(sender=sender, message_id=mid(n), created=created, expires=expires, now=NOW)


def record(
    window: ReplayWindow, n: int = 1, *, created: int = NOW, now: int = NOW, sender: bytes = A
) -> None:
    window.record(sender=sender, message_id=mid(n), created=created, now=now)


def reason_of(call: Callable[[], object]) -> Reason:
    with pytest.raises(Rejected) as info:
        call()
    return info.value.reason


# --------------------------------------------------------------------------- the table


def test_row_created_beyond_skew_is_not_yet_valid(window: ReplayWindow) -> None:
    assert reason_of(lambda: check(window, created=NOW + SKEW + 1)) is Reason.NOT_YET_VALID
    check(window, created=NOW + SKEW)  # the boundary itself is inside


def test_row_past_expiry_is_expired(window: ReplayWindow) -> None:
    assert reason_of(lambda: check(window, expires=NOW)) is Reason.EXPIRED
    assert reason_of(lambda: check(window, created=NOW - 10, expires=NOW - 1)) is Reason.EXPIRED
    check(window, expires=NOW + 1)


def test_row_older_than_max_age_is_expired(window: ReplayWindow) -> None:
    assert reason_of(lambda: check(window, created=NOW - MAX_AGE - 1)) is Reason.EXPIRED
    check(window, created=NOW - MAX_AGE)


def test_row_at_or_below_floor_is_expired(window: ReplayWindow, store: ReplayStore) -> None:
    store.prune(NOW - 100)  # the floor becomes NOW - 101
    assert store.floor() == store.floor(A) == NOW - 101
    assert reason_of(lambda: check(window, created=NOW - 101)) is Reason.EXPIRED
    assert reason_of(lambda: record(window, created=NOW - 101)) is Reason.EXPIRED
    check(window, created=NOW - 100)
    record(window, created=NOW - 100)


def test_row_recorded_id_is_replayed(window: ReplayWindow) -> None:
    record(window)
    assert reason_of(lambda: check(window)) is Reason.REPLAYED
    assert reason_of(lambda: record(window)) is Reason.REPLAYED
    assert reason_of(lambda: record(window, created=NOW + 1)) is Reason.REPLAYED


def test_row_fresh_id_passes_and_check_records_nothing(
    window: ReplayWindow, store: ReplayStore
) -> None:
    check(window)
    check(window)
    assert not store.contains(A, mid(1))
    record(window)
    assert store.contains(A, mid(1))
    check(window, 2)


def test_first_matching_row_wins(window: ReplayWindow) -> None:
    """The time rows come before the recorded-id row, and the future row before expiry."""
    record(window, created=NOW - 10)
    too_old = ReplayWindow(window.store, max_age=5, skew=SKEW)
    assert reason_of(lambda: check(too_old, created=NOW - 10)) is Reason.EXPIRED
    assert reason_of(lambda: check(window, created=NOW - 10, expires=NOW)) is Reason.EXPIRED
    future_and_expired = partial(check, window, 9, created=NOW + SKEW + 1, expires=NOW)
    assert reason_of(future_and_expired) is Reason.NOT_YET_VALID


# --------------------------------------------------------------------------- claims

H1 = b"holder-one-16byt"  # one consumer's claim token
H2 = b"holder-two-16byt"  # another consumer's
LEASE = 60


def claim(window: ReplayWindow, n: int = 1, *, holder: bytes = H1, now: float = NOW) -> Claim:
    return window.claim(
        sender=A, message_id=mid(n), created=NOW, now=now, holder=holder, until=now + LEASE
    )


def test_claim_then_finish_records_the_message_as_handled(
    window: ReplayWindow, store: ReplayStore
) -> None:
    assert claim(window) is Claim.CLAIMED
    assert not store.contains(A, mid(1))  # a claim is not a handled id: step 11 lets it pass
    check(window)
    assert window.finish(sender=A, message_id=mid(1), holder=H1)
    assert store.contains(A, mid(1))
    assert reason_of(lambda: claim(window, holder=H2)) is Reason.REPLAYED
    assert reason_of(lambda: record(window)) is Reason.REPLAYED


def test_a_live_claim_makes_another_copy_busy_never_replayed(window: ReplayWindow) -> None:
    """A copy delivered to a second consumer while the first one handles it: try again later."""
    assert claim(window) is Claim.CLAIMED
    assert claim(window, holder=H2, now=NOW + LEASE - 1) is Claim.BUSY
    assert claim(window, holder=H1, now=NOW + 1) is Claim.BUSY  # a redelivery to itself too
    assert reason_of(lambda: record(window)) is Reason.REPLAYED  # a plain open never handles it


def test_a_claim_whose_time_passed_is_taken_over(window: ReplayWindow, store: ReplayStore) -> None:
    """Its consumer died in the handler: once the claim's time passes, another may handle it,
    and the dead consumer's token no longer finishes, releases or extends anything."""
    assert claim(window) is Claim.CLAIMED
    assert claim(window, holder=H2, now=NOW + LEASE) is Claim.TAKEN_OVER
    assert not window.finish(sender=A, message_id=mid(1), holder=H1)
    assert not window.release(sender=A, message_id=mid(1), holder=H1)
    assert not window.extend(sender=A, message_id=mid(1), holder=H1, until=NOW + 10 * LEASE)
    assert claim(window, holder=H1, now=NOW + LEASE + 1) is Claim.BUSY  # H2's until holds
    assert window.finish(sender=A, message_id=mid(1), holder=H2)
    assert store.contains(A, mid(1))
    assert len(store) == 1


def test_release_lets_the_message_be_handled_again(
    window: ReplayWindow, store: ReplayStore
) -> None:
    """The handler failed and the user chose a retry: the next copy is claimed afresh."""
    assert claim(window) is Claim.CLAIMED
    assert not window.release(sender=A, message_id=mid(1), holder=H2)  # not H2's to release
    assert window.release(sender=A, message_id=mid(1), holder=H1)
    assert not store.contains(A, mid(1))
    assert len(store) == 0
    assert claim(window, holder=H2, now=NOW + 1) is Claim.CLAIMED
    assert len(store) == 1


def test_extend_keeps_a_claim_alive_for_its_holder_only(window: ReplayWindow) -> None:
    assert claim(window) is Claim.CLAIMED
    assert not window.extend(sender=A, message_id=mid(1), holder=H2, until=NOW + 1)
    assert window.extend(sender=A, message_id=mid(1), holder=H1, until=NOW + 3 * LEASE)
    assert claim(window, holder=H2, now=NOW + 2 * LEASE) is Claim.BUSY  # past the first until
    assert claim(window, holder=H2, now=NOW + 3 * LEASE) is Claim.TAKEN_OVER


def test_claims_are_per_sender_and_one_sender_cannot_touch_anothers(
    window: ReplayWindow, store: ReplayStore
) -> None:
    assert claim(window) is Claim.CLAIMED
    assert store.add(M, mid(1), NOW, now=NOW, holder=H2, until=NOW + LEASE) is ADDED
    assert not store.finish(M, mid(1), H1)
    assert store.finish(A, mid(1), H1)
    assert not store.contains(M, mid(1))


def test_claims_are_evicted_and_pruned_like_handled_ids(make_store: StoreFactory) -> None:
    store = make_store(capacity=2)
    assert store.add(A, mid(1), NOW, now=NOW, holder=H1, until=NOW + LEASE) is ADDED
    assert store.add(A, mid(2), NOW + 1, now=NOW + 1) is ADDED
    assert store.add(A, mid(3), NOW + 2, now=NOW + 2) is ADDED  # evicts the claimed oldest
    assert store.floor(A) == NOW
    assert not store.finish(A, mid(1), H1)  # gone with its claim
    assert store.add(A, mid(1), NOW, now=NOW, holder=H2, until=NOW + LEASE) is (
        AddResult.BELOW_FLOOR
    )
    assert store.add(A, mid(4), NOW + 3, now=NOW + 3, holder=H1, until=NOW + LEASE) is ADDED
    store.prune(NOW + 10)
    assert len(store) == 0
    assert not store.extend(A, mid(4), H1, NOW + 2 * LEASE)


def test_concurrent_claims_of_one_message_give_it_to_one_consumer(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    results = _race(
        lambda i: store.add(A, mid(1), NOW, now=NOW, holder=bytes([i]) * 16, until=NOW + LEASE)
    )
    assert sorted(r.value for r in results) == ["added"] + ["busy"] * 15


def test_a_claim_needs_a_holder(window: ReplayWindow) -> None:
    with pytest.raises(UsageError, match="holder"):
        claim(window, holder=b"")


def test_sqlite_upgrades_a_record_without_claims(tmp_path: Path) -> None:
    """A version 2 file (before claims) is upgraded in place; its ids stay handled."""
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE seen (sender BLOB NOT NULL, id BLOB NOT NULL, created INTEGER NOT NULL,"
            " PRIMARY KEY (sender, id)) WITHOUT ROWID;"
            "CREATE INDEX seen_by_time ON seen (sender, created);"
            "CREATE TABLE senders (sender BLOB PRIMARY KEY, floor INTEGER NOT NULL,"
            " count INTEGER NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE meta (one INTEGER PRIMARY KEY CHECK (one = 1), floor INTEGER NOT NULL);"
            "INSERT INTO meta VALUES (1, -1);"
            f"INSERT INTO seen VALUES (x'{A.hex()}', x'{mid(1).hex()}', {NOW});"
            f"INSERT INTO senders VALUES (x'{A.hex()}', -1, 1);"
            "PRAGMA application_id=1280070224; PRAGMA user_version=2;"
        )
    db.close()
    with SQLiteReplayStore(path) as store:
        assert store.contains(A, mid(1))
        assert store.add(A, mid(1), NOW, now=NOW, holder=H1, until=NOW + LEASE) is (AddResult.SEEN)
        assert store.add(A, mid(2), NOW, now=NOW, holder=H1, until=NOW + LEASE) is ADDED
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
    db.close()


# --------------------------------------------------------------------------- the floor


def test_prune_forgets_old_ids_and_raises_the_floor(store: ReplayStore) -> None:
    assert store.floor() == -1
    assert store.add(A, mid(1), 100, now=NOW) is ADDED
    assert store.add(A, mid(2), 200, now=NOW) is ADDED
    store.prune(150)
    assert not store.contains(A, mid(1))
    assert store.contains(A, mid(2))
    assert store.floor() == 149
    store.prune(50)
    assert store.floor() == 149  # the floor never decreases


def test_window_prunes_as_it_records_and_a_pruned_id_cannot_return(store: ReplayStore) -> None:
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW, prune_every=1)
    record(window, 1, created=NOW)
    later = NOW + MAX_AGE + 10
    record(window, 2, created=later, now=later)
    assert not store.contains(A, mid(1))
    assert store.floor() == later - MAX_AGE - 1
    lenient = ReplayWindow(store, max_age=10 * MAX_AGE, skew=SKEW)
    pruned_again = partial(
        lenient.check, sender=A, message_id=mid(1), created=NOW, expires=None, now=later
    )
    assert reason_of(pruned_again) is Reason.EXPIRED


def test_window_prunes_once_every_prune_every_adds_from_any_number_of_threads() -> None:
    """The count of adds needs no lock: 4 threads, 250 records each, prune_every=10."""
    store = MemoryReplayStore()
    cutoffs: list[int] = []
    prune = store.prune

    def counted(cutoff: int) -> None:
        cutoffs.append(cutoff)
        prune(cutoff)

    store.prune = counted  # type: ignore[method-assign]
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW, prune_every=10)

    def records(sender: bytes) -> None:
        for n in range(250):
            window.record(sender=sender, message_id=mid(n), created=NOW, now=NOW)

    workers = [threading.Thread(target=records, args=(bytes([s]) * 32,)) for s in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(cutoffs) == 100
    assert len(store) == 1000


def test_eviction_at_capacity_raises_the_floor(make_store: StoreFactory) -> None:
    """Capacity 3: the 4th id evicts the oldest, whose time becomes the floor."""
    store = make_store(capacity=3)
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    for n, created in ((1, NOW - 30), (2, NOW - 20), (3, NOW - 10)):
        record(window, n, created=created)
    record(window, 4, created=NOW)
    assert not store.contains(A, mid(1))
    assert all(store.contains(A, mid(n)) for n in (2, 3, 4))
    assert store.floor(A) == NOW - 30
    assert store.floor() == store.floor(M) == -1
    assert reason_of(lambda: check(window, 1, created=NOW - 30)) is Reason.EXPIRED
    assert reason_of(lambda: record(window, 1, created=NOW - 30)) is Reason.EXPIRED
    assert reason_of(lambda: check(window, 2, created=NOW - 20)) is Reason.REPLAYED
    check(window, 5, created=NOW - 29)


# --------------------------------------------------------------------------- per sender


def test_one_message_id_is_separate_per_sender(window: ReplayWindow, store: ReplayStore) -> None:
    """Id squatting: mallory records alice's pending id first; alice's message still opens."""
    record(window, 7, sender=M)
    check(window, 7, sender=A)
    record(window, 7, sender=A)
    assert store.contains(A, mid(7))
    assert store.contains(M, mid(7))
    assert reason_of(lambda: record(window, 7, sender=A)) is Reason.REPLAYED
    assert reason_of(lambda: record(window, 7, sender=M)) is Reason.REPLAYED


def test_a_sender_filling_its_record_raises_only_its_own_floor(make_store: StoreFactory) -> None:
    """Floor raising: mallory fills her record; only her floor moves, alice is unaffected."""
    store = make_store(capacity=3)
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    for n in range(10):
        record(window, n, created=NOW - 100 + n, sender=M)
    assert store.floor(M) == NOW - 94
    assert store.floor(A) == store.floor() == -1
    record(window, 1, created=NOW - 200, sender=A)
    assert len(store) == 4


def test_future_dated_ids_are_never_evicted_and_the_floor_stays_below_the_clock(
    make_store: StoreFactory,
) -> None:
    """Floor raising with future dates: ids created after now cannot be forgotten (their
    floor would pass the clock); the full sender is refused, over_limit, nobody else."""
    store = make_store(capacity=3)
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    for n in range(3):
        record(window, n, created=NOW + SKEW, sender=M)
    assert reason_of(lambda: record(window, 9, created=NOW + SKEW, sender=M)) is Reason.OVER_LIMIT
    assert store.floor(M) <= NOW
    assert store.floor() == store.floor(A) == -1
    record(window, 1, created=NOW, sender=A)
    later = NOW + SKEW + 1  # once the clock has passed them they can be forgotten again
    record(window, 9, created=later, now=later, sender=M)
    assert store.floor(M) == NOW + SKEW
    assert reason_of(lambda: record(window, 10, created=NOW + SKEW, now=later, sender=M)) is (
        Reason.EXPIRED
    )


def test_a_full_record_refuses_a_message_older_than_its_oldest_id(
    make_store: StoreFactory,
) -> None:
    """Recording it would forget ids at or after its own time: it is refused unchanged."""
    store = make_store(capacity=2)
    assert store.add(A, mid(1), NOW - 10, now=NOW) is ADDED
    assert store.add(A, mid(2), NOW - 5, now=NOW) is ADDED
    assert store.add(A, mid(3), NOW - 10, now=NOW) is AddResult.BELOW_FLOOR
    assert store.contains(A, mid(1))
    assert store.floor(A) == -1
    assert store.add(A, mid(4), NOW, now=NOW) is ADDED
    assert store.floor(A) == NOW - 10
    assert not store.contains(A, mid(1))


def test_add_reports_each_outcome(make_store: StoreFactory) -> None:
    store = make_store(capacity=1)
    assert store.add(A, mid(1), NOW + 5, now=NOW) is ADDED
    assert store.add(A, mid(1), NOW + 5, now=NOW) is AddResult.SEEN
    assert store.add(A, mid(2), NOW + 6, now=NOW) is AddResult.FULL
    store.prune(NOW)
    assert store.add(A, mid(3), NOW - 1, now=NOW) is AddResult.BELOW_FLOOR


def test_prune_forgets_empty_senders(make_store: StoreFactory) -> None:
    store = make_store(capacity=5)
    for n in range(3):
        assert store.add(bytes([n]) * 32, mid(n), NOW - 10, now=NOW) is ADDED
    store.prune(NOW)
    assert len(store) == 0
    assert all(store.floor(bytes([n]) * 32) == NOW - 1 for n in range(3))


# --------------------------------------------------------------------------- atomicity


def _race(attempt: Callable[[int], T], threads: int = 16) -> list[T]:
    """Run ``attempt(i)`` in ``threads`` threads released at once; their results."""
    barrier = threading.Barrier(threads)
    results: list[T] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        outcome = attempt(index)
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def test_concurrent_adds_of_one_id_record_it_once(store: ReplayStore) -> None:
    results = _race(lambda _i: store.add(A, mid(7), NOW, now=NOW) is ADDED)
    assert sorted(results) == [False] * 15 + [True]


def test_concurrent_records_of_one_message_open_it_once(window: ReplayWindow) -> None:
    def attempt(_index: int) -> str:
        try:
            record(window, 7)
        except Rejected as exc:
            return exc.reason.value
        return "recorded"

    assert sorted(_race(attempt)) == ["recorded"] + ["replayed"] * 15


# --------------------------------------------------------------------------- SQLite specifics


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    with SQLiteReplayStore(path) as store:
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        store.prune(NOW - 100)
    with SQLiteReplayStore(path) as reopened:
        assert reopened.contains(A, mid(1))
        assert reopened.add(A, mid(1), NOW, now=NOW) is not ADDED
        assert reopened.floor() == NOW - 101
        assert len(reopened) == 1
        window = ReplayWindow(reopened, max_age=MAX_AGE, skew=SKEW)
        assert reason_of(lambda: check(window)) is Reason.REPLAYED


def _sync_of_each_commit(store: SQLiteReplayStore, calls: Callable[[], object]) -> list[str]:
    """The ``synchronous`` setting under which each transaction ``calls`` makes commits."""
    statements: list[str] = []
    db = store._database._db
    setting = db.execute("PRAGMA synchronous").fetchone()[0]
    db.set_trace_callback(statements.append)
    try:
        calls()
    finally:
        db.set_trace_callback(None)
    modes = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    current, commits = modes[setting], []
    for statement in statements:
        if statement.startswith("PRAGMA synchronous="):
            current = statement.split("=", 1)[1]
        elif statement == "COMMIT":
            commits.append(current)
    return commits


def test_sqlite_syncs_every_handled_id_and_no_claim(tmp_path: Path) -> None:
    """A handled id (finish, or a record without a claim) is committed with a sync
    (``synchronous=FULL``): it must survive a power loss, or a replay would be accepted after
    it. A claim, its extension and its release only keep live consumers apart and commit
    without one (``NORMAL``; the next synced commit covers them): one sync per message, not
    two."""
    with SQLiteReplayStore(tmp_path / "replay.sqlite3") as store:
        h = b"holder"

        def one_message_and_more() -> None:
            assert store.add(A, mid(1), NOW, now=NOW, holder=h, until=NOW + 60) is ADDED
            assert store.extend(A, mid(1), h, NOW + 120)
            assert store.finish(A, mid(1), h)
            assert store.add(A, mid(2), NOW, now=NOW, holder=h, until=NOW + 60) is ADDED
            assert store.release(A, mid(2), h)
            assert store.add(A, mid(3), NOW, now=NOW) is ADDED  # recorded at once

        commits = _sync_of_each_commit(store, one_message_and_more)
        assert commits == ["NORMAL", "NORMAL", "FULL", "NORMAL", "NORMAL", "FULL"]
    with SQLiteReplayStore(tmp_path / "replay.sqlite3") as reopened:  # and all of it is there
        assert reopened.contains(A, mid(1))
        assert not reopened.contains(A, mid(2))
        assert reopened.contains(A, mid(3))


def test_sqlite_two_store_objects_on_one_file_share_ids_and_floor(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with SQLiteReplayStore(path) as first, SQLiteReplayStore(path) as second:
        assert first.add(A, mid(1), NOW, now=NOW) is ADDED
        assert second.contains(A, mid(1))
        assert second.add(A, mid(1), NOW, now=NOW) is not ADDED
        second.prune(NOW - 5)
        assert first.floor() == NOW - 6
        stores = (first, second)
        results = _race(lambda i: stores[i % 2].add(A, mid(2), NOW, now=NOW) is ADDED)
        assert sorted(results) == [False] * 15 + [True]


def test_sqlite_eviction_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "small.sqlite3"
    with SQLiteReplayStore(path, capacity=3) as store:
        for n in range(4):
            assert store.add(A, mid(n), NOW + n, now=NOW + n) is ADDED
    with SQLiteReplayStore(path, capacity=3) as reopened:
        assert reopened.floor(A) == NOW
        assert reopened.floor() == -1  # eviction raises the sender's floor, not everyone's
        assert not reopened.contains(A, mid(0))
        assert len(reopened) == 3


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReplayWindow(max_age=0),
        lambda: ReplayWindow(skew=-1),
        lambda: MemoryReplayStore(capacity=0),
    ],
    ids=["max_age_0", "skew_negative", "capacity_0"],
)
def test_nonsense_configuration_is_a_usage_error(build: Callable[[], object]) -> None:
    with pytest.raises(UsageError):
        build()


def test_sqlite_capacity_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        SQLiteReplayStore(tmp_path / "x.sqlite3", capacity=0)


def test_sqlite_refuses_a_record_of_the_earlier_layout(tmp_path: Path) -> None:
    """Ids of the one-id-space layout name no sender: refused with what to do, not converted."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE seen (id BLOB PRIMARY KEY, created INTEGER NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE meta (one INTEGER PRIMARY KEY, floor INTEGER, count INTEGER);"
        )
    db.close()
    with pytest.raises(StoreError, match="earlier letterlock"):
        SQLiteReplayStore(path)


def test_sqlite_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (name TEXT)")
    db.close()
    with pytest.raises(StoreError, match="not a replay record"):
        SQLiteReplayStore(path)


def test_add_refuses_an_id_at_or_below_the_floor(store: ReplayStore) -> None:
    """The floor is checked inside the atomic add, not before it: an id that a concurrent
    prune or eviction has just forgotten can never be recorded (and so released) again."""
    store.prune(NOW)  # floor NOW - 1
    assert store.add(A, mid(1), NOW - 1, now=NOW) is not ADDED
    assert not store.contains(A, mid(1))
    assert store.add(A, mid(2), NOW, now=NOW) is ADDED


def test_record_reports_expired_when_add_meets_a_risen_floor(store: ReplayStore) -> None:
    """A record racing a prune: the window's early check passed, the store's add refuses."""
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    check(window, 1, created=NOW - 10)
    store.prune(NOW)  # another process pruned in between
    assert reason_of(lambda: record(window, 1, created=NOW - 10)) is Reason.EXPIRED


def test_length_follows_adds_evictions_and_prunes(make_store: StoreFactory) -> None:
    store = make_store(capacity=3)
    for n in range(5):
        assert store.add(A, mid(n), NOW + n, now=NOW + n) is ADDED
    assert len(store) == 3
    assert [store.contains(A, mid(n)) for n in range(5)] == [False, False, True, True, True]
    store.prune(NOW + 4)
    assert len(store) == 1


def test_sqlite_errors_become_store_errors(tmp_path: Path) -> None:
    """A sqlite3 error never escapes the store (or open()) untranslated; a store is no transport."""
    with pytest.raises(StoreError):
        SQLiteReplayStore(tmp_path / "missing-directory" / "replay.sqlite3")
    store = SQLiteReplayStore(tmp_path / "replay.sqlite3")
    store.close()
    with pytest.raises(StoreError) as caught:
        store.add(A, mid(1), NOW, now=NOW)
    assert isinstance(caught.value.__cause__, sqlite3.Error)


# --------------------------------------------------------------------------- Redis specifics


@pytest.fixture
def redis_prefix(tmp_path: Path) -> Iterator[str]:
    """A prefix of this test's own on the shared server, its keys deleted afterwards."""
    require("redis")
    prefix = shared_name("redis", tmp_path)
    yield prefix
    drop_redis_prefix(prefix)


def test_redis_prefixes_keep_records_apart(redis_prefix: str) -> None:
    from letterlock.stores.redis import RedisReplayStore

    url = SERVICES["redis"].url
    with (
        RedisReplayStore(url, prefix=redis_prefix) as first,
        RedisReplayStore(url, prefix=redis_prefix + "-other") as other,
    ):
        try:
            assert first.add(A, mid(1), NOW, now=NOW) is ADDED
            first.prune(NOW - 5)
            assert not other.contains(A, mid(1))
            assert other.floor() == -1
            assert other.add(A, mid(1), NOW, now=NOW) is ADDED
        finally:
            drop_redis_prefix(redis_prefix + "-other")


def test_redis_ttl_lets_a_quiet_senders_keys_expire(redis_prefix: str) -> None:
    """With ttl, a sender's ids, claims and floor vanish ttl after its last write, without a
    prune; the common floor stays."""
    import redis

    from letterlock.stores.redis import RedisReplayStore

    with RedisReplayStore(SERVICES["redis"].url, prefix=redis_prefix, ttl=0.3, capacity=1) as store:
        store.prune(NOW - 100)
        assert store.add(A, mid(1), NOW, now=NOW, holder=H1, until=NOW + LEASE) is ADDED
        assert store.add(A, mid(2), NOW + 1, now=NOW + 1) is ADDED  # evicts 1: A's floor is NOW
        assert store.floor(A) == NOW
        with redis.Redis.from_url(SERVICES["redis"].url) as client:
            assert 0 < client.pttl(f"{redis_prefix}:{A.hex()}:ids") <= 300
        time.sleep(0.4)
        assert not store.contains(A, mid(2))
        assert store.floor(A) == store.floor() == NOW - 101
        assert len(store) == 0


def test_redis_refuses_a_client_that_decodes_responses(redis_prefix: str) -> None:
    import redis

    from letterlock.stores.redis import RedisReplayStore

    url = SERVICES["redis"].url
    with (
        redis.Redis.from_url(url, decode_responses=True) as client,
        pytest.raises(UsageError, match="decode"),
    ):
        RedisReplayStore(client, prefix=redis_prefix)


def test_redis_takes_a_client_and_leaves_it_open(redis_prefix: str) -> None:
    import redis

    from letterlock.stores.redis import RedisReplayStore

    with redis.Redis.from_url(SERVICES["redis"].url) as client:
        store = RedisReplayStore(client, prefix=redis_prefix)
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        store.close()
        assert client.ping()
        with pytest.raises(StoreError, match="closed"):
            store.contains(A, mid(1))


def test_redis_errors_become_store_errors() -> None:
    """Nothing listens on port 1: every redis-py error leaves the store as a StoreError."""
    import redis

    from letterlock.stores.redis import RedisReplayStore

    store = RedisReplayStore("redis://127.0.0.1:1/0", prefix="ll-test-nowhere")
    with pytest.raises(StoreError, match="recording an id") as caught:
        store.add(A, mid(1), NOW, now=NOW)
    assert isinstance(caught.value.__cause__, redis.RedisError)
    store.close()


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
def test_redis_ttl_must_be_positive(ttl: float) -> None:
    from letterlock.stores.redis import RedisReplayStore

    with pytest.raises(UsageError, match="ttl"):
        RedisReplayStore("redis://127.0.0.1:1/0", ttl=ttl)


# --------------------------------------------------------------------------- PostgreSQL specifics


@pytest.fixture
def pg_schema(tmp_path: Path) -> Iterator[str]:
    """A schema of this test's own on the shared server, dropped afterwards."""
    require("postgres")
    schema = shared_name("postgres", tmp_path)
    yield schema
    drop_postgres_schema(schema)


def _psql(statement: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(SERVICES["postgres"].url, autocommit=True) as db:
        cursor = db.execute(statement.encode())
        return cursor.fetchall() if cursor.description else []


def test_postgres_survives_reopen_and_stamps_its_schema(pg_schema: str) -> None:
    from letterlock.stores.postgres import VERSION, PostgresReplayStore

    url = SERVICES["postgres"].url
    with PostgresReplayStore(url, schema=pg_schema, capacity=3) as store:
        for n in range(4):
            assert store.add(A, mid(n), NOW + n, now=NOW + n) is ADDED
        store.prune(NOW - 100)
    with PostgresReplayStore(url, schema=pg_schema, capacity=3) as reopened:
        assert reopened.floor(A) == NOW
        assert reopened.floor() == NOW - 101
        assert not reopened.contains(A, mid(0))
        assert reopened.contains(A, mid(3))
        assert len(reopened) == 3
    assert _psql(f'SELECT application, version FROM "{pg_schema}".meta') == [
        ("letterlock replay record", VERSION)
    ]


@pytest.mark.parametrize(
    ("columns", "row"),
    [
        ("name text", "('theirs')"),
        ("one int, floor bigint, application text, version int", "(1, -1, 'theirs', 1)"),
    ],
    ids=["other_tables", "other_application"],
)
def test_postgres_refuses_a_schema_of_something_else(
    pg_schema: str, columns: str, row: str
) -> None:
    """A schema holding other tables (even a meta table like ours) is refused, left as it was."""
    from letterlock.stores.postgres import PostgresReplayStore

    _psql(f'CREATE SCHEMA "{pg_schema}"')
    _psql(f'CREATE TABLE "{pg_schema}".meta ({columns})')
    _psql(f'INSERT INTO "{pg_schema}".meta VALUES {row}')
    before = _psql(f'SELECT * FROM "{pg_schema}".meta')
    with pytest.raises(StoreError, match="not a replay record"):
        PostgresReplayStore(SERVICES["postgres"].url, schema=pg_schema)
    assert _psql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{pg_schema}'"
    ) == [("meta",)]
    assert _psql(f'SELECT * FROM "{pg_schema}".meta') == before


def test_postgres_refuses_a_record_of_a_later_version(pg_schema: str) -> None:
    from letterlock.stores.postgres import VERSION, PostgresReplayStore

    PostgresReplayStore(SERVICES["postgres"].url, schema=pg_schema).close()
    _psql(f'UPDATE "{pg_schema}".meta SET version = {VERSION + 1}')
    with pytest.raises(StoreError, match=f"unsupported schema version {VERSION + 1}"):
        PostgresReplayStore(SERVICES["postgres"].url, schema=pg_schema)


def test_postgres_upgrades_an_earlier_version_by_its_migrations(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration path: a record of version 1 opened by a module at version 2 (here with a
    made-up step) is upgraded in place, its ids kept."""
    from letterlock.stores import postgres

    url = SERVICES["postgres"].url
    with postgres.PostgresReplayStore(url, schema=pg_schema) as store:
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
    monkeypatch.setattr(postgres, "VERSION", 2)
    monkeypatch.setattr(postgres, "MIGRATIONS", ((1, ("ALTER TABLE {s}.seen ADD note text",)),))
    with postgres.PostgresReplayStore(url, schema=pg_schema) as upgraded:
        assert upgraded.contains(A, mid(1))
    assert _psql(f'SELECT version FROM "{pg_schema}".meta') == [(2,)]
    assert _psql(f'SELECT note FROM "{pg_schema}".seen') == [(None,)]


def test_postgres_concurrent_first_opens_set_the_schema_up_once(pg_schema: str) -> None:
    from letterlock.stores.postgres import PostgresReplayStore

    stores = _race(lambda _i: PostgresReplayStore(SERVICES["postgres"].url, schema=pg_schema), 6)
    try:
        assert stores[0].add(A, mid(1), NOW, now=NOW) is ADDED
        assert all(store.contains(A, mid(1)) for store in stores)
    finally:
        for store in stores:
            store.close()


def test_postgres_takes_a_connection_in_autocommit_mode_and_leaves_it_open(pg_schema: str) -> None:
    import psycopg

    from letterlock.stores.postgres import PostgresReplayStore

    with (
        psycopg.connect(SERVICES["postgres"].url) as manual,
        pytest.raises(UsageError, match="autocommit"),
    ):
        PostgresReplayStore(manual, schema=pg_schema)
    with psycopg.connect(SERVICES["postgres"].url, autocommit=True) as db:
        store = PostgresReplayStore(db, schema=pg_schema)
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        store.close()
        assert db.execute("SELECT 1").fetchone() == (1,)


def test_postgres_errors_become_store_errors(pg_schema: str) -> None:
    import psycopg

    from letterlock.stores.postgres import PostgresReplayStore

    with pytest.raises(StoreError, match="connecting") as caught:
        PostgresReplayStore("postgresql://postgres@127.0.0.1:1/test", schema=pg_schema)
    assert isinstance(caught.value.__cause__, psycopg.Error)
    store = PostgresReplayStore(SERVICES["postgres"].url, schema=pg_schema)
    store.close()
    with pytest.raises(StoreError, match="recording an id"):
        store.add(A, mid(1), NOW, now=NOW)


def test_postgres_capacity_must_be_positive() -> None:
    from letterlock.stores.postgres import PostgresReplayStore

    with pytest.raises(UsageError, match="capacity"):
        PostgresReplayStore("postgresql://postgres@127.0.0.1:1/test", capacity=0)


# --------------------------------------------------------------------------- stores by URL


def test_replay_store_from_url_builds_each_shared_store(tmp_path: Path) -> None:
    """Each scheme gives its store, tuned by the parameters taken out of the URL."""
    from letterlock.stores import replay_store_from_url

    with replay_store_from_url(f"sqlite://{tmp_path}/r.sqlite3?capacity=1") as store:
        assert isinstance(store, SQLiteReplayStore)
        assert store.path == tmp_path / "r.sqlite3"
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        assert store.add(A, mid(2), NOW + 1, now=NOW + 1) is ADDED
        assert len(store) == 1  # capacity 1


def test_replay_store_from_url_redis(redis_prefix: str) -> None:
    from letterlock.stores import replay_store_from_url
    from letterlock.stores.redis import RedisReplayStore

    url = f"{SERVICES['redis'].url}?prefix={redis_prefix}&ttl=30&capacity=1&socket_timeout=5"
    with replay_store_from_url(url) as store:
        assert isinstance(store, RedisReplayStore)
        assert store.prefix == redis_prefix
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        assert store.add(A, mid(2), NOW + 1, now=NOW + 1) is ADDED
        assert len(store) == 1


def test_replay_store_from_url_postgres(pg_schema: str) -> None:
    from letterlock.stores import replay_store_from_url
    from letterlock.stores.postgres import PostgresReplayStore

    url = f"{SERVICES['postgres'].url}?schema={pg_schema}&capacity=1&connect_timeout=5"
    with replay_store_from_url(url) as store:
        assert isinstance(store, PostgresReplayStore)
        assert store.schema == pg_schema
        assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        assert store.add(A, mid(2), NOW + 1, now=NOW + 1) is ADDED
        assert len(store) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory:", "no replay store for URL scheme 'memory'"),
        ("sqlite:///x.db?prefix=p", "takes no prefix"),
        ("sqlite://host/x.db", "names a path"),
        ("redis://127.0.0.1:1/0?capacity=many", "capacity must be an integer"),
        ("redis://127.0.0.1:1/0?ttl=soon", "ttl must be a number"),
        ("postgresql://127.0.0.1:1/x?ttl=5", "takes no ttl"),
    ],
)
def test_replay_store_from_url_refuses_what_it_cannot_build(url: str, message: str) -> None:
    from letterlock.stores import replay_store_from_url

    with pytest.raises(UsageError, match=message):
        replay_store_from_url(url)


# --------------------------------------------------------------------------- every store as memory

_SENDERS = (A, M)
_HOLDERS = (None, H1, H2)
_times = st.integers(NOW - 2, NOW + 2)  # few values: ties, boundaries and passed claims
_add = st.tuples(
    st.just("add"),
    st.sampled_from(_SENDERS),
    st.integers(0, 4),  # message id
    _times,  # created
    _times,  # now
    st.sampled_from(_HOLDERS),
    _times,  # until
)
_settle = st.tuples(
    st.sampled_from(["finish", "release", "extend"]),
    st.sampled_from(_SENDERS),
    st.integers(0, 4),
    st.sampled_from(_HOLDERS[1:]),
    _times,
)
_prune = st.tuples(st.just("prune"), st.integers(NOW - 4, NOW))
_operations = st.lists(
    st.one_of(_add, _add, _add, _settle, _settle, _prune), min_size=8, max_size=40
)


def _apply(store: ReplayStore, operation: tuple[object, ...]) -> object:
    """Run one operation; what it returned, then what the store shows afterwards."""
    name, *args = operation
    if name == "add":
        sender, n, created, now, holder, until = args
        assert isinstance(sender, bytes)
        assert isinstance(n, int)
        assert isinstance(created, int)
        assert isinstance(now, int)
        assert holder is None or isinstance(holder, bytes)
        assert isinstance(until, int)
        result: object = store.add(sender, mid(n), created, now=now, holder=holder, until=until)
    elif name == "prune":
        (cutoff,) = args
        assert isinstance(cutoff, int)
        store.prune(cutoff)
        result = None
    else:
        sender, n, holder, until = args
        assert isinstance(sender, bytes)
        assert isinstance(n, int)
        assert isinstance(holder, bytes)
        assert isinstance(until, int)
        if name == "finish":
            result = store.finish(sender, mid(n), holder)
        elif name == "release":
            result = store.release(sender, mid(n), holder)
        else:
            result = store.extend(sender, mid(n), holder, until)
    shown = [(store.floor(s), [store.contains(s, mid(i)) for i in range(5)]) for s in _SENDERS]
    return result, store.floor(), shown, len(store)


@pytest.mark.parametrize("kind", sorted(set(STORES) - {"memory"}))
def test_every_store_answers_as_the_memory_store_does(kind: str, tmp_path: Path) -> None:
    """Differential: random sequences of adds, claims, settlements and prunes (capacity 2, ids
    tied in time, claims passing their until) give the same answers and the same visible
    record on every store as on :class:`MemoryReplayStore`, the reference of the protocol."""
    store, close = STORES[kind](2, "differential", tmp_path)

    @settings(max_examples=60, deadline=None, database=None)
    @given(_operations)
    def same_answers(operations: list[tuple[object, ...]]) -> None:
        reference = MemoryReplayStore(capacity=2)
        _empty(store)
        for operation in operations:
            assert _apply(store, operation) == _apply(reference, operation), operation

    try:
        same_answers()
    finally:
        close()


def _empty(store: ReplayStore) -> None:
    """Make a store as new again between examples (quicker than a new record each time)."""
    from letterlock.stores.postgres import PostgresReplayStore
    from letterlock.stores.redis import RedisReplayStore

    if isinstance(store, SQLiteReplayStore):
        with sqlite3.connect(store.path) as db:
            db.executescript("DELETE FROM seen; DELETE FROM senders; UPDATE meta SET floor = -1;")
        db.close()
    elif isinstance(store, RedisReplayStore):
        drop_redis_prefix(store.prefix)
    elif isinstance(store, PostgresReplayStore):
        _psql(
            f'TRUNCATE "{store.schema}".seen, "{store.schema}".senders; '
            f'UPDATE "{store.schema}".meta SET floor = -1'
        )


def test_postgres_uses_an_empty_schema_made_ready_by_an_administrator(pg_schema: str) -> None:
    """The schema exists, made for a role that may not create schemas: the store sets its
    tables up inside it, as that role."""
    from letterlock.stores.postgres import PostgresReplayStore

    role = pg_schema + "_role"
    _psql(f'CREATE ROLE "{role}" LOGIN')
    try:
        _psql(f'CREATE SCHEMA "{pg_schema}" AUTHORIZATION "{role}"')
        url = SERVICES["postgres"].url.replace("postgres@", f"{role}@")
        with PostgresReplayStore(url, schema=pg_schema) as store:
            assert store.add(A, mid(1), NOW, now=NOW) is ADDED
        assert _psql(f'SELECT count(*) FROM "{pg_schema}".seen') == [(1,)]
    finally:
        _psql(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
        _psql(f'DROP ROLE "{role}"')


def test_postgres_url_options_reach_the_session(pg_schema: str) -> None:
    """``options`` stays in the URL for libpq: the session runs with synchronous_commit off."""
    from letterlock.stores import replay_store_from_url
    from letterlock.stores.postgres import PostgresReplayStore

    url = f"{SERVICES['postgres'].url}?schema={pg_schema}&options=-csynchronous_commit%3Doff"
    with replay_store_from_url(url) as store:
        assert isinstance(store, PostgresReplayStore)
        assert store._db.execute("SHOW synchronous_commit").fetchone() == ("off",)


# --------------------------------------------------------------------------- steps 9 and 11 at once


def test_floor_and_contains_answers_as_floor_and_contains(store: ReplayStore) -> None:
    """A store that answers steps 9 and 11 in one call (one round trip to Redis or PostgreSQL)
    answers what its floor() and contains() answer, claimed, handled, pruned."""
    at_once = store.floor_and_contains  # type: ignore[attr-defined]  # every store here has it

    def agrees(sender: bytes, n: int) -> tuple[int, bool]:
        answer = at_once(sender, mid(n))
        assert answer == (store.floor(sender), store.contains(sender, mid(n)))
        return answer  # type: ignore[no-any-return]

    assert agrees(A, 1) == (-1, False)
    store.add(A, mid(1), NOW, now=NOW, holder=H1, until=NOW + LEASE)
    assert agrees(A, 1) == (-1, False)  # a claim is not a handled id
    assert store.finish(A, mid(1), H1)
    assert agrees(A, 1) == (-1, True)
    assert agrees(M, 1) == (-1, False)  # one sender's id is not another's
    store.prune(NOW + 1)
    assert agrees(A, 1) == (NOW, False)
    assert agrees(M, 2) == (NOW, False)


class _Counting(MemoryReplayStore):
    """A memory store that counts the questions a window asks it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def floor(self, sender: bytes | None = None) -> int:
        self.asked.append("floor")
        return super().floor(sender)

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        self.asked.append("contains")
        return super().contains(sender, message_id)

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        self.asked.append("floor_and_contains")
        return super().floor_and_contains(sender, message_id)


def test_a_window_asks_a_store_that_can_once_for_steps_9_and_11() -> None:
    store = _Counting()
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    check(window)
    assert store.asked == ["floor_and_contains"]
    record(window)
    assert reason_of(lambda: check(window)) is Reason.REPLAYED
    store.asked.clear()
    assert reason_of(lambda: check(window, created=-5)) is Reason.EXPIRED  # by the clock
    assert store.asked == []


def test_a_window_asks_a_store_without_it_floor_then_contains() -> None:
    """A store of the ReplayStore protocol alone (a user's own) still gets both questions."""

    class Plain:  # the protocol's methods only, delegated
        def __init__(self) -> None:
            self._inner = MemoryReplayStore()
            self.asked: list[str] = []

        def __getattr__(self, name: str) -> object:
            if name == "floor_and_contains":
                raise AttributeError(name)
            self.asked.append(name)
            return getattr(self._inner, name)

    store = Plain()
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)  # type: ignore[arg-type]
    fresh = window.check_fresh(sender=A, message_id=mid(1), created=NOW, expires=None, now=NOW)
    assert fresh is None  # step 11 is then check_unseen's
    record(window)
    store.asked.clear()
    assert reason_of(lambda: check(window)) is Reason.REPLAYED
    assert store.asked == ["floor", "contains"]
