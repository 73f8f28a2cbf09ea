"""letterlock.integrations.celery with a real Celery worker (prefork) over the real RabbitMQ.

One worker process serves one queue of its own (``tests/celery_worker_app.py``); each task run
appends a line to a file named by its task id, which is how a test sees what ran. Messages a
test wants to alter are published to a holding queue instead (the client publishes them to an
exchange of the test's, with the routing key it would use for the worker), read there with
plain pika, changed, and published to the worker's queue. A refused task is rejected into the
queue's dead-letter exchange: the test reads it from the dead-letter queue, and by then the
worker has decided it will never run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
from celery import Celery
from kombu.entity import Exchange, Queue

import services
from letterlock import Identity, Pins, Reason, Rejected, ReplayWindow, Suite, Topics, UsageError
from letterlock.integrations.celery import CONTENT_TYPE, SEALED_REPR, Gate, gate_of, setup
from letterlock.keystore.file import MIN_KDF, save_identity
from letterlock.transports.decide import Retry

TIMEOUT = 15.0  # seconds to wait for what a worker does in well under one


@dataclass
class World:
    """The worker, its queue and what the tests reach it with."""

    url: str
    queue: str
    here: Path
    log: Path
    worker: Identity
    alice: Identity
    channel: Any  # pika BlockingChannel
    client: Celery  # seals as alice, who the worker trusts
    mallory: Celery  # seals as mallory, who it does not know

    @property
    def held(self) -> str:
        return f"{self.queue}.held"

    def ran(self, task_id: str) -> list[str]:
        path = self.here / "out" / task_id
        return path.read_text().splitlines() if path.exists() else []

    def wait_ran(self, task_id: str) -> list[str]:
        deadline = time.monotonic() + TIMEOUT
        while not (lines := self.ran(task_id)):
            assert time.monotonic() < deadline, f"task {task_id} did not run"
            time.sleep(0.05)
        return lines

    def get(self, queue: str) -> tuple[Any, bytes]:
        """The next message of ``queue`` (waiting for it), as plain pika reads it: acked."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return properties, body
            assert time.monotonic() < deadline, f"nothing arrived in {queue}"
            time.sleep(0.05)

    def hold(
        self,
        task: str,
        args: tuple[Any, ...],
        *,
        kwargs: Any = None,
        key: str = "",
        sender: Celery | None = None,
    ) -> Any:
        """Publish a sealed task as the client (or ``sender``) would for the worker's queue (or
        ``key``), into the holding queue; return it as pika reads it there."""
        result = (sender or self.client).send_task(
            task, args=args, kwargs=kwargs, exchange=f"{self.queue}.hold",
            routing_key=key or self.queue,
        )  # fmt: skip
        properties, body = self.get(self.held)
        assert properties.headers["id"] == result.id
        return properties, body

    def to_worker(self, properties: Any, body: bytes, queue: str = "") -> None:
        """Publish raw bytes to the worker's queue, as a broker could."""
        self.channel.basic_publish("", queue or self.queue, body, properties)

    def dead_letter(self, queue: str = "") -> tuple[Any, bytes]:
        """The next dead letter: checked to be a rejection by the worker's queue."""
        queue = queue or self.queue
        properties, body = self.get(f"{queue}.dead")
        (death,) = properties.headers["x-death"]
        assert (death["reason"], death["queue"]) == ("rejected", queue)
        return properties, body

    def refused(self, reason: str, task_id: str, log: Path | None = None) -> None:
        """Wait for the worker's log line of a refusal of ``task_id`` for ``reason``."""
        self.line(f"refused a task message: {reason}", f"id '{task_id}'", log=log)

    def line(self, *parts: str, log: Path | None = None) -> None:
        """Wait for a line of the worker's log that has every one of ``parts``."""
        log = log or self.log
        deadline = time.monotonic() + TIMEOUT
        while not [
            line for line in log.read_text().splitlines() if all(part in line for part in parts)
        ]:
            assert time.monotonic() < deadline, f"no line with {parts} in the worker's log"
            time.sleep(0.05)

    def logged(self, text: str, log: Path | None = None) -> None:
        """Wait for ``text`` in the worker's log."""
        log = log or self.log
        deadline = time.monotonic() + TIMEOUT
        while text not in log.read_text():
            assert time.monotonic() < deadline, f"{text!r} not in the worker's log"
            time.sleep(0.05)


