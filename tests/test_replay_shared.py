"""Replay stores shared by the processes of a consumer group: SQLite, Redis and PostgreSQL.

The group property: a message delivered to two consumers is handled once. Each test starts
separate processes (``fork``), each opening its own handle on one shared record (a file, a
Redis prefix, a PostgreSQL schema), as consumers on different hosts would; what they return
goes back over a pipe. Store times are arguments (``now``), so a claim's lease passes without
sleeping.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import letterlock
from letterlock import (
    AddResult,
    Identity,
    Opener,
    Pins,
    ReplayStore,
    ReplayWindow,
    Suite,
    UsageError,
)
from letterlock.stores import SQLiteReplayStore
from letterlock.transports import SealedConsumer, Spool
from services import SERVICES, require
from test_replay import drop_postgres_schema, drop_redis_prefix, shared_name

NOW = 10_000
LEASE = 60
A = b"\xa1" * 32
M = b"\x3a" * 32
IDS = 2000
HANDLING = 0.0005  # seconds a "handler" takes per message (see _consume)

_FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class Shared:
    """Where one shared record lives; each process opens its own handle with :meth:`open`."""

    kind: str
    where: str
    capacity: int = 1_000_000

    def open(self) -> ReplayStore:
        if self.kind == "sqlite":
            return SQLiteReplayStore(self.where, capacity=self.capacity)
        if self.kind == "redis":
            from letterlock.stores.redis import RedisReplayStore

            url = SERVICES["redis"].url
            return RedisReplayStore(url, prefix=self.where, capacity=self.capacity)
        from letterlock.stores.postgres import PostgresReplayStore

        url = SERVICES["postgres"].url
        return PostgresReplayStore(url, schema=self.where, capacity=self.capacity)


def _close(store: ReplayStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Shared]]:
    """Makes shared records of one kind (dropped from the server afterwards)."""
    kind: str = request.param
    made: list[str] = []
    if kind != "sqlite":
        require(kind)

    def make(capacity: int = 1_000_000) -> Shared:
        where = shared_name(str(len(made)), tmp_path)
        made.append(where)
        if kind == "sqlite":
            where = str(tmp_path / f"{where}.sqlite3")
        return Shared(kind, where, capacity)

    yield make
    for where in made:
        if kind == "redis":
            drop_redis_prefix(where)
        elif kind == "postgres":
            drop_postgres_schema(where)


Call = tuple[Callable[..., object], tuple[object, ...]]


def _in_processes(*calls: Call) -> list[object]:
    """Run each ``(function, args)`` in a process of its own, all released together; what each
    returned, in order (an exception in one fails the test)."""
    barrier = _FORK.Barrier(len(calls))
    pipes = [_FORK.Pipe(duplex=False) for _ in calls]
    workers = [
        _FORK.Process(target=_run, args=(target, barrier, send, args))
        for (_, send), (target, args) in zip(pipes, calls, strict=True)
    ]
    for worker in workers:
        worker.start()
    results = [receive.recv() for receive, _ in pipes]
    for worker in workers:
        worker.join(timeout=60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    assert [worker.exitcode for worker in workers] == [0] * len(calls)
    return results


def _run(
    target: Callable[..., object],
    barrier: multiprocessing.synchronize.Barrier,
    send: multiprocessing.connection.Connection,
    args: tuple[object, ...],
) -> None:
    try:
        barrier.wait(timeout=30)
        send.send(target(*args))
    except BaseException as exc:
        send.send(exc)
        os._exit(1)


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


# --------------------------------------------------------------------------- the group property


def _consume(shared: Shared, holder: bytes, order: list[int]) -> list[int]:
    """One consumer: claim each delivered id, "handle" it, finish; the ids it handled.

    The handling takes :data:`HANDLING` seconds, as a real handler takes time: a consumer that
    claimed in a tight loop could hold SQLite's write lock so nearly all the time that the
    other one's busy wait never got in before the run was over (a CI run once saw one consumer
    handle all 2000), and the test would no longer race two consumers at all.
    """
    store = shared.open()
    handled = []
    try:
        for n in order:
            result = store.add(A, mid(n), NOW, now=NOW, holder=holder, until=NOW + LEASE)
            if result is AddResult.ADDED:
                handled.append(n)
                time.sleep(HANDLING)
                assert store.finish(A, mid(n), holder)
            else:
                assert result in {AddResult.BUSY, AddResult.SEEN}, result
    finally:
        _close(store)
    return handled


def test_two_processes_handle_each_of_2000_messages_exactly_once(
    shared: Callable[..., Shared],
) -> None:
    """Every id delivered to both consumers (one in order, one in reverse, so they meet in the
    middle and race there): each is handled by exactly one, and every one is handled."""
    record = shared()
    forward = list(range(IDS))
    first, second = _in_processes(
        (_consume, (record, b"consumer-one", forward)),
        (_consume, (record, b"consumer-two", forward[::-1])),
    )
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert not set(first) & set(second)
    assert sorted(first + second) == forward
    assert first
    assert second  # both took part
    store = record.open()
    try:
        assert len(store) == IDS
        assert all(store.contains(A, mid(n)) for n in (0, IDS // 2, IDS - 1))
    finally:
        _close(store)


# --------------------------------------------------------------------------- a holder killed


def _claim_and_hang(shared: Shared, ready: multiprocessing.connection.Connection) -> None:
    store = shared.open()
    result = store.add(A, mid(1), NOW, now=NOW, holder=b"dies-in-handler", until=NOW + LEASE)
    ready.send(result)
    signal.pause()  # "in the handler" until killed


def test_a_claim_of_a_holder_killed_in_its_handler_is_taken_over_after_until(
    shared: Callable[..., Shared],
) -> None:
    record = shared()
    receive, send = _FORK.Pipe(duplex=False)
    holder = _FORK.Process(target=_claim_and_hang, args=(record, send))
    holder.start()
    assert receive.poll(30)
    assert receive.recv() is AddResult.ADDED
    os.kill(holder.pid or 0, signal.SIGKILL)
    holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL
    store = record.open()
    try:
        heir = b"takes-it-over"
        before = store.add(A, mid(1), NOW, now=NOW + LEASE - 1, holder=heir, until=NOW + 2 * LEASE)
        assert before is AddResult.BUSY  # the claim holds until its time, dead holder or not
        after = store.add(A, mid(1), NOW, now=NOW + LEASE, holder=heir, until=NOW + 2 * LEASE)
        assert after is AddResult.TAKEN_OVER
        assert not store.finish(A, mid(1), b"dies-in-handler")
        assert store.finish(A, mid(1), heir)
        assert store.contains(A, mid(1))
        assert len(store) == 1
    finally:
        _close(store)


# --------------------------------------------------------------------------- clock and floors


def _add_many(shared: Shared, sender: bytes, ids: range, created: int, step: int = 0) -> list[str]:
    """Add ``ids`` of ``sender``, the n-th created at ``created + n * step``; the results."""
    store = shared.open()
    try:
        return [
            store.add(sender, mid(n), created + i * step, now=NOW).value for i, n in enumerate(ids)
        ]
    finally:
        _close(store)


def test_concurrent_future_floods_fill_one_senders_record_and_never_raise_a_floor(
    shared: Callable[..., Shared],
) -> None:
    """Two processes flood mallory's record (capacity 8) with ids dated after the clock while a
    third records alice's: exactly 8 of mallory's are recorded, the rest are FULL; no floor
    moves (none may pass the clock), and alice is never refused."""
    record = shared(capacity=8)
    flood_one, flood_two, genuine = _in_processes(
        (_add_many, (record, M, range(50), NOW + 300)),
        (_add_many, (record, M, range(1000, 1050), NOW + 300)),
        (_add_many, (record, A, range(50), NOW - 60, 1)),
    )
    assert isinstance(flood_one, list)
    assert isinstance(flood_two, list)
    floods = flood_one + flood_two
    assert floods.count("added") == 8
    assert floods.count("full") == 92
    assert genuine == ["added"] * 50
    store = record.open()
    try:
        assert store.floor(M) == store.floor() == -1
        assert store.floor(A) == NOW - 60 + 41  # she evicted her own 42 oldest, nobody else's
        assert len(store) == 8 + 8
    finally:
        _close(store)


def _prune_soon(shared: Shared, cutoff: int) -> None:
    store = shared.open()
    try:
        time.sleep(0.02)  # most likely while the other process is adding
        store.prune(cutoff)
    finally:
        _close(store)


def test_an_id_below_a_concurrent_prunes_cutoff_is_pruned_or_refused_never_kept(
    shared: Callable[..., Shared],
) -> None:
    """One process records ids just below the cutoff while another prunes at it: each id was
    recorded before the prune (and is gone) or refused after it; once refused, always refused."""
    record = shared()
    cutoff = NOW
    results, _ = _in_processes(
        (_add_many, (record, A, range(400), cutoff - 1)), (_prune_soon, (record, cutoff))
    )
    assert isinstance(results, list)
    first_refusal = results.index("below_floor") if "below_floor" in results else len(results)
    assert set(results[:first_refusal]) <= {"added"}
    assert set(results[first_refusal:]) <= {"below_floor"}
    store = record.open()
    try:
        assert not any(store.contains(A, mid(n)) for n in range(400))
        assert store.floor(A) == cutoff - 1
        assert len(store) == 0
    finally:
        _close(store)


# --------------------------------------------------------------------------- fork


def _use_inherited(store: ReplayStore) -> str:
    try:
        return store.add(A, mid(2), NOW, now=NOW).value
    except UsageError as exc:
        return f"refused: {exc}"


def test_a_store_opened_before_fork(shared: Callable[..., Shared]) -> None:
    """A child given the parent's handle: the SQLite store refuses (open it again there); the
    Redis and PostgreSQL stores open a connection of the child's own, and the parent's keeps
    working."""
    record = shared()
    store = record.open()
    try:
        assert store.add(A, mid(1), NOW, now=NOW) is AddResult.ADDED
        (in_child,) = _in_processes((_use_inherited, (store,)))
        if record.kind == "sqlite":
            assert isinstance(in_child, str)
            assert in_child.startswith("refused: ")
            assert "fork" in in_child
        else:
            assert in_child == "added"
            assert store.contains(A, mid(2))
        assert store.add(A, mid(3), NOW, now=NOW) is AddResult.ADDED
        assert len(store) == (2 if record.kind == "sqlite" else 3)
    finally:
        _close(store)


# --------------------------------------------------------------------------- everything at once


def _claims_settled(shared: Shared, ids: range) -> int:
    """Claim each id; release the even ones (a failed handler), finish the odd ones."""
    store = shared.open()
    settled = 0
    try:
        for n in ids:
            created = NOW + n % 300
            result = store.add(A, mid(n), created, now=NOW + 1000, holder=b"h", until=NOW + 2000)
            if result is AddResult.ADDED:
                settle = store.release if n % 2 == 0 else store.finish
                settled += settle(A, mid(n), b"h")
    finally:
        _close(store)
    return settled


def _prunes(shared: Shared, cutoffs: range) -> None:
    store = shared.open()
    try:
        for cutoff in cutoffs:
            store.prune(cutoff)
    finally:
        _close(store)


def test_claims_settlements_evictions_and_prunes_at_once_keep_the_count(
    shared: Callable[..., Shared],
) -> None:
    """Three processes on one record of capacity 50: claims released or finished, plain adds
    that evict, prunes. None fails (no deadlock, no lost update), and afterwards the record's
    count is the number of ids it holds, within the capacity."""
    record = shared(capacity=50)
    _in_processes(
        (_claims_settled, (record, range(300))),
        (_add_many, (record, A, range(1000, 1300), NOW, 1)),
        (_prunes, (record, range(NOW - 50, NOW + 250, 10))),
    )
    store = record.open()
    try:
        held = sum(store.contains(A, mid(n)) for n in (*range(300), *range(1000, 1300)))
        assert len(store) == held
        assert 0 < held <= 50
    finally:
        _close(store)


# --------------------------------------------------------------------------- consumers


TOPIC = "payroll.eu"
MESSAGES = 200


def _consumer_process(spool_path: Path, shared: Shared, bob: Identity, pins: Pins) -> list[bytes]:
    """One consumer of the group: its own spool handle, opener and store handle."""
    store = shared.open()
    handled: list[bytes] = []
    try:
        with Spool(spool_path) as spool:
            opener = Opener(bob, trust=pins, replay=ReplayWindow(store))
            consumer = SealedConsumer(spool, "bob", opener=opener, topics=TOPIC)
            consumer.poll(lambda opened: handled.append(opened.payload))
    finally:
        _close(store)
    return handled


def test_two_consumers_on_a_duplicating_broker_handle_each_message_once(
    shared: Callable[..., Shared], tmp_path: Path
) -> None:
    """The group property end to end: a broker delivers every message twice (as after a
    redelivery); two consumer processes share one replay record, and each message reaches
    exactly one handler once."""
    alice, bob = Identity.generate(Suite.P256), Identity.generate(Suite.P256)
    pins = Pins()
    pins.pin("alice", alice.public)
    spool_path = tmp_path / "spool.db"
    with Spool(spool_path) as spool:
        spool.bind("bob", "payroll.#")
        for n in range(MESSAGES):
            sealed = letterlock.seal(
                b"payslip %d" % n, sender=alice, recipients=[bob.public], topic=TOPIC
            )
            spool.publish(TOPIC, sealed)
            spool.publish(TOPIC, sealed)  # the duplicate
    record = shared()
    first, second = _in_processes(
        (_consumer_process, (spool_path, record, bob, pins)),
        (_consumer_process, (spool_path, record, bob, pins)),
    )
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert sorted(first + second) == sorted(b"payslip %d" % n for n in range(MESSAGES))
    with Spool(spool_path) as spool:
        stats = spool.stats("bob")
    assert (stats.ready, stats.leased) == (0, 0)
    assert stats.dead + stats.delayed == MESSAGES  # each duplicate: replayed, or busy for later
