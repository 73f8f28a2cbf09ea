"""MQTT beyond the generic suite (tests/test_endpoints.py), on the real Mosquitto: what plain
paho sees on the wire and in dead letters, crashes, restarts, and the adapter's own claims.

Every test runs on MQTT 5 and 3.1.1 where both apply, with topics and groups of its own, and
ends the persistent sessions it made (:meth:`MqttEndpoint.forget`).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from conftest import cast_of
from letterlock import (
    Identity,
    Opened,
    Opener,
    ReplayWindow,
    Sealer,
    SQLiteReplayStore,
    Suite,
    Topics,
    hazmat,
)
from letterlock.errors import TransportError, UsageError
from letterlock.transports import (
    Ack,
    DeadLetterReason,
    LeaseLost,
    Retry,
    RetryPolicy,
    SealedConsumer,
    Subscription,
    Unroutable,
)
from letterlock.transports.mqtt import DEAD_ROOT, MqttEndpoint, MqttSettings
from services import require, unique

IDLE = float(os.environ.get("LETTERLOCK_TEST_IDLE", "1.0"))
CAST = cast_of(Suite.P256)
URLS = {"mqtt5": "mqtt://127.0.0.1:1883", "mqtt311": "mqtt://127.0.0.1:1883?version=3.1.1"}
SECRET = b"salary of the CEO: 1,234,567"


@dataclass
class Mqtt:
    """This test's endpoint, prefix and group; ends the sessions it made."""

    url: str
    prefix: str = field(default_factory=lambda: unique("t"))
    group: str = field(default_factory=lambda: unique("g"))
    endpoints: list[MqttEndpoint] = field(default_factory=list)

    @property
    def v5(self) -> bool:
        return "3.1.1" not in self.url

    def endpoint(self) -> MqttEndpoint:
        endpoint = MqttEndpoint.from_url(self.url)
        self.endpoints.append(endpoint)
        return endpoint

    def topic(self, *levels: str) -> str:
        return "/".join((self.prefix, *levels))

    def seal(self, payload: bytes, topic: str, sender: Identity | None = None) -> bytes:
        sealer = Sealer(CAST.alice if sender is None else sender)
        return sealer.seal(payload, recipients=[CAST.bob.public], topic=topic)

    def consumer(
        self,
        endpoint: MqttEndpoint,
        topics: Topics,
        *,
        replay: ReplayWindow | None = None,
        claim_lease: float = 60.0,
    ) -> SealedConsumer:
        """bob's consumer; one attempt each, so refusals are dead-lettered at once."""
        opener = Opener(CAST.bob, trust=CAST.pins(), replay=replay or ReplayWindow())
        return SealedConsumer(
            endpoint, self.group, opener=opener, topics=topics,
            retry=RetryPolicy(max_attempts=1), claim_lease=claim_lease,
        )  # fmt: skip


@pytest.fixture(params=sorted(URLS))
def mqtt(request: pytest.FixtureRequest) -> Iterator[Mqtt]:
    require("mqtt")
    bench = Mqtt(URLS[request.param])
    try:
        yield bench
    finally:
        for endpoint in bench.endpoints:
            endpoint.close()
        cleaner = MqttEndpoint.from_url(bench.url)
        cleaner.forget(bench.group)
        cleaner.close()


class RawReader:
    """A plain paho subscriber (clean session, its own client id): what anyone on the broker
    with read access sees."""

    def __init__(self, url: str, topic_filter: str) -> None:
        v5 = "3.1.1" not in url
        version = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=version)
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(topic_filter, qos=1)
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert subscribed.wait(5)

    def take(self, count: int) -> list[paho.MQTTMessage]:
        taken = [self.messages.get(timeout=5) for _ in range(count)]
        time.sleep(0.1)
        assert self.messages.empty()
        return taken

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain(subscription: Subscription, consumer: SealedConsumer, handled: list[Opened]) -> int:
    """Hand everything that arrives to ``consumer`` until the broker goes quiet."""
    taken = 0
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        taken += consumer.handle(delivery, handled.append)
    return taken


