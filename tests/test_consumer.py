"""SealedConsumer: ack only after open and handler; refusals dead-lettered or retried.

One shared suite (as httpcore runs one suite on every network backend): every test that takes
``world`` runs on every broker of :data:`BROKERS`: the local spool, and the memory broker pulled
from, pushing, pushing with neither attempt count nor nack (as MQTT), pulled from with
attempt counts but no nack (as Redis Streams), and pulled from and pushing through the asyncio
seam (AsyncSealedConsumer). :class:`World` hides only how a test drives a
broker (pull: ``poll``; push: the broker's event loop calls ``handle``) and how it looks inside;
what a test asserts is the same for all, except where a broker's missing capability changes the
outcome, which the test then states for that capability. A new adapter joins by adding a
:class:`World` for it to :data:`BROKERS`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import letterlock
from letterlock import (
    Identity,
    Opened,
    Opener,
    Pins,
    Reason,
    ReplayWindow,
    Suite,
    TransportError,
    UsageError,
)
from letterlock.transports import (
    SETTLEMENT,
    AsyncSealedConsumer,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    LeaseLost,
    MemoryBroker,
    OnHandlerError,
    OnRefusal,
    QueueStats,
    Retry,
    RetryPolicy,
    SealedConsumer,
    Settlement,
    Spool,
    SpoolDelivery,
)
from letterlock.transports.memory import AsyncMemoryBroker

T0 = 1_750_000_000.0
TOPIC = "payroll.eu"
SECRET = b"E-1042 June net EUR 4,310.00"
LEASE = 30.0  # every broker's lease here
REJECTED = DeadLetterReason.REJECTED
HANDLER_ERROR = DeadLetterReason.HANDLER_ERROR
MAX_ATTEMPTS = DeadLetterReason.MAX_ATTEMPTS
T = TypeVar("T")


@dataclass(frozen=True)
class Keys:
    alice: Identity
    bob: Identity
    mallory: Identity


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(*(Identity.generate(Suite.P256) for _ in range(3)))


@pytest.fixture
def pins(keys: Keys) -> Pins:
    pins = Pins()
    pins.pin("alice", keys.alice.public)
    return pins


# the brokers ---------------------------------------------------------------------------


class World:
    """One broker under test, driven and inspected the same way whatever it is."""

    push = False
    counts_attempts = True
    nack = True

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.broker.bind("bob", "payroll.#")
        self.told: list[Settlement] = []  # every settlement the broker was told, in order
        original = broker.settle

        def settle(delivery: Delivery, settlement: Settlement, **kw: Any) -> None:
            self.told.append(settlement)
            original(delivery, settlement, **kw)

        broker.settle = settle

    def bind(self, queue: str, pattern: str) -> None:
        self.broker.bind(queue, pattern)

    def publish(self, topic: str, body: bytes, *, now: float = T0) -> int:
        seq: int = self.broker.publish(topic, body, now=now)
        return seq

    def put(self, queue: str, reported_topic: str, body: bytes) -> int:
        """What a hostile broker can do: put any bytes into any queue and report any topic."""
        raise NotImplementedError

    def redrive(self, queue: str, *, now: float) -> int:
        """An operator moves the queue's dead letters back."""
        count: int = self.broker.redrive(queue, now=now)
        return count

    def take(self, queue: str = "bob", *, lease_seconds: float = LEASE, now: float) -> Delivery:
        """Another consumer leases the next delivery (and may die holding it)."""
        delivery: Delivery | None = self.broker.get(queue, lease_seconds=lease_seconds, now=now)
        assert delivery is not None
        return delivery

    def give_back(self, delivery: Delivery, *, now: float) -> float:
        """That consumer gives the delivery back; when it is ready again."""
        self.broker.settle(delivery, Retry(delay=0.0), now=now)
        return now if self.nack else now + LEASE  # without a nack: once its lease runs out

    def retried_after(self, delay: float) -> float:
        """How long a retry asked for after ``delay`` seconds really takes on this broker."""
        return delay if self.nack else LEASE

    def stats(self, queue: str = "bob", *, now: float = T0) -> QueueStats:
        stats: QueueStats = self.broker.stats(queue, now=now)
        return stats

    def dead_letters(self, queue: str = "bob") -> list[tuple[int, str, bytes, int]]:
        return [(d.seq, d.reason, d.body, d.attempts) for d in self.broker.dead_letters(queue)]

    def consumer(
        self,
        keys: Keys,
        pins: Pins,
        queue: str = "bob",
        *,
        window: ReplayWindow | None = None,
        **options: Any,
    ) -> SealedConsumer:
        """bob's consumer; consumers of one group share a ``window`` (their replay record)."""
        opener = Opener(keys.bob, trust=pins, replay=window or ReplayWindow())
        return SealedConsumer(self.broker, queue, opener=opener, **{"topics": TOPIC, **options})

    def run(
        self,
        consumer: SealedConsumer,
        handler: Callable[[Opened], object],
        *,
        now: float,
        max_messages: int | None = None,
    ) -> int:
        """Let the consumer take what is ready; how many messages its handler took."""
        if not self.push:
            return consumer.poll(handler, now=now, max_messages=max_messages)
        handled = 0

        def callback(delivery: Delivery) -> None:  # what a push adapter's callback does
            nonlocal handled
            handled += consumer.handle(delivery, handler, now=now)

        self.broker.subscribe(consumer.queue, callback)
        try:
            self.broker.pump(now=now, max_messages=max_messages)
        finally:
            self.broker.unsubscribe(consumer.queue)
        return handled

    def broker_view(self) -> object:
        """Everything the broker saw of the consumer: calls, dead letters, queue state."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class WatchingSpool(Spool):
    """The broker's side of the conversation: every call a consumer makes, without the tags."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, lease_seconds=LEASE)
        self.seen: list[tuple[object, ...]] = []
        self.order: list[int] = []  # sequence numbers in publishing order
        self.tags: dict[str, int] = {}  # lease tag -> sequence number

    def publish(self, topic: str, body: bytes | bytearray | memoryview, **kw: Any) -> int:
        seq = super().publish(topic, body, **kw)
        self.order.append(seq)
        return seq

    def _which(self, seq: int) -> int:
        return self.order.index(seq)

    def get(self, queue: str, **kw: Any) -> SpoolDelivery | None:
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


