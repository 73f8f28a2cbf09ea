"""RabbitMQ beyond the endpoint suite, on the real server (no mocks): its topology, what the
broker can read, the pika callback way of consuming, a consumer killed in its handler, and a
broker restart in the middle of a run.

Every test declares an exchange and a group of its own (:func:`services.unique`) and deletes
them afterwards. The restart test stops and starts the RabbitMQ application
(``rabbitmqctl stop_app`` / ``start_app``, as root) and always starts it again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

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
    Delivery,
    LeaseLost,
    Retry,
    RetryPolicy,
    SealedConsumer,
    Unroutable,
)
from letterlock.transports.amqp import (
    REASON_HEADER,
    TOPIC_HEADER,
    AmqpChannel,
    AmqpEndpoint,
    Topology,
    declare,
)
from services import SERVICES, in_ci, require, require_binary, unique

CAST = cast_of(Suite.P256)
IDLE = 1.0


@dataclass
class Rabbit:
    """This test's exchange and group on the server, and a plain pika connection to look."""

    exchange: str = field(default_factory=lambda: unique("ll-x"))
    group: str = field(default_factory=lambda: unique("ll-g"))
    prefix: str = field(default_factory=lambda: unique("t"))
    quorum: bool = False
    endpoints: list[AmqpEndpoint] = field(default_factory=list)

    def url(self, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        queue_type = "quorum" if self.quorum else "classic"
        base = f"{SERVICES['rabbitmq'].url}?exchange={self.exchange}&queue_type={queue_type}"
        return f"{base}&{query}" if query else base

    def endpoint(self, **options: str) -> AmqpEndpoint:
        endpoint = AmqpEndpoint.from_url(self.url(**options))
        self.endpoints.append(endpoint)
        return endpoint

    def topic(self, *words: str) -> str:
        return ".".join((self.prefix, *words))

    @property
    def names(self) -> Topology:
        return Topology.of(self.group, exchange=self.exchange)

    def plain(self) -> Any:
        """A plain pika channel, as anyone with the broker's password has."""
        return pika.BlockingConnection(pika.URLParameters(SERVICES["rabbitmq"].url)).channel()

    def seal(self, payload: bytes, *words: str, sender: Identity | None = None) -> bytes:
        return Sealer(sender or CAST.alice).seal(
            payload, recipients=[CAST.bob.public], topic=self.topic(*words)
        )

    def raw(self, queue: str) -> list[tuple[Any, Any, bytes]]:
        """Everything in ``queue``, read with plain pika and left there."""
        channel = self.plain()
        found = []
        while True:
            method, properties, body = channel.basic_get(queue)
            if method is None:
                break
            found.append((method, properties, body))
        channel.basic_nack(0, multiple=True, requeue=True)  # all back in the queue, and
        deadline = time.monotonic() + 2.0  # counted there again (quorum queues: later)
        while time.monotonic() < deadline and found:
            if channel.queue_declare(queue, passive=True).method.message_count >= len(found):
                break
            time.sleep(0.01)
        channel.connection.close()
        return found


@pytest.fixture(params=["classic", "quorum"])
def rabbit(request: pytest.FixtureRequest) -> Iterator[Rabbit]:
    require("rabbitmq")
    rabbit = Rabbit(quorum=request.param == "quorum")
    try:
        yield rabbit
    finally:
        for endpoint in rabbit.endpoints:
            endpoint.close()
        channel = rabbit.plain()
        names = rabbit.names
        for queue in (names.queue, names.dead_letter_queue, names.delay_queue):
            channel.queue_delete(queue)
        channel.exchange_delete(names.exchange)
        channel.exchange_delete(names.dead_letter_exchange)
        channel.connection.close()


def consumer_of(broker: Any, rabbit: Rabbit, topics: str, **options: Any) -> SealedConsumer:
    opener = Opener(CAST.bob, trust=options.pop("pins", CAST.pins()), replay=ReplayWindow())
    options.setdefault("retry", RetryPolicy(max_attempts=1))
    return SealedConsumer(broker, rabbit.group, opener=opener, topics=topics, **options)


def drain(
    endpoint: AmqpEndpoint, topics: str, rabbit: Rabbit, consumer: SealedConsumer
) -> list[Opened]:
    handled: list[Opened] = []
    subscription = endpoint.subscribe(Topics(topics), group=rabbit.group)
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        consumer.handle(delivery, handled.append)
    subscription.close()
    return handled


# what the broker reads ----------------------------------------------------------------


def test_the_broker_reads_no_payload_byte(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("orders")
    endpoint.declare(Topics(topic), group=rabbit.group)
    secret = b"card 4111-1111-1111-1111, expires 12/29"
    endpoint.publish(topic, rabbit.seal(secret, "orders"))
    [(method, properties, body)] = rabbit.raw(rabbit.group)
    assert method.routing_key == topic
    assert properties.delivery_mode == 2  # persistent: a restart keeps it
    for piece in (secret, b"4111", b"expires"):
        assert piece not in body


def test_a_topic_no_queue_is_bound_to_is_unroutable(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    with pytest.raises(Unroutable):  # before anything was declared: no exchange either
        endpoint.publish(rabbit.topic("a"), b"sealed bytes")
    endpoint.declare(Topics(rabbit.topic("a")), group=rabbit.group)
    with pytest.raises(Unroutable):
        endpoint.publish(rabbit.topic("b"), b"sealed bytes")
    endpoint.publish(rabbit.topic("a"), b"sealed bytes")  # the channel is still usable


def test_refusals_and_a_rerouted_message_reach_only_the_dead_letter_queue(rabbit: Rabbit) -> None:
    """Forged, tampered, replayed, and re-routed by the broker (an extra binding puts a message
    signed for another topic into the group's queue): none reaches the handler, each is in the
    dead-letter queue, and its headers there say one word, the same for every reason."""
    endpoint = rabbit.endpoint()
    pay = rabbit.topic("pay")
    endpoint.declare(Topics(pay), group=rabbit.group)
    channel = rabbit.plain()  # the broker's operator adds a binding the group never asked for
    channel.queue_bind(rabbit.group, rabbit.exchange, rabbit.topic("other", "#"))
    channel.connection.close()
    genuine = rabbit.seal(b"pay 10", "pay")
    tampered = bytearray(rabbit.seal(b"pay 20", "pay"))
    tampered[-40] ^= 1
    forged = rabbit.seal(b"pay mallory", "pay", sender=CAST.mallory)
    rerouted = rabbit.seal(b"other things", "other", "x")
    for body in (genuine, bytes(tampered), forged, genuine):
        endpoint.publish(pay, body)
    endpoint.publish(rabbit.topic("other", "x"), rerouted)  # routed by the extra binding
    consumer = consumer_of(endpoint, rabbit, pay)
    handled = drain(endpoint, pay, rabbit, consumer)
    assert [o.payload for o in handled] == [b"pay 10"]
    assert consumer.metrics == {
        "acked": 1,
        "dead_lettered:bad_signature": 1,
        "dead_lettered:unknown_sender": 1,
        "dead_lettered:replayed": 1,
        "dead_lettered:wrong_topic": 1,
    }
    dead = rabbit.raw(rabbit.names.dead_letter_queue)
    dead_bodies = [bytes(tampered), forged, genuine, rerouted]
    assert sorted(body for _, _, body in dead) == sorted(dead_bodies)
    shown = {body: rabbit.topic("other", "x") if body == rerouted else pay for body in dead_bodies}
    for _, properties, body in dead:  # the one word, and the topic the broker routed it by
        ours = {k: v for k, v in properties.headers.items() if not k.startswith("x-")}
        assert ours == {REASON_HEADER: "rejected", TOPIC_HEADER: shown[body]}
        assert set(properties.headers) - set(ours) <= {"x-delivery-count"}  # the broker's own
        assert properties.delivery_mode == 2
    assert [r.reason for r in endpoint.dead_letters(rabbit.group)] == ["rejected"] * 4
    assert len(rabbit.raw(rabbit.names.dead_letter_queue)) == 4  # listing consumed nothing


def test_a_handler_error_is_dead_lettered_as_such_and_redriven(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("jobs")
    endpoint.declare(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"job", "jobs"))
    consumer = consumer_of(endpoint, rabbit, topic)
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)

    def fails(opened: Opened) -> None:
        raise RuntimeError("the database is down")

    [delivery] = subscription.deliveries(idle_timeout=IDLE)
    with pytest.raises(RuntimeError):
        consumer.handle(delivery, fails)
    subscription.close()
    [record] = endpoint.dead_letters(rabbit.group)
    assert (record.reason, record.topic) == ("handler_error", topic)
    assert record.published > 0
    assert endpoint.redrive(rabbit.group) == 1
    assert endpoint.dead_letters(rabbit.group) == []
    [(_, properties, _)] = rabbit.raw(rabbit.group)  # back in the group's queue
    assert properties.headers[TOPIC_HEADER] == topic


def test_a_retry_after_a_delay_goes_through_the_delay_queue(rabbit: Rabbit) -> None:
    """A sender not trusted yet is retried after the policy's delay (the delay queue dead-
    letters the copy back); a quorum queue counts the attempts, so it then ends as a dead
    letter; a classic one cannot count, so it is dead-lettered at once."""
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("pay")
    endpoint.declare(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"from eve", "pay", sender=CAST.eve))
    retry = RetryPolicy(max_attempts=2, delay=0.3, max_delay=0.3)
    consumer = consumer_of(endpoint, rabbit, topic, retry=retry)
    started = time.monotonic()
    assert drain(endpoint, topic, rabbit, consumer) == []
    if rabbit.quorum:
        assert consumer.metrics == {
            "retried:unknown_sender": 1,
            "dead_lettered:unknown_sender": 1,
        }
        assert time.monotonic() - started >= 0.3
    else:
        assert consumer.metrics == {"dead_lettered:unknown_sender": 1}
    assert [r.reason for r in endpoint.dead_letters(rabbit.group)] == ["rejected"]
    assert rabbit.raw(rabbit.names.delay_queue) == []


def test_a_retry_without_delay_is_requeued_and_a_stale_delivery_is_lease_lost(
    rabbit: Rabbit,
) -> None:
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("x")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, b"bytes")
    first = next(subscription.deliveries(idle_timeout=IDLE))
    assert first.attempts == (1 if rabbit.quorum else None)
    endpoint.settle(first, Retry(delay=0))
    again = next(subscription.deliveries(idle_timeout=IDLE))
    assert again.body == b"bytes"
    assert again.attempts == (2 if rabbit.quorum else None)  # x-delivery-count
    subscription.close()  # unsettled: back to the queue
    with pytest.raises(LeaseLost):
        endpoint.settle(again, Ack())
    with pytest.raises(LeaseLost):
        endpoint.extend_lease(again)
    assert len(rabbit.raw(rabbit.group)) == 1