# on the wire ----------------------------------------------------------------------------


def test_what_plain_paho_reads_on_the_topic_holds_no_payload_byte(mqtt: Mqtt) -> None:
    raw = RawReader(mqtt.url, mqtt.topic("#"))
    endpoint = mqtt.endpoint()
    sealed = mqtt.seal(SECRET, mqtt.topic("pay"))
    endpoint.publish(mqtt.topic("pay"), sealed)
    [message] = raw.take(1)
    raw.close()
    assert message.payload == sealed  # the envelope is the payload, nothing beside it
    assert SECRET not in message.payload
    assert all(SECRET[i : i + 8] not in message.payload for i in range(len(SECRET) - 8))
    assert message.qos == 1


def test_refused_messages_are_dead_lettered_and_the_copy_says_only_rejected(mqtt: Mqtt) -> None:
    """Forged, tampered, replayed and re-routed (published on a topic the subscription and the
    consumer serve, signed for another): none reaches the handler; the dead-letter copy that
    anyone reading the broker sees carries the exact bytes and one word, never the reason."""
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("pay", "+"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    raw = RawReader(mqtt.url, f"{DEAD_ROOT}/{mqtt.group}")
    on = mqtt.topic("pay", "eu")
    genuine = mqtt.seal(b"pay 10", on)
    tampered = bytearray(mqtt.seal(b"pay 20", on))
    tampered[-40] ^= 1
    forged = mqtt.seal(b"pay mallory", on, sender=CAST.mallory)
    rerouted = mqtt.seal(b"admin: pay all", mqtt.topic("admin", "x"))  # signed elsewhere
    refused = [bytes(tampered), forged, genuine, rerouted]
    for body in (genuine, *refused):
        endpoint.publish(on, body)
    handled: list[Opened] = []
    consumer = mqtt.consumer(endpoint, topics)
    assert drain(subscription, consumer, handled) == 1
    assert [o.payload for o in handled] == [b"pay 10"]
    assert consumer.metrics == {
        "acked": 1, "dead_lettered:bad_signature": 1, "dead_lettered:unknown_sender": 1,
        "dead_lettered:replayed": 1, "dead_lettered:wrong_topic": 1,
    }  # fmt: skip
    copies = raw.take(len(refused))
    raw.close()
    codes = [b"bad_signature", b"unknown_sender", b"replayed", b"wrong_topic", b"signature"]
    for copy in copies:
        said = dict(copy.properties.UserProperty) if mqtt.v5 else {}  # type: ignore[union-attr]
        seen = copy.payload + repr(said).encode()
        assert not any(code in seen for code in codes)
        if mqtt.v5:
            assert copy.payload in refused  # the exact bytes
            assert (sorted(said), said["reason"]) == (["dead_at", "reason", "topic"], "rejected")
        else:
            assert copy.payload.startswith(b"LLDL\x01\x08rejected")
    dead = endpoint.dead_letters(mqtt.group)
    assert [d.body for d in dead] == refused  # oldest first
    assert {d.reason for d in dead} == {DeadLetterReason.REJECTED.value}
    assert {d.topic for d in dead} == {on}  # the topic the broker reported


def test_a_dead_letter_nobody_would_keep_is_not_acked_and_comes_again() -> None:
    """The original is acked only after the dead-letter copy's PUBACK said someone keeps it."""
    require("mqtt")
    mqtt = Mqtt(URLS["mqtt5"])
    try:
        endpoint = mqtt.endpoint()
        topics = Topics.mqtt(mqtt.topic("x"))
        subscription = endpoint.subscribe(topics, group=mqtt.group)
        lost = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"letterlock/dead/{mqtt.group}",
                           protocol=MQTTProtocolVersion.MQTTv5)  # fmt: skip
        lost.connect("127.0.0.1", 1883, clean_start=True)  # the dead-letter session is gone
        lost.loop_start()
        lost.disconnect()
        lost.loop_stop()
        endpoint.publish(mqtt.topic("x"), b"not an envelope")
        consumer = mqtt.consumer(endpoint, topics)
        with pytest.raises(Unroutable):
            drain(subscription, consumer, [])
        subscription.close()
        again = endpoint.subscribe(topics, group=mqtt.group)  # subscribes the dead letters too
        assert drain(again, consumer, []) == 0
        assert [d.body for d in endpoint.dead_letters(mqtt.group)] == [b"not an envelope"]
    finally:
        for endpoint in mqtt.endpoints:
            endpoint.close()
        MqttEndpoint.from_url(mqtt.url).forget(mqtt.group)


