"""Redis Streams beyond the generic suite (tests/test_endpoints.py), on the real server.

Each test uses a stream of its own (:func:`services.unique`) and deletes it, with its dead
streams, afterwards. What a test writes with the plain redis-py client is what a hostile broker
(or anyone with access to Redis) can do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import redis

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
)
from letterlock.errors import TransportError, UsageError
from letterlock.transports import (
    Ack,
    AsyncSealedConsumer,
    Delivery,
    LeaseLost,
    Retry,
    RetryPolicy,
    SealedConsumer,
)
from letterlock.transports.redis import (
    AsyncRedisEndpoint,
    RedisDelivery,
    RedisEndpoint,
    _delivery,
    _Intake,
)
from services import SERVICES, require, unique

CAST = cast_of(Suite.P256)
LEASE = 1.0  # seconds before a quiet consumer's entry goes to another consumer
IDLE = 1.0
PAYLOAD = b"the payload: 4111 1111 1111 1111"


@pytest.fixture
def stream() -> Iterator[str]:
    require("redis")
    name = unique("ll-stream")
    yield name
    plain = redis.Redis.from_url(SERVICES["redis"].url)
    plain.delete(name, *plain.keys(f"{name}:dead:*"))
    plain.close()


@pytest.fixture
def plain() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SERVICES["redis"].url)
    yield client
    client.close()


def endpoint_of(stream: str, **params: object) -> RedisEndpoint:
    query = "&".join(f"{k}={v}" for k, v in {"stream": stream, "lease": LEASE, **params}.items())
    return RedisEndpoint.from_url(f"{SERVICES['redis'].url}?{query}")


def seal(payload: bytes, topic: str, sender: Identity | None = None) -> bytes:
    return Sealer(sender or CAST.alice).seal(payload, recipients=[CAST.bob.public], topic=topic)


def consumer(
    endpoint: RedisEndpoint,
    group: str,
    topics: Topics,
    *,
    replay: ReplayWindow | None = None,
    claim_lease: float = 60.0,
    max_attempts: int = 1,
) -> SealedConsumer:
    opener = Opener(CAST.bob, trust=CAST.pins(), replay=replay or ReplayWindow())
    return SealedConsumer(
        endpoint, group, opener=opener, topics=topics, claim_lease=claim_lease,
        retry=RetryPolicy(max_attempts=max_attempts),
    )  # fmt: skip


def entries(plain: redis.Redis, key: str) -> list[dict[bytes, bytes]]:
    return [
        fields for _id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], plain.xrange(key))
    ]


def test_what_redis_holds_contains_no_payload_byte(stream: str, plain: redis.Redis) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("orders.eu")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("orders.eu", seal(PAYLOAD, "orders.eu"))
    endpoint.publish("orders.eu", seal(PAYLOAD, "orders.eu", sender=CAST.mallory))
    handled: list[Opened] = []
    reader = consumer(endpoint, "g", topics)
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, handled.append)
    assert [o.payload for o in handled] == [PAYLOAD]
    raw = entries(plain, stream) + entries(plain, endpoint.dead_stream("g"))
    assert len(raw) == 3  # two on the stream, one dead letter
    for fields in raw:
        for value in fields.values():
            assert PAYLOAD not in value
            assert PAYLOAD[:8] not in value
    subscription.close()
    endpoint.close()


def test_refusals_reach_the_dead_stream_with_one_opaque_word(
    stream: str, plain: redis.Redis
) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("pay")
    subscription = endpoint.subscribe(topics, group="g")
    genuine = seal(b"pay 10", "pay")
    tampered = bytearray(seal(b"pay 20", "pay"))
    tampered[-40] ^= 1
    forged = seal(b"pay mallory", "pay", sender=CAST.mallory)
    rerouted = seal(b"pay elsewhere", "refunds")  # signed for another topic...
    for body in (genuine, bytes(tampered), forged, genuine):  # the last one replayed
        endpoint.publish("pay", body)
    plain.xadd(stream, {"topic": "pay", "body": rerouted})  # ...which Redis says is "pay"
    handled: list[Opened] = []
    reader = consumer(endpoint, "g", topics)
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, handled.append)
    assert [o.payload for o in handled] == [b"pay 10"]
    dead = entries(plain, endpoint.dead_stream("g"))
    assert sorted(f[b"body"] for f in dead) == sorted([bytes(tampered), forged, genuine, rerouted])
    assert {f[b"reason"] for f in dead} == {b"rejected"}  # whatever the cause
    assert set(dead[0]) == {b"topic", b"body", b"reason", b"attempts", b"id"}  # nothing else
    assert plain.xpending(stream, "g")["pending"] == 0  # each one acked with its dead letter
    assert reader.metrics == {
        "acked": 1,
        "dead_lettered:bad_signature": 1,
        "dead_lettered:unknown_sender": 1,
        "dead_lettered:replayed": 1,
        "dead_lettered:wrong_topic": 1,
    }
    subscription.close()
    endpoint.close()


def test_entries_on_topics_outside_the_groups_patterns_are_skipped_unseen(
    stream: str, plain: redis.Redis
) -> None:
    """Redis has no pattern routing: a group skips (acks) what its patterns do not match,
    as an exchange would not have routed it. A genuine message sealed for such a topic but
    claimed to be on the group's topic still reaches the consumer, which refuses it."""
    endpoint = endpoint_of(stream)
    topics = Topics("pay.*")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("refunds.eu", seal(b"not ours", "refunds.eu"))
    endpoint.publish("pay.eu", seal(b"ours", "pay.eu"))
    plain.xadd(stream, {"body": b"no topic at all"})
    handled: list[Opened] = []
    reader = consumer(endpoint, "g", topics)
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, handled.append)
    assert [o.payload for o in handled] == [b"ours"]
    assert subscription.skipped == 2  # type: ignore[attr-defined]
    assert plain.xpending(stream, "g")["pending"] == 0
    assert endpoint.dead_letters("g") == []
    subscription.close()
    endpoint.close()