def test_from_url_takes_its_options_and_refuses_bad_ones() -> None:
    endpoint = AmqpEndpoint.from_url(
        "amqp://guest:guest@127.0.0.1:5672/%2F?exchange=e&queue_type=quorum&prefetch=7"
        "&lease=5&reconnect=0&heartbeat=30&ack_batch=3"
    )
    assert (endpoint.exchange, endpoint.quorum, endpoint.prefetch) == ("e", True, 7)
    assert (endpoint.reconnect, endpoint.ack_batch) == (0, 3)
    assert endpoint.parameters.heartbeat == 30
    assert endpoint.parameters.virtual_host == "/"
    for bad in ("amqp://h/?queue_type=stream", "amqp://h/?prefetch=x", "amqp://h/?prefetch=0"):
        with pytest.raises(UsageError):
            AmqpEndpoint.from_url(bad)


def test_a_server_that_does_not_answer_is_a_transport_error() -> None:
    endpoint = AmqpEndpoint.from_url("amqp://guest:guest@127.0.0.1:1/%2F")
    with pytest.raises(TransportError):
        endpoint.publish("a", b"b")


# the pika way: a callback on your own BlockingConnection ------------------------------


def test_the_pika_callback_example(rabbit: Rabbit) -> None:
    """What a pika user writes: their own connection and channel, our topology and broker,
    ``basic_consume`` with our callback, pika's own loop."""
    url = SERVICES["rabbitmq"].url
    topic = rabbit.topic("orders", "eu")
    seen: list[bytes] = []

    # --- the example (docs: letterlock.transports.amqp.AmqpChannel.callback) ---
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    names = declare(
        channel, rabbit.group, Topics(rabbit.topic("orders", "*")), exchange=rabbit.exchange,
        quorum=rabbit.quorum,
    )  # fmt: skip
    broker = AmqpChannel(channel, exchange=rabbit.exchange, quorum=rabbit.quorum)
    opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
    consumer = SealedConsumer(
        broker, names.queue, opener=opener, topics=rabbit.topic("orders", "*")
    )

    def on_order(opened: Opened) -> None:
        seen.append(opened.payload)
        if len(seen) == 2:
            channel.stop_consuming()

    channel.basic_qos(prefetch_count=10)
    channel.basic_consume(names.queue, on_message_callback=broker.callback(consumer, on_order))
    broker.publish(topic, rabbit.seal(b"order 1", "orders", "eu"))
    broker.publish(topic, rabbit.seal(b"order 2", "orders", "eu"))
    channel.start_consuming()
    connection.close()
    # --- end of the example ---

    assert seen == [b"order 1", b"order 2"]
    assert consumer.metrics == {"acked": 2}
    assert rabbit.raw(rabbit.group) == []