def test_listing_dead_letters_keeps_them(mqtt: Mqtt) -> None:
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    for n in range(3):
        endpoint.publish(mqtt.topic("x"), b"not an envelope %d" % n)
    assert drain(subscription, mqtt.consumer(endpoint, topics), []) == 0
    first = endpoint.dead_letters(mqtt.group)
    assert [d.body for d in first] == [b"not an envelope %d" % n for n in range(3)]
    assert [d.body for d in endpoint.dead_letters(mqtt.group, limit=2)] == [
        d.body for d in first[:2]
    ]
    assert [d.body for d in endpoint.dead_letters(mqtt.group)] == [d.body for d in first]
    assert endpoint.redrive(mqtt.group) == 3
    assert endpoint.dead_letters(mqtt.group) == []


# crashes and restarts -------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from letterlock import Opener, Pins, ReplayWindow, SQLiteReplayStore, Topics, hazmat
from letterlock.transports import RetryPolicy, SealedConsumer
from letterlock.transports.mqtt import MqttEndpoint

url, topic, group, store, keys, ready, started = sys.argv[1:]
bob = hazmat.identity_from_private_bytes(Path(keys, "bob").read_bytes())
pins = Pins()
pins.pin("alice", hazmat.public_identity_from_bytes(Path(keys, "alice").read_bytes()))
endpoint = MqttEndpoint.from_url(url)
subscription = endpoint.subscribe(Topics.mqtt(topic), group=group)
consumer = SealedConsumer(
    endpoint, group, opener=Opener(bob, trust=pins, replay=ReplayWindow(SQLiteReplayStore(store))),
    topics=Topics.mqtt(topic), retry=RetryPolicy(max_attempts=1), claim_lease=%(claim)r,
)

def handler(opened):
    Path(started).write_bytes(opened.payload)
    time.sleep(60)  # killed here, before the handler returns

Path(ready).touch()
for delivery in subscription.deliveries(idle_timeout=30):
    consumer.handle(delivery, handler)