def test_a_skip_by_the_brokers_fields_drops_and_leaves_no_trace(
    stream: str, plain: redis.Redis
) -> None:
    """The ``topic`` and ``for`` fields are the broker's word, and the group skips by them: a
    skipped entry runs no handler, claims and records no message id, and is not dead-lettered,
    so the same bytes delivered later with fields that let them through are handled once."""
    endpoint = endpoint_of(stream)
    topics = Topics("pay.*")
    subscription = endpoint.subscribe(topics, group="g")
    sealed = seal(b"ours", "pay.eu")
    plain.xadd(stream, {"topic": b"refunds.eu", "body": sealed})  # a topic it is not on
    plain.xadd(stream, {"topic": b"pay.eu", "body": sealed, "for": b"other"})  # not ours
    reader = consumer(endpoint, "g", topics)
    handled: list[bytes] = []
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, lambda opened: handled.append(opened.payload))
    assert handled == []
    assert subscription.skipped == 2  # type: ignore[attr-defined]
    assert reader.metrics == {}
    assert endpoint.dead_letters("g") == []
    plain.xadd(stream, {"topic": b"pay.eu", "body": sealed})
    plain.xadd(stream, {"topic": b"pay.eu", "body": sealed, "for": b"g"})
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, lambda opened: handled.append(opened.payload))
    assert handled == [b"ours"]  # once: the second copy is a replay
    assert reader.metrics == {"acked": 1, "dead_lettered:replayed": 1}
    subscription.close()
    endpoint.close()


def test_the_intake_both_endpoints_drive_schedules_without_io() -> None:
    """The subscription's schedule (no server): what it takes, skips, hands over, and how
    long it blocks; an entry read a lease ago or more is not handed over."""
    intake = _Intake(Topics("pay.*"), "g", "me", lease=1.0, reconnect=0, since="0-0")
    now = time.monotonic()
    skipped = intake.take(
        [(b"1-0", {b"topic": b"pay.eu", b"body": b"a"}, 1),
         (b"2-0", {b"topic": b"refunds.eu", b"body": b"b"}, 1),
         (b"3-0", [b"topic", b"pay.us", b"body", b"c", b"for", b"other"], 2),
         (b"4-0", [b"topic", b"pay.us", b"body", b"d", b"for", b"g"], 3)],
        now,
    )  # fmt: skip
    assert skipped == [b"2-0", b"3-0"]
    assert intake.skipped == 2
    assert intake.take([(b"5-0", {b"topic": b"pay.eu", b"body": b"e"}, 1)], now - 1.0) == []
    handed = list(intake.leased())
    assert [(d.tag, d.body, d.attempts, d.consumer) for d in handed] == [
        ("1-0", b"a", 1, "me"), ("4-0", b"d", 3, "me"),
    ]  # fmt: skip
    assert not intake.buffer  # 5-0 is left pending, for the group to reclaim
    assert intake.reclaim_due()
    assert not intake.reclaim_due()
    assert intake.block(None) == intake.every == 0.25
    intake.idle_since = intake.now - 10
    assert intake.block(5) is None
    assert intake.block(10.1) == pytest.approx(0.1, abs=0.05)


def test_a_quiet_consumers_entry_is_reclaimed_by_another_of_the_group(stream: str) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("jobs")
    quiet = endpoint.subscribe(topics, group="g")
    endpoint.publish("jobs", seal(b"job", "jobs"))
    held = next(quiet.deliveries(idle_timeout=IDLE))  # taken, then nothing: it went quiet
    assert held.attempts == 1
    other = endpoint_of(stream).subscribe(topics, group="g")
    started = time.monotonic()
    again = next(other.deliveries(idle_timeout=LEASE * 3))
    assert time.monotonic() - started >= LEASE * 0.5  # not before it was idle for the lease
    assert (again.tag, again.attempts) == (held.tag, 2)  # the same entry, counted twice
    with pytest.raises(LeaseLost):
        endpoint.settle(held, Ack())  # too late: it is the other consumer's now
    with pytest.raises(LeaseLost):
        endpoint.extend_lease(held)
    endpoint.settle(again, Ack())
    assert list(other.deliveries(idle_timeout=LEASE * 2)) == []
    quiet.close()
    other.close()
    endpoint.close()


