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
from letterlock import (
    Identity,
    Opened,
    Pins,
    Reason,
    ReplayWindow,
    Suite,
    TransportError,
    UsageError,
)
from letterlock.transports import (
    HANDLER_ERROR,
    MAX_ATTEMPTS,
    REJECTED,
    SETTLEMENT,
    Delivery,
    Refusal,
    SealedConsumer,
    Spool,
)

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


def _not_for_bob(keys: Keys) -> bytes:
    return letterlock.seal(
        SECRET, sender=keys.alice, recipients=[keys.alice.public], topic=TOPIC, now=T0
    )


def _tampered(keys: Keys) -> bytes:
    sealed = bytearray(_seal(keys))
    sealed[-80] ^= 1  # inside the ciphertext, before the 64-byte signature
    return bytes(sealed)


ATTACKS: dict[str, tuple[Callable[[Keys], bytes], str, str]] = {
    "signed for another topic": (lambda k: letterlock.seal(SECRET, sender=k.alice,
                                                           recipients=[k.bob.public],
                                                           topic="payroll.us", now=T0),
                                 TOPIC, "wrong_topic"),
    "not for bob": (_not_for_bob, TOPIC, "not_for_me"),
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
    consumer = _consumer(spool, keys, pins)
    assert consumer.poll(handler, now=T0) == 0
    assert handler.opened == []
    [dead] = spool.dead_letters("bob")
    assert (dead.seq, dead.reason, dead.body, dead.attempts) == (seq, REJECTED, body, 1)
    assert spool.stats("bob", now=T0 + 3600).ready == 0
    assert consumer.metrics == {f"dead_lettered:{reason}": 1}  # the real reason stays local


def test_every_reason_has_a_settlement() -> None:
    assert set(SETTLEMENT) == set(Reason)
    retried = {reason for reason, how in SETTLEMENT.items() if how is Refusal.RETRY}
    assert retried == {
        Reason.UNKNOWN_SENDER, Reason.UNTRUSTED, Reason.BAD_SIGNATURE, Reason.NOT_YET_VALID
    }  # fmt: skip


def test_replayed_copy_is_dead_lettered(spool: Spool, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    spool.publish(TOPIC, sealed, now=T0)
    spool.publish(TOPIC, sealed, now=T0)
    handler = Recorder(spool)
    consumer = _consumer(spool, keys, pins)
    assert consumer.poll(handler, now=T0) == 1
    assert len(handler.opened) == 1
    assert [d.reason for d in spool.dead_letters("bob")] == [REJECTED]
    assert consumer.metrics == {"acked": 1, "dead_lettered:replayed": 1}


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


class WatchingSpool(Spool):
    """The broker's side of the conversation: every call a consumer makes, without the tags."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[tuple[object, ...]] = []
        self.order: list[int] = []  # sequence numbers in publishing order
        self.tags: dict[str, int] = {}  # lease tag -> sequence number

    def publish(self, topic: str, body: bytes | bytearray | memoryview, **kw: Any) -> int:
        seq = super().publish(topic, body, **kw)
        self.order.append(seq)
        return seq

    def _which(self, seq: int) -> int:
        return self.order.index(seq)

    def get(self, queue: str, **kw: Any) -> Delivery | None:
        delivery = super().get(queue, **kw)
        self.seen.append(("get", queue, sorted(kw.items()), delivery and self._which(delivery.seq)))
        if delivery is not None:
            self.tags[delivery.tag] = delivery.seq
        return delivery

    def _call(self, name: str, tag: str, kw: dict[str, Any]) -> None:
        self.seen.append((name, self._which(self.tags[tag]), sorted(kw.items())))

    def ack(self, tag: str) -> None:
        self._call("ack", tag, {})
        super().ack(tag)

    def nack(self, tag: str, **kw: Any) -> None:
        self._call("nack", tag, kw)
        super().nack(tag, **kw)

    def touch(self, tag: str, **kw: Any) -> None:
        self._call("touch", tag, kw)
        super().touch(tag, **kw)


def _forgery(keys: Keys, claimed: Identity) -> bytes:
    """Mallory's own envelope, its visible sender key id swapped for ``claimed``'s."""
    sealed = _seal(keys, b"pay mallory", sender=keys.mallory)
    assert sealed.count(keys.mallory.public.fingerprint) == 1
    return sealed.replace(keys.mallory.public.fingerprint, claimed.public.fingerprint)


def _what_the_broker_sees(tmp_path: Path, keys: Keys, pins: Pins, bodies: list[bytes]) -> object:
    """Every call the consumer makes, the dead letters (without bytes) and the queue's state."""
    spool = WatchingSpool(tmp_path / f"watched-{len(list(tmp_path.iterdir()))}.db")
    with spool:
        spool.bind("bob", "payroll.#")
        for body in bodies:
            spool.publish(TOPIC, body, now=T0)
        consumer = _consumer(spool, keys, pins, max_attempts=3, retry_delay=5)
        for second in range(60):
            consumer.poll(Recorder(spool), now=T0 + second)
        dead = [
            (spool.order.index(d.seq), d.reason, d.attempts, d.dead_at, d.topic)
            for d in spool.dead_letters("bob")
        ]
        return spool.seen, dead, spool.stats("bob", now=T0 + 3600)


def test_dead_letters_do_not_tell_the_broker_whom_the_receiver_trusts(
    tmp_path: Path, keys: Keys, pins: Pins
) -> None:
    """Issue 6.5: forgeries claiming a trusted and an unknown sender look the same to the broker:
    the same dead-letter reason, attempts, retry delays and order of settlement."""
    stranger = Identity.generate(Suite.P256)
    claims_alice, claims_stranger = _forgery(keys, keys.alice), _forgery(keys, stranger)
    trusted = _what_the_broker_sees(tmp_path, keys, pins, [claims_alice])
    unknown = _what_the_broker_sees(tmp_path, keys, pins, [claims_stranger])
    assert trusted == unknown
    both = _what_the_broker_sees(tmp_path, keys, pins, [claims_alice, claims_stranger])
    swapped = _what_the_broker_sees(tmp_path, keys, pins, [claims_stranger, claims_alice])
    assert both == swapped


def _claims_a_key_of_another_suite(keys: Keys, pins: Pins) -> bytes:
    other = Identity.generate(Suite.X25519)
    pins.pin("other-suite", other.public)
    return _forgery(keys, other)


RETRIED: dict[str, tuple[Callable[[Keys, Pins], bytes], str]] = {
    "tampered": (lambda k, p: _tampered(k), "bad_signature"),
    "claims a trusted sender": (lambda k, p: _forgery(k, k.alice), "bad_signature"),
    "claims an unknown sender": (lambda k, p: _forgery(k, k.bob), "unknown_sender"),
    "signed by an unknown sender": (lambda k, p: _seal(k, sender=k.mallory), "unknown_sender"),
    "claims a pinned key of another suite": (_claims_a_key_of_another_suite, "untrusted"),
    "from the future": (lambda k, p: _seal(k, now=T0 + 3600), "not_yet_valid"),
}


@pytest.mark.parametrize("attack", sorted(RETRIED))
def test_trust_and_signature_refusals_are_retried_alike(
    spool: Spool, keys: Keys, pins: Pins, attack: str
) -> None:
    make, code = RETRIED[attack]
    body = make(keys, pins)
    spool.publish(TOPIC, body, now=T0)
    consumer = _consumer(spool, keys, pins, max_attempts=3, retry_delay=10)
    nacks: list[tuple[bool, str, float]] = []
    original = spool.nack

    def watched(tag: str, **kw: Any) -> None:
        nacks.append((kw["requeue"], kw["reason"], kw["delay"]))  # what the broker is told
        original(tag, **kw)

    spool.nack = watched  # type: ignore[method-assign]
    for at in (T0, T0 + 10, T0 + 30):
        assert consumer.poll(Recorder(spool), now=at) == 0
    assert nacks == [(True, "", 10.0), (True, "", 20.0), (False, REJECTED, 0.0)]
    [dead] = spool.dead_letters("bob")
    assert (dead.reason, dead.attempts, dead.body) == (REJECTED, 3, body)
    assert consumer.metrics == {f"retried:{code}": 2, f"dead_lettered:{code}": 1}


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
    assert (dead.reason, dead.attempts, dead.body) == (REJECTED, 3, forged)
    assert handler.opened == []
    assert consumer.metrics == {"retried:unknown_sender": 2, "dead_lettered:unknown_sender": 1}


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
    assert [d.reason for d in spool.dead_letters("bob")] == [REJECTED]
    assert consumer.metrics == {"lease_lost": 1, "dead_lettered:replayed": 1}


def test_rejections_are_logged_at_a_limited_rate(
    spool: Spool, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        spool.publish(TOPIC, _not_for_bob(keys), now=T0)
    spool.publish(TOPIC, _seal(keys, topic="payroll.us"), now=T0)
    with caplog.at_level(logging.INFO, logger="letterlock.transports.consumer"):
        _consumer(spool, keys, pins, log_interval=3600).poll(Recorder(spool), now=T0)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "not_for_me" in m]) == 1
    assert len([m for m in messages if "wrong_topic" in m]) == 1
    assert all("dead-lettered as 'rejected'" in m for m in messages)
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert len(spool.dead_letters("bob")) == 6  # all dead-lettered, only logging was limited
    assert SECRET.decode() not in caplog.text


def test_held_back_log_records_are_counted(
    spool: Spool, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    from letterlock.transports.consumer import _RateLimiter

    ticks = iter([0.0, 1.0, 2.0, 11.0])
    for _ in range(4):
        spool.publish(TOPIC, _not_for_bob(keys), now=T0)
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