"""
CLAIM = 0.5


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {path.name} from the child"
        time.sleep(0.02)


def test_a_consumer_killed_in_its_handler_gets_the_message_again_and_it_is_handled_once(
    mqtt: Mqtt, tmp_path: Path
) -> None:
    (tmp_path / "bob").write_bytes(hazmat.identity_to_private_bytes(CAST.bob))
    (tmp_path / "alice").write_bytes(CAST.alice.public.to_bytes())
    store, ready, started = tmp_path / "replay.db", tmp_path / "ready", tmp_path / "started"
    topic = mqtt.topic("jobs")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD % {"claim": CLAIM}, mqtt.url, topic, mqtt.group,
         str(store), str(tmp_path), str(ready), str(started)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for(ready, child)
        endpoint = mqtt.endpoint()
        endpoint.publish(topic, mqtt.seal(SECRET, topic))
        _wait_for(started, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()  # type: ignore[union-attr]
    assert started.read_bytes() == SECRET  # it was in the handler when it died, unacked
    subscription = endpoint.subscribe(Topics.mqtt(topic), group=mqtt.group)
    handled: list[Opened] = []
    with SQLiteReplayStore(store) as replay:
        consumer = mqtt.consumer(
            endpoint, Topics.mqtt(topic), replay=ReplayWindow(replay), claim_lease=CLAIM
        )
        assert drain(subscription, consumer, handled) == 1  # MQTT's redelivery, on reconnect
    assert [o.payload for o in handled] == [SECRET]  # once
    assert consumer.metrics.get("taken_over") == 1  # the dead consumer's claim, taken over
    assert consumer.metrics.get("acked") == 1
    assert set(consumer.metrics) <= {"taken_over", "acked", "retried:busy"}  # busy: held
    assert endpoint.dead_letters(mqtt.group) == []
    subscription.close()
    assert drain(endpoint.subscribe(Topics.mqtt(topic), group=mqtt.group), consumer, handled) == 0


def test_a_restarted_listener_gets_what_was_published_while_it_was_away(mqtt: Mqtt) -> None:
    topics = Topics.mqtt(mqtt.topic("feed", "#"))
    publisher = mqtt.endpoint()
    listener = mqtt.endpoint()
    subscription = listener.subscribe(topics, group=mqtt.group)
    publisher.publish(mqtt.topic("feed", "a"), mqtt.seal(b"before", mqtt.topic("feed", "a")))
    handled: list[Opened] = []
    assert drain(subscription, mqtt.consumer(listener, topics), handled) == 1
    listener.close()  # the listener stops
    for n in range(3):
        topic = mqtt.topic("feed", "b", str(n))
        publisher.publish(topic, mqtt.seal(b"away %d" % n, topic))
    restarted = mqtt.endpoint()  # a new process would do the same: same URL, same group
    subscription = restarted.subscribe(topics, group=mqtt.group)
    assert drain(subscription, mqtt.consumer(restarted, topics), handled) == 3
    assert [o.payload for o in handled] == [b"before", b"away 0", b"away 1", b"away 2"]


def test_an_unacked_delivery_comes_back_on_reconnect_and_its_old_tag_is_stale(mqtt: Mqtt) -> None:
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    sealed = mqtt.seal(b"once", mqtt.topic("x"))
    endpoint.publish(mqtt.topic("x"), sealed)
    first = next(iter(subscription.deliveries(idle_timeout=5)))
    assert (first.body, first.attempts) == (sealed, None)
    subscription.close()  # not acked: it stays with the group's session
    again = endpoint.subscribe(topics, group=mqtt.group)
    with pytest.raises(LeaseLost):
        endpoint.settle(first, Ack())
    handled: list[Opened] = []
    assert drain(again, mqtt.consumer(endpoint, topics), handled) == 1
    assert [o.payload for o in handled] == [b"once"]


def cut(subscription: Subscription) -> None:
    """Cut the wire under ``subscription`` (the client's socket shut down, as a broker restart
    or a network fault would) and wait until paho has seen its connection end."""
    connection = subscription.connection  # type: ignore[attr-defined]
    connection.client.socket().shutdown(socket.SHUT_RDWR)
    assert connection.lost.wait(30)


def test_a_connection_lost_before_the_ack_is_lease_lost_and_the_message_comes_back(
    mqtt: Mqtt, caplog: pytest.LogCaptureFixture
) -> None:
    """The wire is cut while the handler runs: the ack cannot reach the broker. Settling is
    LeaseLost (counted, never a TransportError out of ``handle``), the message comes again
    when the group is subscribed again, and the replay window refuses that copy: the
    application saw it once."""
    endpoint = mqtt.endpoint()
    topic = mqtt.topic("x")
    topics = Topics.mqtt(topic)
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    endpoint.publish(topic, mqtt.seal(b"once", topic))
    consumer = mqtt.consumer(endpoint, topics)
    handled: list[Opened] = []

    def handler(opened: Opened) -> None:
        handled.append(opened)
        cut(subscription)

    deliveries = subscription.deliveries(idle_timeout=5)
    first = next(deliveries)
    with caplog.at_level(logging.WARNING, logger="letterlock.transports.consumer"):
        assert consumer.handle(first, handler)
    assert consumer.metrics.get("lease_lost") == 1
    assert "acked" not in consumer.metrics
    assert "the connection that took this delivery is gone" in caplog.text  # not a lease
    with pytest.raises(LeaseLost):
        endpoint.extend_lease(first)
    with pytest.raises(TransportError, match="subscribe again"):
        next(deliveries)
    again = endpoint.subscribe(topics, group=mqtt.group)
    assert drain(again, consumer, handled) == 0
    assert [o.payload for o in handled] == [b"once"]
    assert consumer.metrics.get("dead_lettered:replayed") == 1


def test_a_connection_lost_between_a_dead_letter_and_its_ack_dead_letters_twice_not_never(
    mqtt: Mqtt, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forgery is dead-lettered: its copy is published (and PUBACKed), then the wire under
    the subscription is cut before the ack. LeaseLost; the forgery comes again on the
    resumed session and is dead-lettered again: two dead letters, noise, never none."""
    endpoint = mqtt.endpoint()
    topic = mqtt.topic("x")
    topics = Topics.mqtt(topic)
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    forged = mqtt.seal(b"forged", topic, sender=CAST.mallory)
    endpoint.publish(topic, forged)
    consumer = mqtt.consumer(endpoint, topics)
    publish = endpoint._publisher.publish

    def publish_then_cut(*args: object, **kwargs: object) -> int:
        mid = publish(*args, **kwargs)  # type: ignore[arg-type]
        cut(subscription)
        return mid

    monkeypatch.setattr(endpoint._publisher, "publish", publish_then_cut)
    deliveries = subscription.deliveries(idle_timeout=5)
    assert not consumer.handle(next(deliveries), lambda o: None)
    monkeypatch.undo()
    assert dict(consumer.metrics) == {"lease_lost": 1}
    again = endpoint.subscribe(topics, group=mqtt.group)
    assert drain(again, consumer, []) == 0
    assert dict(consumer.metrics) == {"lease_lost": 1, "dead_lettered:unknown_sender": 1}
    again.close()
    dead = endpoint.dead_letters(mqtt.group)
    assert [d.body for d in dead] == [forged, forged]


