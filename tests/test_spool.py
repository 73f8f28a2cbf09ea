"""The local spool: routing, leases, settling, dead letters, durability, several processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from letterlock import TransportError, UsageError
from letterlock.transports import (
    Ack,
    Binding,
    DeadLetter,
    DeadLetterReason,
    LeaseLost,
    PullBroker,
    QueueStats,
    Retry,
    Spool,
    Unroutable,
    topic_matches,
)

REJECTED = DeadLetterReason.REJECTED
HANDLER_ERROR = DeadLetterReason.HANDLER_ERROR

T0 = 1_750_000_000.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


@pytest.fixture
def spool(path: Path) -> Iterator[Spool]:
    with Spool(path) as opened:
        yield opened


# topic patterns ------------------------------------------------------------------------

MATCHES = [
    ("payroll.eu", "payroll.eu", True),
    ("payroll.eu", "payroll.us", False),
    ("payroll.eu", "payroll.eu.bonus", False),
    ("payroll.*", "payroll.eu", True),
    ("payroll.*", "payroll", False),
    ("payroll.*", "payroll.eu.bonus", False),
    ("*.eu", "payroll.eu", True),
    ("*", "payroll", True),
    ("*", "payroll.eu", False),
    ("payroll.#", "payroll", True),  # '#' matches zero words
    ("payroll.#", "payroll.eu", True),
    ("payroll.#", "payroll.eu.bonus", True),
    ("payroll.#", "payrolls.eu", False),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#.eu", "eu", True),
    ("#.eu", "payroll.eu", True),
    ("#.eu", "payroll.eu.x", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y", False),
    ("#.#", "a", True),
    ("*.#", "a", True),
    ("#.*", "a", True),
    ("*.*.#", "a", False),
    ("a.*.c", "a..c", True),  # empty words are words
    ("a.b", "a.b.", False),
    ("*.*", ".", True),
    ("a*", "ab", False),  # wildcards are whole words only
    ("a*", "a*", True),
    ("a.#b", "a.x", False),
    ("Payroll.eu", "payroll.eu", False),  # case-sensitive
    ("zahlung.ü", "zahlung.ü", True),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCHES)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


def _reference(pattern: list[str], words: list[str]) -> bool:
    """The AMQP rule, written as plainly (and as slowly) as possible."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return _reference(rest, words) or (bool(words) and _reference(pattern, words[1:]))
    return bool(words) and head in ("*", words[0]) and _reference(rest, words[1:])


_word = st.sampled_from(["a", "b", ""])


@given(
    pattern=st.lists(st.one_of(_word, st.sampled_from(["*", "#"])), min_size=1, max_size=6),
    words=st.lists(_word, min_size=1, max_size=6),
)
def test_topic_matches_agrees_with_the_plain_rule(pattern: list[str], words: list[str]) -> None:
    expected = _reference(pattern, words)
    assert topic_matches(".".join(pattern), ".".join(words)) is expected


def test_topic_matching_is_not_exponential_in_hashes() -> None:
    pattern = ".".join(["#"] * 40 + ["never"])
    topic = ".".join(["w"] * 400)
    started = time.perf_counter()
    assert not topic_matches(pattern, topic)
    assert time.perf_counter() - started < 1.0


# publish, bind, get, ack ---------------------------------------------------------------


