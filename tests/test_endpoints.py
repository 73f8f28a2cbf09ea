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
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from conftest import cast_of
from letterlock import Identity, Opened, Opener, Pins, ReplayWindow, Sealer, Suite, Topics, hazmat
from letterlock.core.topics import Dialect
from letterlock.stores.sqlite import SQLiteReplayStore
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
    url: str = ""  #: the endpoint's URL, for a consumer in another process
    prefix: str = field(default_factory=lambda: unique("t"))
    group: str = field(default_factory=lambda: unique("g"))
    handled: list[Opened] = field(default_factory=list)
    closing: list[Callable[[], None]] = field(default_factory=list)  #: called after the test
    kind: Kind | None = None  #: what the broker keeps (None: everything, as the spool)

    @property
    def durable_groups(self) -> bool:
        return self.kind is None or self.kind.durable_groups

    @property
    def keeps_dead_letters(self) -> bool:
        return self.kind is None or self.kind.keeps_dead_letters

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

    def consumer(
        self,
        topics: Topics,
        pins: Pins | None = None,
        *,
        replay: ReplayWindow | None = None,
        claim_lease: float = 60.0,
        retry: RetryPolicy = RetryPolicy(max_attempts=1),  # noqa: B008
    ) -> SealedConsumer:
        """bob's consumer; by default one attempt each, so refusals are dead-lettered at once."""
        opener = Opener(CAST.bob, trust=pins or CAST.pins(), replay=replay or ReplayWindow())
        return SealedConsumer(
            self.endpoint, self.group, opener=opener, topics=topics,
            retry=retry, claim_lease=claim_lease,
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
    #: Its URL, given the test's temporary directory. Every URL takes ``lease=SECONDS``: how
    #: long an unsettled delivery stays a consumer's before the group gets it back.
    url: Callable[[Path], str]
    #: Called after each test with the bench: delete what the test declared on the server
    #: (queues, streams, consumer groups, sessions under ``bench.prefix`` / ``bench.group``).
    cleanup: Callable[[Bench], None] = lambda bench: None
    #: The broker keeps a group's messages while none of its consumers listens, and gives a
    #: killed consumer's message to the group again. False for ZeroMQ (no broker, at most
    #: once): the suite then asserts that such messages are gone.
    durable_groups: bool = True
    #: The broker keeps dead letters for ``dead_letters`` and ``redrive``. False for ZeroMQ
    #: (sent to an optional socket, or dropped): the suite then asserts that none are kept,
    #: and the consumer's metrics are the report.
    keeps_dead_letters: bool = True


def _amqp_url(queue_type: str) -> Callable[[Path], str]:
    """A RabbitMQ URL with an exchange of the test's own, a short lease and no reconnecting."""
    from services import SERVICES

    def url(tmp: Path) -> str:
        exchange = unique("ll-x")
        return f"{SERVICES['rabbitmq'].url}?exchange={exchange}&queue_type={queue_type}&lease=1"

    return url


def _amqp_cleanup(bench: Bench) -> None:
    """Delete the group's queues and the test's exchanges (RabbitMQ keeps them: durable)."""
    from letterlock.transports.amqp import AmqpEndpoint, Topology

    endpoint = bench.endpoint
    assert isinstance(endpoint, AmqpEndpoint)
    names = Topology.of(bench.group, exchange=endpoint.exchange)
    channel = endpoint.connection().channel()
    for queue in (names.queue, names.dead_letter_queue, names.delay_queue):
        channel.queue_delete(queue)
    channel.exchange_delete(names.exchange)
    channel.exchange_delete(names.dead_letter_exchange)
    channel.close()


def _nats_cleanup(bench: Bench) -> None:
    """Delete the test's stream (named after its prefix) and its own dead-letter stream."""
    from test_broker_nats import delete_streams

    broker = bench.endpoint.broker  # type: ignore[attr-defined]
    delete_streams(bench.prefix, broker.dead)


def _forget_mqtt_group(bench: Bench) -> None:
    """End the group's persistent sessions (consumer and dead letters) on the shared broker."""
    forget = getattr(bench.endpoint, "forget")  # noqa: B009 - MqttEndpoint's, not the seam's
    forget(bench.group)


def _redis_url(tmp: Path) -> str:
    from services import SERVICES

    return f"{SERVICES['redis'].url}?stream={unique('ll-stream')}&lease=1"


def _redis_cleanup(bench: Bench) -> None:
    """Delete the test's stream and its group's dead letters."""
    from letterlock.transports.redis import RedisEndpoint

    endpoint = bench.endpoint
    assert isinstance(endpoint, RedisEndpoint)
    endpoint.client.delete(endpoint.stream, endpoint.dead_stream(bench.group))


#: name -> kind; one per adapter.
ENDPOINTS: dict[str, Kind] = {
    "spool": Kind(None, lambda tmp: f"spool://{tmp}/spool.db"),
    "amqp": Kind("rabbitmq", _amqp_url("classic"), _amqp_cleanup),
    "amqp-quorum": Kind("rabbitmq", _amqp_url("quorum"), _amqp_cleanup),
    "nats": Kind(
        "nats",
        lambda tmp: f"nats://127.0.0.1:4222?lease=5&fetch_timeout=0.2&dead={unique('dead')}",
        _nats_cleanup,
    ),
    "mqtt5": Kind("mqtt", lambda tmp: "mqtt://127.0.0.1:1883", _forget_mqtt_group),
    "mqtt311": Kind("mqtt", lambda tmp: "mqtt://127.0.0.1:1883?version=3.1.1", _forget_mqtt_group),
    "redis": Kind("redis", _redis_url, _redis_cleanup),
    "zmq": Kind(
        None,
        lambda tmp: f"zmq+ipc://{tmp}/zmq.sock?wait=0.5",
        durable_groups=False,
        keeps_dead_letters=False,
    ),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    kind = ENDPOINTS[request.param]
    if kind.service is not None:
        require(kind.service)
    url = kind.url(tmp_path)
    endpoint = connect(url)
    bench = Bench(endpoint, url=url, kind=kind)
    try:
        yield bench
    finally:
        try:
            for close in bench.closing:
                close()
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
    if bench.keeps_dead_letters:
        assert sorted(d.body for d in dead) == sorted([bytes(tampered), forged, rerouted, genuine])
        assert {d.reason for d in dead} == {DeadLetterReason.REJECTED.value}  # one word
    else:  # nothing kept: the metrics below are the report
        assert dead == []
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
    if not bench.keeps_dead_letters:  # dropped: nothing to redrive, and it is gone
        assert bench.endpoint.dead_letters(bench.group) == []
        assert bench.endpoint.redrive(bench.group) == 0
        assert bench.drain(subscription, bench.consumer(topics)) == 0
        subscription.close()
        return
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
    if not bench.durable_groups:  # no broker keeps them: what nobody heard is gone
        assert bench.drain(subscription, bench.consumer(topics)) == 0
        subscription.close()
        return
    assert bench.drain(subscription, bench.consumer(topics)) == 3
    assert sorted(o.payload for o in bench.handled) == [b"job 0", b"job 1", b"job 2"]
    subscription.close()


#: A consumer of bob's in its own process: it claims the first message for ``claim_lease``
#: seconds, says so on stdout and hangs in its handler until it is killed.
_DOOMED = """
import sys, time
from letterlock import Opener, Pins, ReplayWindow, Topics, hazmat
from letterlock.core.topics import Dialect
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.transports import RetryPolicy, SealedConsumer
from letterlock.transports.urls import connect

url, group, pattern, dialect, store, bob, alice = sys.argv[1:]
endpoint = connect(url)
pins = Pins()
pins.pin("alice", hazmat.public_identity_from_bytes(bytes.fromhex(alice)))
opener = Opener(
    hazmat.identity_from_private_bytes(bytes.fromhex(bob)), trust=pins,
    replay=ReplayWindow(SQLiteReplayStore(store)),
)
topics = Topics(pattern, dialect=Dialect(dialect))
consumer = SealedConsumer(endpoint, group, opener=opener, topics=topics,
                          retry=RetryPolicy(max_attempts=5), claim_lease=2.0)

def hang(opened):
    print("handling", opened.payload.decode(), flush=True)
    time.sleep(3600)

for delivery in endpoint.subscribe(topics, group=group).deliveries():
    consumer.handle(delivery, hang)
"""


def _with_lease(url: str, seconds: float) -> str:
    """``url`` with ``lease=seconds`` in place of any lease it had."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lease"]
    query.append(("lease", f"{seconds:g}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_consumer_killed_in_its_handler_hands_the_message_on_and_it_is_handled_once(
    bench: Bench, tmp_path: Path
) -> None:
    """SIGKILL inside the handler, before the ack: the group gets the message back once the
    broker's lease (or the connection) is gone, the dead consumer's claim in the shared replay
    store runs out, and the next consumer handles it, once."""
    topics = bench.topics("kill")
    if not bench.durable_groups:  # at most once: what a dead consumer held is gone
        subscription = bench.endpoint.subscribe(topics, group=bench.group)
        bench.endpoint.publish(bench.topic("kill"), bench.seal(b"only once", "kill"))
        assert len(list(subscription.deliveries(idle_timeout=IDLE))) == 1  # taken, not settled
        subscription.close()  # its consumer dies
        subscription = bench.endpoint.subscribe(topics, group=bench.group)
        assert bench.drain(subscription, bench.consumer(topics)) == 0  # nothing comes back
        subscription.close()
        return
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    subscription.close()
    bench.endpoint.publish(bench.topic("kill"), bench.seal(b"only once", "kill"))
    store = tmp_path / "replay.db"
    doomed = subprocess.Popen(
        [
            sys.executable, "-c", _DOOMED, _with_lease(bench.url, 1), bench.group,
            bench.topic("kill"), bench.endpoint.dialect.value, str(store),
            hazmat.identity_to_private_bytes(CAST.bob).hex(), CAST.alice.public.to_bytes().hex(),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with doomed:
        try:
            assert doomed.stdout is not None
            assert doomed.stdout.readline().strip() == "handling only once"
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
    killed_at = time.monotonic()
    shared = SQLiteReplayStore(store)
    bench.closing.append(shared.close)
    window = ReplayWindow(shared)
    consumer = bench.consumer(topics, replay=window, claim_lease=2.0, retry=RetryPolicy(delay=0.5))
    subscription = bench.endpoint.subscribe(topics, group=bench.group)
    while not bench.handled and time.monotonic() - killed_at < 20:
        for delivery in subscription.deliveries(idle_timeout=IDLE):
            consumer.handle(delivery, bench.handled.append)
            break
    assert [o.payload for o in bench.handled] == [b"only once"]
    assert consumer.metrics["acked"] == 1
    assert consumer.metrics["taken_over"] == 1  # the dead consumer's claim, taken once it ran out
    assert bench.drain(subscription, consumer) == 0  # acked: nothing comes back
    assert bench.endpoint.dead_letters(bench.group) == []
    subscription.close()