def _app(name: str, url: str, queue: str) -> Celery:
    """A client of the worker's queue (declared as celery_worker_app.task_queue declares it)."""
    app = Celery(name, broker=url)
    declared = Queue(
        queue, Exchange(queue, type="direct"), routing_key=queue,
        queue_arguments={"x-dead-letter-exchange": f"{queue}.dlx"},
    )  # fmt: skip
    app.conf.update(task_queues=[declared], task_default_queue=queue)
    return app


def _declare(channel: Any, queue: str, *, quorum: bool = False) -> None:
    """A worker's queue, as celery_worker_app declares it, and its dead-letter queue."""
    channel.exchange_declare(f"{queue}.dlx", "fanout")
    channel.queue_declare(f"{queue}.dead")
    channel.queue_bind(f"{queue}.dead", f"{queue}.dlx")
    arguments = {"x-dead-letter-exchange": f"{queue}.dlx"}
    if quorum:
        arguments["x-queue-type"] = "quorum"
    channel.queue_declare(queue, durable=True, arguments=arguments)


def _worker(url: str, here: Path, queue: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A Celery worker (prefork, one child) on ``queue``, in a process group of its own."""
    environment = dict(
        os.environ, LL_CELERY_DIR=str(here), LL_CELERY_QUEUE=queue, LL_CELERY_BROKER=url,
        PYTHONPATH=os.pathsep.join(["src", "tests"]), **env,
    )  # fmt: skip
    node = f"{queue}-{len(log.read_bytes())}@localhost"  # one name per worker of a test
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker", "-P", "prefork",
             "-c", "1", "-Q", queue, "-l", "info", "-E", "-n", node],
            env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _consuming(channel: Any, queue: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the worker consumes ``queue``."""
    deadline = time.monotonic() + 30
    while channel.queue_declare(queue, passive=True).method.consumer_count < 1:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    service = services.require("rabbitmq")
    here = tmp_path_factory.mktemp("celery")
    (here / "out").mkdir()
    queue = services.unique("ll-celery")
    worker, alice, mallory = (Identity.generate(Suite.P256) for _ in range(3))
    save_identity(here / "worker.key", worker, b"test", kdf=MIN_KDF)
    (here / "alice.pub").write_text(alice.public.to_text("alice"))

    connection = pika.BlockingConnection(pika.URLParameters(service.url))
    channel = connection.channel()
    _declare(channel, queue)
    channel.exchange_declare(f"{queue}.hold", "direct")
    channel.queue_declare(f"{queue}.held")
    for key in (queue, f"{queue}-other", f"{queue}-kill", f"{queue}-quorum"):  # -other: no one
        channel.queue_bind(f"{queue}.held", f"{queue}.hold", key)
    client = _app("ll-client", service.url, queue)
    setup(client, identity=alice, recipients=[worker.public])
    spy = _app("ll-mallory", service.url, queue)
    setup(spy, identity=mallory, recipients=[worker.public], serializer="letterlock-mallory")
    log = here / "worker.log"
    log.touch()
    process = _worker(service.url, here, queue, log, LL_CELERY_LEASE="2")
    try:
        _consuming(channel, queue, process, log)
        yield World(
            url=service.url, queue=queue, here=here, log=log, worker=worker, alice=alice,
            channel=channel, client=client, mallory=spy,
        )  # fmt: skip
    finally:
        _stop(process)
        if connection.is_open:
            connection.close()
        with pika.BlockingConnection(pika.URLParameters(service.url)) as cleanup:
            channel = cleanup.channel()  # a new one: a test may have lost the first
            for name in (queue, f"{queue}.held", f"{queue}.dead"):
                channel.queue_delete(name)
            for other in (f"{queue}-kill", f"{queue}-quorum"):  # a test's own worker
                for name in (other, f"{other}.dead"):
                    channel.queue_delete(name)
                for name in (other, f"{other}.dlx"):
                    channel.exchange_delete(name)
            for name in (queue, f"{queue}.hold", f"{queue}.dlx"):
                channel.exchange_delete(name)


def test_a_sealed_task_runs_in_the_worker(world: World) -> None:
    result = world.client.send_task("t.add", args=(2, 3))
    assert world.wait_ran(result.id) == ["add 5"]


def test_a_chain_runs_its_next_step_sealed_by_the_worker(world: World) -> None:
    from celery import chain

    result = chain(
        world.client.signature("t.add", args=(1, 2)), world.client.signature("t.add", args=(10,))
    ).apply_async()
    assert world.wait_ran(result.parent.id) == ["add 3"]
    assert world.wait_ran(result.id) == ["add 13"]  # sent by the worker, as the worker


def test_remote_control_still_works(world: World) -> None:
    replies = world.client.control.ping(destination=[f"{world.queue}-0@localhost"], timeout=5)
    assert replies == [{f"{world.queue}-0@localhost": {"ok": "pong"}}]


def test_the_broker_sees_no_argument_bytes(world: World) -> None:
    properties, body = world.hold(
        "t.echo", ("attack at dawn", 1), kwargs={"s3cret_name": "s3cret-kw"}
    )
    task_id = properties.headers["id"]
    secrets = (b"attack at dawn", b"s3cret-kw", b"s3cret_name")
    assert properties.content_type == CONTENT_TYPE
    everything = body + repr(properties).encode()
    assert not [secret for secret in secrets if secret in everything]
    assert properties.headers["argsrepr"] == properties.headers["kwargsrepr"] == SEALED_REPR
    assert properties.headers["task"] == "t.echo"  # Celery routes by it: bound, not hidden
    # the worker's events (-E) go through the broker too
    events = f"{world.queue}.events"
    world.channel.exchange_declare("celeryev", "topic", durable=True)
    world.channel.queue_declare(events, auto_delete=True)
    world.channel.queue_bind(events, "celeryev", "task.#")
    try:
        world.to_worker(properties, body)  # the held message itself runs
        assert world.wait_ran(task_id) == ["echo 2 1"]
        seen: list[bytes] = []
        while not any(task_id.encode() in event and b"task-succeeded" in event for event in seen):
            seen.append(world.get(events)[1])
        assert any(b"task-received" in event and b"<sealed>" in event for event in seen)
    finally:
        world.channel.queue_delete(events)
    assert not [secret for secret in secrets if any(secret in event for event in seen)]
    assert not [secret for secret in secrets if secret.decode() in world.log.read_text()]


def test_a_task_from_a_sender_the_worker_does_not_trust_never_runs(world: World) -> None:
    result = world.mallory.send_task("t.add", args=(1, 1))
    properties, _ = world.dead_letter()
    assert properties.headers["id"] == result.id
    world.refused("unknown_sender", result.id)
    assert world.ran(result.id) == []


def test_an_unsealed_task_never_runs(world: World) -> None:
    plain = _app("ll-plain", world.url, world.queue)
    plain.conf.task_serializer = "json"
    result = plain.send_task("t.add", args=(1, 2))
    properties, _ = world.dead_letter()
    assert properties.headers["id"] == result.id
    world.refused("unsupported", result.id)
    assert world.ran(result.id) == []


@pytest.mark.parametrize("task", ["t.add", "t.add_early"])  # with and without acks_late
def test_a_tampered_task_never_runs(world: World, task: str) -> None:
    properties, body = world.hold(task, (4, 5))
    tampered = bytearray(body)
    tampered[-20] ^= 1
    world.to_worker(properties, bytes(tampered))
    dead, dead_body = world.dead_letter()
    assert (dead.headers["id"], dead_body) == (properties.headers["id"], bytes(tampered))
    world.refused("bad_signature", properties.headers["id"])
    assert world.ran(properties.headers["id"]) == []


def test_a_replayed_task_runs_once(world: World) -> None:
    properties, body = world.hold("t.add", (10, 1))
    world.to_worker(properties, body)
    world.to_worker(properties, body)
    dead, _ = world.dead_letter()
    assert dead.headers["id"] == properties.headers["id"]
    world.refused("replayed", properties.headers["id"])
    assert world.wait_ran(properties.headers["id"]) == ["add 11"]


@pytest.mark.parametrize(("header", "value"), [("task", "t.mul"), ("id", "another-task-id")])
def test_a_task_relabelled_by_the_broker_never_runs(world: World, header: str, value: str) -> None:
    properties, body = world.hold("t.add", (6, 7))
    task_id = properties.headers["id"]
    properties.headers[header] = value
    world.to_worker(properties, body)
    dead, _ = world.dead_letter()
    assert dead.headers[header] == value
    world.refused(f"wrong_topic (its {header!r} header is not the signed", properties.headers["id"])
    assert world.ran(task_id) == world.ran(value) == []
    # the genuine message was not used up by the relabelled copy: it still runs
    properties.headers[header] = {"task": "t.add", "id": task_id}[header]
    world.to_worker(properties, body)
    assert world.wait_ran(task_id) == ["add 13"]


def test_a_task_routed_to_a_queue_it_was_not_sealed_for_never_runs(world: World) -> None:
    properties, body = world.hold("t.add", (8, 8), key=f"{world.queue}-other")
    world.to_worker(properties, body)  # the broker moves it to the worker's queue
    dead, _ = world.dead_letter()
    assert dead.headers["id"] == properties.headers["id"]
    world.refused(f"wrong_topic (for '{world.queue}-other'", properties.headers["id"])
    assert world.ran(properties.headers["id"]) == []


def test_the_serializer_refuses_a_body_not_published_as_a_task(world: World) -> None:
    from kombu.exceptions import EncodeError
    from kombu.serialization import dumps

    with pytest.raises(EncodeError) as raised:
        dumps(((1,), {}, {}), serializer="letterlock")
    assert isinstance(raised.value.__cause__ or raised.value.args[0], UsageError)


def test_setup_refuses_task_sent_events() -> None:
    app = Celery("ll-events")
    app.conf.task_send_sent_event = True
    with pytest.raises(UsageError, match="task_send_sent_event"):
        setup(app, identity=Identity.generate(Suite.P256), serializer="letterlock-test-events")


def test_a_worker_without_trust_has_no_gate() -> None:
    app = Celery("ll-sender")
    me = Identity.generate(Suite.P256)
    assert setup(app, identity=me, serializer="letterlock-test-sender") is None
    with pytest.raises(UsageError, match="no letterlock gate"):
        gate_of(app)
    gate = setup(app, identity=me, trust=Pins(), serializer="letterlock-test-sender")
    assert gate is gate_of(app)
    assert isinstance(gate, Gate)
    assert gate.topics is None  # the queues the worker consumes, when it starts
    gate = setup(
        app, identity=me, trust=Pins(), topics="orders.*", serializer="letterlock-test-sender"
    )
    assert gate is not None
    assert gate.topics == Topics.amqp("orders.*")


def test_a_serializer_name_seals_for_one_party() -> None:
    one, two = Celery("ll-one"), Celery("ll-two")
    me = Identity.generate(Suite.P256)
    setup(one, identity=me, serializer="letterlock-test-one")
    setup(one, identity=me, serializer="letterlock-test-one")  # the same parties again: fine
    with pytest.raises(UsageError, match="serializer name of its own"):
        setup(two, identity=Identity.generate(Suite.P256), serializer="letterlock-test-one")


def test_the_signed_headers_replace_what_the_broker_says(world: World) -> None:
    properties, body = world.hold("t.retries", ())
    properties.headers["retries"] = 7
    world.to_worker(properties, body)
    assert world.wait_ran(properties.headers["id"]) == ["retries 0"]


def test_a_worker_killed_in_a_task_hands_it_on_and_the_task_completes_once(world: World) -> None:
    """acks_late, and a replay store the workers share: the copy of a running task waits (its
    claim is renewed past the lease); the worker is SIGKILLed in the task; the next worker takes
    the claim over once it runs out and runs the task; the copy is then refused as replayed."""
    queue = f"{world.queue}-kill"
    _declare(world.channel, queue)
    log = world.here / "kill.log"
    log.touch()
    env = {"LL_CELERY_REPLAY": str(world.here / "replay.db"), "LL_CELERY_LEASE": "3",
           "LL_CELERY_PREFETCH": "2"}  # fmt: skip
    first = _worker(world.url, world.here, queue, log, **env)
    try:
        _consuming(world.channel, queue, first, log)
        properties, body = world.hold("t.slow", (60,), key=queue)
        task_id = properties.headers["id"]
        world.to_worker(properties, body, queue)
        deadline = time.monotonic() + TIMEOUT
        while world.ran(task_id) != ["start"]:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(3.5)  # past the lease: only the heartbeat keeps the claim
        world.to_worker(properties, body, queue)  # a copy, while the task runs
        world.logged("claimed, by this worker or another; requeued in 3.0 s", log)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    second = _worker(world.url, world.here, queue, log, **env)
    try:
        deadline = time.monotonic() + 3 * TIMEOUT
        while world.ran(task_id) != ["start", "start", "done"]:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        dead, _ = world.dead_letter(queue)  # the copy, once the task was done
        assert dead.headers["id"] == task_id
        world.refused("replayed", task_id, log)
        assert world.ran(task_id) == ["start", "start", "done"]
    finally:
        _stop(second)


@dataclass
class _Delivered:
    """A kombu message's fields, as the gate reads them (no broker: the gate's own rules)."""

    body: bytes
    headers: dict[str, Any]
    content_type: str = CONTENT_TYPE
    delivery_info: dict[str, Any] = field(default_factory=dict)


def test_refusals_are_counted_and_logged_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Identity.generate(Suite.P256)
    gate = Gate(worker, trust=Pins(), log_interval=3600)
    message = _Delivered(body=b"not an envelope", headers={"task": "t.add", "id": "1"})
    topics = Topics.amqp("q")
    for _ in range(3):
        with pytest.raises(Rejected) as refused:
            gate.admit(message, topics)
        gate.refused(message, refused.value)
    assert gate.metrics["dead_lettered:malformed"] == 3
    ours = [r for r in caplog.records if r.name == "letterlock.integrations.celery"]
    assert [r.getMessage() for r in ours].count(
        "refused a task message: malformed (not a letterlock envelope); rejected without requeue"
        " (dead letter rejected). "
        "The broker's claims: task 't.add', id '1', routing key None, delivery uncounted"
    ) == 1
    gate = Gate(worker, trust=Pins(), log_interval=0)  # none held back: each is logged
    for _ in range(2):
        gate.refused(message, Rejected(Reason.MALFORMED))
    assert len([r for r in caplog.records if r.name == "letterlock.integrations.celery"]) == 3


def _sealed_task(serializer: str, task_id: str, *, key: str = "q") -> tuple[bytes, dict[str, Any]]:
    """A task message as the serializer seals it on publish (the hook, then kombu's dumps)."""
    from celery import signals
    from kombu.serialization import dumps

    body: tuple[Any, ...] = (
        (2, 3),
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    )
    headers = {"task": "t.add", "id": task_id, "retries": 0, "argsrepr": "(2, 3)"}
    signals.before_task_publish.send(sender="t.add", body=body, routing_key=key, headers=headers)
    _, _, sealed = dumps(body, serializer=serializer)
    return sealed, headers


def test_a_claim_holds_a_copy_until_it_runs_out_or_is_finished() -> None:
    worker, sender = Identity.generate(Suite.P256), Identity.generate(Suite.P256)
    setup(Celery("ll-unit"), identity=sender, recipients=[worker.public],
          serializer="letterlock-test-unit")  # fmt: skip
    sealed, headers = _sealed_task("letterlock-test-unit", "task-1")
    assert headers["argsrepr"] == SEALED_REPR
    trust = Pins()
    trust.pin("sender", sender.public)
    replay = ReplayWindow()  # shared by two workers
    one, two = (Gate(worker, trust=trust, replay=replay, claim_lease=10) for _ in range(2))
    topics, now = Topics.amqp("q"), time.time()

    def delivered() -> _Delivered:
        return _Delivered(body=sealed, headers={"task": "t.add", "id": "task-1", "retries": 5})

    copy = delivered()
    admitted = one.admit(copy, topics, now=now)
    assert admitted is not None
    assert (admitted.args, admitted.kwargs, admitted.sender) == ([2, 3], {}, "sender")
    assert copy.headers["retries"] == 0  # the signed value
    one.heartbeat(now=now + 8)  # renewed until now + 18
    copy = delivered()
    assert two.admit(copy, topics, now=now + 12) is None  # busy
    assert two.busy(copy, attempts=None) == Retry(delay=10)  # after a lease
    assert two.metrics["retried:busy"] == 1
    one.forget()  # a reconnection: no more renewals
    one.heartbeat(now=now + 16)
    taken = two.admit(delivered(), topics, now=now + 19)  # run out: taken over
    assert taken is not None
    assert (two.metrics["admitted"], two.metrics["taken_over"]) == (1, 1)
    one.settled(admitted, again=False)  # the first worker's settlement changes nothing now
    assert one.metrics["lease_lost"] == 0
    two.settled(taken, again=False)
    with pytest.raises(Rejected) as refused:
        one.admit(delivered(), topics, now=now + 20)
    assert refused.value.reason is Reason.REPLAYED


def test_a_worker_serves_the_names_and_routing_keys_of_its_queues() -> None:
    from letterlock.integrations.celery import served_topics

    queues = [
        Queue("billing", Exchange("billing", type="direct"), routing_key="billing"),
        Queue("orders-eu", Exchange("orders", type="topic"), routing_key="orders.eu.*"),
    ]
    topics = served_topics(queues)
    assert topics == Topics.amqp("billing", "orders-eu", "orders.eu.*")
    assert "orders.eu.new" in topics
    assert "orders.us.new" not in topics
    with pytest.raises(UsageError, match="no queue"):
        served_topics([])


def test_on_a_quorum_queue_refusals_that_may_pass_later_are_retried(world: World) -> None:
    """A quorum queue counts deliveries (x-delivery-count), so decide() retries what may pass
    later (here unknown_sender) up to max_attempts (3) before the dead letter, and a message
    delivered more often than that is dead-lettered unopened."""
    queue = f"{world.queue}-quorum"
    _declare(world.channel, queue, quorum=True)
    log = world.here / "quorum.log"
    log.touch()
    process = _worker(world.url, world.here, queue, log, LL_CELERY_QUORUM="1")
    try:
        _consuming(world.channel, queue, process, log)
        properties, body = world.hold("t.add", (1, 2), key=queue, sender=world.mallory)
        task_id = properties.headers["id"]
        world.to_worker(properties, body, queue)
        dead, _ = world.dead_letter(queue)
        assert dead.headers["id"] == task_id
        for attempt in (1, 2):
            world.refused("unknown_sender; requeued in", task_id, log)
            world.line(f"id '{task_id}'", f"delivery {attempt}", "requeued in", log=log)
        world.line(f"id '{task_id}'", "delivery 3", "(dead letter rejected)", log=log)

        properties, body = world.hold("t.add", (2, 2), key=queue)  # from alice, trusted
        properties.headers["x-delivery-count"] = 3  # the broker says: delivered 3 times before
        world.to_worker(properties, body, queue)
        dead, _ = world.dead_letter(queue)
        assert dead.headers["id"] == properties.headers["id"]
        world.line("delivered too often", "(dead letter max_attempts)", log=log)

        properties, body = world.hold("t.add", (3, 3), key=queue)
        world.to_worker(properties, body, queue)
        assert world.wait_ran(properties.headers["id"]) == ["add 6"]
        assert world.ran(task_id) == []
    finally:
        _stop(process)