class SpoolWorld(World):
    def __init__(self, path: Path) -> None:
        self.spool = WatchingSpool(path)
        super().__init__(self.spool)

    def put(self, queue: str, reported_topic: str, body: bytes) -> int:
        db = sqlite3.connect(self.spool.path)
        try:
            with db:
                seq = db.execute(
                    "INSERT INTO messages (topic, body, published) VALUES (?, ?, ?)",
                    (reported_topic, body, T0),
                ).lastrowid
                db.execute(
                    "INSERT INTO deliveries (queue, seq, visible_at) VALUES (?, ?, 0)",
                    (queue, seq),
                )
        finally:
            db.close()
        assert seq is not None
        self.spool.order.append(seq)
        return seq

    def broker_view(self) -> object:
        dead = [
            (self.spool.order.index(d.seq), d.reason, d.attempts, d.dead_at, d.topic)
            for d in self.spool.dead_letters("bob")
        ]
        return self.spool.seen, dead, self.spool.stats("bob", now=T0 + 3600)

    def close(self) -> None:
        self.spool.close()


class MemoryWorld(World):
    def __init__(self, *, push: bool, counts_attempts: bool = True, nack: bool = True) -> None:
        self.push, self.counts_attempts, self.nack = push, counts_attempts, nack
        self.memory = MemoryBroker(
            push=push, counts_attempts=counts_attempts, nack=nack, lease_seconds=LEASE
        )
        super().__init__(self.memory)

    def put(self, queue: str, reported_topic: str, body: bytes) -> int:
        return self.memory.put(queue, reported_topic, body)

    def broker_view(self) -> object:
        dead = [(d.seq, d.reason, d.attempts, d.dead_at, d.topic) for d in self.dead_view()]
        return self.memory.journal, dead, self.memory.stats("bob", now=T0 + 3600)

    def dead_view(self) -> list[Any]:
        return self.memory.dead_letters("bob")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion; from inside a running event loop (a handler that drives
    another consumer), on a loop of its own in another thread while this one waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class BlockingView:
    """An AsyncSealedConsumer driven as the sync tests drive a SealedConsumer: each call runs
    the coroutine to completion (a handler's heartbeat calls the memory broker directly)."""

    def __init__(self, inner: AsyncSealedConsumer, broker: AsyncMemoryBroker) -> None:
        self.inner = inner
        self.async_broker = broker

    @property
    def queue(self) -> str:
        return self.inner.queue

    @property
    def topics(self) -> letterlock.Topics:
        return self.inner.topics

    @property
    def metrics(self) -> Any:
        return self.inner.metrics

    @property
    def _limiter(self) -> Any:
        return self.inner._limiter

    @_limiter.setter
    def _limiter(self, value: Any) -> None:
        self.inner._limiter = value

    def poll(self, handler: Callable[[Opened], object], **kw: Any) -> int:
        return _run(self.inner.poll(handler, **kw))

    def extend_lease(self, *, now: float | None = None) -> None:
        delivery, opened = self.inner._current()  # refuses outside the handler, as it should
        self.async_broker.sync.extend_lease(delivery, now=now)
        self.inner._renew(opened, now)


class AsyncMemoryWorld(MemoryWorld):
    """The memory broker through the asyncio seam, driven by AsyncSealedConsumer."""

    def __init__(self, *, push: bool) -> None:
        super().__init__(push=push)
        self.async_broker = AsyncMemoryBroker(self.memory)

    def consumer(
        self,
        keys: Keys,
        pins: Pins,
        queue: str = "bob",
        *,
        window: ReplayWindow | None = None,
        **options: Any,
    ) -> Any:
        opener = Opener(keys.bob, trust=pins, replay=window or ReplayWindow())
        inner = AsyncSealedConsumer(
            self.async_broker, queue, opener=opener, **{"topics": TOPIC, **options}
        )
        return BlockingView(inner, self.async_broker)

    def run(
        self,
        consumer: Any,
        handler: Callable[[Opened], object],
        *,
        now: float,
        max_messages: int | None = None,
    ) -> int:
        if not self.push:
            return int(consumer.poll(handler, now=now, max_messages=max_messages))
        handled = 0

        async def callback(delivery: Delivery) -> None:  # what an asyncio adapter's callback does
            nonlocal handled
            handled += await consumer.inner.handle(delivery, handler, now=now)

        async def turn() -> None:
            self.async_broker.subscribe(consumer.queue, callback)
            try:
                await self.async_broker.pump(now=now, max_messages=max_messages)
            finally:
                self.async_broker.unsubscribe(consumer.queue)

        _run(turn())
        return handled


