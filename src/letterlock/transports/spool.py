"""The local spool: a durable store-and-forward broker in one SQLite file, needing no server.

It plays the untrusted broker: it only ever holds sealed bytes and the topic they were published
on. Publishing copies a message into every queue bound to a matching topic pattern (AMQP topic
exchange rules: words split on ``.``, ``*`` is exactly one word, ``#`` is zero or more). A consumer
leases one delivery at a time and settles it:

==============================  =========================================================
call                            effect on the delivery
==============================  =========================================================
``get``                         ready -> leased until ``now + lease_seconds``; attempts + 1
lease runs out                  leased -> ready again (crash safety: at-least-once)
``ack(tag)``                    leased -> gone
``nack(tag, requeue=True)``     leased -> ready at ``now + delay``
``nack(tag, requeue=False)``    leased -> dead letter, bytes and reason kept
``touch(tag)``                  leased until ``now + lease_seconds`` (a heartbeat)
``redrive(queue)``              dead letter -> ready, attempts reset
==============================  =========================================================

A tag is valid until its message is delivered again; settling a stale tag raises
:class:`~letterlock.transports.base.LeaseLost`. A dead letter's reason is a
:class:`~letterlock.transports.decide.DeadLetterReason`, the one word a broker is told.

The spool is the first adapter on the broker seam (:mod:`letterlock.transports.base`): a
:class:`~letterlock.transports.base.PullBroker` whose ``deliveries`` leases with ``get``,
whose ``settle`` acks or nacks, and whose ``extend_lease`` touches, each for the spool's
``lease_seconds``.

Every write is one ``BEGIN IMMEDIATE`` transaction in WAL mode with ``synchronous=FULL``, so
separate processes on one host can share a spool file and a committed call survives a crash.
The file is opened as :mod:`letterlock._sqlite` opens all of letterlock's files: created with
mode 0600, refused (and left untouched) unless it is a regular file holding a spool or nothing.
Open one :class:`Spool` per process (it refuses to be used after ``fork``). Every ``sqlite3``
error leaves as :class:`letterlock.TransportError`.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from letterlock._sqlite import Database, Schema
from letterlock.core.topics import Dialect, Topics, topic_matches
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    QueueStats,
    Subscription,
    Unroutable,
)
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = [
    "Binding",
    "QueueStats",
    "Spool",
    "SpoolDelivery",
    "topic_matches",
]

MAX_TOPIC_BYTES: Final = 1024
MAX_QUEUE_NAME: Final = 255
_MIN_PAUSE: Final = 0.01  # a subscription's first wait on an empty queue, in seconds
_MAX_PAUSE: Final = 0.2  # and its longest

_TABLES = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body BLOB NOT NULL,
    published REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
    queue TEXT NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (queue, pattern)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES messages (seq),
    attempts INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,
    lease TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (queue, id);
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES messages (seq),
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters (queue, id);
CREATE INDEX IF NOT EXISTS dead_letters_seq ON dead_letters (seq);
"""

