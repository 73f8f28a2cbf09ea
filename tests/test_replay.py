"""The replay window's decision table (``letterlock.core.replay``), row by row, on both stores.

Every test runs on :class:`MemoryReplayStore` and on :class:`SQLiteReplayStore` (a fresh file).
Times are small integers; ``now`` is 10_000 unless a row needs another.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from letterlock import (
    MemoryReplayStore,
    Reason,
    Rejected,
    ReplayStore,
    ReplayWindow,
    TransportError,
    UsageError,
)
from letterlock.stores.sqlite import SQLiteReplayStore

NOW = 10_000
MAX_AGE = 3600
SKEW = 300

StoreFactory = Callable[..., ReplayStore]
T = TypeVar("T")


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of one kind; SQLite stores share one file unless given another name."""
    opened: list[SQLiteReplayStore] = []

    def factory(*, capacity: int = 1000, name: str = "replay.sqlite3") -> ReplayStore:
        if request.param == "memory":
            return MemoryReplayStore(capacity=capacity)
        store = SQLiteReplayStore(tmp_path / name, capacity=capacity)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> ReplayStore:
    return make_store()


@pytest.fixture
def window(store: ReplayStore) -> ReplayWindow:
    return ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def check(
    window: ReplayWindow, n: int = 1, *, created: int = NOW, expires: int | None = None
) -> None:
    window.check(message_id=mid(n), created=created, expires=expires, now=NOW)


def record(window: ReplayWindow, n: int = 1, *, created: int = NOW, now: int = NOW) -> None:
    window.record(message_id=mid(n), created=created, now=now)


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
    assert store.floor() == NOW - 101
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
    assert not store.contains(mid(1))
    record(window)
    assert store.contains(mid(1))
    check(window, 2)


def test_first_matching_row_wins(window: ReplayWindow) -> None:
    """The time rows come before the recorded-id row, and the future row before expiry."""
    record(window, created=NOW - 10)
    too_old = ReplayWindow(window.store, max_age=5, skew=SKEW)
    assert reason_of(lambda: check(too_old, created=NOW - 10)) is Reason.EXPIRED
    assert reason_of(lambda: check(window, created=NOW - 10, expires=NOW)) is Reason.EXPIRED
    future_and_expired = partial(check, window, 9, created=NOW + SKEW + 1, expires=NOW)
    assert reason_of(future_and_expired) is Reason.NOT_YET_VALID


# --------------------------------------------------------------------------- the floor


def test_prune_forgets_old_ids_and_raises_the_floor(store: ReplayStore) -> None:
    assert store.floor() == -1
    assert store.add(mid(1), 100)
    assert store.add(mid(2), 200)
    store.prune(150)
    assert not store.contains(mid(1))
    assert store.contains(mid(2))
    assert store.floor() == 149
    store.prune(50)
    assert store.floor() == 149  # the floor never decreases


def test_window_prunes_as_it_records_and_a_pruned_id_cannot_return(store: ReplayStore) -> None:
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW, prune_every=1)
    record(window, 1, created=NOW)
    later = NOW + MAX_AGE + 10
    record(window, 2, created=later, now=later)
    assert not store.contains(mid(1))
    assert store.floor() == later - MAX_AGE - 1
    lenient = ReplayWindow(store, max_age=10 * MAX_AGE, skew=SKEW)
    pruned_again = partial(lenient.check, message_id=mid(1), created=NOW, expires=None, now=later)
    assert reason_of(pruned_again) is Reason.EXPIRED


def test_eviction_at_capacity_raises_the_floor(make_store: StoreFactory) -> None:
    """Capacity 3: the 4th id evicts the oldest, whose time becomes the floor."""
    store = make_store(capacity=3)
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    for n, created in ((1, NOW - 30), (2, NOW - 20), (3, NOW - 10)):
        record(window, n, created=created)
    record(window, 4, created=NOW)
    assert not store.contains(mid(1))
    assert all(store.contains(mid(n)) for n in (2, 3, 4))
    assert store.floor() == NOW - 30
    assert reason_of(lambda: check(window, 1, created=NOW - 30)) is Reason.EXPIRED
    assert reason_of(lambda: record(window, 1, created=NOW - 30)) is Reason.EXPIRED
    assert reason_of(lambda: check(window, 2, created=NOW - 20)) is Reason.REPLAYED
    check(window, 5, created=NOW - 29)


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
    results = _race(lambda _i: store.add(mid(7), NOW))
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
        assert store.add(mid(1), NOW)
        store.prune(NOW - 100)
    with SQLiteReplayStore(path) as reopened:
        assert reopened.contains(mid(1))
        assert not reopened.add(mid(1), NOW)
        assert reopened.floor() == NOW - 101
        assert len(reopened) == 1
        window = ReplayWindow(reopened, max_age=MAX_AGE, skew=SKEW)
        assert reason_of(lambda: check(window)) is Reason.REPLAYED


def test_sqlite_two_store_objects_on_one_file_share_ids_and_floor(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with SQLiteReplayStore(path) as first, SQLiteReplayStore(path) as second:
        assert first.add(mid(1), NOW)
        assert second.contains(mid(1))
        assert not second.add(mid(1), NOW)
        second.prune(NOW - 5)
        assert first.floor() == NOW - 6
        stores = (first, second)
        results = _race(lambda i: stores[i % 2].add(mid(2), NOW))
        assert sorted(results) == [False] * 15 + [True]


def test_sqlite_eviction_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "small.sqlite3"
    with SQLiteReplayStore(path, capacity=3) as store:
        for n in range(4):
            assert store.add(mid(n), NOW + n)
    with SQLiteReplayStore(path, capacity=3) as reopened:
        assert reopened.floor() == NOW
        assert not reopened.contains(mid(0))
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


def test_add_refuses_an_id_at_or_below_the_floor(store: ReplayStore) -> None:
    """The floor is checked inside the atomic add, not before it: an id that a concurrent
    prune or eviction has just forgotten can never be recorded (and so released) again."""
    store.prune(NOW)  # floor NOW - 1
    assert not store.add(mid(1), NOW - 1)
    assert not store.contains(mid(1))
    assert store.add(mid(2), NOW)


def test_record_reports_expired_when_add_meets_a_risen_floor(store: ReplayStore) -> None:
    """A record racing a prune: the window's early check passed, the store's add refuses."""
    window = ReplayWindow(store, max_age=MAX_AGE, skew=SKEW)
    check(window, 1, created=NOW - 10)
    store.prune(NOW)  # another process pruned in between
    assert reason_of(lambda: record(window, 1, created=NOW - 10)) is Reason.EXPIRED


def test_length_follows_adds_evictions_and_prunes(make_store: StoreFactory) -> None:
    store = make_store(capacity=3)
    for n in range(5):
        assert store.add(mid(n), NOW + n)
    assert len(store) == 3
    assert [store.contains(mid(n)) for n in range(5)] == [False, False, True, True, True]
    store.prune(NOW + 4)
    assert len(store) == 1


def test_sqlite_errors_become_transport_errors(tmp_path: Path) -> None:
    """A sqlite3 error never escapes the store (or open()) untranslated."""
    with pytest.raises(TransportError):
        SQLiteReplayStore(tmp_path / "missing-directory" / "replay.sqlite3")
    store = SQLiteReplayStore(tmp_path / "replay.sqlite3")
    store.close()
    with pytest.raises(TransportError) as caught:
        store.add(mid(1), NOW)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