BROKERS: dict[str, Callable[[Path], World]] = {
    "spool": lambda tmp: SpoolWorld(tmp / f"spool-{len(list(tmp.iterdir()))}.db"),
    "memory-pull": lambda tmp: MemoryWorld(push=False),
    "memory-push": lambda tmp: MemoryWorld(push=True),
    "memory-push-as-mqtt": lambda tmp: MemoryWorld(push=True, counts_attempts=False, nack=False),
    "memory-pull-as-redis": lambda tmp: MemoryWorld(push=False, nack=False),
    "memory-pull-asyncio": lambda tmp: AsyncMemoryWorld(push=False),
    "memory-push-asyncio": lambda tmp: AsyncMemoryWorld(push=True),
}


#: What each broker kind can do; tests for one capability run on exactly the kinds that have it.
CAPABILITIES: dict[str, tuple[bool, bool]] = {  # name: (counts_attempts, nack)
    "spool": (True, True),
    "memory-pull": (True, True),
    "memory-push": (True, True),
    "memory-push-as-mqtt": (False, False),
    "memory-pull-as-redis": (True, False),
    "memory-pull-asyncio": (True, True),
    "memory-push-asyncio": (True, True),
}


def _brokers(*, counts_attempts: bool, nack: bool) -> list[str]:
    names = [n for n, caps in sorted(CAPABILITIES.items()) if caps == (counts_attempts, nack)]
    assert names, "no broker kind has this capability: the test would run nowhere"
    return names


def test_every_broker_kind_states_its_capabilities(tmp_path: Path) -> None:
    assert sorted(CAPABILITIES) == sorted(BROKERS)
    for name, make in BROKERS.items():
        world = make(tmp_path)
        try:
            assert (world.counts_attempts, world.nack) == CAPABILITIES[name], name
        finally:
            world.close()


@pytest.fixture(params=sorted(BROKERS))
def make_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], World]]:
    """Builds fresh worlds of one broker kind (a test may want two)."""
    made: list[World] = []

    def make() -> World:
        made.append(BROKERS[request.param](tmp_path))
        return made[-1]

    yield make
    for world in made:
        world.close()


@pytest.fixture
def world(make_world: Callable[[], World]) -> World:
    return make_world()


def _seal(
    keys: Keys, payload: bytes = SECRET, *, sender: Identity | None = None, **kw: Any
) -> bytes:
    return letterlock.seal(
        payload, sender=sender or keys.alice, recipients=[keys.bob.public],
        **{"topic": TOPIC, "now": T0, **kw},
    )  # fmt: skip


class Recorder:
    """A handler that remembers what it got and what the queue looked like at that moment."""

    def __init__(self, world: World, fail: bool = False) -> None:
        self.world = world
        self.fail = fail
        self.opened: list[Opened] = []
        self.leased_during_call: list[int] = []

    def __call__(self, opened: Opened) -> None:
        self.opened.append(opened)
        self.leased_during_call.append(self.world.stats("bob", now=T0).leased)
        if self.fail:
            raise RuntimeError("database down")


# the shared suite ----------------------------------------------------------------------


def test_acks_only_after_open_and_handler(world: World, keys: Keys, pins: Pins) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    handler = Recorder(world)
    assert world.run(world.consumer(keys, pins), handler, now=T0) == 1
    [opened] = handler.opened
    assert opened.payload == SECRET
    assert opened.sender.name == "alice"
    assert handler.leased_during_call == [1]  # still leased, not acked, while the handler ran
    assert world.stats("bob", now=T0 + 3600).ready == 0  # acked afterwards: gone for good
    assert world.dead_letters("bob") == []


def test_poll_stops_at_max_messages(world: World, keys: Keys, pins: Pins) -> None:
    for _ in range(3):
        world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins)
    handler = Recorder(world)
    assert world.run(consumer, handler, max_messages=2, now=T0) == 2
    assert world.stats("bob", now=T0).ready == 1
    assert world.run(consumer, handler, now=T0) == 1


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
    world: World, keys: Keys, pins: Pins, attack: str
) -> None:
    make, topic, reason = ATTACKS[attack]
    body = make(keys)
    seq = world.publish(topic, body, now=T0)
    handler = Recorder(world)
    consumer = world.consumer(keys, pins)
    assert world.run(consumer, handler, now=T0) == 0
    assert handler.opened == []
    [dead] = world.dead_letters("bob")
    assert dead == (seq, REJECTED, body, 1)
    assert world.stats("bob", now=T0 + 3600).ready == 0
    assert consumer.metrics == {f"dead_lettered:{reason}": 1}  # the real reason stays local


