"""ZeroMQ beyond the generic suite (tests/test_endpoints.py): no server, sockets on ipc paths.

A sender and a listener are separate endpoints (separate contexts and sockets), as two processes
would be. What a test sends with a plain pyzmq socket is what anyone on the network can send.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zmq

from conftest import cast_of
from letterlock import Identity, Opener, ReplayWindow, Sealer, Suite, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports import Retry, RetryPolicy, SealedConsumer, Subscription
from letterlock.transports.zmq import ZmqEndpoint

CAST = cast_of(Suite.P256)
IDLE = 0.5
PAYLOAD = b"the payload: 4111 1111 1111 1111"


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


def seal(payload: bytes, topic: str, sender: Identity | None = None) -> bytes:
    return Sealer(sender or CAST.alice).seal(payload, recipients=[CAST.bob.public], topic=topic)


def consumer(endpoint: ZmqEndpoint, topics: Topics) -> SealedConsumer:
    opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
    return SealedConsumer(
        endpoint, "g", opener=opener, topics=topics, retry=RetryPolicy(max_attempts=1)
    )


def drain(subscription: Subscription, reader: SealedConsumer) -> list[bytes]:
    handled: list[bytes] = []
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, lambda opened: handled.append(opened.payload))
    return handled


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("pattern", "bind"),
    [("pubsub", "publisher"), ("pubsub", "consumer"), ("pushpull", "consumer"),
     ("pushpull", "publisher")],
)  # fmt: skip
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_round_trip(tmp_path: Path, pattern: str, bind: str, transport: str) -> None:
    """The listener waits in ``deliveries`` (in a thread, as it would in its own process)
    while the sender publishes: a bound SUB takes a publisher's connection only then."""
    where = f"ipc://{tmp_path}/s.sock" if transport == "ipc" else f"tcp://127.0.0.1:{_free_port()}"
    url = f"zmq+{where}?pattern={pattern}&bind={bind}&wait=2"
    listener, sender = ZmqEndpoint.from_url(url), ZmqEndpoint.from_url(url)
    topics = Topics("orders.*")
    subscription = listener.subscribe(topics, group="g")
    reader = consumer(listener, topics)
    handled: list[bytes] = []

    def listen() -> None:
        for delivery in subscription.deliveries(idle_timeout=5):
            reader.handle(delivery, lambda opened: handled.append(opened.payload))
            if len(handled) == 3:
                return

    with ThreadPoolExecutor(1) as pool:
        listening = pool.submit(listen)
        for n in range(3):
            sender.publish("orders.eu", seal(b"order %d" % n, "orders.eu"))
        listening.result()
    assert handled == [b"order 0", b"order 1", b"order 2"]
    assert reader.metrics == {"acked": 3}
    sender.close()
    listener.close()