def test_an_ack_within_half_a_lease_is_one_xack_and_later_the_checked_script(
    stream: str,
) -> None:
    endpoint = endpoint_of(stream)
    sent: list[str] = []
    execute: Callable[..., Any] = endpoint.client.execute_command

    def recording(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return execute(*args, **options)

    endpoint.client.execute_command = recording  # type: ignore[method-assign]
    subscription = endpoint.subscribe(Topics("jobs"), group="g")
    endpoint.publish("jobs", seal(b"young", "jobs"))
    endpoint.publish("jobs", seal(b"old", "jobs"))
    deliveries = subscription.deliveries(idle_timeout=IDLE)
    young, old = next(deliveries), next(deliveries)
    del sent[:]
    endpoint.settle(young, Ack())
    assert sent == ["XACK"]  # no other consumer can have reclaimed it yet
    with pytest.raises(LeaseLost):
        endpoint.settle(young, Ack())  # XACK's count is checked: settled once only
    time.sleep(LEASE / 2)
    del sent[:]
    endpoint.settle(old, Ack())  # still ours, but no longer certainly: asked first
    assert sent == ["EVALSHA"]
    assert list(deliveries) == []
    subscription.close()
    endpoint.close()


@contextmanager
def unreachable(endpoint: RedisEndpoint) -> Iterator[Callable[[], None]]:
    """Yield a function that cuts the wire under ``endpoint``'s connections (their sockets
    shut down) and sends every reconnection to a port where nothing listens, as if Redis
    were gone; on leaving, Redis can be reached again."""
    pool = endpoint.client.connection_pool
    port = pool.connection_kwargs["port"]
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: a connection there is refused

    def cut() -> None:
        point(endpoint, dead.getsockname()[1])
        for connection in connections(endpoint):
            connection._sock.shutdown(socket.SHUT_RDWR)

    try:
        yield cut
    finally:
        point(endpoint, port)
        dead.close()


def connections(endpoint: RedisEndpoint | AsyncRedisEndpoint) -> list[Any]:
    pool = cast(Any, endpoint.client.connection_pool)
    return [*pool._available_connections, *pool._in_use_connections]


def point(endpoint: RedisEndpoint | AsyncRedisEndpoint, port: int) -> None:
    """Send ``endpoint``'s connections, and the ones it makes from now on, to ``port``."""
    endpoint.client.connection_pool.connection_kwargs["port"] = port
    for connection in connections(endpoint):
        connection.port = port


def test_redis_unreachable_while_settling_is_lease_lost_and_the_entry_comes_back(
    stream: str,
) -> None:
    """The wire is cut while the handler runs, and Redis cannot be reached again before
    redis-py's retries run out: the ack is LeaseLost (counted, never a TransportError out of
    ``handle``), and so is a heartbeat. Once Redis is back the entry, still pending, is
    reclaimed after the lease and refused as a replay: the application saw it once."""
    endpoint = endpoint_of(stream)
    topics = Topics("orders.eu")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("orders.eu", seal(PAYLOAD, "orders.eu"))
    reader = consumer(endpoint, "g", topics, max_attempts=5)
    handled: list[Opened] = []
    deliveries = subscription.deliveries(idle_timeout=LEASE * 3)
    first = next(deliveries)
    with unreachable(endpoint) as cut:

        def handler(opened: Opened) -> None:
            handled.append(opened)
            cut()

        assert reader.handle(first, handler)
        assert dict(reader.metrics) == {"lease_lost": 1}
        with pytest.raises(LeaseLost):
            endpoint.extend_lease(first)
    for delivery in deliveries:  # reclaimed once idle for the lease
        reader.handle(delivery, handled.append)
    assert [o.payload for o in handled] == [PAYLOAD]
    assert dict(reader.metrics) == {"lease_lost": 1, "dead_lettered:replayed": 1}


def test_a_refused_connection_while_settling_is_not_lease_lost(stream: str) -> None:
    """Only Redis out of reach is LeaseLost: a connection Redis refuses (here a password it
    does not know, on reconnecting) surfaces as TransportError."""
    endpoint = endpoint_of(stream)
    topics = Topics("orders.eu")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("orders.eu", b"x")
    delivery = next(subscription.deliveries(idle_timeout=IDLE))
    pool = endpoint.client.connection_pool
    for connection in [*pool._available_connections, *pool._in_use_connections]:
        connection.username, connection.password = "nobody", "wrong"
        connection.disconnect()
    with pytest.raises(TransportError) as refused:
        endpoint.settle(delivery, Ack())
    assert not isinstance(refused.value, LeaseLost)
    assert isinstance(refused.value.__cause__, redis.exceptions.AuthenticationError)


def test_extend_lease_keeps_an_entry_from_other_consumers(stream: str) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("jobs")
    busy = endpoint.subscribe(topics, group="g")
    endpoint.publish("jobs", seal(b"job", "jobs"))
    held = next(busy.deliveries(idle_timeout=IDLE))
    other = endpoint_of(stream).subscribe(topics, group="g")
    for _ in range(4):  # 2 leases' worth of heartbeats
        time.sleep(LEASE / 2)
        endpoint.extend_lease(held)
        assert list(other.deliveries(idle_timeout=0.01)) == []
    endpoint.settle(held, Ack())
    busy.close()
    other.close()
    endpoint.close()


def test_a_retry_stays_pending_and_comes_back_counted_after_its_delay(stream: str) -> None:
    endpoint = endpoint_of(stream, lease=5)
    topics = Topics("jobs")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("jobs", seal(b"job", "jobs"))
    deliveries = subscription.deliveries(idle_timeout=3)
    first = next(deliveries)
    endpoint.settle(first, Retry(delay=0.5))
    started = time.monotonic()
    second = next(deliveries)
    waited = time.monotonic() - started
    assert (second.tag, second.attempts) == (first.tag, 2)
    assert 0.4 <= waited < 3  # its delay, not the 5 s lease
    endpoint.settle(second, Ack())
    subscription.close()
    endpoint.close()


def test_a_redriven_dead_letter_goes_to_its_group_only(stream: str) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("pay")
    mine = endpoint.subscribe(topics, group="mine")
    theirs = endpoint.subscribe(topics, group="theirs")
    endpoint.publish("pay", seal(b"from eve", "pay", sender=CAST.eve))
    delivery = next(mine.deliveries(idle_timeout=IDLE))
    endpoint.settle(delivery, Ack())
    copy = next(theirs.deliveries(idle_timeout=IDLE))
    endpoint.settle(copy, Ack())
    with pytest.raises(LeaseLost):  # acked already: settled once, and only once
        endpoint.settle(delivery, Ack())
    reader = consumer(endpoint, "mine", topics)
    endpoint.publish("pay", seal(b"from eve again", "pay", sender=CAST.eve))
    for delivery in mine.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, lambda opened: None)
    assert [d.reason for d in endpoint.dead_letters("mine")] == ["rejected"]
    assert endpoint.redrive("mine") == 1
    assert endpoint.dead_letters("mine") == []
    redriven = next(mine.deliveries(idle_timeout=IDLE))
    assert redriven.attempts == 1  # counted afresh
    endpoint.settle(redriven, Ack())
    own = next(theirs.deliveries(idle_timeout=IDLE))  # its own copy, not the redriven one
    endpoint.settle(own, Ack())
    assert list(theirs.deliveries(idle_timeout=IDLE)) == []
    assert theirs.skipped == 1  # type: ignore[attr-defined]
    mine.close()
    theirs.close()
    endpoint.close()