def test_publish_get_ack_in_order(spool: Spool) -> None:
    spool.bind("bob", "payroll.#")
    seqs = [spool.publish("payroll.eu", f"sealed {i}".encode(), now=T0) for i in range(3)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    got = []
    while (delivery := spool.get("bob", now=T0)) is not None:
        got.append((delivery.seq, delivery.topic, delivery.body, delivery.attempts))
        spool.ack(delivery.tag)
    assert got == [(s, "payroll.eu", f"sealed {i}".encode(), 1) for i, s in enumerate(seqs)]
    assert spool.stats("bob", now=T0) == QueueStats(ready=0, leased=0, delayed=0, dead=0)


def test_each_bound_queue_gets_one_copy(spool: Spool) -> None:
    spool.bind("bob", "payroll.#")
    spool.bind("bob", "payroll.*")  # two matching patterns, still one copy
    spool.bind("carol", "payroll.*")
    spool.bind("us-only", "payroll.us")
    seq = spool.publish("payroll.eu", b"x", now=T0)
    for queue in ("bob", "carol"):
        delivery = spool.get(queue, now=T0)
        assert delivery is not None
        assert delivery.seq == seq
        spool.ack(delivery.tag)
        assert spool.get(queue, now=T0) is None
    assert spool.get("us-only", now=T0) is None


def test_bindings_are_listed_and_removable(spool: Spool) -> None:
    spool.bind("bob", "payroll.#")
    spool.bind("bob", "payroll.#")
    spool.bind("carol", "payroll.*")
    assert spool.bindings() == [
        Binding(queue="bob", pattern="payroll.#"),
        Binding(queue="carol", pattern="payroll.*"),
    ]
    assert spool.unbind("carol", "payroll.*")
    assert not spool.unbind("carol", "payroll.*")
    with pytest.raises(Unroutable):
        spool.publish("x", b"")  # nothing bound to "x"


def test_unroutable_raises_unless_not_mandatory(spool: Spool, path: Path) -> None:
    spool.bind("bob", "payroll.#")
    with pytest.raises(Unroutable, match="orders"):
        spool.publish("orders", b"lost?", now=T0)
    assert isinstance(Unroutable("x"), TransportError)
    spool.publish("orders", b"dropped", now=T0, mandatory=False)
    assert _count(path, "messages") == 0


def test_sequence_numbers_never_repeat(spool: Spool) -> None:
    spool.bind("q", "#")
    first = spool.publish("a", b"1", now=T0)
    delivery = spool.get("q", now=T0)
    assert delivery is not None
    spool.ack(delivery.tag)
    assert spool.publish("a", b"2", now=T0) > first


def test_acked_bytes_are_deleted(spool: Spool, path: Path) -> None:
    spool.bind("bob", "#")
    spool.bind("carol", "#")
    spool.publish("a", b"sealed", now=T0)
    for queue in ("bob", "carol"):
        assert _count(path, "messages") == 1  # kept while a queue still holds it
        delivery = spool.get(queue, now=T0)
        assert delivery is not None
        spool.ack(delivery.tag)
    assert _count(path, "messages") == 0


# leases --------------------------------------------------------------------------------


def test_expired_lease_redelivers(spool: Spool) -> None:
    spool.bind("bob", "#")
    seq = spool.publish("a", b"sealed", now=T0)
    first = spool.get("bob", lease_seconds=10, now=T0)
    assert first is not None
    assert first.lease_expires == T0 + 10
    assert spool.get("bob", now=T0 + 9.9) is None  # leased: invisible to others
    assert spool.stats("bob", now=T0 + 5).leased == 1
    second = spool.get("bob", lease_seconds=10, now=T0 + 10)  # the consumer "crashed"
    assert second is not None
    assert (second.seq, second.attempts, second.body) == (seq, 2, b"sealed")
    assert second.tag != first.tag
    with pytest.raises(LeaseLost):
        spool.ack(first.tag)  # the stale tag cannot settle the new delivery
    spool.ack(second.tag)
    assert spool.get("bob", now=T0 + 100) is None


def test_expired_lease_can_still_be_acked_until_redelivered(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.publish("a", b"sealed", now=T0)
    delivery = spool.get("bob", lease_seconds=1, now=T0)
    assert delivery is not None
    spool.ack(delivery.tag)
    assert spool.get("bob", now=T0 + 5) is None


def test_touch_extends_a_lease(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.publish("a", b"sealed", now=T0)
    delivery = spool.get("bob", lease_seconds=10, now=T0)
    assert delivery is not None
    spool.touch(delivery.tag, lease_seconds=60, now=T0 + 5)
    assert spool.get("bob", now=T0 + 30) is None
    assert spool.get("bob", now=T0 + 65) is not None
    with pytest.raises(LeaseLost):
        spool.touch(delivery.tag, now=T0 + 65)


def test_settling_twice_raises(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.publish("a", b"sealed", now=T0)
    delivery = spool.get("bob", now=T0)
    assert delivery is not None
    spool.ack(delivery.tag)
    with pytest.raises(LeaseLost):
        spool.ack(delivery.tag)
    with pytest.raises(LeaseLost):
        spool.nack(delivery.tag, requeue=False, reason=REJECTED)
    with pytest.raises(LeaseLost):
        spool.ack("not-a-tag")


# nack and dead letters -----------------------------------------------------------------


def test_nack_requeue_redelivers_with_attempts_counted(spool: Spool) -> None:
    spool.bind("bob", "#")
    seq = spool.publish("a", b"sealed", now=T0)
    delivery = spool.get("bob", now=T0)
    assert delivery is not None
    spool.nack(delivery.tag, requeue=True, now=T0)
    again = spool.get("bob", now=T0)
    assert again is not None
    assert (again.seq, again.attempts) == (seq, 2)
    assert spool.dead_letters("bob") == []


def test_nack_requeue_with_delay(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.publish("a", b"sealed", now=T0)
    delivery = spool.get("bob", now=T0)
    assert delivery is not None
    spool.nack(delivery.tag, requeue=True, delay=30, now=T0)
    assert spool.stats("bob", now=T0 + 1) == QueueStats(ready=0, leased=0, delayed=1, dead=0)
    assert spool.get("bob", now=T0 + 29) is None
    assert spool.get("bob", now=T0 + 30) is not None


def test_nack_without_requeue_keeps_bytes_and_reason(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.bind("carol", "#")
    body = bytes(range(256)) * 3
    seq = spool.publish("payroll.eu", body, now=T0)
    delivery = spool.get("bob", now=T0 + 1)
    assert delivery is not None
    spool.nack(delivery.tag, requeue=False, reason=REJECTED, now=T0 + 2)
    assert spool.get("bob", now=T0 + 100) is None
    [dead] = spool.dead_letters("bob")
    assert (dead.queue, dead.seq, dead.topic, dead.body) == ("bob", seq, "payroll.eu", body)
    assert (dead.reason, dead.attempts, dead.published, dead.dead_at) == (
        "rejected", 1, T0, T0 + 2
    )  # fmt: skip
    assert spool.stats("bob").dead == 1
    assert spool.dead_letters("carol") == []
    assert spool.get("carol", now=T0) is not None  # carol's copy is untouched


def test_a_dead_letter_needs_a_reason_of_the_one_vocabulary(spool: Spool) -> None:
    spool.bind("bob", "#")
    spool.publish("a", b"x", now=T0)
    delivery = spool.get("bob", now=T0)
    assert delivery is not None
    with pytest.raises(UsageError, match="needs a reason"):
        spool.nack(delivery.tag, requeue=False)
    with pytest.raises(UsageError, match="rejected, handler_error, max_attempts"):
        spool.nack(delivery.tag, requeue=False, reason="bad_signature")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no reason"):
        spool.nack(delivery.tag, requeue=True, reason=REJECTED)
    assert spool.stats("bob", now=T0).leased == 1  # none of that settled anything
    spool.nack(delivery.tag, requeue=False, reason=DeadLetterReason.MAX_ATTEMPTS)
    assert [d.reason for d in spool.dead_letters("bob")] == ["max_attempts"]


def test_redrive_and_purge(spool: Spool, path: Path) -> None:
    spool.bind("bob", "#")
    for body in (b"1", b"2"):
        spool.publish("a", body, now=T0)
        delivery = spool.get("bob", now=T0)
        assert delivery is not None
        spool.nack(delivery.tag, requeue=False, reason=REJECTED)
    assert [d.body for d in spool.dead_letters("bob", limit=1)] == [b"1"]
    assert spool.redrive("bob", now=T0) == 2
    assert spool.dead_letters("bob") == []
    again = spool.get("bob", now=T0)
    assert again is not None
    assert (again.body, again.attempts) == (b"1", 1)
    spool.nack(again.tag, requeue=False, reason=HANDLER_ERROR)
    assert spool.purge_dead_letters("bob") == 1
    assert _count(path, "messages") == 1  # b"2" is still queued


# the broker seam -----------------------------------------------------------------------


def test_the_spool_on_the_broker_seam(spool: Spool) -> None:
    """deliveries leases lazily; settle is ack or nack; extend_lease is touch."""
    assert isinstance(spool, PullBroker)
    spool.bind("bob", "#")
    for body in (b"ack", b"retry", b"dead", b"slow"):
        spool.publish("a", body, now=T0)
    deliveries = spool.deliveries("bob", now=T0)
    ack = next(deliveries)
    assert spool.stats("bob", now=T0) == QueueStats(ready=3, leased=1, delayed=0, dead=0)
    retry, dead, slow = next(deliveries), next(deliveries), next(deliveries)
    assert next(deliveries, None) is None
    assert (ack.attempts, ack.ref, ack.lease_expires) == (1, str(ack.seq), T0 + 30)
    spool.settle(ack, Ack(), now=T0)
    spool.settle(retry, Retry(delay=5), now=T0)
    spool.settle(dead, DeadLetter(reason=HANDLER_ERROR), now=T0)
    spool.extend_lease(slow, now=T0 + 20)  # leased until T0 + 50
    assert spool.stats("bob", now=T0 + 40) == QueueStats(ready=1, leased=1, delayed=0, dead=1)
    assert [d.reason for d in spool.dead_letters("bob")] == [HANDLER_ERROR]
    with pytest.raises(LeaseLost):
        spool.settle(ack, Ack(), now=T0)


# several handles, several processes, reopening -----------------------------------------


def _drain(spool: Spool, queue: str, seen: list[int], start: threading.Barrier) -> None:
    start.wait()
    while (delivery := spool.get(queue)) is not None:
        seen.append(delivery.seq)
        time.sleep(0.001)  # "work": lets the other handle take the next message meanwhile
        spool.ack(delivery.tag)


def test_two_handles_never_deliver_one_message_twice(path: Path) -> None:
    with Spool(path) as first, Spool(path) as second:
        first.bind("work", "#")
        published = {second.publish("jobs", b"%d" % i) for i in range(200)}
        seen: list[list[int]] = [[], []]
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=_drain, args=(handle, "work", bucket, start))
            for handle, bucket in zip((first, second), seen, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    everything = seen[0] + seen[1]
    assert sorted(everything) == sorted(published)  # each exactly once
    assert seen[0]
    assert seen[1]


_WORKER = """
import glob, os, sys, time
from letterlock.transports import Spool
path = sys.argv[1]
open(f"{path}.ready.{os.getpid()}", "w").close()
deadline = time.monotonic() + 30
while len(glob.glob(f"{path}.ready.*")) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)  # start together, so that the two really compete
with Spool(path) as spool:
    while (d := spool.get("work")) is not None:
        print(d.seq, flush=True)
        time.sleep(0.001)
        spool.ack(d.tag)
"""


def test_two_processes_never_deliver_one_message_twice(path: Path) -> None:
    with Spool(path) as spool:
        spool.bind("work", "#")
        published = {spool.publish("jobs", b"x" * 100) for _ in range(400)}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(path)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[0].split() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    seen = [int(seq) for output in outputs for seq in output]
    assert sorted(seen) == sorted(published)  # each exactly once
    assert all(outputs)  # both processes took part


def test_everything_survives_reopening(path: Path) -> None:
    with Spool(path) as spool:
        spool.bind("bob", "payroll.#")
        spool.publish("payroll.eu", b"queued", now=T0)
        spool.publish("payroll.eu", b"refused", now=T0)
        first = spool.get("bob", now=T0)
        leased = spool.get("bob", lease_seconds=60, now=T0)
        assert first is not None
        assert leased is not None
        spool.nack(first.tag, requeue=False, reason=REJECTED, now=T0)
    with Spool(path) as spool:
        assert spool.bindings() == [Binding(queue="bob", pattern="payroll.#")]
        assert [d.body for d in spool.dead_letters("bob")] == [b"queued"]
        assert spool.get("bob", now=T0 + 59) is None  # the lease is on disk too
        spool.ack(leased.tag)  # and its tag still settles it
        assert spool.stats("bob", now=T0) == QueueStats(ready=0, leased=0, delayed=0, dead=1)


# the edges: files, validation, translated errors ---------------------------------------


def test_new_spool_file_is_private(path: Path) -> None:
    Spool(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_refuses_a_database_that_is_not_a_spool(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    db.close()
    with pytest.raises(TransportError, match="not a spool"):
        Spool(path)


def test_refuses_a_newer_schema(path: Path) -> None:
    Spool(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(TransportError, match="unsupported spool"):
        Spool(path)


def test_sqlite_errors_become_transport_errors(path: Path, tmp_path: Path) -> None:
    path.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(TransportError) as caught:
        Spool(path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(TransportError):
        Spool(tmp_path / "missing-dir" / "spool.db")
    spool = Spool(tmp_path / "ok.db")
    spool.close()
    with pytest.raises(TransportError) as closed:
        spool.publish("a", b"x")
    assert isinstance(closed.value.__cause__, sqlite3.ProgrammingError)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.publish("", b"x"), "topic"),
        (lambda s: s.publish("a" * 1025, b"x"), "topic"),
        (lambda s: s.publish("\ud800", b"x"), "UTF-8"),
        (lambda s: s.bind("", "a"), "queue"),
        (lambda s: s.bind("q\n", "a"), "queue"),
        (lambda s: s.bind("q", ""), "pattern"),
        (lambda s: s.get("q", lease_seconds=0), "lease"),
        (lambda s: s.touch("t", lease_seconds=-1), "lease"),
        (lambda s: s.nack("t", requeue=True, delay=-1), "delay"),
        (lambda s: s.nack("t", requeue=False), "reason"),
    ],
)
def test_caller_mistakes_are_usage_errors(
    spool: Spool, call: Callable[[Spool], object], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        call(spool)


def test_the_spool_lease_is_its_own_configuration(path: Path) -> None:
    with pytest.raises(UsageError, match="lease"):
        Spool(path, lease_seconds=0)
    with Spool(path, lease_seconds=10) as spool:
        spool.bind("bob", "#")
        spool.publish("a", b"sealed", now=T0)
        delivery = spool.get("bob", now=T0)
        assert delivery is not None
        assert delivery.lease_expires == T0 + 10  # get() without a lease of its own
        spool.touch(delivery.tag, now=T0 + 5)
        assert spool.get("bob", now=T0 + 14) is None
        assert spool.get("bob", now=T0 + 15) is not None


def test_a_spool_refuses_to_cross_fork(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getpid", lambda: -1)
    with pytest.raises(UsageError, match="fork"):
        spool.bind("q", "#")


def _count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(count)
    finally:
        db.close()