def test_every_reason_has_a_settlement() -> None:
    assert set(SETTLEMENT) == set(Reason)
    retried = {reason for reason, how in SETTLEMENT.items() if how is OnRefusal.RETRY}
    assert retried == {
        Reason.UNKNOWN_SENDER, Reason.UNTRUSTED, Reason.BAD_SIGNATURE, Reason.NOT_YET_VALID
    }  # fmt: skip


def test_replayed_copy_is_dead_lettered(world: World, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    world.publish(TOPIC, sealed, now=T0)
    handler = Recorder(world)
    consumer = world.consumer(keys, pins)
    assert world.run(consumer, handler, now=T0) == 1
    assert len(handler.opened) == 1
    assert [d[1] for d in world.dead_letters("bob")] == [REJECTED]
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
    world: World, keys: Keys, pins: Pins, topics: str | list[str] | letterlock.Topics, opens: bool
) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins, topics=topics)
    assert consumer.topics == letterlock.Topics.of(topics)
    assert world.run(consumer, Recorder(world), now=T0) == int(opens)
    assert len(world.dead_letters("bob")) == int(not opens)


def test_rerouted_into_a_queue_for_another_topic_is_refused(
    world: World, keys: Keys, pins: Pins
) -> None:
    """Issue 6.2: a payslip signed for payroll.eu, put into the payroll.us queue by the broker,
    which reports payroll.eu for it, must not reach the US handler."""
    world.bind("us", "payroll.us")
    signed_for_eu = _seal(keys)  # topic payroll.eu, for bob
    world.put("us", "payroll.eu", signed_for_eu)
    us_handler = Recorder(world)
    consumer = world.consumer(keys, pins, "us", topics="payroll.us")
    assert world.run(consumer, us_handler, now=T0) == 0
    assert us_handler.opened == []
    [dead] = world.dead_letters("us")
    assert dead[2] == signed_for_eu


def test_the_topic_the_broker_reports_decides_nothing(world: World, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)  # payroll.eu, which the consumer serves
    world.put("bob", "anything.else", sealed)
    handler = Recorder(world)
    assert world.run(world.consumer(keys, pins), handler, now=T0) == 1
    assert handler.opened[0].topic == TOPIC


def _forgery(keys: Keys, claimed: Identity) -> bytes:
    """Mallory's own envelope, its visible sender key id swapped for ``claimed``'s."""
    sealed = _seal(keys, b"pay mallory", sender=keys.mallory)
    assert sealed.count(keys.mallory.public.fingerprint) == 1
    return sealed.replace(keys.mallory.public.fingerprint, claimed.public.fingerprint)


def _what_the_broker_sees(
    make_world: Callable[[], World], keys: Keys, pins: Pins, bodies: list[bytes]
) -> object:
    """Every call the consumer makes, the dead letters (without bytes) and the queue's state."""
    world = make_world()
    for body in bodies:
        world.publish(TOPIC, body, now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=3, delay=5))
    for second in range(100):
        world.run(consumer, Recorder(world), now=T0 + second)
    return world.broker_view()


def test_dead_letters_do_not_tell_the_broker_whom_the_receiver_trusts(
    make_world: Callable[[], World], keys: Keys, pins: Pins
) -> None:
    """Issue 6.5: forgeries claiming a trusted and an unknown sender look the same to the broker:
    the same dead-letter reason, attempts, retry delays and order of settlement."""
    stranger = Identity.generate(Suite.P256)
    claims_alice, claims_stranger = _forgery(keys, keys.alice), _forgery(keys, stranger)
    trusted = _what_the_broker_sees(make_world, keys, pins, [claims_alice])
    unknown = _what_the_broker_sees(make_world, keys, pins, [claims_stranger])
    assert trusted == unknown
    both = _what_the_broker_sees(make_world, keys, pins, [claims_alice, claims_stranger])
    swapped = _what_the_broker_sees(make_world, keys, pins, [claims_stranger, claims_alice])
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
    world: World, keys: Keys, pins: Pins, attack: str
) -> None:
    make, code = RETRIED[attack]
    body = make(keys, pins)
    world.publish(TOPIC, body, now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=3, delay=10))
    second = T0 + world.retried_after(10)
    for at in (T0, second, second + world.retried_after(20)):
        assert world.run(consumer, Recorder(world), now=at) == 0
    if not world.counts_attempts:  # only a count bounds retries: dead-lettered at once, alike
        assert world.told == [DeadLetter(reason=REJECTED)]
        assert world.dead_letters("bob") == [(1, REJECTED, body, 1)]
        assert consumer.metrics == {f"dead_lettered:{code}": 1}
        return
    assert world.told == [Retry(delay=10.0), Retry(delay=20.0), DeadLetter(reason=REJECTED)]
    [dead] = world.dead_letters("bob")
    assert dead[1:] == (REJECTED, body, 3)
    assert consumer.metrics == {f"retried:{code}": 2, f"dead_lettered:{code}": 1}


