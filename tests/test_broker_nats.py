"""NATS JetStream beyond the shared endpoint suite (:mod:`test_endpoints`), on the real server.

What the broker stores, read with plain nats-py; refusals ``term()``'ed into the dead-letter
stream with one word; a consumer SIGKILLed in its handler; the asyncio adapter, pulled and
pushed; URLs and errors at the edge. Every test has a stream and a dead-letter stream of its own
(:func:`services.unique`) and deletes both. The 3-node cluster is in :mod:`test_nats_cluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from conftest import cast_of
from letterlock import (
    Opened,
    Opener,
    Pins,
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
    AsyncSealedConsumer,
    Delivery,
    LeaseLost,
    RetryPolicy,
    SealedConsumer,
    Subscription,
    Unroutable,
)
from letterlock.transports.nats import (
    ATTEMPTS,
    GROUP,
    MSG_ID,
    PUBLISHED,
    REASON,
    SUBJECT,
    NatsBroker,
    NatsDelivery,
    NatsEndpoint,
    consumer_name,
    parse_url,
)
from services import require, unique

URL = "nats://127.0.0.1:4222"
CAST = cast_of(Suite.P256)
HERE = Path(__file__).resolve().parent


async def _delete(names: tuple[str, ...]) -> None:
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


def delete_streams(*names: str) -> None:
    """Delete the streams ``names`` (with their consumers), those that exist."""
    asyncio.run(_delete(names))


@dataclass
class Names:
    """This test's stream (the first token of its subjects), dead-letter stream and group."""

    stream: str = field(default_factory=lambda: unique("n"))
    dead: str = field(default_factory=lambda: unique("dead"))
    group: str = field(default_factory=lambda: unique("g"))

    def subject(self, *words: str) -> str:
        return ".".join((self.stream, *words))

    def url(self, **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"dead": self.dead, **options}.items())
        return f"{URL}?{query}"


@pytest.fixture
def names() -> Iterator[Names]:
    require("nats")
    made = Names()
    try:
        yield made
    finally:
        delete_streams(made.stream, made.dead)


def seal(payload: bytes, subject: str, *, sender: object = None) -> bytes:
    return Sealer(sender or CAST.alice).seal(  # type: ignore[arg-type]
        payload, recipients=[CAST.bob.public], topic=subject
    )


def opener(replay: ReplayWindow | None = None) -> Opener:
    return Opener(CAST.bob, trust=CAST.pins(), replay=replay or ReplayWindow())


@contextlib.asynccontextmanager
async def jetstream() -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(URL)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


# what the broker holds -----------------------------------------------------------------------


def test_the_stream_holds_no_payload_byte(names: Names) -> None:
    """Read back with plain nats-py (a stream message get): sealed bytes, no plaintext."""
    payload = b"salary of dave: 123456 EUR " * 4
    endpoint = NatsEndpoint.from_url(names.url())
    try:
        endpoint.subscribe(Topics.nats(names.subject(">")), group=names.group).close()
        seq = endpoint.publish(names.subject("pay"), seal(payload, names.subject("pay")))
    finally:
        endpoint.close()

    async def raw() -> bytes:
        async with jetstream() as js:
            stored = await js.get_msg(names.stream, seq)
            return stored.data or b""

    stored = asyncio.run(raw())
    assert len(stored) > len(payload)
    for start in range(len(payload) - 8):
        assert payload[start : start + 8] not in stored
    assert b"salary" not in stored


