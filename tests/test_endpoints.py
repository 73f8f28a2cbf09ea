"""Every broker reached by URL, on its real server: one suite for all (no mocks).

Each test runs on every endpoint of :data:`ENDPOINTS`: the local spool, and each broker adapter
against the server on this machine (:mod:`services`: a missing server fails in CI and is skipped
elsewhere, with the command that starts it). What a test publishes through
``endpoint.publish`` is what a hostile broker can do: any bytes, on any topic. Everything a test
declares has names of its own (a random topic prefix and group), so tests and runs never meet
on a shared server.

What each broker does beyond this suite (its own topology, raw reads with its plain client,
restarts, clusters) is tested in its own ``test_broker_<name>.py``. A new adapter joins by
adding its URL to :data:`ENDPOINTS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import cast_of
from letterlock import Identity, Opened, Opener, Pins, ReplayWindow, Sealer, Suite, Topics
from letterlock.core.topics import Dialect
from letterlock.transports import (
    DeadLetterReason,
    Endpoint,
    RetryPolicy,
    SealedConsumer,
    Subscription,
)
from letterlock.transports.urls import connect
from services import require, unique

#: How long a test waits for a broker to deliver what it expects (seconds without a delivery).
IDLE = float(os.environ.get("LETTERLOCK_TEST_IDLE", "1.0"))
CAST = cast_of(Suite.P256)


@dataclass
class Bench:
    """One endpoint under test, with this test's own topics and group."""

    endpoint: Endpoint
    prefix: str = field(default_factory=lambda: unique("t"))
    group: str = field(default_factory=lambda: unique("g"))
    handled: list[Opened] = field(default_factory=list)

    @property
    def separator(self) -> str:
        return "/" if self.endpoint.dialect is Dialect.MQTT else "."

    def topic(self, *words: str) -> str:
        """A topic under this test's prefix, in the broker's own syntax."""
        return self.separator.join((self.prefix, *words))

    def topics(self, *words: str) -> Topics:
        return Topics(self.topic(*words), dialect=self.endpoint.dialect)

    def any_one(self) -> str:
        """The broker's wildcard for exactly one word."""
        return "+" if self.endpoint.dialect is Dialect.MQTT else "*"

    def seal(self, payload: bytes, *words: str, sender: Identity | None = None) -> bytes:
        sealer = Sealer(sender or CAST.alice)
        return sealer.seal(payload, recipients=[CAST.bob.public], topic=self.topic(*words))

    def consumer(self, topics: Topics, pins: Pins | None = None) -> SealedConsumer:
        """bob's consumer; one attempt each, so refusals are dead-lettered at once."""
        opener = Opener(CAST.bob, trust=pins or CAST.pins(), replay=ReplayWindow())
        return SealedConsumer(
            self.endpoint, self.group, opener=opener, topics=topics,
            retry=RetryPolicy(max_attempts=1),
        )  # fmt: skip

    def drain(self, subscription: Subscription, consumer: SealedConsumer) -> int:
        """Hand everything that arrives to ``consumer`` until the broker goes quiet."""
        taken = 0
        for delivery in subscription.deliveries(idle_timeout=IDLE):
            taken += consumer.handle(delivery, self.handled.append)
        return taken


@dataclass(frozen=True)
class Kind:
    """A broker under test: the server it needs, its URL, and how a test removes its traces."""

    service: str | None  #: a key of services.SERVICES; None: no server (the spool)
    url: Callable[[Path], str]  #: its URL, given the test's temporary directory
    #: Called after each test with the bench: delete what the test declared on the server
    #: (queues, streams, consumer groups, sessions under ``bench.prefix`` / ``bench.group``).
    cleanup: Callable[[Bench], None] = lambda bench: None


def _nats_cleanup(bench: Bench) -> None:
    """Delete the test's stream (named after its prefix) and its own dead-letter stream."""
    from test_broker_nats import delete_streams

    broker = bench.endpoint.broker  # type: ignore[attr-defined]
    delete_streams(bench.prefix, broker.dead)