def test_acks_of_a_backlog_go_to_paho_together_and_every_one_reaches_the_broker(
    mqtt: Mqtt,
) -> None:
    """While more messages wait in the inbox, PUBACKs are held back and handed to paho's loop
    together (one wake-up, one write); the last ones go once the inbox is empty, so nothing
    handled comes again."""
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    connection = getattr(subscription, "connection")  # noqa: B009 - the adapter's own
    count = 40
    for n in range(count):
        endpoint.publish(mqtt.topic("x"), mqtt.seal(b"%d" % n, mqtt.topic("x")))
    for _ in range(1000):  # a backlog: more than one batch of acks waits (3.1.1 sends 20)
        if connection.inbox.qsize() > 16:
            break
        time.sleep(0.01)
    packets: list[bytes] = []
    queue_packet = connection.client._packet_queue

    def counted(command: int, packet: bytes, mid: int, qos: int, info: object = None) -> object:
        if command & 0xF0 == 0x40:  # PUBACK
            packets.append(bytes(packet))
        return queue_packet(command, packet, mid, qos, info)

    connection.client._packet_queue = counted
    handled: list[Opened] = []
    assert drain(subscription, mqtt.consumer(endpoint, topics), handled) == count
    assert sum(len(p) for p in packets) == 4 * count  # every message acked once
    assert len(packets) < count  # and not one write each
    subscription.close()
    again = mqtt.endpoint().subscribe(topics, group=mqtt.group)
    assert list(again.deliveries(idle_timeout=IDLE)) == []  # nothing comes again


def test_a_busy_copy_is_held_unacked_and_handed_out_again_after_the_delay(mqtt: Mqtt) -> None:
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    endpoint.publish(mqtt.topic("x"), b"held")
    deliveries = subscription.deliveries(idle_timeout=IDLE)
    delivery = next(deliveries)
    endpoint.settle(delivery, Retry(delay=0.2))
    started = time.monotonic()
    assert next(deliveries) is delivery  # the same one, still unacked at the broker
    assert time.monotonic() - started >= 0.2
    endpoint.settle(delivery, Ack())
    assert list(deliveries) == []


# what MQTT says, and the adapter's edges -------------------------------------------------