def test_refusals_are_termed_into_the_dead_letter_stream_with_one_word(names: Names) -> None:
    """Forged, tampered, replayed and re-routed: never handled, terminated (not redelivered),
    kept in the dead-letter stream whose headers say ``rejected`` and nothing of the cause."""
    subject = names.subject("pay")
    genuine = seal(b"pay 10", subject)
    tampered = bytearray(seal(b"pay 20", subject))
    tampered[-40] ^= 1
    forged = seal(b"pay mallory", subject, sender=CAST.mallory)
    rerouted = seal(b"pay elsewhere", names.subject("other"))
    handled: list[bytes] = []

    async def run() -> tuple[int, dict[str, int], list[dict[str, str]], list[bytes]]:
        async with jetstream() as js:
            broker = NatsBroker(js, dead=names.dead, lease=1, fetch_timeout=0.3)
            await broker.subscribe(Topics.nats(subject), group=names.group)
            for body in (genuine, bytes(tampered), forged, rerouted, genuine):
                await broker.publish(subject, body)
            consumer = AsyncSealedConsumer(
                broker, names.group, opener=opener(), topics=Topics.nats(subject),
                retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip
            taken = await consumer.poll(lambda o: handled.append(o.payload))
            await asyncio.sleep(1.5)  # past ack_wait: a terminated message is never redelivered
            taken += await consumer.poll(lambda o: handled.append(o.payload))
            dead = await broker.dead_letters(names.group)
            headers = []
            for record in dead:
                stored = await js.get_msg(names.dead, record.seq)
                headers.append(dict(stored.headers or {}))
            return taken, dict(consumer.metrics), headers, [d.body for d in dead]

    taken, metrics, headers, bodies = asyncio.run(run())
    assert (taken, handled) == (1, [b"pay 10"])
    assert sorted(bodies) == sorted([bytes(tampered), forged, rerouted, genuine])
    assert metrics == {
        "acked": 1,
        "dead_lettered:bad_signature": 1,
        "dead_lettered:unknown_sender": 1,
        "dead_lettered:wrong_topic": 1,
        "dead_lettered:replayed": 1,
    }
    for header in headers:  # the one word, and what the broker knew already
        assert set(header) == {REASON, SUBJECT, ATTEMPTS, PUBLISHED, MSG_ID}
        assert (header[REASON], header[SUBJECT], header[ATTEMPTS]) == ("rejected", subject, "1")


# a consumer killed in its handler -------------------------------------------------------------


def _child(args: list[str]) -> None:
    """A listener that is SIGKILLed inside its handler (run in its own process, with bob's
    private key and alice's public key in hex, ``keys``)."""
    url, subject, group, store, started, keys = args
    bob, alice = (bytes.fromhex(k) for k in keys.split(":"))
    pins = Pins()
    pins.pin("alice", hazmat.public_identity_from_bytes(alice))
    replay = ReplayWindow(SQLiteReplayStore(store))
    endpoint = NatsEndpoint.from_url(url)
    subscription = endpoint.subscribe(Topics.nats(subject), group=group)
    consumer = SealedConsumer(
        endpoint, group, opener=Opener(hazmat.identity_from_private_bytes(bob), trust=pins,
        replay=replay), topics=Topics.nats(subject), claim_lease=0.5,
    )  # fmt: skip

    def handler(opened: Opened) -> None:
        Path(started).write_bytes(opened.payload)
        time.sleep(3600)  # killed here: no ack, no release of the claim

    for delivery in subscription.deliveries(idle_timeout=30):
        consumer.handle(delivery, handler)


def test_a_consumer_killed_in_its_handler_is_redelivered_and_handled_once(
    names: Names, tmp_path: Path
) -> None:
    """SIGKILL in the handler: after ack_wait (lease=1.5) the message comes to the next consumer
    of the group, which takes over the dead one's lapsed claim (shared SQLite store,
    claim_lease=0.5, shorter than the lease, so the claim has lapsed by then)."""
    subject, store, started = names.subject("jobs"), tmp_path / "replay.db", tmp_path / "started"
    url = names.url(lease=1.5, fetch_timeout=0.2)
    endpoint = NatsEndpoint.from_url(url)
    try:
        endpoint.subscribe(Topics.nats(subject), group=names.group).close()
        endpoint.publish(subject, seal(b"job 1", subject))
        keys = f"{hazmat.identity_to_private_bytes(CAST.bob).hex()}:" \
            f"{CAST.alice.public.to_bytes().hex()}"  # fmt: skip
        args = [url, subject, names.group, str(store), str(started), keys]
        code = f"import test_broker_nats as t; t._child({args!r})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
        child = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not started.exists() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.read_bytes() == b"job 1"
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        replay = ReplayWindow(SQLiteReplayStore(store))
        consumer = SealedConsumer(
            endpoint, names.group, opener=opener(replay), topics=Topics.nats(subject),
            claim_lease=0.5,
        )  # fmt: skip
        seen: list[tuple[bytes, int | None]] = []
        subscription = endpoint.subscribe(Topics.nats(subject), group=names.group)
        for delivery in subscription.deliveries(idle_timeout=4):
            attempts = delivery.attempts
            consumer.handle(delivery, lambda o: seen.append((o.payload, attempts)))  # noqa: B023
        subscription.close()
        assert seen == [(b"job 1", 2)]  # once, on its second delivery
        assert consumer.metrics == {"acked": 1, "taken_over": 1}
    finally:
        endpoint.close()


# the asyncio adapter ----------------------------------------------------------------------------


def test_the_async_adapter_pushes_retries_with_nak_delay_and_extends_leases(names: Names) -> None:
    """Push (``js.subscribe(cb=broker.callback(...), manual_ack=True)``): a refusal that is
    retried comes back after the nak's delay, counted; a handler that outlives ack_wait and
    calls extend_lease (``in_progress``) keeps its message (no second delivery)."""
    subject = names.subject("push")
    seen: list[tuple[bytes, int | None]] = []
    arrivals: list[float] = []

    async def run() -> dict[str, int]:
        async with jetstream() as js:
            broker = NatsBroker(js, dead=names.dead, lease=1)
            stream = await broker.declare(Topics.nats(subject))
            pins = CAST.pins()
            consumer = AsyncSealedConsumer(
                broker, names.group, opener=Opener(CAST.bob, trust=pins, replay=ReplayWindow()),
                topics=Topics.nats(subject), retry=RetryPolicy(max_attempts=3, delay=0.5),
            )  # fmt: skip

            async def handler(opened: Opened) -> None:
                seen.append((opened.payload, None))
                for _ in range(4):  # 2 s: twice the lease
                    await asyncio.sleep(0.5)
                    await consumer.extend_lease()

            async def handle(delivery: Delivery) -> None:
                arrivals.append(time.monotonic())
                if delivery.attempts == 2:
                    pins.pin("eve", CAST.eve.public)  # her pin arrives between deliveries
                await consumer.handle(delivery, handler)

            sub = await js.subscribe(
                subject, durable=consumer_name(names.group), stream=stream, manual_ack=True,
                cb=broker.callback(handle, group=names.group), config=ConsumerConfig(ack_wait=1),
            )  # fmt: skip
            await broker.publish(subject, seal(b"from eve", subject, sender=CAST.eve))
            deadline = time.monotonic() + 10
            while consumer.metrics.get("acked") != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # a lease after the ack: nothing comes again
            await sub.unsubscribe()
            return dict(consumer.metrics)

    metrics = asyncio.run(run())
    assert seen == [(b"from eve", None)]
    assert metrics == {"retried:unknown_sender": 1, "acked": 1}
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.45  # nak(delay=0.5): RetryPolicy.backoff(1)


def test_the_async_adapter_polls_in_batches_and_gives_back_what_it_did_not_take(
    names: Names,
) -> None:
    """``consumer.poll(max_messages=2)`` takes two of a fetched batch of five; the other
    three are nak'ed and come at once to the next poll, not after the lease (60 s here)."""
    subject = names.subject("batch")

    async def run() -> tuple[list[bytes], list[bytes], float]:
        async with jetstream() as js:
            broker = NatsBroker(js, dead=names.dead, lease=60, batch=5, fetch_timeout=0.2)
            await broker.subscribe(Topics.nats(subject), group=names.group)
            for n in range(5):
                await broker.publish(subject, seal(b"m%d" % n, subject), msg_id=f"m{n}")
            await broker.publish(subject, seal(b"m0 again", subject), msg_id="m0")  # deduped
            consumer = AsyncSealedConsumer(
                broker, names.group, opener=opener(), topics=Topics.nats(subject)
            )
            first: list[bytes] = []
            rest: list[bytes] = []
            await consumer.poll(lambda o: first.append(o.payload), max_messages=2)
            await asyncio.sleep(0.1)  # the abandoned iteration's finaliser naks the rest
            started = time.monotonic()
            await consumer.poll(lambda o: rest.append(o.payload))
            return first, rest, time.monotonic() - started

    first, rest, took = asyncio.run(run())
    assert sorted(first + rest) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert len(first) == 2
    assert took < 5


# the edge: URLs and errors ----------------------------------------------------------------------


def test_urls_name_servers_and_options() -> None:
    servers, options = parse_url(
        "nats://u:p@10.0.0.1:4222,10.0.0.2:4223/?lease=2.5&replicas=3&stream=orders"
    )
    assert servers == ["nats://u:p@10.0.0.1:4222", "nats://u:p@10.0.0.2:4223"]
    assert options == {"lease": 2.5, "replicas": 3, "stream": "orders"}
    assert parse_url("tls://h:4222")[0] == ["tls://h:4222"]
    with pytest.raises(UsageError, match="unknown NATS URL option 'leese'"):
        parse_url("nats://h:4222?leese=1")
    with pytest.raises(UsageError, match="lease='x' is no float"):
        parse_url("nats://h:4222?lease=x")
    with pytest.raises(UsageError, match="a NATS URL"):
        parse_url("nats://h:4222/path")


def test_group_names_become_nats_names() -> None:
    assert consumer_name("billing-eu_1") == "billing-eu_1"
    hashed = consumer_name("bob/orders.>")
    assert hashed.startswith("g-")
    assert hashed == consumer_name("bob/orders.>")
    assert hashed != consumer_name("bob/orders.*")
    with pytest.raises(UsageError):
        consumer_name("")


def test_client_errors_leave_as_transport_errors(names: Names) -> None:
    """No stream for the subject: Unroutable; a second settlement: LeaseLost; no server:
    TransportError; a pattern that names no stream: UsageError."""
    endpoint = NatsEndpoint.from_url(names.url(fetch_timeout=0.2))
    try:
        with pytest.raises(Unroutable):
            endpoint.publish(unique("nostream") + ".x", b"sealed")
        with pytest.raises(UsageError, match="stream=NAME"):
            endpoint.subscribe(Topics.nats("*.orders"), group=names.group)
        with pytest.raises(UsageError, match="NATS patterns"):
            endpoint.subscribe(Topics("orders.#"), group=names.group)
        subject = names.subject("once")
        subscription = endpoint.subscribe(Topics.nats(subject), group=names.group)
        endpoint.publish(subject, b"anything")
        [delivery] = list(subscription.deliveries(idle_timeout=1))
        endpoint.settle(delivery, Ack())
        with pytest.raises(LeaseLost):
            endpoint.settle(delivery, Ack())
        subscription.close()
    finally:
        endpoint.close()
    with pytest.raises(TransportError, match=r"no NATS server of 1 answered within 0\.5 s"):
        NatsEndpoint.from_url("nats://127.0.0.1:1?connect_timeout=0.5")  # nobody on port 1


def publish_plain(subject: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Publish with plain nats-py to the stream that captures ``subject``."""

    async def run() -> None:
        nc = await nats.connect(URL)
        try:
            await nc.jetstream().publish(subject, body, headers=headers)
        finally:
            await nc.close()

    asyncio.run(run())


def test_a_skip_by_the_group_header_drops_and_leaves_no_trace(names: Names) -> None:
    """``Letterlock-Group`` is the broker's (or its publisher's) word, and the group skips by
    it: a skipped message runs no handler, claims and records no message id, and is not
    dead-lettered, so the same bytes delivered without the header are handled once."""
    subject = names.subject("pay")
    topics = Topics.nats(subject)
    endpoint = NatsEndpoint.from_url(names.url(fetch_timeout=0.2))
    try:
        subscription = endpoint.subscribe(topics, group=names.group)
        reader = SealedConsumer(endpoint, names.group, opener=opener(), topics=topics)
        sealed = seal(b"ours", subject)
        publish_plain(subject, sealed, {GROUP: consumer_name("another-group")})
        handled: list[bytes] = []

        def drain() -> None:
            for delivery in subscription.deliveries(idle_timeout=1):
                reader.handle(delivery, lambda opened: handled.append(opened.payload))

        drain()
        assert handled == []
        assert reader.metrics == {}
        assert endpoint.dead_letters(names.group) == []
        publish_plain(subject, sealed)
        publish_plain(subject, sealed, {GROUP: consumer_name(names.group)})
        drain()
        assert handled == [b"ours"]  # once: the second copy is a replay
        assert reader.metrics == {"acked": 1, "dead_lettered:replayed": 1}
        subscription.close()
    finally:
        endpoint.close()


def _one_attempt_reader(endpoint: NatsEndpoint, names: Names, topics: Topics) -> SealedConsumer:
    """The group's consumer that dead-letters a refused message at its first delivery."""
    return SealedConsumer(
        endpoint, names.group, opener=opener(), topics=topics, retry=RetryPolicy(max_attempts=1)
    )


def _refuse_all(subscription: Subscription, reader: SealedConsumer) -> None:
    """Hand ``reader`` what is delivered until a second passes without a delivery."""
    for delivery in subscription.deliveries(idle_timeout=1):
        reader.handle(delivery, lambda opened: None)


def test_a_guessed_deduplication_id_never_drops_a_dead_letter_or_a_redriven_copy(
    names: Names,
) -> None:
    """Whoever may publish on the dead-letter subject, or on the topic, can guess the
    ``Nats-Msg-Id`` of the next dead letter or redriven copy and publish first, so that the
    stream drops ours as a duplicate. The duplicate is caught: the message is neither
    terminated nor deleted, and once it is published under another id it is kept."""
    subject = names.subject("pay")
    topics = Topics.nats(subject)
    endpoint = NatsEndpoint.from_url(names.url(fetch_timeout=0.2, lease=1))
    try:
        subscription = endpoint.subscribe(topics, group=names.group)
        reader = _one_attempt_reader(endpoint, names, topics)

        def drain() -> None:
            _refuse_all(subscription, reader)

        endpoint.publish(subject, seal(b"from eve", subject, sender=CAST.eve))
        drain()  # the dead-letter stream exists now
        dead_subject = f"{names.dead}.{consumer_name(names.group)}"
        forged = seal(b"from eve again", subject, sender=CAST.eve)
        seq = endpoint.publish(subject, forged)
        publish_plain(dead_subject, b"decoy", {MSG_ID: f"dead:{names.stream}:{seq}:1"})
        with pytest.raises(TransportError, match="another message under the deduplication id"):
            drain()  # not terminated: it comes back after the lease, as its 2nd delivery
        time.sleep(1.2)
        drain()
        bodies = [record.body for record in endpoint.dead_letters(names.group)]
        assert forged in bodies

        records = endpoint.dead_letters(names.group)
        first = records[0]
        publish_plain(subject, b"decoy", {MSG_ID: f"redrive:{names.dead}:{first.seq}"})
        with pytest.raises(TransportError, match="another message under the deduplication id"):
            endpoint.redrive(names.group)
        assert endpoint.dead_letters(names.group)[0] == first  # not deleted
        subscription.close()
    finally:
        endpoint.close()


def test_a_guessed_id_on_another_subject_with_the_same_bytes_does_not_take_a_redriven_copy(
    names: Names,
) -> None:
    """The guess may copy the dead letter's bytes and our headers exactly (the envelope was on
    the topic) and be published on another subject of the same stream: the stream's
    deduplication is per stream, so ours is dropped, and the copy waits on a subject the group
    does not read. The subject is checked with the bytes: nothing is deleted."""
    subject = names.subject("pay")
    topics = Topics.nats(subject)
    endpoint = NatsEndpoint.from_url(names.url(fetch_timeout=0.2, lease=1))
    try:
        subscription = endpoint.subscribe(topics, group=names.group)
        reader = _one_attempt_reader(endpoint, names, topics)
        endpoint.publish(subject, seal(b"from eve", subject, sender=CAST.eve))
        _refuse_all(subscription, reader)
        first = endpoint.dead_letters(names.group)[0]
        elsewhere = names.subject("elsewhere")  # read by another group: the copy stays there
        other = endpoint.subscribe(Topics.nats(elsewhere), group=unique("other"))
        copied = {GROUP: consumer_name(names.group), MSG_ID: f"redrive:{names.dead}:{first.seq}"}
        publish_plain(elsewhere, first.body, copied)
        with pytest.raises(TransportError, match="another message under the deduplication id"):
            endpoint.redrive(names.group)
        assert endpoint.dead_letters(names.group)[0] == first  # not deleted
        other.close()
        subscription.close()
    finally:
        endpoint.close()


def test_a_redrive_reaches_its_own_group_only_and_the_stream_empties(names: Names) -> None:
    """Two groups of one subject: billing refuses eve (unknown) and audit, trusting her,
    handles her message. billing's redrive reaches billing; audit acks that copy unseen. Once
    both groups have settled everything, the interest stream holds nothing."""
    subject = names.subject("pay")
    topics = Topics.nats(subject)
    endpoint = NatsEndpoint.from_url(names.url(fetch_timeout=0.2))
    try:
        billing = endpoint.subscribe(topics, group="billing")
        audit = endpoint.subscribe(topics, group="audit")
        endpoint.publish(subject, seal(b"from eve", subject, sender=CAST.eve))
        with_eve = CAST.pins()
        with_eve.pin("eve", CAST.eve.public)

        def consumer(group: str, pins: Pins) -> SealedConsumer:
            return SealedConsumer(
                endpoint, group, opener=Opener(CAST.bob, trust=pins, replay=ReplayWindow()),
                topics=topics, retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip

        def drain(subscription: Subscription, consumer: SealedConsumer) -> list[bytes]:
            handled: list[bytes] = []
            for delivery in subscription.deliveries(idle_timeout=1):
                consumer.handle(delivery, lambda o: handled.append(o.payload))
            return handled

        audit_consumer = consumer("audit", with_eve)
        assert drain(billing, consumer("billing", CAST.pins())) == []
        assert drain(audit, audit_consumer) == [b"from eve"]
        assert endpoint.redrive("billing") == 1
        assert drain(billing, consumer("billing", with_eve)) == [b"from eve"]
        assert drain(audit, audit_consumer) == []  # the redriven copy: acked unseen
        assert audit_consumer.metrics == {"acked": 1}
        assert endpoint.dead_letters("billing") == []
        billing.close()
        audit.close()
    finally:
        endpoint.close()

    async def left() -> int:
        async with jetstream() as js:
            return int((await js.stream_info(names.stream)).state.messages)

    assert asyncio.run(left()) == 0


def test_the_url_lease_is_the_ack_wait_of_a_durable_consumer_with_no_delivery_limit(
    names: Names,
) -> None:
    endpoint = NatsEndpoint.from_url(names.url(lease=7.5))
    try:
        endpoint.subscribe(Topics.nats(names.subject(">")), group="bob orders").close()
    finally:
        endpoint.close()

    async def config() -> ConsumerConfig:
        async with jetstream() as js:
            info = await js.consumer_info(names.stream, consumer_name("bob orders"))
            found: ConsumerConfig = info.config
            return found

    found = asyncio.run(config())
    assert found.durable_name == consumer_name("bob orders")
    assert (found.ack_wait, found.max_deliver, found.deliver_policy) == (7.5, -1, "new")
    assert found.filter_subject == names.subject(">")


def test_closing_a_subscription_gives_back_what_it_fetched_and_did_not_hand_over(
    names: Names,
) -> None:
    """Fetched in one batch of three, one taken: the other two come at once to the next
    consumer of the group, not after the lease (60 s)."""
    subject = names.subject("jobs")
    endpoint = NatsEndpoint.from_url(names.url(lease=60, batch=3, fetch_timeout=0.2))
    try:
        first = endpoint.subscribe(Topics.nats(subject), group=names.group)
        for n in range(3):
            endpoint.publish(subject, b"%d" % n)
        deliveries = first.deliveries(idle_timeout=1)
        taken = next(deliveries)
        endpoint.settle(taken, Ack())
        first.close()
        second = endpoint.subscribe(Topics.nats(subject), group=names.group)
        started = time.monotonic()
        rest = list(second.deliveries(idle_timeout=1))
        for delivery in rest:
            endpoint.settle(delivery, Ack())
        second.close()
        assert sorted(d.body for d in [taken, *rest]) == [b"0", b"1", b"2"]
        assert time.monotonic() - started < 5
    finally:
        endpoint.close()
    with pytest.raises(UsageError, match="closed"):
        endpoint.publish(subject, b"late")


def test_a_stream_an_operator_declared_is_used_as_it_is(names: Names) -> None:
    """``stream=NAME``: the group's consumer goes on that stream, whose configuration (here
    limits retention, one subject tree) letterlock leaves alone."""

    async def declare() -> None:
        async with jetstream() as js:
            await js.add_stream(name=names.stream, subjects=[names.subject(">")])

    async def retention() -> str:
        async with jetstream() as js:
            info = await js.stream_info(names.stream)
            return str(info.config.retention)

    asyncio.run(declare())
    subject = names.subject("eu", "orders")
    endpoint = NatsEndpoint.from_url(names.url(stream=names.stream, fetch_timeout=0.2))
    try:
        subscription = endpoint.subscribe(Topics.nats(subject), group=names.group)
        endpoint.publish(subject, seal(b"order", subject))
        consumer = SealedConsumer(
            endpoint, names.group, opener=opener(), topics=Topics.nats(subject)
        )
        handled: list[bytes] = []
        for delivery in subscription.deliveries(idle_timeout=1):
            consumer.handle(delivery, lambda o: handled.append(o.payload))
        subscription.close()
    finally:
        endpoint.close()
    assert handled == [b"order"]
    assert asyncio.run(retention()) == "limits"


def test_a_refusal_is_terminated_only_once_its_dead_letter_is_kept(names: Names) -> None:
    """The dead-letter stream is gone: the publish fails, the message is not ``term()``'ed,
    and it comes back after ack_wait, when the adapter makes the stream again and keeps it."""
    subject = names.subject("pay")

    async def run() -> tuple[str, list[int]]:
        async with jetstream() as js:
            broker = NatsBroker(js, dead=names.dead, lease=1, fetch_timeout=0.3)
            await broker.subscribe(Topics.nats(subject), group=names.group)
            await js.delete_stream(names.dead)  # the dead-letter stream disappears
            await broker.publish(subject, seal(b"pay mallory", subject, sender=CAST.mallory))
            consumer = AsyncSealedConsumer(
                broker, names.group, opener=opener(), topics=Topics.nats(subject),
                retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip
            with pytest.raises(Unroutable) as failed:
                await consumer.poll(lambda o: None)
            await asyncio.sleep(1.2)  # ack_wait: not terminated, so delivered again
            assert await consumer.poll(lambda o: None) == 0
            dead = await broker.dead_letters(names.group)
            return type(failed.value).__name__, [d.attempts for d in dead]

    assert asyncio.run(run()) == ("Unroutable", [2])


def test_a_message_that_is_no_jetstream_delivery_leaves_as_a_transport_error() -> None:
    """``delivery`` maps nats-py's NotJSMessageError without a context manager per message."""
    broker = NatsBroker.__new__(NatsBroker)  # delivery() reads nothing of the broker
    msg = Msg(None, subject="orders.x", reply="_INBOX.not-a-js-ack-subject", data=b"sealed")  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="not a JetStream message") as caught:
        broker.delivery(msg, "g")
    assert isinstance(caught.value.__cause__, nats.errors.NotJSMessageError)


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.orders.g.3.1042.77.1733090000000000000.5",  # v1
        "$JS.ACK._.ACCHASH.orders.g.3.1042.77.1733090000000000000.5.rAnD0m",  # v2, no domain
        "$JS.ACK.hub.ACCHASH.orders.g.1.9.9.1733090000000000000.0",  # v2, no random token
    ],
)
def test_a_delivery_reads_the_reply_subject_as_nats_py_metadata_does(reply: str) -> None:
    """``delivery`` reads attempts and the stream position from the reply subject's tokens
    without building nats-py's Metadata; what it reads is what Metadata says."""
    broker = NatsBroker.__new__(NatsBroker)  # delivery() reads nothing of the broker
    msg = Msg(None, subject="orders.x", reply=reply, data=b"sealed")  # type: ignore[arg-type]
    delivery = broker.delivery(msg, "g")
    meta = Msg(None, subject="orders.x", reply=reply, data=b"").metadata  # type: ignore[arg-type]
    assert delivery.attempts == meta.num_delivered
    assert delivery.ref == f"{meta.stream}:{meta.sequence.stream}"
    assert (delivery.tag, delivery.topic, delivery.body) == (reply, "orders.x", b"sealed")
    assert type(delivery) is NatsDelivery  # its slots, set directly
    assert delivery.msg is msg
    assert delivery == NatsDelivery(
        tag=reply, queue="g", topic="orders.x", body=b"sealed", attempts=meta.num_delivered,
        ref=delivery.ref, msg=msg,
    )  # fmt: skip