def test_pushpull_consumers_share_a_bound_pusher(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?pattern=pushpull&bind=publisher&wait=2"
    sender, one, two = (ZmqEndpoint.from_url(url) for _ in range(3))
    topics = Topics("jobs")
    first, second = one.subscribe(topics, group="g"), two.subscribe(topics, group="g")
    sender.publish("jobs", seal(b"job 0", "jobs"))  # binds, and waits for a consumer
    time.sleep(0.3)  # both connected: round-robin from here
    for n in range(1, 5):
        sender.publish("jobs", seal(b"job %d" % n, "jobs"))
    got_one = drain(first, consumer(one, topics))
    got_two = drain(second, consumer(two, topics))
    assert sorted(got_one + got_two) == [b"job %d" % n for n in range(5)]  # each once
    assert got_one
    assert got_two
    for endpoint in (sender, one, two):
        endpoint.close()


def test_refused_messages_are_never_handled_and_go_to_the_dead_socket(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    dead = context.socket(zmq.PULL)
    dead.bind(f"ipc://{tmp_path}/dead.sock")
    url = f"zmq+ipc://{tmp_path}/s.sock?wait=2"
    listener = ZmqEndpoint.from_url(f"{url}&dead=ipc://{tmp_path}/dead.sock")
    sender = ZmqEndpoint.from_url(url)
    topics = Topics("pay")
    subscription = listener.subscribe(topics, group="g")
    genuine = seal(b"pay 10", "pay")
    tampered = bytearray(seal(b"pay 20", "pay"))
    tampered[-40] ^= 1
    forged = seal(b"pay mallory", "pay", sender=CAST.mallory)
    rerouted = seal(b"pay elsewhere", "refunds")
    for body in (genuine, bytes(tampered), forged, rerouted, genuine):
        sender.publish("pay", body)
    reader = consumer(listener, topics)
    assert drain(subscription, reader) == [b"pay 10"]
    letters = [dead.recv_multipart() for _ in range(4)]
    assert sorted(body for _, _, body in letters) == sorted(
        [bytes(tampered), forged, rerouted, genuine]
    )
    assert {(topic, reason) for topic, reason, _ in letters} == {(b"pay", b"rejected")}
    assert listener.dead_letters_dropped == 0
    assert listener.dead_letters("g") == []  # sent away, not kept
    assert reader.metrics == {
        "acked": 1,
        "dead_lettered:bad_signature": 1,
        "dead_lettered:unknown_sender": 1,
        "dead_lettered:wrong_topic": 1,
        "dead_lettered:replayed": 1,
    }
    sender.close()
    listener.close()
    dead.close()


def test_without_a_dead_socket_refusals_are_dropped_and_counted(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?wait=2"
    listener, sender = ZmqEndpoint.from_url(url), ZmqEndpoint.from_url(url)
    subscription = listener.subscribe(Topics("pay"), group="g")
    sender.publish("pay", seal(b"pay mallory", "pay", sender=CAST.mallory))
    reader = consumer(listener, Topics("pay"))
    assert drain(subscription, reader) == []
    assert listener.dead_letters_dropped == 1
    assert reader.metrics == {"dead_lettered:unknown_sender": 1}  # the report
    assert listener.redrive("g") == 0
    sender.close()
    listener.close()


def test_frames_on_the_wire_hold_no_payload_byte(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    sender = ZmqEndpoint.from_url(f"zmq+ipc://{tmp_path}/s.sock?wait=2")
    tap = context.socket(zmq.SUB)  # a plain subscriber: anyone who can connect
    tap.setsockopt(zmq.SUBSCRIBE, b"")
    tap.connect(f"ipc://{tmp_path}/s.sock")
    sender.publish("orders.eu", seal(PAYLOAD, "orders.eu"))
    assert tap.poll(2000)
    frames = tap.recv_multipart()
    assert frames[0] == b"orders.eu"
    assert len(frames) == 2
    assert PAYLOAD not in frames[1]
    assert PAYLOAD[:8] not in frames[1]
    tap.close()
    sender.close()


def test_a_subscription_hands_over_only_what_its_patterns_match(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?wait=2"
    listener, sender = ZmqEndpoint.from_url(url), ZmqEndpoint.from_url(url)
    topics = Topics("orders.*")
    subscription = listener.subscribe(topics, group="g")  # SUB filters on b"orders"
    sender.publish("ordersX.eu", seal(b"not ours", "ordersX.eu"))
    sender.publish("orders.eu.extra", seal(b"not ours", "orders.eu.extra"))
    sender.publish("orders.eu", seal(b"ours", "orders.eu"))
    assert drain(subscription, consumer(listener, topics)) == [b"ours"]
    assert subscription.skipped == 2  # type: ignore[attr-defined]
    sender.close()
    listener.close()


def test_a_publisher_waits_for_subscribers_only_while_it_is_new(tmp_path: Path) -> None:
    sender = ZmqEndpoint.from_url(f"zmq+ipc://{tmp_path}/s.sock?wait=0.3")
    started = time.monotonic()
    sender.publish("nobody.listens", b"x")  # dropped, after giving subscribers 0.3 s
    assert 0.25 <= time.monotonic() - started < 2
    started = time.monotonic()
    sender.publish("nobody.listens", b"x")
    assert time.monotonic() - started < 0.1  # later: at once
    sender.close()


def test_a_bound_pusher_without_consumers_fails_after_its_wait(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?pattern=pushpull&bind=publisher&wait=0.2"
    sender = ZmqEndpoint.from_url(url)
    with pytest.raises(TransportError) as caught:
        sender.publish("jobs", b"x")
    assert isinstance(caught.value.__cause__, zmq.Again)
    sender.close()


def test_the_url() -> None:
    endpoint = ZmqEndpoint.from_url(
        "zmq+tcp://127.0.0.1:5999?pattern=pushpull&bind=publisher&wait=0.5&lease=2"
    )
    assert (endpoint.address, endpoint.pattern, endpoint.bind, endpoint.wait) == (
        "tcp://127.0.0.1:5999", "pushpull", "publisher", 0.5,
    )  # fmt: skip
    endpoint.close()
    endpoint = ZmqEndpoint.from_url("zmq+ipc:///tmp/x.sock")
    assert endpoint.address == "ipc:///tmp/x.sock"
    endpoint.close()
    for bad in ("pattern=reqrep", "bind=both", "wait=-1", "lease=0", "lease=x", "queue=1"):
        with pytest.raises(UsageError):
            ZmqEndpoint.from_url(f"zmq+tcp://127.0.0.1:5999?{bad}")
    with pytest.raises(UsageError):
        ZmqEndpoint.from_url("tcp://127.0.0.1:5999")


def test_only_amqp_patterns(tmp_path: Path) -> None:
    endpoint = ZmqEndpoint.from_url(f"zmq+ipc://{tmp_path}/s.sock")
    with pytest.raises(UsageError):
        endpoint.subscribe(Topics.mqtt("a/+"), group="g")
    endpoint.close()


def test_closing_the_endpoint_closes_subscriptions_left_open(tmp_path: Path) -> None:
    endpoint = ZmqEndpoint.from_url(f"zmq+ipc://{tmp_path}/s.sock")
    endpoint.subscribe(Topics("#"), group="g")  # never closed by its user
    endpoint.close()  # would block forever in zmq_ctx_term otherwise


def test_a_connected_pusher_queues_until_its_consumer_binds_and_closing_is_bounded(
    tmp_path: Path,
) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?pattern=pushpull&wait=0.2"
    sender = ZmqEndpoint.from_url(url)
    sender.publish("jobs", seal(b"early", "jobs"))  # nobody bound yet: queued by the PUSH
    listener = ZmqEndpoint.from_url(url)
    subscription = listener.subscribe(Topics("jobs"), group="g")
    assert drain(subscription, consumer(listener, Topics("jobs"))) == [b"early"]
    listener.close()
    sender.publish("jobs", seal(b"lost", "jobs"))  # its consumer is gone: at most once
    started = time.monotonic()
    sender.close()  # lingers wait + 1 s for a consumer, then gives up
    assert 1.0 <= time.monotonic() - started < 3.0


def test_a_retry_cannot_bring_anything_back(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?wait=2"
    listener, sender = ZmqEndpoint.from_url(url), ZmqEndpoint.from_url(url)
    subscription = listener.subscribe(Topics("jobs"), group="g")
    sender.publish("jobs", seal(b"job", "jobs"))
    [delivery] = list(subscription.deliveries(idle_timeout=IDLE))
    listener.settle(delivery, Retry(delay=0))  # a busy copy: the other consumer handles it
    listener.extend_lease(delivery)
    assert list(subscription.deliveries(idle_timeout=IDLE)) == []
    assert listener.dead_letters_dropped == 0
    sender.close()
    listener.close()


def test_a_socket_error_while_receiving_leaves_as_transport_error(tmp_path: Path) -> None:
    endpoint = ZmqEndpoint.from_url(f"zmq+ipc://{tmp_path}/s.sock")
    subscription = endpoint.subscribe(Topics("#"), group="g")
    subscription.close()  # its socket is gone: the next receive fails in pyzmq
    with pytest.raises(TransportError) as caught:
        next(subscription.deliveries(idle_timeout=IDLE))
    assert isinstance(caught.value.__cause__, zmq.ZMQError)
    endpoint.close()


def test_a_handler_error_between_deliveries_is_not_mapped(tmp_path: Path) -> None:
    url = f"zmq+ipc://{tmp_path}/s.sock?pattern=pushpull"
    listener, sender = ZmqEndpoint.from_url(url), ZmqEndpoint.from_url(url)
    subscription = listener.subscribe(Topics("jobs"), group="g")
    sender.publish("jobs", seal(b"job", "jobs"))
    reader = consumer(listener, Topics("jobs"))

    def handler(opened: object) -> None:
        raise zmq.ZMQError(zmq.EAGAIN)  # the application's own pyzmq use: stays its own

    deliveries = subscription.deliveries(idle_timeout=IDLE)
    delivery = next(deliveries)
    with pytest.raises(zmq.ZMQError):
        reader.handle(delivery, handler)
    assert list(deliveries) == []
    sender.close()
    listener.close()