def test_an_entry_read_in_a_batch_but_not_handed_over_within_its_lease_is_reclaimed(
    stream: str,
) -> None:
    endpoint = endpoint_of(stream, batch=2)
    subscription = endpoint.subscribe(Topics("jobs"), group="g")
    endpoint.publish("jobs", seal(b"job 1", "jobs"))
    endpoint.publish("jobs", seal(b"job 2", "jobs"))
    deliveries = subscription.deliveries(idle_timeout=IDLE * 3)
    first = next(deliveries)  # both read by one XREADGROUP
    endpoint.settle(first, Ack())
    time.sleep(LEASE * 1.2)  # a slow handler: the second one may be another consumer's now
    second = next(deliveries)
    assert second.attempts == 2  # not handed over from the batch: reclaimed, and counted
    endpoint.settle(second, Ack())
    subscription.close()
    endpoint.close()


def test_a_closed_subscription_leaves_the_group_once_nothing_is_pending_with_it(
    stream: str, plain: redis.Redis
) -> None:
    endpoint = endpoint_of(stream)
    done = endpoint.subscribe(Topics("jobs"), group="g")
    holding = endpoint.subscribe(Topics("jobs"), group="g")
    endpoint.publish("jobs", seal(b"job", "jobs"))
    next(holding.deliveries(idle_timeout=IDLE))  # pending with it, never settled
    done.close()
    holding.close()
    consumers = plain.xinfo_consumers(stream, "g")
    assert [c["name"].decode() for c in consumers] == [holding.consumer]  # type: ignore[attr-defined]
    assert consumers[0]["pending"] == 1  # kept: deleting it would lose the entry
    gone = endpoint.subscribe(Topics("jobs"), group="g")
    plain.delete(stream)
    gone.close()  # the group went with its stream: nothing to forget, no error
    endpoint.close()


def test_maxlen_trims_the_stream_on_publish(stream: str, plain: redis.Redis) -> None:
    endpoint = endpoint_of(stream, maxlen=10)
    for n in range(250):
        endpoint.publish("jobs", b"%d" % n)
    assert plain.xlen(stream) < 250  # about maxlen: Redis trims whole nodes (MAXLEN ~)
    endpoint.close()


# a consumer killed in its handler ----------------------------------------------------------


