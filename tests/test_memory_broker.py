"""MemoryBroker, the broker seam's test double: what each of its modes promises on its own.

How the consumer fares on it is the shared suite in test_consumer.py; here, the double itself.
"""

from __future__ import annotations

import pytest

from letterlock import UsageError
from letterlock.transports import (
    Ack,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    LeaseLost,
    MemoryBroker,
    PullBroker,
    QueueStats,
    Retry,
    Unroutable,
    base,
)

T0 = 1_750_000_000.0


def _broker(**options: bool) -> MemoryBroker:
    broker = MemoryBroker(lease_seconds=10, clock=lambda: T0, **options)
    broker.bind("q", "payroll.#")
    return broker


def _take(broker: MemoryBroker, now: float = T0) -> Delivery:
    delivery = broker.get("q", now=now)
    assert delivery is not None
    return delivery


def test_it_is_a_pull_broker_and_routes_as_amqp() -> None:
    broker = _broker()
    assert isinstance(broker, PullBroker)
    broker.bind("other", "orders.*")
    seq = broker.publish("payroll.eu", b"x")
    assert [d.ref for d in broker.deliveries("q")] == [str(seq)]
    assert broker.get("other") is None
    with pytest.raises(Unroutable):
        broker.publish("nobody.listens", b"x")
    broker.publish("nobody.listens", b"x", mandatory=False)  # dropped, as an exchange does


def test_deliveries_lease_one_at_a_time_only_when_asked() -> None:
    broker = _broker()
    for body in (b"1", b"2"):
        broker.publish("payroll.eu", body)
    deliveries = broker.deliveries("q", now=T0)
    first = next(deliveries)
    assert broker.stats("q", now=T0) == QueueStats(ready=1, leased=1, delayed=0, dead=0)
    assert (first.body, first.attempts, first.topic) == (b"1", 1, "payroll.eu")


def test_settling_ack_retry_and_dead_letter() -> None:
    broker = _broker()
    for body in (b"ack", b"retry", b"dead"):
        broker.publish("payroll.eu", body)
    ack, retry, dead = (_take(broker) for _ in range(3))
    broker.settle(ack, Ack(), now=T0)
    broker.settle(retry, Retry(delay=5), now=T0)
    broker.settle(dead, DeadLetter(reason=DeadLetterReason.REJECTED), now=T0)
    assert broker.stats("q", now=T0) == QueueStats(ready=0, leased=0, delayed=1, dead=1)
    again = _take(broker, T0 + 5)
    assert (again.body, again.attempts) == (b"retry", 2)
    [letter] = broker.dead_letters("q")
    assert (letter.body, letter.reason, letter.attempts) == (b"dead", "rejected", 1)
    for delivery in (ack, dead):
        with pytest.raises(LeaseLost):
            broker.settle(delivery, Ack(), now=T0)


def test_a_lease_runs_out_and_a_stale_tag_settles_nothing() -> None:
    broker = _broker()
    broker.publish("payroll.eu", b"x")
    first = _take(broker)
    assert broker.get("q", now=T0 + 9) is None
    broker.extend_lease(first, now=T0 + 9)  # until T0 + 19
    assert broker.get("q", now=T0 + 18) is None
    second = _take(broker, T0 + 19)
    assert second.attempts == 2
    with pytest.raises(LeaseLost):
        broker.settle(first, Ack(), now=T0 + 19)
    with pytest.raises(LeaseLost):
        broker.extend_lease(first, now=T0 + 19)
    broker.settle(second, Ack())


def test_without_a_count_attempts_are_none() -> None:
    broker = _broker(counts_attempts=False)
    broker.publish("payroll.eu", b"x")
    assert _take(broker).attempts is None


def test_without_a_nack_a_retry_waits_for_the_lease() -> None:
    broker = _broker(nack=False)
    broker.publish("payroll.eu", b"x")
    broker.settle(_take(broker), Retry(delay=0), now=T0)
    assert broker.get("q", now=T0 + 9) is None  # still leased, whatever the delay
    assert _take(broker, T0 + 10).attempts == 2


def test_push_hands_each_ready_delivery_to_the_subscriber() -> None:
    broker = _broker(push=True)
    for body in (b"1", b"2", b"3"):
        broker.publish("payroll.eu", body)
    got: list[bytes] = []

    def callback(delivery: Delivery) -> None:
        got.append(delivery.body)
        broker.settle(delivery, Ack())

    broker.subscribe("q", callback)
    assert broker.pump(now=T0, max_messages=2) == 2
    assert broker.pump(now=T0) == 1
    assert got == [b"1", b"2", b"3"]
    broker.unsubscribe("q")
    broker.publish("payroll.eu", b"4")
    assert broker.pump(now=T0) == 0  # nobody subscribed: it waits
    with pytest.raises(UsageError, match="pushes"):
        next(broker.deliveries("q"))
    with pytest.raises(UsageError, match="pulled"):
        _broker().subscribe("q", callback)


def test_the_journal_is_what_the_broker_was_told_without_tags() -> None:
    broker = _broker()
    seq = broker.publish("payroll.eu", b"x")
    delivery = _take(broker)
    broker.extend_lease(delivery, now=T0)
    broker.settle(delivery, Ack(), now=T0)
    assert broker.journal == [
        ("deliver", "q", seq, 1),
        ("extend", "q", seq, 10),
        ("settle", "q", seq, Ack()),
    ]


def test_a_hostile_broker_puts_anything_anywhere() -> None:
    broker = _broker()
    broker.put("q", "claims.anything", b"x")
    assert _take(broker).topic == "claims.anything"


def test_nonsense_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="lease"):
        MemoryBroker(lease_seconds=0)
    with pytest.raises(UsageError, match="topic"):
        _broker().publish("", b"x")
    broker = _broker()
    broker.publish("payroll.eu", b"x")
    with pytest.raises(UsageError, match="delay"):
        broker.settle(_take(broker), Retry(delay=-1))


def test_the_adapters_maker_of_deliveries_makes_what_the_dataclass_makes() -> None:
    """``base.delivery`` sets the slots directly (adapters make one per message)."""
    fast = base.delivery("1.7", "orders", "orders.eu", b"sealed", 3, "7")
    made = Delivery(
        tag="1.7", queue="orders", topic="orders.eu", body=b"sealed", attempts=3, ref="7"
    )
    assert type(fast) is Delivery
    assert (fast, repr(fast), hash(fast)) == (made, repr(made), hash(made))
    with pytest.raises(AttributeError):
        fast.tag = "2.7"  # type: ignore[misc]  # frozen, as any Delivery