def test_a_fetch_and_an_ack_on_a_closed_connection_leave_as_transport_errors(
    names: Names,
) -> None:
    """``fetch`` and ``settle`` with an Ack map nats-py's errors without a context manager
    (the ack as LeaseLost, a TransportError: the connection is gone)."""

    async def run() -> tuple[BaseException | None, BaseException | None]:
        nc = await nats.connect(URL)
        broker = NatsBroker(nc.jetstream(), dead=names.dead, fetch_timeout=0.2)
        subject = names.subject("closed")
        psub = await broker.subscribe(Topics.nats(subject), group=names.group)
        await broker.publish(subject, b"sealed")
        [msg] = await broker.fetch(psub, 2)
        delivery = broker.delivery(msg, names.group)
        await nc.close()
        caught: list[BaseException | None] = []
        for attempt in (broker.fetch(psub, 0.2), broker.settle(delivery, Ack())):
            try:
                await attempt
            except TransportError as exc:
                caught.append(exc.__cause__)
            else:
                caught.append(None)
        return caught[0], caught[1]

    fetched, acked = asyncio.run(run())
    assert isinstance(fetched, nats.errors.ConnectionClosedError)
    assert isinstance(acked, nats.errors.ConnectionClosedError)


def test_a_connection_closed_before_the_settlement_is_lease_lost_and_the_message_comes_back(
    names: Names,
) -> None:
    """The connection a delivery came on is closed while its handler runs (for good: no
    reconnect will take the ack). Settling is LeaseLost, as is a heartbeat (counted, never a
    TransportError out of ``handle``); the server delivers the message again after
    ack_wait, to another connection, and the replay window refuses it: handled once."""
    subject = names.subject("closed")
    topics = Topics.nats(subject)
    replay = ReplayWindow()
    handled: list[bytes] = []

    async def run() -> tuple[dict[str, int], dict[str, int], type[BaseException]]:
        nc = await nats.connect(URL)
        broker = NatsBroker(nc.jetstream(), dead=names.dead, lease=1, fetch_timeout=0.3)
        psub = await broker.subscribe(topics, group=names.group)
        await broker.publish(subject, seal(b"once", subject))
        [msg] = await broker.fetch(psub, 2)
        first = AsyncSealedConsumer(broker, names.group, opener=opener(replay), topics=topics)
        heartbeat: list[type[BaseException]] = []

        async def handler(opened: Opened) -> None:
            handled.append(opened.payload)
            await nc.close()
            try:
                await first.extend_lease()
            except TransportError as exc:
                heartbeat.append(type(exc))

        assert await first.handle(broker.delivery(msg, names.group), handler)
        async with jetstream() as js:
            again = NatsBroker(js, dead=names.dead, lease=1, fetch_timeout=2.5)
            await again.subscribe(topics, group=names.group)
            second = AsyncSealedConsumer(again, names.group, opener=opener(replay), topics=topics)
            assert await second.poll(lambda o: handled.append(o.payload)) == 0
        return dict(first.metrics), dict(second.metrics), heartbeat[0]

    first, second, heartbeat = asyncio.run(run())
    assert handled == [b"once"]
    assert first == {"lease_lost": 1}
    assert heartbeat is LeaseLost
    assert second == {"dead_lettered:replayed": 1}