def test_the_spool_is_told_retries_and_dead_letters_as_nacks(
    tmp_path: Path, keys: Keys, pins: Pins
) -> None:
    """What the spool adapter makes of the settlements above, in its own vocabulary."""
    world = SpoolWorld(tmp_path / "spool.db")
    world.publish(TOPIC, _forgery(keys, keys.alice), now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=3, delay=10))
    for at in (T0, T0 + 10, T0 + 30):
        world.run(consumer, Recorder(world), now=at)
    nacks = [call[2] for call in world.spool.seen if call[0] == "nack"]
    assert nacks == [
        [("delay", 10.0), ("now", T0), ("requeue", True)],
        [("delay", 20.0), ("now", T0 + 10), ("requeue", True)],
        [("now", T0 + 30), ("reason", REJECTED), ("requeue", False)],
    ]
    world.close()


@pytest.mark.parametrize("make_world", _brokers(counts_attempts=True, nack=True), indirect=True)
def test_transient_is_retried_with_backoff_then_dead_lettered(
    world: World, keys: Keys, pins: Pins
) -> None:
    assert (world.counts_attempts, world.nack) == (True, True)  # delayed retries need both
    forged = _seal(keys, b"pay mallory", sender=keys.mallory)
    world.publish(TOPIC, forged, now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=3, delay=10))
    handler = Recorder(world)
    assert world.run(consumer, handler, now=T0) == 0
    assert world.stats("bob", now=T0).delayed == 1  # requeued, not dead
    assert world.dead_letters("bob") == []
    assert world.run(consumer, handler, now=T0 + 9) == 0
    assert world.stats("bob", now=T0 + 9).delayed == 1  # not yet due
    world.run(consumer, handler, now=T0 + 10)  # attempt 2, next retry 20 s later
    assert world.stats("bob", now=T0 + 29).delayed == 1
    world.run(consumer, handler, now=T0 + 30)  # attempt 3: out of attempts
    [dead] = world.dead_letters("bob")
    assert dead[1:] == (REJECTED, forged, 3)
    assert handler.opened == []
    assert consumer.metrics == {"retried:unknown_sender": 2, "dead_lettered:unknown_sender": 1}


@pytest.mark.parametrize("make_world", _brokers(counts_attempts=True, nack=False), indirect=True)
def test_a_retry_without_a_nack_waits_for_the_lease(world: World, keys: Keys, pins: Pins) -> None:
    assert (world.counts_attempts, world.nack) == (True, False)  # as Redis Streams
    world.publish(TOPIC, _seal(keys, b"pay mallory", sender=keys.mallory), now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=3, delay=1))
    handler = Recorder(world)
    assert world.run(consumer, handler, now=T0) == 0
    assert world.stats("bob", now=T0 + 1) == QueueStats(ready=0, leased=1, delayed=0, dead=0)
    assert world.run(consumer, handler, now=T0 + LEASE - 1) == 0
    assert world.told == [Retry(delay=1.0)]  # still leased: the delay cannot be honoured
    world.run(consumer, handler, now=T0 + LEASE)
    assert world.told == [Retry(delay=1.0), Retry(delay=2.0)]


def test_transient_succeeds_once_the_sender_is_pinned(world: World, keys: Keys, pins: Pins) -> None:
    world.publish(TOPIC, _seal(keys, b"from carol", sender=keys.mallory), now=T0)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(delay=5))
    handler = Recorder(world)
    assert world.run(consumer, handler, now=T0) == 0
    pins.pin("newcomer", keys.mallory.public)
    later = T0 + world.retried_after(5)
    if not world.counts_attempts:  # no retries without a count: it was dead-lettered at once
        assert world.run(consumer, handler, now=later) == 0
        assert [d[1] for d in world.dead_letters("bob")] == [REJECTED]
        return
    assert world.run(consumer, handler, now=later) == 1
    assert handler.opened[0].sender.name == "newcomer"
    assert world.dead_letters("bob") == []


def test_handler_exception_is_not_acked(world: World, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    world.publish(TOPIC, _seal(keys, b"second"), now=T0)
    handler = Recorder(world, fail=True)
    with pytest.raises(RuntimeError, match="database down"):
        world.run(world.consumer(keys, pins), handler, now=T0)
    assert len(handler.opened) == 1  # stopped at the first failure
    [dead] = world.dead_letters("bob")
    assert (dead[1], dead[2]) == (HANDLER_ERROR, sealed)
    assert world.stats("bob", now=T0).ready == 1  # the second one waits, untouched


def test_handler_error_survives_a_lost_lease(world: World, keys: Keys, pins: Pins) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)

    def slow_failing_handler(opened: Opened) -> None:
        world.take("bob", now=T0 + 3600)  # another consumer took it over
        raise RuntimeError("database down")

    consumer = world.consumer(keys, pins)
    with pytest.raises(RuntimeError, match="database down"):
        world.run(consumer, slow_failing_handler, now=T0)
    assert world.dead_letters("bob") == []  # it belongs to the new lease holder now
    assert world.stats("bob", now=T0 + 3600).leased == 1
    assert consumer.metrics == {"lease_lost": 1}


