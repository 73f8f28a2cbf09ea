"""Celery tasks per second end to end over RabbitMQ: JSON, JSON + crypto floor, letterlock.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/broker_celery.py [--messages 2000]
                                                                      [--size 100] [--rounds 3]

One Celery worker (prefork, one child: ``tests/celery_worker_app.py``) serves a fresh queue;
the client sends ``--messages`` tasks (``t.noop`` with an int and ``--size`` characters,
``acks_late``) and then a marker task, which the worker runs last. The rate is tasks divided
by the time from the first send to the marker's run. Rows, as in ``benchmarks/brokers.py``:

* ``plain``: Celery's own JSON serializer;
* ``plain+floor``: the same, plus per message, where letterlock's gate would open it, one pyca
  ECDSA P-256 verification and one AES-256-GCM decryption of pre-made data;
* ``letterlock``: :mod:`letterlock.integrations.celery` (sealed for the worker with P-256,
  opened and claimed by its gate, the claim finished when Celery acks).

Rounds alternate the rows; the medians are printed.
``--durable`` adds ``letterlock+sqlite``: the gate's replay store a SQLite file on disk
(``benchmarks/broker_common.py``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import broker_common as bench
import pika
from celery import Celery
from kombu.entity import Exchange, Queue

from letterlock import Identity, Suite
from letterlock.integrations.celery import setup
from letterlock.keystore import MIN_KDF, save_identity

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ROOT = Path(__file__).resolve().parent.parent
MODES = {
    bench.PLAIN: "plain",
    bench.FLOOR: "floor",
    bench.LETTERLOCK: "letterlock",
    bench.DURABLE: "letterlock",
}


def one_round(here: Path, row: str, messages: int, size: int, keys: tuple[Identity, ...]) -> float:
    """Tasks per second, end to end, of one round of ``row`` (the worker in its mode)."""
    worker, alice = keys
    mode = MODES[row]
    queue = f"ll-bench-celery-{os.getpid()}-{mode}-{time.monotonic_ns()}"
    env = dict(
        os.environ, LL_CELERY_DIR=str(here), LL_CELERY_QUEUE=queue, LL_CELERY_BROKER=URL,
        LL_CELERY_MODE=mode, LL_CELERY_PREFETCH="100", LL_CELERY_SIZE=str(size),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
    )  # fmt: skip
    if row == bench.DURABLE:  # the gate's replay store: a SQLite file on disk, as a deployment's
        env["LL_CELERY_REPLAY"] = str(bench.STORE_DIR / f"{queue}.replay.db")
    with open(here / f"{queue}.log", "wb") as log:
        worker_process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker", "-P", "prefork",
             "-c", "1", "-Q", queue, "-l", "warning", "-n", f"{queue}@localhost"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        arguments = {"x-dead-letter-exchange": f"{queue}.dlx"}
        channel.queue_declare(queue, durable=True, arguments=arguments)
        while channel.queue_declare(queue, passive=True).method.consumer_count < 1:
            if worker_process.poll() is not None:
                raise RuntimeError((here / f"{queue}.log").read_text())
            time.sleep(0.1)
        client = Celery(f"bench-{mode}", broker=URL)
        client.conf.task_queues = [
            Queue(queue, Exchange(queue, type="direct"), routing_key=queue,
                  queue_arguments=arguments)
        ]  # fmt: skip
        client.conf.task_default_queue = queue
        if mode == "letterlock":
            setup(client, identity=alice, recipients=[worker.public], serializer=f"ll-{queue}")
        text = "x" * size
        with client.producer_or_acquire() as producer:
            start = time.perf_counter()
            for number in range(messages):
                client.send_task("t.noop", args=(number, text), producer=producer)
            marker = client.send_task("t.mark", producer=producer).id
        while not (here / "out" / marker).exists():
            time.sleep(0.002)
        return messages / (time.perf_counter() - start)
    finally:
        worker_process.terminate()
        worker_process.wait()
        if row == bench.DURABLE:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{env['LL_CELERY_REPLAY']}{suffix}").unlink(missing_ok=True)
        with contextlib.suppress(pika.exceptions.AMQPError):  # lost with a restarted server
            connection.close()
        with pika.BlockingConnection(pika.URLParameters(URL)) as cleanup:
            channel = cleanup.channel()  # a new one: the first may have been lost meanwhile
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def run(messages: int, size: int, *, durable: bool = False) -> dict[str, float]:
    """One round of each row: tasks per second end to end (``benchmarks/brokers.py``'s call)."""
    try:
        pika.BlockingConnection(pika.URLParameters(URL)).close()
    except pika.exceptions.AMQPConnectionError as exc:  # brokers.py reports a server down
        raise ConnectionError(f"RabbitMQ at {URL}: {exc!r}") from exc
    keys = (Identity.generate(Suite.P256), Identity.generate(Suite.P256))
    with tempfile.TemporaryDirectory() as directory:
        here = Path(directory)
        (here / "out").mkdir()
        save_identity(here / "worker.key", keys[0], b"test", kdf=MIN_KDF)
        (here / "alice.pub").write_text(keys[1].public.to_text("alice"))
        return {row: one_round(here, row, messages, size, keys) for row in bench.rows(durable)}


def costs(tasks: int, size: int) -> tuple[float, float]:
    """Microseconds per task, in this process, no broker: (seal, open at the gate)."""
    from dataclasses import dataclass, field
    from typing import Any

    from celery import signals
    from kombu.serialization import dumps

    from letterlock import Pins, Topics
    from letterlock.integrations.celery import CONTENT_TYPE, Gate

    @dataclass
    class Delivered:  # what the gate reads of a kombu message
        body: bytes
        headers: dict[str, Any]
        content_type: str = CONTENT_TYPE
        delivery_info: dict[str, Any] = field(default_factory=dict)

    worker, alice = Identity.generate(Suite.P256), Identity.generate(Suite.P256)
    name = f"ll-costs-{time.monotonic_ns()}"  # a serializer name seals for one party
    setup(Celery("bench-costs"), identity=alice, recipients=[worker.public], serializer=name)
    sealed = []
    start = time.perf_counter()
    for number in range(tasks):
        body: tuple[Any, ...] = (
            (number, "x" * size),
            {},
            {"callbacks": None, "errbacks": None, "chain": None},
        )
        headers = {"task": "t.noop", "id": f"task-{number}", "retries": 0, "argsrepr": "..."}
        signals.before_task_publish.send(
            sender="t.noop", body=body, routing_key="q", headers=headers
        )
        sealed.append(Delivered(body=dumps(body, serializer=name)[2], headers=headers))
    middle = time.perf_counter()
    trust = Pins()
    trust.pin("alice", alice.public)
    gate, topics = Gate(worker, trust=trust), Topics.amqp("q")
    for message in sealed:
        gate.admit(message, topics)
    end = time.perf_counter()
    return 1e6 * (middle - start) / tasks, 1e6 * (end - middle) / tasks


if __name__ == "__main__":
    args = bench.main(__doc__, run, "Celery over RabbitMQ, tasks/s", messages=2000, size=100)
    seal, admit = costs(args.messages, args.size)
    print(f"in process, per task: seal {seal:.0f} us (hook + serializer), gate {admit:.0f} us")