def test_a_wire_cut_under_the_endpoint_never_stops_handle_and_the_message_is_handled_once(
    names: Names,
) -> None:
    """The client's socket is shut down while the handler runs: nats-py reconnects by
    itself, and the ack either waits in its buffer and reaches the server once it is back, or
    was lost with the old socket and the message comes again after ack_wait, refused as a
    replay. Either way ``handle`` raises nothing and the application sees the message once.
    (Already so before LeaseLost was mapped: nats-py buffers while it reconnects.)"""
    subject = names.subject("cut")
    topics = Topics.nats(subject)
    endpoint = NatsEndpoint.from_url(names.url(lease=1, fetch_timeout=0.3))
    try:
        subscription = endpoint.subscribe(topics, group=names.group)
        endpoint.publish(subject, seal(b"once", subject))
        consumer = SealedConsumer(endpoint, names.group, opener=opener(), topics=topics)
        handled: list[bytes] = []

        def handler(opened: Opened) -> None:
            handled.append(opened.payload)
            writer = endpoint._nc._transport._io_writer  # type: ignore[union-attr]
            fd = writer.get_extra_info("socket").fileno()
            with socket.socket(fileno=os.dup(fd)) as wire:
                wire.shutdown(socket.SHUT_RDWR)

        deliveries = subscription.deliveries(idle_timeout=2.5)  # > ack_wait
        assert consumer.handle(next(deliveries), handler)
        for delivery in deliveries:
            consumer.handle(delivery, lambda o: handled.append(o.payload))
        subscription.close()
        assert endpoint._nc.stats["reconnects"] >= 1  # the wire was cut indeed
    finally:
        endpoint.close()
    assert handled == [b"once"]
    assert dict(consumer.metrics) in ({"acked": 1}, {"acked": 1, "dead_lettered:replayed": 1})