def test_mqtt5_says_when_nobody_subscribes_and_311_cannot(mqtt: Mqtt) -> None:
    endpoint = mqtt.endpoint()
    if mqtt.v5:
        with pytest.raises(Unroutable):
            endpoint.publish(mqtt.topic("nobody"), b"x")
    else:
        endpoint.publish(mqtt.topic("nobody"), b"x")  # dropped by the broker, unseen


def test_a_second_consumer_of_a_group_takes_its_session_and_the_first_stops(mqtt: Mqtt) -> None:
    """Not two consumers taking the session from each other in turn: the first one stops."""
    topics = Topics.mqtt(mqtt.topic("x"))
    first = mqtt.endpoint().subscribe(topics, group=mqtt.group)
    second = mqtt.endpoint()
    later = second.subscribe(topics, group=mqtt.group)
    with pytest.raises(TransportError, match="took its session over"):
        list(first.deliveries(idle_timeout=5))
    second.publish(mqtt.topic("x"), b"to the second")
    assert [d.body for d in later.deliveries(idle_timeout=IDLE)] == [b"to the second"]


def test_client_library_errors_leave_as_transport_errors(mqtt: Mqtt) -> None:
    with pytest.raises(TransportError) as refused:
        MqttEndpoint.from_url("mqtt://127.0.0.1:1")  # nothing listens there
    assert isinstance(refused.value.__cause__, OSError)
    endpoint = mqtt.endpoint()
    with pytest.raises(TransportError) as invalid:
        endpoint.publish(mqtt.topic("#"), b"x")  # paho: no wildcards in a topic
    assert isinstance(invalid.value.__cause__, ValueError)


def test_urls() -> None:
    settings = MqttSettings.from_url("mqtts://u:p%40ss@broker:1884?version=3.1.1&lease=0.5")
    assert (settings.host, settings.port, settings.tls) == ("broker", 1884, True)
    assert (settings.username, settings.password) == ("u", "p@ss")
    assert settings.version is MQTTProtocolVersion.MQTTv311
    assert settings.lease == 0.5  # accepted: MQTT has no lease to set
    assert "p@ss" not in repr(settings)
    defaults = MqttSettings.from_url("mqtt://127.0.0.1")
    assert (defaults.port, defaults.version, defaults.session_expiry) == (
        1883, MQTTProtocolVersion.MQTTv5, 604_800,
    )  # fmt: skip
    assert MqttSettings.from_url("mqtt://h?session_expiry=0").session_expiry == 0
    assert MqttSettings.from_url("mqtts://h").port == 8883
    for bad in ("mqtt://h?version=4", "mqtt://h?colour=red", "mqtt://h?lease=x",
                "mqtt://h?lease=0", "mqtt://h/path", "amqp://h"):  # fmt: skip
        with pytest.raises(UsageError):
            MqttSettings.from_url(bad)


def test_any_printable_group_is_one_level_of_its_own(mqtt: Mqtt) -> None:
    """A group such as a command line derives ("bob/payroll/+") is escaped, never a filter: its
    dead letters go to one topic level that no other group's name can reach."""
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    for bad in ("", "tab\t", "x" * 201):
        with pytest.raises(UsageError):
            endpoint.subscribe(topics, group=bad)
    with pytest.raises(UsageError, match="MQTT topic filters"):
        endpoint.subscribe(Topics.amqp("a.*"), group=mqtt.group)
    group = f"{mqtt.group}/+/#"
    raw = RawReader(mqtt.url, f"{DEAD_ROOT}/{mqtt.group}%2F%2B%2F%23")
    try:
        subscription = endpoint.subscribe(topics, group=group)
        endpoint.publish(mqtt.topic("x"), b"not an envelope")
        consumer = SealedConsumer(
            endpoint, group, opener=Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow()),
            topics=topics,
        )  # fmt: skip
        assert drain(subscription, consumer, []) == 0
        [copy] = raw.take(1)  # on the escaped level, as anyone reading the broker sees it
        assert copy.payload.endswith(b"not an envelope")
        assert [d.body for d in endpoint.dead_letters(group)] == [b"not an envelope"]
        assert endpoint.dead_letters(mqtt.group) == []  # the plain name is another group
    finally:
        raw.close()
        endpoint.forget(group)