SCHEMA: Final = Schema(
    name="spool",
    error=TransportError,
    application_id=0x4C4C5350,  # "LLSP"
    version=1,
    statements=tuple(s.strip() for s in _TABLES.split(";") if s.strip()),
    pragmas=("foreign_keys=ON",),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    queue: str
    pattern: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolDelivery(Delivery):
    """One leased copy of a message; settle it with its ``tag``."""

    attempts: int  # the spool always counts
    seq: int
    published: float
    lease_expires: float


def _check_queue(queue: str) -> None:
    if not isinstance(queue, str) or not 0 < len(queue) <= MAX_QUEUE_NAME:
        raise UsageError(f"queue name must be 1 to {MAX_QUEUE_NAME} characters")
    if not queue.isprintable():
        raise UsageError("queue name must be printable")


def _check_topic(topic: str, what: str = "topic") -> None:
    if not isinstance(topic, str) or not topic:
        raise UsageError(f"{what} must be a non-empty string")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not encodable as UTF-8") from None
    if size > MAX_TOPIC_BYTES:
        raise UsageError(f"{what} is longer than {MAX_TOPIC_BYTES} bytes")


def _check_lease(lease_seconds: float) -> None:
    if not lease_seconds > 0:
        raise UsageError("lease_seconds must be positive")


def _clock(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _dead_letter_reason(reason: str | None) -> DeadLetterReason:
    if reason is None:
        raise UsageError("a dead letter needs a reason (a DeadLetterReason)")
    try:
        return DeadLetterReason(reason)
    except ValueError:
        words = ", ".join(r.value for r in DeadLetterReason)
        raise UsageError(f"a dead letter's reason is one of {words}, not {reason!r}") from None


class Spool:
    """A broker in a SQLite file: topic bindings, leased deliveries, dead letters."""

    def __init__(
        self, path: str | Path, *, timeout: float = 30.0, lease_seconds: float = 30.0
    ) -> None:
        """Open (creating, mode 0600) the spool at ``path``; wait ``timeout`` s for locks.

        ``lease_seconds`` is how long a delivery stays a consumer's (``get`` without its own,
        ``deliveries``, ``extend_lease``): a handler slower than that must extend its lease.
        """
        _check_lease(lease_seconds)
        self.lease_seconds = lease_seconds
        self._database = Database(path, SCHEMA, timeout=timeout)
        self.path = self._database.path

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # routing ----------------------------------------------------------------------------

    def bind(self, queue: str, pattern: str) -> None:
        """Copy every message whose topic matches ``pattern`` into ``queue`` from now on."""
        _check_queue(queue)
        _check_topic(pattern, "pattern")
        with self._database.transaction() as db:
            db.execute("INSERT OR IGNORE INTO bindings VALUES (?, ?)", (queue, pattern))

    def unbind(self, queue: str, pattern: str) -> bool:
        """Remove a binding; False if there was none. Messages already queued stay."""
        with self._database.transaction() as db:
            cursor = db.execute(
                "DELETE FROM bindings WHERE queue = ? AND pattern = ?", (queue, pattern)
            )
            return cursor.rowcount == 1

    def bindings(self) -> list[Binding]:
        with self._database.read() as db:
            rows = db.execute("SELECT queue, pattern FROM bindings ORDER BY queue, pattern")
            return [Binding(queue=q, pattern=p) for q, p in rows]

    def publish(
        self,
        topic: str,
        body: bytes | bytearray | memoryview,
        *,
        now: float | None = None,
        mandatory: bool = True,
    ) -> int:
        """Store ``body`` once per matching queue; return its sequence number (increasing).

        With no matching queue, raise :class:`Unroutable`; ``mandatory=False`` drops it instead,
        as an AMQP exchange does, and still returns the number it would have had.
        """
        _check_topic(topic)
        data = bytes(body)
        with self._database.transaction() as db:
            seq = db.execute(
                "INSERT INTO messages (topic, body, published) VALUES (?, ?, ?)",
                (topic, data, _clock(now)),
            ).lastrowid
            assert seq is not None
            rows = db.execute("SELECT queue, pattern FROM bindings").fetchall()
            queues = sorted({q for q, p in rows if topic_matches(p, topic)})
            db.executemany(
                "INSERT INTO deliveries (queue, seq, visible_at) VALUES (?, ?, 0)",
                [(q, seq) for q in queues],
            )
            if not queues:
                if mandatory:
                    raise Unroutable(f"no queue is bound to a pattern matching {topic!r}")
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            return seq

    # consuming --------------------------------------------------------------------------

    def get(
        self, queue: str, *, lease_seconds: float | None = None, now: float | None = None
    ) -> SpoolDelivery | None:
        """Lease the oldest ready message of ``queue``, or None if there is none."""
        lease_seconds = self.lease_seconds if lease_seconds is None else lease_seconds
        _check_lease(lease_seconds)
        at = _clock(now)
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT d.id, d.seq, d.attempts, m.topic, m.body, m.published "
                "FROM deliveries d JOIN messages m USING (seq) "
                "WHERE d.queue = ? AND d.visible_at <= ? ORDER BY d.id LIMIT 1",
                (queue, at),
            ).fetchone()
            if row is None:
                return None
            delivery_id, seq, attempts, topic, body, published = row
            tag = secrets.token_hex(16)
            db.execute(
                "UPDATE deliveries SET lease = ?, visible_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (tag, at + lease_seconds, delivery_id),
            )
        return SpoolDelivery(
            tag=tag,
            queue=queue,
            ref=str(seq),
            seq=seq,
            topic=topic,
            body=body,
            attempts=attempts + 1,
            published=published,
            lease_expires=at + lease_seconds,
        )

    def _leased(self, db: sqlite3.Connection, tag: str) -> tuple[int, str, int, int]:
        row = db.execute(
            "SELECT id, queue, seq, attempts FROM deliveries WHERE lease = ?", (tag,)
        ).fetchone()
        if row is None:
            raise LeaseLost("this delivery was already settled or has been delivered again")
        return row  # type: ignore[no-any-return]

    def _forget_if_unused(self, db: sqlite3.Connection, seq: int) -> None:
        db.execute(
            "DELETE FROM messages WHERE seq = ?1 "
            "AND NOT EXISTS (SELECT 1 FROM deliveries WHERE seq = ?1) "
            "AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE seq = ?1)",
            (seq,),
        )

    def ack(self, tag: str) -> None:
        """The consumer is done with the message: remove it from the queue."""
        with self._database.transaction() as db:
            delivery_id, _queue, seq, _attempts = self._leased(db, tag)
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
            self._forget_if_unused(db, seq)

    def nack(
        self,
        tag: str,
        *,
        requeue: bool,
        reason: DeadLetterReason | None = None,
        delay: float = 0.0,
        now: float | None = None,
    ) -> None:
        """Give the message back: ready again after ``delay`` s, or a dead letter with ``reason``.

        A dead letter keeps the exact bytes; nothing a consumer refuses is dropped silently,
        and nothing is dead-lettered without a :class:`DeadLetterReason`.
        """
        if delay < 0:
            raise UsageError("delay must not be negative")
        if requeue and reason is not None:
            raise UsageError("a requeued delivery is no dead letter: it takes no reason")
        if not requeue:
            reason = _dead_letter_reason(reason)
        at = _clock(now)
        with self._database.transaction() as db:
            delivery_id, queue, seq, attempts = self._leased(db, tag)
            if requeue:
                db.execute(
                    "UPDATE deliveries SET lease = NULL, visible_at = ? WHERE id = ?",
                    (at + delay, delivery_id),
                )
                return
            db.execute(
                "INSERT INTO dead_letters (queue, seq, attempts, reason, dead_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (queue, seq, attempts, reason, at),
            )
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def touch(
        self, tag: str, *, lease_seconds: float | None = None, now: float | None = None
    ) -> None:
        """Extend a lease for a slow handler (a heartbeat); raises LeaseLost if it is gone."""
        lease_seconds = self.lease_seconds if lease_seconds is None else lease_seconds
        _check_lease(lease_seconds)
        with self._database.transaction() as db:
            delivery_id, _queue, _seq, _attempts = self._leased(db, tag)
            db.execute(
                "UPDATE deliveries SET visible_at = ? WHERE id = ?",
                (_clock(now) + lease_seconds, delivery_id),
            )

    # the broker seam (letterlock.transports.base.PullBroker) ------------------------------

    def deliveries(self, queue: str, *, now: float | None = None) -> Iterator[SpoolDelivery]:
        """Lease the ready deliveries of ``queue`` one at a time (``get``), until none is ready."""
        while (delivery := self.get(queue, now=now)) is not None:
            yield delivery

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, requeue after the retry's delay, or dead-letter with the dead letter's reason."""
        match settlement:
            case Ack():
                self.ack(delivery.tag)
            case Retry(delay=delay):
                self.nack(delivery.tag, requeue=True, delay=delay, now=now)
            case DeadLetter(reason=reason):
                self.nack(delivery.tag, requeue=False, reason=reason, now=now)

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """``touch``: the delivery stays leased for another ``lease_seconds``."""
        self.touch(delivery.tag, now=now)

    # dead letters and inspection --------------------------------------------------------

    def dead_letters(self, queue: str, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """The dead letters of ``queue``, oldest first."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT d.seq, m.topic, m.body, d.attempts, d.reason, m.published, d.dead_at "
                "FROM dead_letters d JOIN messages m USING (seq) "
                "WHERE d.queue = ? ORDER BY d.id LIMIT ?",
                (queue, -1 if limit is None else limit),
            ).fetchall()
        return [
            DeadLetterRecord(
                queue=queue, seq=seq, topic=topic, body=body, attempts=attempts,
                reason=reason, published=published, dead_at=dead_at,
            )
            for seq, topic, body, attempts, reason, published, dead_at in rows
        ]  # fmt: skip

    def redrive(self, queue: str, *, now: float | None = None) -> int:
        """Move every dead letter of ``queue`` back into it (attempts reset); return how many.

        Useful after fixing a cause outside the message (a missing pin, a clock). A message
        whose handler raised released its claim, so it is handled afresh; a message refused as
        a replay (its id handled already) is refused as ``replayed`` again.
        """
        with self._database.transaction() as db:
            cursor = db.execute(
                "INSERT INTO deliveries (queue, seq, visible_at) "
                "SELECT queue, seq, ? FROM dead_letters WHERE queue = ? ORDER BY id",
                (_clock(now), queue),
            )
            db.execute("DELETE FROM dead_letters WHERE queue = ?", (queue,))
            return cursor.rowcount

    # by URL (letterlock.transports.base.Endpoint) ------------------------------------------

    #: Spool bindings are AMQP topic patterns (``.``, ``*``, ``#``).
    dialect: Final = Dialect.AMQP

    @classmethod
    def from_url(cls, url: str) -> Spool:
        """``spool:///absolute/path.db`` or ``spool:relative/path.db``, optionally with
        ``?lease=SECONDS`` (``lease_seconds``, as for every broker URL)."""
        parts = urlsplit(url)
        if parts.scheme != "spool" or parts.netloc or parts.fragment:
            raise UsageError(f"a spool URL is spool:///path/to/file.db, not {url!r}")
        if not parts.path:
            raise UsageError("a spool URL names its file: spool:///path/to/file.db")
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(options) - {"lease"})
        if unknown or any(len(values) != 1 for values in options.values()):
            raise UsageError(f"a spool URL takes one option, ?lease=SECONDS, not {parts.query!r}")
        if "lease" not in options:
            return cls(unquote(parts.path))
        try:
            lease = float(options["lease"][0])
        except ValueError:
            lease = math.nan
        if not (math.isfinite(lease) and lease > 0):
            raise UsageError("a spool URL's ?lease= is a positive number of seconds")
        return cls(unquote(parts.path), lease_seconds=lease)

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        """Bind the queue ``group`` to each of ``topics`` (AMQP patterns) and read from it."""
        if topics.dialect is not Dialect.AMQP:
            raise UsageError("spool patterns are AMQP patterns ('.', '*' and '#')")
        for pattern in topics.patterns:
            self.bind(group, pattern)
        return _SpoolSubscription(self, group)

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue`` for good; return how many."""
        with self._database.transaction() as db:
            rows = db.execute("SELECT seq FROM dead_letters WHERE queue = ?", (queue,))
            seqs = [seq for (seq,) in rows.fetchall()]
            db.execute("DELETE FROM dead_letters WHERE queue = ?", (queue,))
            for seq in seqs:
                self._forget_if_unused(db, seq)
            return len(seqs)

    def stats(self, queue: str, *, now: float | None = None) -> QueueStats:
        at = _clock(now)
        with self._database.read() as db:
            ready, leased, delayed = db.execute(
                "SELECT coalesce(sum(visible_at <= ?1), 0), "
                "coalesce(sum(visible_at > ?1 AND lease IS NOT NULL), 0), "
                "coalesce(sum(visible_at > ?1 AND lease IS NULL), 0) "
                "FROM deliveries WHERE queue = ?2",
                (at, queue),
            ).fetchone()
            (dead,) = db.execute(
                "SELECT count(*) FROM dead_letters WHERE queue = ?", (queue,)
            ).fetchone()
        return QueueStats(ready=ready, leased=leased, delayed=delayed, dead=dead)


class _SpoolSubscription:
    """Polls a spool queue: the spool has no server to push, so a consumer asks, backing off
    from 10 ms to 200 ms while the queue is empty."""

    def __init__(self, spool: Spool, queue: str) -> None:
        self._spool = spool
        self._queue = queue

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        pause = _MIN_PAUSE
        idle_since = time.monotonic()
        while True:
            delivery = self._spool.get(self._queue)
            if delivery is not None:
                pause = _MIN_PAUSE
                yield delivery
                idle_since = time.monotonic()
                continue
            waited = time.monotonic() - idle_since
            if idle_timeout is not None and waited >= idle_timeout:
                return
            left = None if idle_timeout is None else idle_timeout - waited
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, _MAX_PAUSE)

    def close(self) -> None:
        pass  # leases not settled run out, and their messages are delivered again
