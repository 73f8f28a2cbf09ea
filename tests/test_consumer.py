"""SealedConsumer: ack only after open and handler; refusals dead-lettered or retried."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import letterlock
from letterlock import Identity, Opened, Pins, ReplayWindow, Suite, TransportError, UsageError
from letterlock.transports import HANDLER_ERROR, MAX_ATTEMPTS, SealedConsumer, Spool

T0 = 1_750_000_000.0
TOPIC = "payroll.eu"
SECRET = b"E-1042 June net EUR 4,310.00"


@dataclass(frozen=True)
class Keys:
    alice: Identity
    bob: Identity
    mallory: Identity


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(*(Identity.generate(Suite.P256) for _ in range(3)))


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.db") as opened:
        opened.bind("bob", "payroll.#")
        yield opened


@pytest.fixture
def pins(keys: Keys) -> Pins:
    pins = Pins()
    pins.pin("alice", keys.alice.public)
    return pins


def _consumer(spool: Spool, keys: Keys, pins: Pins, **options: Any) -> SealedConsumer:
    return SealedConsumer(
        spool,
        "bob",
        identity=keys.bob,
        trust=pins,
        replay=ReplayWindow(),
        **{"topics": TOPIC, **options},
    )


def _seal(
    keys: Keys, payload: bytes = SECRET, *, sender: Identity | None = None, **kw: Any
) -> bytes:
    return letterlock.seal(
        payload, sender=sender or keys.alice, recipients=[keys.bob.public],
        **{"topic": TOPIC, "now": T0, **kw},
    )  # fmt: skip


class Recorder:
    """A handler that remembers what it got and what the queue looked like at that moment."""

    def __init__(self, spool: Spool, fail: bool = False) -> None:
        self.spool = spool
        self.fail = fail
        self.opened: list[Opened] = []
        self.leased_during_call: list[int] = []

    def __call__(self, opened: Opened) -> None:
        self.opened.append(opened)
        self.leased_during_call.append(self.spool.stats("bob", now=T0).leased)
        if self.fail:
            raise RuntimeError("database down")


def test_acks_only_after_open_and_handler(spool: Spool, keys: Keys, pins: Pins) -> None:
    spool.publish(TOPIC, _seal(keys), now=T0)
    handler = Recorder(spool)
    assert _consumer(spool, keys, pins).poll(handler, now=T0) == 1
    [opened] = handler.opened
    assert opened.payload == SECRET
    assert opened.sender.name == "alice"
    assert handler.leased_during_call == [1]  # still leased, not acked, while the handler ran
    assert spool.stats("bob", now=T0 + 3600).ready == 0  # acked afterwards: gone for good
    assert spool.dead_letters("bob") == []


def test_poll_stops_at_max_messages(spool: Spool, keys: Keys, pins: Pins) -> None:
    for _ in range(3):
        spool.publish(TOPIC, _seal(keys), now=T0)
    consumer = _consumer(spool, keys, pins)
    handler = Recorder(spool)
    assert consumer.poll(handler, max_messages=2, now=T0) == 2
    assert spool.stats("bob", now=T0).ready == 1
    assert consumer.poll(handler, now=T0) == 1


def _tampered(keys: Keys) -> bytes:
    sealed = bytearray(_seal(keys))
    sealed[-80] ^= 1  # inside the ciphertext, before the 64-byte signature
    return bytes(sealed)


ATTACKS: dict[str, tuple[Callable[[Keys], bytes], str, str]] = {
    "tampered": (_tampered, TOPIC, "bad_signature"),
    "signed for another topic": (lambda k: letterlock.seal(SECRET, sender=k.alice,
                                                           recipients=[k.bob.public],
                                                           topic="payroll.us", now=T0),
                                 TOPIC, "wrong_topic"),
    "not for bob": (lambda k: letterlock.seal(SECRET, sender=k.alice, recipients=[k.alice.public],
                                              topic=TOPIC, now=T0), TOPIC, "not_for_me"),
    "expired": (lambda k: letterlock.seal(SECRET, sender=k.alice, recipients=[k.bob.public],
                                          topic=TOPIC, now=T0 - 120, expires_in=60),
                TOPIC, "expired"),
    "garbage": (lambda k: b"definitely not an envelope", TOPIC, "malformed"),
}  # fmt: skip


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_rejected_is_dead_lettered_never_handled(
    spool: Spool, keys: Keys, pins: Pins, attack: str
) -> None:
    make, topic, reason = ATTACKS[attack]
    body = make(keys)
    seq = spool.publish(topic, body, now=T0)
    handler = Recorder(spool)
    assert _consumer(spool, keys, pins).poll(handler, now=T0) == 0
    assert handler.opened == []
    [dead] = spool.dead_letters("bob")
    assert (dead.seq, dead.reason, dead.body, dead.attempts) == (seq, reason, body, 1)
    assert spool.stats("bob", now=T0 + 3600).ready == 0


def test_replayed_copy_is_dead_lettered(spool: Spool, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    spool.publish(TOPIC, sealed, now=T0)
    spool.publish(TOPIC, sealed, now=T0)
    handler = Recorder(spool)
    assert _consumer(spool, keys, pins).poll(handler, now=T0) == 1
    assert len(handler.opened) == 1
    assert [d.reason for d in spool.dead_letters("bob")] == ["replayed"]


@pytest.mark.parametrize(
    ("topics", "opens"),
    [
        ("#", True),
        ("payroll.*", True),
        (["orders", "payroll.eu"], True),
        (letterlock.Topics("payroll.us", "payroll.eu.#"), True),
        ("payroll.us", False),
        (["orders", "payroll.*.*"], False),
    ],
)
def test_the_consumer_serves_its_configured_topics(
    spool: Spool, keys: Keys, pins: Pins, topics: str | list[str] | letterlock.Topics, opens: bool
) -> None:
    spool.publish(TOPIC, _seal(keys), now=T0)
    consumer = _consumer(spool, keys, pins, topics=topics)
    assert consumer.topics == letterlock.Topics.of(topics)
    assert consumer.poll(Recorder(spool), now=T0) == int(opens)
    assert len(spool.dead_letters("bob")) == int(not opens)


def _lying_broker_delivers(spool: Spool, queue: str, reported_topic: str, body: bytes) -> int:
    """What a hostile broker can do: put any bytes into any queue and report any topic."""
    db = sqlite3.connect(spool.path)
    try:
        with db:
            seq = db.execute(
                "INSERT INTO messages (topic, body, published) VALUES (?, ?, ?)",
                (reported_topic, body, T0),
            ).lastrowid
            db.execute(
                "INSERT INTO deliveries (queue, seq, visible_at) VALUES (?, ?, 0)", (queue, seq)
            )
    finally:
        db.close()
    assert seq is not None
    return seq


def test_rerouted_into_a_queue_for_another_topic_is_refused(
    spool: Spool, keys: Keys, pins: Pins
) -> None:
    """Issue 6.2: a payslip signed for payroll.eu, put into the payroll.us queue by the broker,
    which reports payroll.eu for it, must not reach the US handler."""
    spool.bind("us", "payroll.us")
    signed_for_eu = _seal(keys)  # topic payroll.eu, for bob
    _lying_broker_delivers(spool, "us", "payroll.eu", signed_for_eu)
    us_handler = Recorder(spool)
    consumer = SealedConsumer(
        spool, "us", identity=keys.bob, trust=pins, replay=ReplayWindow(), topics="payroll.us"
    )
    assert consumer.poll(us_handler, now=T0) == 0
    assert us_handler.opened == []
    [dead] = spool.dead_letters("us")
    assert dead.body == signed_for_eu


def test_the_topic_the_broker_reports_decides_nothing(spool: Spool, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)  # payroll.eu, which the consumer serves
    _lying_broker_delivers(spool, "bob", "anything.else", sealed)
    handler = Recorder(spool)
    assert _consumer(spool, keys, pins).poll(handler, now=T0) == 1
    assert handler.opened[0].topic == TOPIC


def test_transient_is_retried_with_backoff_then_dead_lettered(
    spool: Spool, keys: Keys, pins: Pins
) -> None:
    forged = _seal(keys, b"pay mallory", sender=keys.mallory)
    spool.publish(TOPIC, forged, now=T0)
    consumer = _consumer(spool, keys, pins, max_attempts=3, retry_delay=10)
    handler = Recorder(spool)
    assert consumer.poll(handler, now=T0) == 0
    assert spool.stats("bob", now=T0).delayed == 1  # requeued, not dead
    assert spool.dead_letters("bob") == []
    assert consumer.poll(handler, now=T0 + 9) == 0
    assert spool.stats("bob", now=T0 + 9).delayed == 1  # not yet due
    consumer.poll(handler, now=T0 + 10)  # attempt 2, next retry 20 s later
    assert spool.stats("bob", now=T0 + 29).delayed == 1
    consumer.poll(handler, now=T0 + 30)  # attempt 3: out of attempts
    [dead] = spool.dead_letters("bob")
    assert (dead.reason, dead.attempts, dead.body) == ("unknown_sender", 3, forged)
    assert handler.opened == []


def test_transient_succeeds_once_the_sender_is_pinned(spool: Spool, keys: Keys, pins: Pins) -> None:
    spool.publish(TOPIC, _seal(keys, b"from carol", sender=keys.mallory), now=T0)
    consumer = _consumer(spool, keys, pins, retry_delay=5)
    handler = Recorder(spool)
    assert consumer.poll(handler, now=T0) == 0
    pins.pin("newcomer", keys.mallory.public)
    assert consumer.poll(handler, now=T0 + 5) == 1
    assert handler.opened[0].sender.name == "newcomer"
    assert spool.dead_letters("bob") == []


def test_handler_exception_is_not_acked(spool: Spool, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    spool.publish(TOPIC, sealed, now=T0)
    spool.publish(TOPIC, _seal(keys, b"second"), now=T0)
    handler = Recorder(spool, fail=True)
    with pytest.raises(RuntimeError, match="database down"):
        _consumer(spool, keys, pins).poll(handler, now=T0)
    assert len(handler.opened) == 1  # stopped at the first failure
    [dead] = spool.dead_letters("bob")
    assert (dead.reason, dead.body) == (HANDLER_ERROR, sealed)
    assert spool.stats("bob", now=T0).ready == 1  # the second one waits, untouched


def test_handler_error_survives_a_lost_lease(spool: Spool, keys: Keys, pins: Pins) -> None:
    spool.publish(TOPIC, _seal(keys), now=T0)

    def slow_failing_handler(opened: Opened) -> None:
        assert spool.get("bob", now=T0 + 3600) is not None  # another consumer took it over
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        _consumer(spool, keys, pins).poll(slow_failing_handler, now=T0)
    assert spool.dead_letters("bob") == []  # it belongs to the new lease holder now
    assert spool.stats("bob", now=T0 + 3600).leased == 1


def test_crash_loop_is_dead_lettered(spool: Spool, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    spool.publish(TOPIC, sealed, now=T0)
    for attempt in range(2):  # two consumers died holding the lease
        assert spool.get("bob", lease_seconds=1, now=T0 + attempt * 2) is not None
    handler = Recorder(spool)
    assert _consumer(spool, keys, pins, max_attempts=2).poll(handler, now=T0 + 10) == 0
    assert handler.opened == []
    assert [d.reason for d in spool.dead_letters("bob")] == [MAX_ATTEMPTS]


def test_lost_lease_after_handling_is_logged_not_raised(
    spool: Spool, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    spool.publish(TOPIC, _seal(keys), now=T0)
    stolen = []

    def slow_handler(opened: Opened) -> None:  # meanwhile the lease ran out, another took it
        stolen.append(spool.get("bob", now=T0 + 3600))

    consumer = _consumer(spool, keys, pins)
    with caplog.at_level(logging.WARNING):
        assert consumer.poll(slow_handler, now=T0) == 1
    assert "outlived its lease" in caplog.text
    assert stolen[0] is not None
    spool.nack(stolen[0].tag, requeue=True, now=T0)
    assert consumer.poll(slow_handler, now=T0) == 0  # the redelivery is refused as replayed
    assert [d.reason for d in spool.dead_letters("bob")] == ["replayed"]


def test_rejections_are_logged_at_a_limited_rate(
    spool: Spool, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        spool.publish(TOPIC, _tampered(keys), now=T0)
    spool.publish(TOPIC, _seal(keys, topic="payroll.us"), now=T0)
    with caplog.at_level(logging.INFO, logger="letterlock.transports.consumer"):
        _consumer(spool, keys, pins, log_interval=3600).poll(Recorder(spool), now=T0)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "bad_signature" in m]) == 1
    assert len([m for m in messages if "wrong_topic" in m]) == 1
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert len(spool.dead_letters("bob")) == 6  # all dead-lettered, only logging was limited
    assert SECRET.decode() not in caplog.text


def test_held_back_log_records_are_counted(
    spool: Spool, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    from letterlock.transports.consumer import _RateLimiter

    ticks = iter([0.0, 1.0, 2.0, 11.0])
    for _ in range(4):
        spool.publish(TOPIC, _tampered(keys), now=T0)
    consumer = _consumer(spool, keys, pins)
    consumer._limiter = _RateLimiter(10.0, clock=lambda: next(ticks))
    with caplog.at_level(logging.WARNING, logger="letterlock.transports.consumer"):
        consumer.poll(Recorder(spool), now=T0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # t=0 logged, t=1 and t=2 held back, t=11 logged with the count
    assert messages[1].endswith("(2 more like it not logged)")


def test_spool_failures_surface_as_transport_errors(spool: Spool, keys: Keys, pins: Pins) -> None:
    consumer = _consumer(spool, keys, pins)
    spool.close()
    with pytest.raises(TransportError):
        consumer.poll(Recorder(spool), now=T0)


def test_configuration_mistakes(spool: Spool, keys: Keys, pins: Pins) -> None:
    with pytest.raises(letterlock.UsageError, match="identity"):
        SealedConsumer(
            spool,
            "bob",
            identity=keys.bob.public,  # type: ignore[arg-type]
            trust=pins,
            replay=ReplayWindow(),
            topics="#",
        )
    with pytest.raises(letterlock.UsageError, match="max_attempts"):
        _consumer(spool, keys, pins, max_attempts=0)
    with pytest.raises(letterlock.UsageError, match="topics"):
        _consumer(spool, keys, pins, topics=None)
    with pytest.raises(letterlock.UsageError, match="topic"):
        _consumer(spool, keys, pins, topics=[])
    with pytest.raises(TypeError, match="topics"):
        SealedConsumer(spool, "bob", identity=keys.bob, trust=pins, replay=ReplayWindow())  # type: ignore[call-arg]


def test_retry_delays_are_checked(spool: Spool, keys: Keys, pins: Pins) -> None:
    with pytest.raises(UsageError):
        SealedConsumer(
            spool, "q", identity=keys.bob, trust=pins, replay=ReplayWindow(), topics="#",
            retry_delay=10, max_retry_delay=1,
        )  # fmt: skip