def _doomed_consumer(stream: str, replay: str, started: str) -> None:
    """Runs in a child process: takes the entry, claims it, and hangs in the handler."""
    endpoint = endpoint_of(stream)
    topics = Topics("jobs")
    subscription = endpoint.subscribe(topics, group="g")
    window = ReplayWindow(SQLiteReplayStore(replay))
    reader = consumer(endpoint, "g", topics, replay=window, claim_lease=2.0, max_attempts=5)

    def handler(opened: Opened) -> None:
        Path(f"{started}.part").write_bytes(opened.payload)
        Path(f"{started}.part").rename(started)  # whole, or not there
        time.sleep(600)  # killed here

    for delivery in subscription.deliveries(idle_timeout=30):
        reader.handle(delivery, handler)


def test_a_consumer_killed_in_its_handler_hands_its_entry_over_and_it_is_handled_once(
    stream: str, tmp_path: Path
) -> None:
    endpoint = endpoint_of(stream)
    topics = Topics("jobs")
    endpoint.subscribe(topics, group="g").close()  # the group exists before the publish
    endpoint.publish("jobs", seal(b"job 1", "jobs"))
    replay, started = tmp_path / "replay.db", tmp_path / "started"
    SQLiteReplayStore(replay).close()  # created before two processes open it
    child = multiprocessing.get_context("fork").Process(
        target=_doomed_consumer, args=(stream, str(replay), str(started))
    )
    child.start()
    deadline = time.monotonic() + 10
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.read_bytes() == b"job 1"
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    window = ReplayWindow(SQLiteReplayStore(replay))
    survivor = consumer(endpoint, "g", topics, replay=window, claim_lease=2.0, max_attempts=5)
    subscription = endpoint.subscribe(topics, group="g")
    handled: list[bytes] = []
    for delivery in subscription.deliveries(idle_timeout=4):
        survivor.handle(delivery, lambda opened: handled.append(opened.payload))
        if handled:
            break
    assert list(subscription.deliveries(idle_timeout=LEASE * 1.5)) == []  # nothing more
    assert handled == [b"job 1"]  # once, after the dead one's lease and claim ran out
    assert survivor.metrics["acked"] == 1
    assert survivor.metrics["taken_over"] == 1
    assert endpoint.dead_letters("g") == []
    subscription.close()
    endpoint.close()


# asyncio ------------------------------------------------------------------------------


def async_endpoint_of(stream: str) -> AsyncRedisEndpoint:
    return AsyncRedisEndpoint.from_url(f"{SERVICES['redis'].url}?stream={stream}&lease={LEASE}")


def test_asyncio_round_trip_refusals_and_redrive(stream: str) -> None:
    async def scenario() -> None:
        endpoint = async_endpoint_of(stream)
        topics = Topics("pay")
        subscription = await endpoint.subscribe(topics, group="g")
        await endpoint.publish("pay", seal(b"pay 10", "pay"))
        await endpoint.publish("pay", seal(b"from eve", "pay", sender=CAST.eve))
        opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
        reader = AsyncSealedConsumer(
            endpoint, "g", opener=opener, topics=topics, retry=RetryPolicy(max_attempts=1)
        )
        handled: list[bytes] = []

        async def handler(opened: Opened) -> None:
            handled.append(opened.payload)

        async for delivery in subscription.deliveries(idle_timeout=IDLE):
            await reader.handle(delivery, handler)
        assert handled == [b"pay 10"]
        assert reader.metrics == {"acked": 1, "dead_lettered:unknown_sender": 1}
        [dead] = await endpoint.dead_letters("g")
        assert dead.reason == "rejected"
        assert await endpoint.redrive("g") == 1
        redriven = await anext(subscription.deliveries(idle_timeout=IDLE))
        assert redriven.body == dead.body
        await endpoint.settle(redriven, Ack())
        with pytest.raises(LeaseLost):
            await endpoint.settle(redriven, Ack())  # settled once only
        await subscription.close()
        await endpoint.close()

    asyncio.run(scenario())