def test_a_callback_serves_only_its_own_broker(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    consumer = consumer_of(endpoint, rabbit, rabbit.topic("x"))
    channel = rabbit.plain()
    with pytest.raises(UsageError):
        AmqpChannel(channel).callback(consumer, print)
    channel.connection.close()


# a consumer killed in its handler -------------------------------------------------------

_KILLED_CONSUMER = """
import os, signal, sys
from pathlib import Path
from letterlock import Opener, Pins, ReplayWindow, SQLiteReplayStore, Topics, hazmat
from letterlock.transports import SealedConsumer
from letterlock.transports.amqp import AmqpEndpoint

url, group, topic, keys, store, marker = sys.argv[1:]
bob = hazmat.identity_from_private_bytes(Path(keys, "bob").read_bytes())
pins = Pins()
pins.pin("alice", hazmat.public_identity_from_bytes(Path(keys, "alice").read_bytes()))
opener = Opener(bob, trust=pins, replay=ReplayWindow(SQLiteReplayStore(store)))
endpoint = AmqpEndpoint.from_url(url)
subscription = endpoint.subscribe(Topics(topic), group=group)
consumer = SealedConsumer(endpoint, group, opener=opener, topics=topic, claim_lease=1.0)

def handler(opened):
    Path(marker).write_bytes(opened.payload)
    os.kill(os.getpid(), signal.SIGKILL)  # before the application did anything with it

for delivery in subscription.deliveries(idle_timeout=10):
    consumer.handle(delivery, handler)
"""


def test_a_consumer_killed_in_its_handler_hands_the_message_over_once(
    rabbit: Rabbit, tmp_path: Path
) -> None:
    topic = rabbit.topic("jobs")
    endpoint = rabbit.endpoint()
    endpoint.declare(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"job 1", "jobs"))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "bob").write_bytes(hazmat.identity_to_private_bytes(CAST.bob))
    (keys / "alice").write_bytes(CAST.alice.public.to_bytes())
    store, marker = tmp_path / "replay.db", tmp_path / "entered"
    script = tmp_path / "consumer.py"
    script.write_text(_KILLED_CONSUMER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, str(script), rabbit.url(), rabbit.group, topic, str(keys), str(store),
         str(marker)],
        env=env, timeout=30, check=False,
    )  # fmt: skip
    assert child.returncode == -9  # SIGKILL, inside the handler
    assert marker.read_bytes() == b"job 1"
    pins = CAST.pins()
    opener = Opener(CAST.bob, trust=pins, replay=ReplayWindow(SQLiteReplayStore(store)))
    consumer = SealedConsumer(endpoint, rabbit.group, opener=opener, topics=topic, claim_lease=1.0)
    handled: list[Opened] = []
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    for delivery in subscription.deliveries(idle_timeout=2.5):  # > the claim lease
        consumer.handle(delivery, handled.append)
    subscription.close()
    assert [o.payload for o in handled] == [b"job 1"]  # the application saw it once
    assert consumer.metrics["acked"] == 1
    assert consumer.metrics["taken_over"] == 1
    assert endpoint.dead_letters(rabbit.group) == []
    assert rabbit.raw(rabbit.group) == []