#: name -> kind; one per adapter.
ENDPOINTS: dict[str, Kind] = {
    "spool": Kind(None, lambda tmp: f"spool://{tmp}/spool.db"),
    "nats": Kind(
        "nats",
        lambda tmp: f"nats://127.0.0.1:4222?lease=5&fetch_timeout=0.2&dead={unique('dead')}",
        _nats_cleanup,
    ),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    kind = ENDPOINTS[request.param]
    if kind.service is not None:
        require(kind.service)
    endpoint = connect(kind.url(tmp_path))
    bench = Bench(endpoint)
    try:
        yield bench
    finally:
        try:
            kind.cleanup(bench)
        finally:
            endpoint.close()


def test_round_trip(bench: Bench) -> None:
    topics = bench.topics("orders", bench.any_one())
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    bench.endpoint.publish(bench.topic("orders", "eu"), bench.seal(b"order 1", "orders", "eu"))
    consumer = bench.consumer(topics)
    assert bench.drain(subscription, consumer) == 1
    [opened] = bench.handled
    assert (opened.payload, opened.sender.name) == (b"order 1", "alice")
    assert consumer.metrics == {"acked": 1}
    assert bench.drain(subscription, consumer) == 0  # acked: not delivered again
    assert bench.endpoint.dead_letters(bench.group) == []
    subscription.close()


def test_refused_messages_are_dead_lettered_and_never_handled(bench: Bench) -> None:
    topics = bench.topics("pay")
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    genuine = bench.seal(b"pay 10", "pay")
    tampered = bytearray(bench.seal(b"pay 20", "pay"))
    tampered[-40] ^= 1
    forged = bench.seal(b"pay mallory", "pay", sender=CAST.mallory)
    rerouted = bench.seal(b"pay elsewhere", "other")  # signed for another topic
    for body in (genuine, bytes(tampered), forged, rerouted, genuine):  # genuine replayed
        bench.endpoint.publish(bench.topic("pay"), body)
    consumer = bench.consumer(topics)
    assert bench.drain(subscription, consumer) == 1
    assert [o.payload for o in bench.handled] == [b"pay 10"]
    dead = bench.endpoint.dead_letters(bench.group)
    assert sorted(d.body for d in dead) == sorted([bytes(tampered), forged, rerouted, genuine])
    assert {d.reason for d in dead} == {DeadLetterReason.REJECTED.value}  # one word, whatever
    assert consumer.metrics == {  # the exact reasons: local only
        "acked": 1,
        "dead_lettered:bad_signature": 1,
        "dead_lettered:unknown_sender": 1,
        "dead_lettered:wrong_topic": 1,
        "dead_lettered:replayed": 1,
    }
    subscription.close()


def test_a_redriven_dead_letter_opens_once_its_sender_is_trusted(bench: Bench) -> None:
    topics = bench.topics("pay")
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    bench.endpoint.publish(bench.topic("pay"), bench.seal(b"from carol", "pay", sender=CAST.eve))
    assert bench.drain(subscription, bench.consumer(topics)) == 0
    assert len(bench.endpoint.dead_letters(bench.group)) == 1
    assert bench.endpoint.redrive(bench.group) == 1
    pins = CAST.pins()
    pins.pin("eve", CAST.eve.public)
    assert bench.drain(subscription, bench.consumer(topics, pins)) == 1
    assert bench.handled[0].sender.name == "eve"
    assert bench.endpoint.dead_letters(bench.group) == []
    subscription.close()


def test_a_group_keeps_what_arrives_while_nobody_listens(bench: Bench) -> None:
    topics = bench.topics("jobs", "#" if bench.endpoint.dialect is not Dialect.NATS else ">")
    bench.endpoint.subscribe(topics, group=bench.group).close()  # declared, then left
    for n in range(3):
        bench.endpoint.publish(bench.topic("jobs", "a"), bench.seal(b"job %d" % n, "jobs", "a"))
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    assert bench.drain(subscription, bench.consumer(topics)) == 3
    assert sorted(o.payload for o in bench.handled) == [b"job 0", b"job 1", b"job 2"]
    subscription.close()