def test_asyncio_an_ack_within_half_a_lease_is_one_xack(stream: str) -> None:
    async def scenario() -> None:
        endpoint = async_endpoint_of(stream)
        sent: list[str] = []
        execute: Callable[..., Any] = endpoint.client.execute_command

        async def recording(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return await execute(*args, **options)

        endpoint.client.execute_command = recording  # type: ignore[method-assign]
        subscription = await endpoint.subscribe(Topics("jobs"), group="g")
        await endpoint.publish("jobs", seal(b"young", "jobs"))
        await endpoint.publish("jobs", seal(b"old", "jobs"))
        deliveries = subscription.deliveries(idle_timeout=IDLE)
        young, old = await anext(deliveries), await anext(deliveries)
        del sent[:]
        await endpoint.settle(young, Ack())
        assert sent == ["XACK"]
        with pytest.raises(LeaseLost):
            await endpoint.settle(young, Ack())
        await asyncio.sleep(LEASE / 2)
        del sent[:]
        await endpoint.settle(old, Ack())
        assert sent == ["EVALSHA"]
        assert [d async for d in deliveries] == []
        await subscription.close()
        await endpoint.close()

    asyncio.run(scenario())


def test_asyncio_a_quiet_consumers_entry_is_reclaimed_and_its_lease_extended(
    stream: str,
) -> None:
    async def scenario() -> None:
        endpoint = async_endpoint_of(stream)
        topics = Topics("jobs")
        quiet = await endpoint.subscribe(topics, group="g")
        other = await endpoint.subscribe(topics, group="g")
        await endpoint.publish("jobs", seal(b"job", "jobs"))
        held = await anext(quiet.deliveries(idle_timeout=IDLE))
        for _ in range(3):  # heartbeats: the other consumer gets nothing
            await asyncio.sleep(LEASE / 2)
            await endpoint.extend_lease(held)
            assert [d async for d in other.deliveries(idle_timeout=0.01)] == []
        again = await anext(other.deliveries(idle_timeout=LEASE * 3))  # quiet now
        assert (again.tag, again.attempts) == (held.tag, 2)
        with pytest.raises(LeaseLost):
            await endpoint.extend_lease(held)
        await endpoint.settle(again, Ack())
        await quiet.close()
        await other.close()
        await endpoint.close()

    asyncio.run(scenario())


def test_asyncio_redis_unreachable_while_settling_is_lease_lost(stream: str) -> None:
    """As with the sync endpoint: an ack and a heartbeat that cannot reach Redis (its
    connections closed, every reconnection refused) are LeaseLost, and the entry, still
    pending, comes back once Redis can be reached, refused as a replay."""

    async def scenario() -> tuple[list[bytes], dict[str, int]]:
        endpoint = async_endpoint_of(stream)
        topics = Topics("pay")
        subscription = await endpoint.subscribe(topics, group="g")
        await endpoint.publish("pay", seal(b"pay 10", "pay"))
        opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
        reader = AsyncSealedConsumer(
            endpoint, "g", opener=opener, topics=topics, retry=RetryPolicy(max_attempts=5)
        )
        pool = endpoint.client.connection_pool
        port = pool.connection_kwargs["port"]
        handled: list[bytes] = []
        deliveries = subscription.deliveries(idle_timeout=LEASE * 3)
        first = await anext(deliveries)
        with socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused

            def connections() -> list[Any]:
                return [*pool._available_connections, *pool._in_use_connections]

            async def handler(opened: Opened) -> None:
                handled.append(opened.payload)
                pool.connection_kwargs["port"] = dead.getsockname()[1]
                for connection in connections():
                    connection.port = pool.connection_kwargs["port"]
                    await connection.disconnect()

            try:
                assert await reader.handle(first, handler)
                with pytest.raises(LeaseLost):
                    await endpoint.extend_lease(first)
            finally:
                pool.connection_kwargs["port"] = port
                for connection in connections():
                    connection.port = port
        async for delivery in deliveries:  # reclaimed once idle for the lease
            await reader.handle(delivery, handler=lambda o: handled.append(o.payload))
        await subscription.close()
        await endpoint.close()
        return handled, dict(reader.metrics)

    handled, metrics = asyncio.run(scenario())
    assert handled == [b"pay 10"]
    assert metrics == {"lease_lost": 1, "dead_lettered:replayed": 1}


# Redis out of reach, or the group lost, while a subscription reads ---------------------


def sealed_fields(payload: bytes, topic: str) -> dict[Any, Any]:
    """An entry as a publisher writes it (for one writing beside the endpoint under test)."""
    return {"topic": topic, "body": seal(payload, topic)}


def test_a_subscription_outlives_redis_out_of_reach_and_handles_every_message_once(
    stream: str, plain: redis.Redis
) -> None:
    """The wire is cut while a message is handled, and Redis refuses every reconnection for
    longer than redis-py's retries (the read's, then one try of the subscription's), while
    another publisher goes on writing. Once Redis is back the subscription goes on: the
    entry whose ack could not be sent is reclaimed through XAUTOCLAIM and refused as a
    replay, and the application handled every message exactly once."""
    endpoint = endpoint_of(stream, batch=1)
    port = endpoint.client.connection_pool.connection_kwargs["port"]
    topics = Topics("orders.eu")
    subscription = endpoint.subscribe(topics, group="g")
    for n in (1, 2, 3):
        endpoint.publish("orders.eu", seal(b"order %d" % n, "orders.eu"))
    reader = consumer(endpoint, "g", topics, max_attempts=5)
    handled: list[bytes] = []
    tries: list[str] = []
    regroup = endpoint._regroup
    idle_timeout = LEASE * 3

    def trying(group: str, since: str) -> None:
        tries.append(since)
        if len(tries) == 1:  # the read gave up: Redis out of reach for longer than that
            plain.xadd(stream, sealed_fields(b"order 4", "orders.eu"))
        else:
            point(endpoint, port)  # Redis is back
        regroup(group, since)

    endpoint._regroup = trying  # type: ignore[method-assign]
    deliveries = subscription.deliveries(idle_timeout=idle_timeout)
    assert reader.handle(next(deliveries), lambda o: handled.append(o.payload))
    with unreachable(endpoint) as cut:

        def handler(opened: Opened) -> None:
            handled.append(opened.payload)
            cut()

        assert reader.handle(next(deliveries), handler)  # its ack is LeaseLost
        for delivery in deliveries:
            reader.handle(delivery, lambda o: handled.append(o.payload))
    assert len(tries) == 2  # one try failed, the next found Redis back
    assert sorted(handled) == [b"order 1", b"order 2", b"order 3", b"order 4"]
    assert dict(reader.metrics) == {"acked": 3, "lease_lost": 1, "dead_lettered:replayed": 1}
    subscription.close()
    endpoint.close()


def test_with_reconnect_0_redis_out_of_reach_ends_the_subscription(stream: str) -> None:
    """``reconnect=0``: the read's error, once redis-py's retries ran out, leaves
    ``deliveries`` as TransportError, as before reconnecting was an option."""
    endpoint = endpoint_of(stream, reconnect=0)
    subscription = endpoint.subscribe(Topics("orders.eu"), group="g")
    deliveries = subscription.deliveries(idle_timeout=LEASE * 3)
    with unreachable(endpoint) as cut:
        cut()
        with pytest.raises(TransportError) as lost:
            next(deliveries)
    assert isinstance(lost.value.__cause__, redis.exceptions.ConnectionError)
    endpoint.close()


def test_a_group_redis_lost_is_made_again_after_the_last_entry_seen(
    stream: str, plain: redis.Redis
) -> None:
    """As after a restart of a Redis that keeps nothing on disk: the stream and the group are
    gone, and a publisher writes again first. The subscription makes the group again after
    the last entry it saw and reads what was written since; an entry from before that
    (written with an older id) is not read; a settlement of an entry of the lost group is
    LeaseLost."""
    endpoint = endpoint_of(stream)
    topics = Topics("orders.eu")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("orders.eu", seal(b"before", "orders.eu"))
    deliveries = subscription.deliveries(idle_timeout=LEASE * 3)
    first = next(deliveries)
    plain.delete(stream)  # Redis lost everything
    with pytest.raises(LeaseLost):
        endpoint.extend_lease(first)
    with pytest.raises(LeaseLost):
        endpoint.settle(first, Retry(delay=0.1))
    plain.xadd(stream, sealed_fields(b"old", "orders.eu"), id="1-0")
    plain.xadd(stream, sealed_fields(b"after", "orders.eu"))
    got = []
    for delivery in deliveries:
        got.append(delivery.body)
        endpoint.settle(delivery, Ack())
    assert got == [seal_of(plain, stream)]
    subscription.close()
    endpoint.close()


def seal_of(plain: redis.Redis, stream: str) -> bytes:
    """The body of the stream's last entry."""
    [(_id, fields)] = cast(list[tuple[bytes, dict[bytes, bytes]]], plain.xrevrange(stream, count=1))
    return fields[b"body"]


def test_the_intake_backs_off_up_to_a_second_until_reconnect_runs_out() -> None:
    """Without I/O: pauses double up to 1 s within ``reconnect`` seconds of the outage's
    start, then the error is raised; a read that succeeds ends the outage; what is not Redis
    out of reach or a lost group is raised at once, and so is everything with reconnect 0."""
    gone = TransportError("x")
    gone.__cause__ = redis.exceptions.ConnectionError("gone")
    intake = _Intake(Topics("pay"), "g", "me", lease=1.0, reconnect=3.0, since="0-0")
    pauses = [intake.pause(gone, t) for t in (100.0, 100.1, 100.2, 100.4, 100.8, 101.6, 102.6)]
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, pytest.approx(0.4)]
    with pytest.raises(TransportError) as raised:
        intake.pause(gone, 103.0)
    assert raised.value is gone
    intake.served()
    assert intake.pause(gone, 200.0) == 0.05
    nogroup = TransportError("x")
    nogroup.__cause__ = redis.exceptions.ResponseError("NOGROUP No such key")
    assert intake.pause(nogroup, 200.1) == 0.1
    for cause in (
        redis.exceptions.ResponseError("WRONGTYPE"),
        redis.exceptions.AuthenticationError("no"),
    ):
        other = TransportError("x")
        other.__cause__ = cause
        with pytest.raises(TransportError):
            intake.pause(other, 200.2)
    never = _Intake(Topics("pay"), "g", "me", lease=1.0, reconnect=0, since="0-0")
    with pytest.raises(TransportError):
        never.pause(gone, 0.0)