def test_forget_ends_a_groups_sessions_with_what_waits_in_them(mqtt: Mqtt) -> None:
    endpoint = mqtt.endpoint()
    topics = Topics.mqtt(mqtt.topic("x"))
    subscription = endpoint.subscribe(topics, group=mqtt.group)
    with pytest.raises(UsageError, match="already has a consumer"):
        endpoint.subscribe(topics, group=mqtt.group)
    endpoint.publish(mqtt.topic("x"), b"refused")
    assert drain(subscription, mqtt.consumer(endpoint, topics), []) == 0  # dead-lettered
    endpoint.publish(mqtt.topic("x"), b"waits")
    endpoint.forget(mqtt.group)
    assert endpoint.dead_letters(mqtt.group) == []
    if mqtt.v5:  # nothing subscribes any more, and MQTT 5 says so
        with pytest.raises(Unroutable):
            endpoint.publish(mqtt.topic("x"), b"to nobody")
    again = endpoint.subscribe(topics, group=mqtt.group)
    assert list(again.deliveries(idle_timeout=IDLE)) == []


def test_a_connected_mqtt5_consumer_gets_a_backlog_beyond_the_brokers_queue() -> None:
    """Mosquitto queues 1000 messages per session (max_queued_messages) and drops the rest;
    an MQTT 5 consumer's in-flight window (Receive Maximum 65535) takes the backlog instead."""
    require("mqtt")
    mqtt = Mqtt(URLS["mqtt5"])
    try:
        endpoint = mqtt.endpoint()
        subscription = endpoint.subscribe(Topics.mqtt(mqtt.topic("x")), group=mqtt.group)
        count = 1200
        for n in range(count):  # while the consumer takes nothing
            endpoint.publish(mqtt.topic("x"), b"%d" % n)
        bodies = []
        for delivery in subscription.deliveries(idle_timeout=IDLE):
            bodies.append(delivery.body)
            endpoint.settle(delivery, Ack())
        assert bodies == [b"%d" % n for n in range(count)]  # all, in order
    finally:
        for endpoint in mqtt.endpoints:
            endpoint.close()
        MqttEndpoint.from_url(mqtt.url).forget(mqtt.group)


def test_a_311_listing_shows_the_brokers_in_flight_window_and_redrive_takes_all() -> None:
    """3.1.1 cannot ask for a window: Mosquitto sends 20 unacked (max_inflight_messages)."""
    require("mqtt")
    mqtt = Mqtt(URLS["mqtt311"])
    try:
        endpoint = mqtt.endpoint()
        topics = Topics.mqtt(mqtt.topic("x"))
        subscription = endpoint.subscribe(topics, group=mqtt.group)
        for n in range(25):
            endpoint.publish(mqtt.topic("x"), b"garbage %d" % n)
        assert drain(subscription, mqtt.consumer(endpoint, topics), []) == 0
        listed = endpoint.dead_letters(mqtt.group)
        assert [d.body for d in listed] == [b"garbage %d" % n for n in range(20)]
        assert endpoint.redrive(mqtt.group) == 25
        redriven = []
        for delivery in subscription.deliveries(idle_timeout=IDLE):
            redriven.append(delivery.body)
            endpoint.settle(delivery, Ack())  # 20 unacked at a time, here too
        assert redriven == [b"garbage %d" % n for n in range(25)]
    finally:
        for endpoint in mqtt.endpoints:
            endpoint.close()
        MqttEndpoint.from_url(mqtt.url).forget(mqtt.group)


def test_the_benchmark_runs_its_three_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    require("mqtt")
    folder = str(Path(__file__).parent.parent / "benchmarks")
    monkeypatch.syspath_prepend(folder)  # for its spawned publisher too
    import broker_mqtt  # the benchmark script, from its own folder

    rates = broker_mqtt.run(40, 64)
    rows = {"plain", "plain+floor", "letterlock"}
    assert set(rates) == {*rows, *(f"{row} cpu_us" for row in rows), "ratio"}
    assert all(rate > 0 for rate in rates.values())