def test_crash_loop_is_dead_lettered(world: World, keys: Keys, pins: Pins) -> None:
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    for attempt in range(2):  # two consumers died holding the lease
        world.take("bob", lease_seconds=1, now=T0 + attempt * 2)
    handler = Recorder(world)
    consumer = world.consumer(keys, pins, retry=RetryPolicy(max_attempts=2))
    if not world.counts_attempts:  # a crash loop cannot be told from a first delivery
        assert world.run(consumer, handler, now=T0 + 10) == 1
        assert world.dead_letters("bob") == []
        return
    assert world.run(consumer, handler, now=T0 + 10) == 0
    assert handler.opened == []
    assert [d[1] for d in world.dead_letters("bob")] == [MAX_ATTEMPTS]
    assert consumer.metrics == {"dead_lettered:max_attempts": 1}


def test_lost_lease_after_handling_is_logged_not_raised(
    world: World, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    stolen = []

    def slow_handler(opened: Opened) -> None:  # meanwhile the lease ran out, another took it
        stolen.append(world.take("bob", now=T0 + LEASE))

    consumer = world.consumer(keys, pins)
    with caplog.at_level(logging.WARNING):
        assert world.run(consumer, slow_handler, now=T0) == 1
    assert "outlived its lease" in caplog.text
    ready = world.give_back(stolen[0], now=T0 + LEASE)
    assert world.run(consumer, slow_handler, now=ready) == 0  # refused as replayed
    assert [d[1] for d in world.dead_letters("bob")] == [REJECTED]
    assert consumer.metrics == {"lease_lost": 1, "dead_lettered:replayed": 1}


def test_a_handler_extends_its_lease(world: World, keys: Keys, pins: Pins) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins)
    checks = []

    def slow_handler(opened: Opened) -> None:
        consumer.extend_lease(now=T0 + 20)  # a heartbeat, 20 s into a long job
        checks.append(world.stats("bob", now=T0 + LEASE + 10).leased)  # past the first lease

    assert world.run(consumer, slow_handler, now=T0) == 1
    assert checks == [1]  # still this consumer's
    assert consumer.metrics == {"acked": 1}
    with pytest.raises(UsageError, match="handler"):
        consumer.extend_lease(now=T0)  # not while a handler runs


def test_extending_a_lost_lease_raises_in_the_handler(world: World, keys: Keys, pins: Pins) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins)

    def slow_handler(opened: Opened) -> None:
        world.take("bob", now=T0 + 3600)
        consumer.extend_lease(now=T0 + 3600)

    with pytest.raises(LeaseLost):
        world.run(consumer, slow_handler, now=T0)
    assert consumer.metrics == {"lease_lost": 1}  # its dead letter came too late as well
    assert world.dead_letters("bob") == []