def test_asyncio_a_subscription_outlives_redis_out_of_reach(stream: str) -> None:
    """As with the sync endpoint: Redis out of reach for longer than redis-py's retries and
    than the idle timeout, then back; the subscription goes on (time spent reconnecting is
    not idle time) and hands over the message written meanwhile."""

    async def scenario() -> list[bytes]:
        endpoint = async_endpoint_of(stream)
        port = endpoint.client.connection_pool.connection_kwargs["port"]
        topics = Topics("pay")
        subscription = await endpoint.subscribe(topics, group="g")
        await endpoint.publish("pay", b"first")
        tries: list[str] = []
        regroup = endpoint._regroup
        other = redis.asyncio.Redis.from_url(SERVICES["redis"].url)
        idle_timeout = LEASE * 3
        cut_at: list[float] = []

        async def trying(group: str, since: str) -> None:
            tries.append(since)
            if len(tries) == 1:
                await other.xadd(stream, {"topic": "pay", "body": b"second"})
            else:  # back, once out of reach for longer than the idle timeout
                await asyncio.sleep(max(0.0, cut_at[0] + idle_timeout + 0.5 - time.monotonic()))
                point(endpoint, port)
            await regroup(group, since)

        endpoint._regroup = trying  # type: ignore[method-assign]
        got: list[bytes] = []
        with socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))
            async for delivery in subscription.deliveries(idle_timeout=idle_timeout):
                got.append(delivery.body)
                await endpoint.settle(delivery, Ack())
                if len(got) == 1:
                    cut_at.append(time.monotonic())
                    point(endpoint, dead.getsockname()[1])
                    for connection in connections(endpoint):
                        await connection.disconnect()
        assert len(tries) == 2
        await other.aclose()
        await subscription.close()
        await endpoint.close()
        return got

    assert asyncio.run(scenario()) == [b"first", b"second"]