# a broker restart in the middle of a run --------------------------------------------------

RESTART_MESSAGES = 2000


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("rabbit", ["classic"], indirect=True)  # one restart is enough
def test_a_broker_restart_loses_nothing_and_duplicates_nothing(
    rabbit: Rabbit, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rabbitmqctl stop_app`` / ``start_app`` while a publisher (retrying on TransportError
    with the same sealed bytes) and a consumer (reconnecting) run: every message reaches the
    application once. Copies the broker kept twice (a publish confirmed too late, an ack lost
    with the connection) are refused as replays, dead-lettered, and counted."""
    require_binary("rabbitmqctl", "rabbitmq-server")
    if os.geteuid() != 0:
        message = "restarting RabbitMQ needs rabbitmqctl as root"
        if in_ci():
            pytest.fail(f"{message} (CI=true: the restart test must run)", pytrace=False)
        pytest.skip(message)
    topic = rabbit.topic("orders")
    publisher = rabbit.endpoint()
    publisher.declare(Topics(topic), group=rabbit.group)
    sealed = [rabbit.seal(b"%d" % n, "orders") for n in range(RESTART_MESSAGES)]
    published = threading.Event()
    retries = Counter[str]()
    restarted: list[float] = []
    restarter: list[threading.Thread] = []

    stop = threading.Event()  # set when the test ends, however it ends

    def publish() -> None:
        endpoint = AmqpEndpoint.from_url(rabbit.url())
        deadline = time.monotonic() + 180
        try:
            for n, body in enumerate(sealed):
                if n == RESTART_MESSAGES // 3:
                    restarter.append(threading.Thread(target=restart, daemon=True))
                    restarter[0].start()
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        endpoint.publish(topic, body)
                        break
                    except Unroutable:
                        raise  # the group is gone: retrying could never end
                    except TransportError:
                        retries["publish"] += 1
                        time.sleep(0.1)
                else:
                    return
        finally:
            endpoint.close()
            published.set()

    def restart() -> None:
        started = time.monotonic()
        try:
            _rabbitmqctl("stop_app")
        finally:
            _rabbitmqctl("start_app")
        restarted.append(time.monotonic() - started)

    consumer_endpoint = rabbit.endpoint(reconnect="45", prefetch="50")
    consumer = consumer_of(consumer_endpoint, rabbit, topic, retry=RetryPolicy(max_attempts=5))
    seen: Counter[bytes] = Counter()
    started = time.monotonic()
    try:
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        subscription = consumer_endpoint.subscribe(Topics(topic), group=rabbit.group)
        for delivery in subscription.deliveries(idle_timeout=2.0):  # < the restart's time
            consumer.handle(delivery, lambda opened: seen.update([opened.payload]))
            if len(seen) == RESTART_MESSAGES and published.is_set():
                break
        thread.join(timeout=60)
        subscription.close()
    finally:
        stop.set()
        for thread in restarter:
            thread.join(timeout=120)
        if not restarted:  # whatever failed, RabbitMQ runs again
            _rabbitmqctl("start_app")
    elapsed = time.monotonic() - started
    duplicates = sum(n - 1 for n in seen.values())
    lost = RESTART_MESSAGES - len(seen)
    dead = consumer_endpoint.dead_letters(rabbit.group)
    with capsys.disabled():
        print(
            f"\nRabbitMQ restart: sent {RESTART_MESSAGES}, seen {len(seen)}, duplicates "
            f"{duplicates}, lost {lost}; publish retries {retries['publish']}; consumer "
            f"{dict(consumer.metrics)}; restart took {restarted[0]:.1f} s; run {elapsed:.1f} s"
        )
    assert restarted, "RabbitMQ was not restarted"
    assert (lost, duplicates) == (0, 0)
    assert seen.keys() == {b"%d" % n for n in range(RESTART_MESSAGES)}
    refused = {k: v for k, v in consumer.metrics.items() if k.startswith("dead_lettered")}
    assert set(refused) <= {"dead_lettered:replayed"}  # only second copies refused
    assert len(dead) == sum(refused.values())


# asyncio: aio-pika ------------------------------------------------------------------------


def test_the_asyncio_adapter_round_trips_and_dead_letters(rabbit: Rabbit) -> None:
    """aio-pika on the same topology: one genuine message handled, a forgery dead-lettered with
    the one word, an unbound topic Unroutable, a settled delivery not settled twice."""
    from letterlock.transports import AsyncSealedConsumer
    from letterlock.transports.aio_amqp import AioAmqpBroker

    topic = rabbit.topic("orders", "eu")
    seen: list[bytes] = []

    async def run() -> dict[str, int]:
        broker = await AioAmqpBroker.connect(rabbit.url(prefetch="10", lease="1"))
        try:
            queue = await broker.declare(Topics(rabbit.topic("orders", "*")), group=rabbit.group)
            opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
            consumer = AsyncSealedConsumer(
                broker, rabbit.group, opener=opener, topics=rabbit.topic("orders", "*"),
                retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip
            await broker.publish(topic, rabbit.seal(b"order 1", "orders", "eu"))
            await broker.publish(topic, rabbit.seal(b"forged", "orders", "eu", sender=CAST.eve))
            with pytest.raises(Unroutable):
                await broker.publish(rabbit.topic("nobody"), b"x")

            async def on_order(opened: Opened) -> None:
                await asyncio.sleep(0)
                seen.append(opened.payload)

            assert await broker.consume(queue, consumer, on_order, idle_timeout=IDLE) == 1
            stale = Delivery(tag="a0.1", queue=rabbit.group, topic=topic, body=b"", attempts=None)
            with pytest.raises(LeaseLost):  # not held: settled already, or never ours
                await broker.settle(stale, Ack())
            return dict(consumer.metrics)
        finally:
            await broker.close()

    metrics = asyncio.run(run())
    assert seen == [b"order 1"]
    assert metrics == {"acked": 1, "dead_lettered:unknown_sender": 1}
    [(_, properties, body)] = rabbit.raw(rabbit.names.dead_letter_queue)
    assert properties.headers[REASON_HEADER] == "rejected"
    assert b"forged" not in body
    assert rabbit.raw(rabbit.group) == []


def test_the_asyncio_adapter_retries_later_through_the_delay_queue(rabbit: Rabbit) -> None:
    from letterlock.transports import AsyncSealedConsumer, aio_amqp, amqp
    from letterlock.transports.aio_amqp import AioAmqpBroker

    for name in ("REASON_HEADER", "TOPIC_HEADER", "ATTEMPTS_HEADER", "DEFAULT_EXCHANGE"):
        assert getattr(aio_amqp, name) == getattr(amqp, name)  # one topology, two clients
    topic = rabbit.topic("pay")

    async def run() -> dict[str, int]:
        broker = await AioAmqpBroker.connect(rabbit.url())
        try:
            queue = await broker.declare(topic, group=rabbit.group)
            opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
            consumer = AsyncSealedConsumer(
                broker, rabbit.group, opener=opener, topics=topic,
                retry=RetryPolicy(max_attempts=2, delay=0.3, max_delay=0.3),
            )  # fmt: skip
            await broker.publish(topic, rabbit.seal(b"from eve", "pay", sender=CAST.eve))
            assert await broker.consume(queue, consumer, print, idle_timeout=IDLE) == 0
            return dict(consumer.metrics)
        finally:
            await broker.close()

    metrics = asyncio.run(run())
    if rabbit.quorum:  # counted: retried once after the delay, then a dead letter
        assert metrics == {"retried:unknown_sender": 1, "dead_lettered:unknown_sender": 1}
    else:  # not counted: a dead letter at once
        assert metrics == {"dead_lettered:unknown_sender": 1}
    [(_, properties, _)] = rabbit.raw(rabbit.names.dead_letter_queue)
    assert properties.headers[REASON_HEADER] == "rejected"


def test_a_subscription_sends_its_batched_acks_when_it_closes(rabbit: Rabbit) -> None:
    """Acks wait in pika's buffer (one write per batch); closing sends them, so nothing that
    was handled comes back."""
    endpoint = rabbit.endpoint(prefetch="10")
    topic = rabbit.topic("x")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    for n in range(5):
        endpoint.publish(topic, b"%d" % n)
    taken = []
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        endpoint.settle(delivery, Ack())
        taken.append(delivery.body)
        if len(taken) == 5:
            break  # no wait after the last ack: it is still queued
    subscription.close()
    assert sorted(taken) == [b"0", b"1", b"2", b"3", b"4"]
    assert rabbit.raw(rabbit.group) == []
    with pytest.raises(UsageError):
        AmqpChannel(object(), ack_batch=0)


@pytest.mark.parametrize("rabbit", ["classic"], indirect=True)
def test_a_connection_lost_while_acking_is_lease_lost_and_the_message_comes_back(
    rabbit: Rabbit,
) -> None:
    """The connection drops between a delivery and its ack (found by CI: a broker restart
    while the consumer flushed its acks). Settling is LeaseLost, which the consumer counts
    and goes on from, never a TransportError out of ``handle``; the subscription reconnects
    and RabbitMQ delivers the message again."""
    endpoint = rabbit.endpoint(prefetch="10", ack_batch="1", reconnect="10")
    topic = rabbit.topic("x")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, b"once")
    deliveries = subscription.deliveries(idle_timeout=IDLE)
    first = next(deliveries)
    endpoint.connection()._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # the wire cut
    with pytest.raises(LeaseLost):
        endpoint.settle(first, Ack())
    again = next(deliveries)  # after reconnecting
    assert again.body == first.body == b"once"
    endpoint.settle(again, Ack())
    subscription.close()
    assert rabbit.raw(rabbit.group) == []


@pytest.mark.parametrize("rabbit", ["classic"], indirect=True)
def test_a_heartbeat_on_a_lost_connection_is_lease_lost_and_the_message_handled_once(
    rabbit: Rabbit,
) -> None:
    """The wire is cut while a long handler runs and extends its lease: the heartbeat is
    LeaseLost (the handler learns its message went back), the settlement too, and the
    subscription reconnects; the copy RabbitMQ delivers again is refused as a replay."""
    endpoint = rabbit.endpoint(prefetch="10", ack_batch="1", reconnect="10")
    topic = rabbit.topic("x")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"once", "x"))
    consumer = consumer_of(endpoint, rabbit, topic)
    seen: list[bytes] = []
    heartbeat: list[type[BaseException]] = []

    def handler(opened: Opened) -> None:
        seen.append(opened.payload)
        endpoint.connection()._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # the wire cut
        try:
            consumer.extend_lease()
        except TransportError as exc:
            heartbeat.append(type(exc))

    deliveries = subscription.deliveries(idle_timeout=IDLE)
    assert consumer.handle(next(deliveries), handler)
    assert heartbeat == [LeaseLost]
    for delivery in deliveries:  # after reconnecting
        consumer.handle(delivery, lambda o: seen.append(o.payload))
    subscription.close()
    assert seen == [b"once"]
    assert consumer.metrics == {"lease_lost": 1, "dead_lettered:replayed": 1}


def test_only_consumer_timeout_among_the_channels_rabbitmq_closes_is_a_lost_lease() -> None:
    """RabbitMQ closing a channel for a settlement it refuses (404, 403) surfaces; closing it
    because a delivery outlived ``consumer_timeout`` (406) puts the message back: LeaseLost.
    (RabbitMQ 3.10 here sets that timeout for the whole server only, so no live test.)"""
    from letterlock.transports.amqp import _lost

    timed_out = "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out"
    assert _lost(pika.exceptions.ChannelClosedByBroker(406, timed_out))
    assert not _lost(pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no exchange"))
    assert not _lost(pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED"))
    assert _lost(pika.exceptions.StreamLostError("Transport indicated EOF"))
    assert _lost(pika.exceptions.ChannelWrongStateError("Channel is closed."))


def test_a_group_declared_again_as_another_queue_type_is_refused(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    endpoint.declare(Topics(rabbit.topic("x")), group=rabbit.group)
    other = AmqpEndpoint(endpoint.parameters, exchange=rabbit.exchange, quorum=not rabbit.quorum)
    rabbit.endpoints.append(other)
    with pytest.raises(TransportError):
        other.declare(Topics(rabbit.topic("x")), group=rabbit.group)


def test_a_callback_lets_the_handlers_exception_out_after_dead_lettering(rabbit: Rabbit) -> None:
    channel = rabbit.plain()
    topic = rabbit.topic("x")
    names = declare(channel, rabbit.group, topic, exchange=rabbit.exchange, quorum=rabbit.quorum)
    broker = AmqpChannel(channel, exchange=rabbit.exchange, quorum=rabbit.quorum)
    consumer = consumer_of(broker, rabbit, topic)

    def fails(opened: Opened) -> None:
        raise RuntimeError("the database is down")

    channel.basic_consume(names.queue, on_message_callback=broker.callback(consumer, fails))
    broker.publish(topic, rabbit.seal(b"job", "x"))
    with pytest.raises(RuntimeError, match="database"):
        channel.start_consuming()
    channel.connection.close()
    [(_, properties, _)] = rabbit.raw(names.dead_letter_queue)
    assert properties.headers[REASON_HEADER] == "handler_error"
    assert rabbit.raw(rabbit.group) == []


def test_the_asyncio_adapter_cannot_settle_after_its_channel_closed(rabbit: Rabbit) -> None:
    """RabbitMQ puts back what a closed channel held: settling it, or a heartbeat for it,
    is then LeaseLost."""
    from letterlock.transports.aio_amqp import AioAmqpBroker

    topic = rabbit.topic("x")

    async def run() -> None:
        broker = await AioAmqpBroker.connect(rabbit.url())
        try:
            queue = await broker.declare(topic, group=rabbit.group)
            await broker.publish(topic, b"bytes")
            message = await queue.get(timeout=5, fail=True)
            assert message is not None
            delivery = broker.delivery(rabbit.group, message)
            await broker.extend_lease(delivery)  # nothing to extend while the channel is open
            await broker.channel.close()
            with pytest.raises(LeaseLost):
                await broker.extend_lease(delivery)
            with pytest.raises(LeaseLost):
                await broker.settle(delivery, Ack())
        finally:
            await broker.close()

    asyncio.run(run())
    assert [body for _, _, body in rabbit.raw(rabbit.group)] == [b"bytes"]


def cut_aio(broker: Any) -> None:
    """Shut down the socket under an AioAmqpBroker's connection (aiormq keeps its writer in
    its writer task only): the wire cut, before aio-pika has noticed."""
    connection = broker._connection.transport.connection
    writer = connection._writer_task.get_coro().cr_frame.f_locals["writer"]
    with socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno())) as wire:
        wire.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("rabbit", ["classic"], indirect=True)
def test_the_asyncio_adapter_is_lease_lost_when_the_connection_drops_before_the_ack(
    rabbit: Rabbit,
) -> None:
    """The wire is cut while the handler runs, and the ack is written before aio-pika has
    seen the connection go: LeaseLost (counted, never a TransportError out of ``handle``).
    RabbitMQ puts the message back; another connection gets it and the replay window
    refuses it: the application saw it once."""
    from letterlock.transports import AsyncSealedConsumer
    from letterlock.transports.aio_amqp import AioAmqpBroker

    topic = rabbit.topic("x")
    replay = ReplayWindow()
    seen: list[bytes] = []

    async def consumer(broker: AioAmqpBroker) -> AsyncSealedConsumer:
        opener = Opener(CAST.bob, trust=CAST.pins(), replay=replay)
        return AsyncSealedConsumer(
            broker, rabbit.group, opener=opener, topics=topic, retry=RetryPolicy(max_attempts=1)
        )

    async def run() -> tuple[dict[str, int], dict[str, int]]:
        broker = await AioAmqpBroker.connect(rabbit.url())
        try:
            queue = await broker.declare(topic, group=rabbit.group)
            await broker.publish(topic, rabbit.seal(b"once", "x"))
            first = await consumer(broker)

            def handler(opened: Opened) -> None:
                seen.append(opened.payload)
                cut_aio(broker)

            assert await broker.consume(queue, first, handler, max_messages=1) == 1
        finally:
            await broker.close()
        again = await AioAmqpBroker.connect(rabbit.url())
        try:
            queue = await again.declare(topic, group=rabbit.group)
            second = await consumer(again)
            assert await again.consume(queue, second, seen.append, idle_timeout=5) == 0
        finally:
            await again.close()
        return dict(first.metrics), dict(second.metrics)

    first, second = asyncio.run(run())
    assert seen == [b"once"]
    assert first == {"lease_lost": 1}
    assert second == {"dead_lettered:replayed": 1}


@pytest.mark.parametrize("rabbit", ["classic"], indirect=True)
def test_a_dead_letter_rabbitmq_refuses_surfaces_and_is_not_lease_lost(rabbit: Rabbit) -> None:
    """Only a lost connection is LeaseLost: a dead letter whose exchange is gone (RabbitMQ
    closes the channel, 404) is a TransportError out of ``handle``, with pika and aio-pika,
    and the message is not acked (RabbitMQ puts it back with the closed channel)."""
    from letterlock.transports import AsyncSealedConsumer
    from letterlock.transports.aio_amqp import AioAmqpBroker

    topic = rabbit.topic("x")
    endpoint = rabbit.endpoint()
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    channel = rabbit.plain()
    channel.exchange_delete(rabbit.names.dead_letter_exchange)
    channel.connection.close()
    endpoint.publish(topic, rabbit.seal(b"forged", "x", sender=CAST.eve))
    [delivery] = subscription.deliveries(idle_timeout=IDLE)
    with pytest.raises(TransportError) as refused:
        consumer_of(endpoint, rabbit, topic).handle(delivery, lambda o: None)
    assert not isinstance(refused.value, LeaseLost)
    subscription.close()

    async def run() -> BaseException:
        broker = await AioAmqpBroker.connect(rabbit.url())
        try:
            opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
            consumer = AsyncSealedConsumer(
                broker, rabbit.group, opener=opener, topics=topic,
                retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip
            message = await (await broker.channel.get_queue(rabbit.group)).get(timeout=5)
            assert message is not None
            with pytest.raises(TransportError) as caught:
                await consumer.handle(broker.delivery(rabbit.group, message), lambda o: None)
            return caught.value
        finally:
            await broker.close()

    assert not isinstance(asyncio.run(run()), LeaseLost)
    assert [body for _, _, body in rabbit.raw(rabbit.group)] == [delivery.body]


def test_a_long_handler_keeps_its_connection_by_extending_its_lease(rabbit: Rabbit) -> None:
    """With heartbeats every second, a handler that works 4 s would lose its connection (and
    its message, to a redelivery); extend_lease lets pika answer the heartbeats."""
    endpoint = rabbit.endpoint(heartbeat="1")
    topic = rabbit.topic("slow")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"slow job", "slow"))
    connection = endpoint.connection()
    consumer = consumer_of(endpoint, rabbit, topic)

    def slow(opened: Opened) -> None:
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            time.sleep(0.25)
            consumer.extend_lease()

    [delivery] = subscription.deliveries(idle_timeout=IDLE)
    assert consumer.handle(delivery, slow)
    subscription.close()
    assert consumer.metrics == {"acked": 1}
    assert endpoint.connection() is connection  # never lost
    assert rabbit.raw(rabbit.group) == []
    assert endpoint.dead_letters(rabbit.group) == []


def test_a_group_never_declared_has_no_dead_letters(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    assert endpoint.dead_letters(rabbit.group) == []
    assert endpoint.redrive(rabbit.group) == 0
    endpoint.declare(Topics(rabbit.topic("x")), group=rabbit.group)  # the endpoint still works
    assert endpoint.dead_letters(rabbit.group) == []


def test_acks_in_order_go_as_one_multiple_ack_that_covers_nothing_unsettled(
    rabbit: Rabbit,
) -> None:
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("jobs")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    for n in range(4):
        endpoint.publish(topic, rabbit.seal(b"job %d" % n, "jobs"))
    deliveries = subscription.deliveries(idle_timeout=IDLE)
    first, second, third, fourth = (next(deliveries) for _ in range(4))
    impl = subscription._broker.channel._impl  # type: ignore[union-attr]
    sent: list[tuple[int, bool]] = []
    ack = impl.basic_ack

    def recording(tag: int, multiple: bool = False) -> None:
        sent.append((tag, multiple))
        ack(tag, multiple)

    impl.basic_ack = recording
    tags = [int(d.ref) for d in (first, second, third, fourth)]
    endpoint.settle(second, Ack())  # out of order: alone
    endpoint.settle(first, Ack())
    endpoint.settle(third, Ack())  # 1 to 3 settled: one ack for the run
    endpoint.extend_lease(fourth)  # pika runs: the run goes first
    assert sent == [(tags[1], False), (tags[2], True)]
    subscription.close()  # the fourth, never settled, goes back to the queue
    again = endpoint.subscribe(Topics(topic), group=rabbit.group)
    [back] = list(again.deliveries(idle_timeout=IDLE))
    assert back.body == fourth.body
    endpoint.settle(back, Ack())
    again.close()


def test_closing_the_endpoint_sends_the_acks_of_a_subscription_left_open(rabbit: Rabbit) -> None:
    endpoint = rabbit.endpoint()
    topic = rabbit.topic("jobs")
    subscription = endpoint.subscribe(Topics(topic), group=rabbit.group)
    endpoint.publish(topic, rabbit.seal(b"job", "jobs"))
    delivery = next(subscription.deliveries(idle_timeout=IDLE))
    endpoint.settle(delivery, Ack())  # held in the run: the batch is not full
    endpoint.close()  # the subscription is never closed by its user
    other = rabbit.endpoint()
    assert (
        list(other.subscribe(Topics(topic), group=rabbit.group).deliveries(idle_timeout=IDLE)) == []
    )