def test_rejections_are_logged_at_a_limited_rate(
    world: World, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        world.publish(TOPIC, _not_for_bob(keys), now=T0)
    world.publish(TOPIC, _seal(keys, topic="payroll.us"), now=T0)
    with caplog.at_level(logging.INFO, logger="letterlock.transports.consumer"):
        world.run(world.consumer(keys, pins, log_interval=3600), Recorder(world), now=T0)
    mine = [r for r in caplog.records if r.name == "letterlock.transports.consumer"]
    messages = [r.getMessage() for r in mine]
    assert len([m for m in messages if "not_for_me" in m]) == 1
    assert len([m for m in messages if "wrong_topic" in m]) == 1
    assert all("dead-lettered as 'rejected'" in m for m in messages)
    assert all(r.levelno == logging.WARNING for r in mine)
    assert len(world.dead_letters("bob")) == 6  # all dead-lettered, only logging was limited
    assert SECRET.decode() not in caplog.text


def test_held_back_log_records_are_counted(
    world: World, keys: Keys, pins: Pins, caplog: pytest.LogCaptureFixture
) -> None:
    from letterlock.transports.consumer import _RateLimiter

    ticks = iter([0.0, 1.0, 2.0, 11.0])
    for _ in range(4):
        world.publish(TOPIC, _not_for_bob(keys), now=T0)
    consumer = world.consumer(keys, pins)
    consumer._limiter = _RateLimiter(10.0, clock=lambda: next(ticks))
    with caplog.at_level(logging.WARNING, logger="letterlock.transports.consumer"):
        world.run(consumer, Recorder(world), now=T0)
    mine = [r for r in caplog.records if r.name == "letterlock.transports.consumer"]
    messages = [r.getMessage() for r in mine]  # (not a record another library logged)
    assert len(messages) == 2  # t=0 logged, t=1 and t=2 held back, t=11 logged with the count
    assert messages[1].endswith("(2 more like it not logged)")


# one broker's own behaviour, and configuration -----------------------------------------


def test_spool_failures_surface_as_transport_errors(tmp_path: Path, keys: Keys, pins: Pins) -> None:
    world = SpoolWorld(tmp_path / "spool.db")
    consumer = world.consumer(keys, pins)
    world.spool.close()
    with pytest.raises(TransportError):
        consumer.poll(Recorder(world), now=T0)


def test_a_pushing_broker_is_not_polled(keys: Keys, pins: Pins) -> None:
    world = MemoryWorld(push=True)
    with pytest.raises(UsageError, match="pushes"):
        world.consumer(keys, pins).poll(Recorder(world), now=T0)


def test_configuration_mistakes(keys: Keys, pins: Pins) -> None:
    broker = MemoryBroker()
    opener = Opener(keys.bob, trust=pins, replay=ReplayWindow())
    with pytest.raises(letterlock.UsageError, match="identity"):
        Opener(keys.bob.public, trust=pins, replay=ReplayWindow())  # type: ignore[arg-type]
    with pytest.raises(letterlock.UsageError, match="opener"):
        SealedConsumer(broker, "bob", opener=keys.bob, topics="#")  # type: ignore[arg-type]
    with pytest.raises(letterlock.UsageError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(letterlock.UsageError, match="RetryPolicy"):
        SealedConsumer(broker, "bob", opener=opener, topics="#", retry=3)  # type: ignore[arg-type]
    with pytest.raises(letterlock.UsageError, match="topics"):
        SealedConsumer(broker, "bob", opener=opener, topics=None)  # type: ignore[arg-type]
    with pytest.raises(letterlock.UsageError, match="topic"):
        SealedConsumer(broker, "bob", opener=opener, topics=[])
    with pytest.raises(TypeError, match="topics"):
        SealedConsumer(broker, "bob", opener=opener)  # type: ignore[call-arg]
    with pytest.raises(letterlock.UsageError, match="log_interval"):
        SealedConsumer(broker, "bob", opener=opener, topics="#", log_interval=-1)


def test_retry_delays_are_checked() -> None:
    with pytest.raises(UsageError):
        RetryPolicy(delay=10, max_delay=1)
    with pytest.raises(UsageError):
        RetryPolicy(delay=-1)
    with pytest.raises(UsageError):
        RetryPolicy(delay=float("nan"))


def test_an_async_handler_is_awaited_and_its_heartbeat_reaches_the_broker(
    keys: Keys, pins: Pins
) -> None:
    world = AsyncMemoryWorld(push=False)
    world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins).inner
    seen: list[bytes] = []

    async def handler(opened: Opened) -> None:
        await asyncio.sleep(0)
        await consumer.extend_lease(now=T0 + 20)
        seen.append(opened.payload)

    assert asyncio.run(consumer.poll(handler, now=T0)) == 1
    assert seen == [SECRET]
    assert ("extend", "bob", 1, LEASE) in world.memory.journal
    assert consumer.metrics == {"acked": 1}
    with pytest.raises(UsageError, match="handler"):
        asyncio.run(consumer.extend_lease(now=T0))


def test_an_async_consumer_does_not_poll_a_pushing_broker(keys: Keys, pins: Pins) -> None:
    consumer = AsyncMemoryWorld(push=True).consumer(keys, pins).inner
    with pytest.raises(UsageError, match="pushes"):
        asyncio.run(consumer.poll(Recorder(AsyncMemoryWorld(push=True)), now=T0))


# claims: consumers of one group, crashes and handler errors ----------------------------

CLAIM = 60.0  # the consumers' claim lease here (twice the broker's lease)


class Killed(BaseException):
    """What a handler's process dying looks like to the code around it: nothing after it runs
    (no settlement, no release: only the broker's lease and the claim's lease run out)."""


def _killer(opened: Opened) -> None:
    raise Killed


def test_a_consumer_killed_in_its_handler_hands_the_message_over_once_its_claim_lapses(
    world: World, keys: Keys, pins: Pins
) -> None:
    """SIGKILL inside the handler: the broker delivers the message again when its lease runs
    out; the next consumer waits for the dead one's claim to lapse, then handles it, once."""
    window = ReplayWindow()
    world.publish(TOPIC, _seal(keys), now=T0)
    first = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    with pytest.raises(Killed):
        world.run(first, _killer, now=T0)
    second = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    handler = Recorder(world)
    assert world.run(second, handler, now=T0 + LEASE) == 0  # redelivered: the claim still holds
    assert world.told[-1] == Retry(delay=CLAIM)  # busy: not dead-lettered, not handled
    assert world.dead_letters("bob") == []
    lapsed = T0 + LEASE + world.retried_after(CLAIM)
    assert lapsed >= T0 + CLAIM
    assert world.run(second, handler, now=lapsed) == 1
    assert [o.payload for o in handler.opened] == [SECRET]
    assert second.metrics == {"retried:busy": 1, "taken_over": 1, "acked": 1}
    assert world.run(second, handler, now=lapsed + 3600) == 0  # nothing left, nothing twice
    assert world.dead_letters("bob") == []


def test_a_copy_that_arrives_while_another_consumer_handles_it_waits_then_is_refused(
    world: World, keys: Keys, pins: Pins
) -> None:
    """Two consumers of one group get copies of one message at once: one handles it, the
    other's copy waits for the claim, then is refused as a replay: the application sees it
    once, and no copy is dead-lettered while the first one is still in the handler."""
    window = ReplayWindow()
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    first = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    second = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    application = Recorder(world)

    def handler(opened: Opened) -> None:
        world.publish(TOPIC, sealed, now=T0)  # the broker hands a copy to the other consumer
        assert world.run(second, application, now=T0) == 0  # busy: it waits
        application(opened)

    assert world.run(first, handler, now=T0, max_messages=1) == 1
    assert second.metrics == {"retried:busy": 1}
    assert world.dead_letters("bob") == []
    world.run(second, application, now=T0 + world.retried_after(CLAIM))
    assert [o.payload for o in application.opened] == [SECRET]
    assert [d[1] for d in world.dead_letters("bob")] == [REJECTED]  # the copy: replayed
    assert second.metrics == {"retried:busy": 1, "dead_lettered:replayed": 1}


@pytest.mark.parametrize("make_world", _brokers(counts_attempts=True, nack=True), indirect=True)
def test_a_handler_error_is_retried_when_the_user_chose_so(
    world: World, keys: Keys, pins: Pins
) -> None:
    world.publish(TOPIC, _seal(keys), now=T0)
    retry = RetryPolicy(max_attempts=3, delay=10, on_handler_error=OnHandlerError.RETRY)
    consumer = world.consumer(keys, pins, retry=retry, claim_lease=CLAIM)
    failing = Recorder(world, fail=True)
    with pytest.raises(RuntimeError):
        world.run(consumer, failing, now=T0)
    assert world.told == [Retry(delay=10.0)]  # its claim released: not replayed next time
    handler = Recorder(world)
    assert world.run(consumer, handler, now=T0 + 10) == 1
    assert [o.payload for o in handler.opened] == [SECRET]
    assert world.dead_letters("bob") == []
    assert consumer.metrics == {"retried:handler_error": 1, "acked": 1}


def test_a_handler_error_without_attempt_counts_is_dead_lettered_even_if_retries_were_chosen(
    keys: Keys, pins: Pins
) -> None:
    """Only a count bounds a retry: without one, a failing handler could loop forever."""
    world = MemoryWorld(push=True, counts_attempts=False, nack=False)
    world.publish(TOPIC, _seal(keys), now=T0)
    retry = RetryPolicy(on_handler_error=OnHandlerError.RETRY)
    with pytest.raises(RuntimeError):
        world.run(world.consumer(keys, pins, retry=retry), Recorder(world, fail=True), now=T0)
    assert [d[1] for d in world.dead_letters("bob")] == [HANDLER_ERROR]


@pytest.mark.parametrize("make_world", ["memory-pull", "spool"], indirect=True)
def test_a_dead_letter_of_a_failed_handler_is_handled_once_redriven(
    world: World, keys: Keys, pins: Pins
) -> None:
    """The failed handler's claim is released, so the redriven message opens afresh."""
    window = ReplayWindow()
    world.publish(TOPIC, _seal(keys), now=T0)
    consumer = world.consumer(keys, pins, window=window)
    with pytest.raises(RuntimeError):
        world.run(consumer, Recorder(world, fail=True), now=T0)
    assert [d[1] for d in world.dead_letters("bob")] == [HANDLER_ERROR]
    assert world.redrive("bob", now=T0 + 1) == 1
    handler = Recorder(world)
    assert world.run(consumer, handler, now=T0 + 1) == 1
    assert [o.payload for o in handler.opened] == [SECRET]


def test_extend_lease_renews_the_claim_too(world: World, keys: Keys, pins: Pins) -> None:
    window = ReplayWindow()
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    first = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    second = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    states: list[object] = []

    def long_job(opened: Opened) -> None:
        first.extend_lease(now=T0 + CLAIM - 1)  # a heartbeat just before the claim lapses
        world.put("bob", TOPIC, sealed)  # a copy for the other consumer
        states.append(world.run(second, Recorder(world), now=T0 + CLAIM + 10))
        states.append(world.told[-1])

    assert world.run(first, long_job, now=T0, max_messages=1) == 1
    assert states == [0, Retry(delay=CLAIM)]  # still busy past the first claim's end
    assert "taken_over" not in second.metrics


def test_a_handler_that_outlived_its_claim_is_told_and_counted(
    world: World, keys: Keys, pins: Pins
) -> None:
    window = ReplayWindow()
    sealed = _seal(keys)
    world.publish(TOPIC, sealed, now=T0)
    first = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    second = world.consumer(keys, pins, window=window, claim_lease=CLAIM)
    later = T0 + CLAIM + 1
    outcomes: list[object] = []

    def slow(opened: Opened) -> None:  # forgot its heartbeat; another consumer took over
        world.put("bob", TOPIC, sealed)
        outcomes.append(world.run(second, Recorder(world), now=later, max_messages=1))
        try:
            first.extend_lease(now=later)
        except LeaseLost:
            outcomes.append("lease lost")

    world.run(first, slow, now=T0, max_messages=1)
    assert outcomes == [1, "lease lost"]
    assert second.metrics == {"taken_over": 1, "acked": 1}
    assert first.metrics.get("claim_lost") == 1


def test_claim_lease_must_be_positive(keys: Keys, pins: Pins) -> None:
    opener = Opener(keys.bob, trust=pins, replay=ReplayWindow())
    with pytest.raises(UsageError, match="claim_lease"):
        SealedConsumer(MemoryBroker(), "bob", opener=opener, topics="#", claim_lease=0)