# the URL and the edge ------------------------------------------------------------------


def test_the_url_takes_tuning_and_refuses_what_it_does_not_know() -> None:
    endpoint = RedisEndpoint.from_url(
        "redis://127.0.0.1:6379/0?stream=s&lease=2.5&batch=4&maxlen=1000&socket_timeout=3"
    )
    assert (endpoint.stream, endpoint.lease, endpoint.batch, endpoint.maxlen) == (
        "s", 2.5, 4, 1000,
    )  # fmt: skip
    endpoint.close()
    assert endpoint.reconnect == 30
    assert RedisEndpoint.from_url("redis://127.0.0.1:6379/0?reconnect=0").reconnect == 0
    assert RedisEndpoint.from_url("redis://127.0.0.1:6379/0?reconnect=2.5").reconnect == 2.5
    bad_ones = ("lease=0", "lease=x", "batch=1.5", "maxlen=-1", "no_such_option=1",
                "reconnect=-1", "reconnect=x", "reconnect=inf", "reconnect=nan")  # fmt: skip
    for bad in bad_ones:
        with pytest.raises(UsageError):
            RedisEndpoint.from_url(f"redis://127.0.0.1:6379/0?{bad}")
    with pytest.raises(UsageError):
        RedisEndpoint.from_url("http://127.0.0.1:6379/0")


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_protocols_of_redis_py(stream: str, protocol: int) -> None:
    endpoint = endpoint_of(stream, protocol=protocol)
    topics = Topics("jobs")
    subscription = endpoint.subscribe(topics, group="g")
    endpoint.publish("jobs", seal(b"job", "jobs"))
    handled: list[Opened] = []
    reader = consumer(endpoint, "g", topics)
    for delivery in subscription.deliveries(idle_timeout=IDLE):
        reader.handle(delivery, handled.append)
    assert [o.payload for o in handled] == [b"job"]
    subscription.close()
    endpoint.close()


def test_a_redis_error_leaves_as_a_transport_error() -> None:
    endpoint = RedisEndpoint.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=1")
    with pytest.raises(TransportError) as caught:
        endpoint.publish("t", b"x")
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    with pytest.raises(TransportError):
        endpoint.subscribe(Topics("t"), group="g")
    endpoint.close()


def test_only_amqp_patterns_and_own_deliveries(stream: str) -> None:
    endpoint = endpoint_of(stream)
    with pytest.raises(UsageError):
        endpoint.subscribe(Topics.mqtt("a/+"), group="g")
    with pytest.raises(UsageError):
        endpoint.subscribe(Topics("a"), group="")
    with pytest.raises(UsageError):
        endpoint.settle(Delivery(tag="1-0", queue="g", topic="t", body=b"", attempts=1), Ack())
    endpoint.close()


def test_an_entry_becomes_the_delivery_the_dataclass_makes() -> None:
    """``_delivery`` sets the slots of a RedisDelivery directly (one per entry read)."""
    topics = Topics("orders.*")
    fields = {b"topic": b"orders.eu", b"body": b"sealed"}
    made = _delivery(b"1-7", fields, 2, 12.5, topics=topics, group="g", consumer="c")
    expected = RedisDelivery(
        tag="1-7", queue="g", topic="orders.eu", body=b"sealed", attempts=2, ref="1-7",
        consumer="c", read_at=12.5,
    )  # fmt: skip
    assert type(made) is RedisDelivery
    assert (made, repr(made)) == (expected, repr(expected))
    skipped = _delivery(b"1-8", fields, 1, 0.0, topics=Topics("x.*"), group="g", consumer="c")
    assert skipped is None  # a topic the group does not take
