"""Celery tasks per second over RabbitMQ: Celery's JSON against letterlock's sealed tasks.

    PYTHONPATH=src:tests .venv/bin/python benchmarks/celery_tasks.py [--tasks 2000] [--rounds 3]

One Celery worker (prefork, one child: ``tests/celery_worker_app.py``) serves a fresh queue;
the client sends ``--tasks`` tasks (``t.noop`` with an int and 100 characters, ``acks_late``)
and then a marker task, which the worker runs last. "publish" is tasks divided by the time the
client took to send them; "end to end" is tasks divided by the time from the first send to the
marker's run. "json": Celery's own serializer; "letterlock": sealed for the worker (P-256),
opened by its gate (with its claims in memory). Rounds alternate; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika
from celery import Celery
from kombu.entity import Exchange, Queue

from letterlock import Identity, Suite
from letterlock.integrations.celery import setup
from letterlock.keystore import MIN_KDF, save_identity

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def one_round(
    here: Path, mode: str, tasks: int, worker: Identity, alice: Identity
) -> tuple[float, float]:
    """(publish rate, end-to-end rate) of one round in ``mode``."""
    queue = f"ll-bench-celery-{os.getpid()}-{mode}-{time.monotonic_ns()}"
    env = dict(
        os.environ, LL_CELERY_DIR=str(here), LL_CELERY_QUEUE=queue, LL_CELERY_BROKER=URL,
        LL_CELERY_PLAIN="1" if mode == "json" else "0", LL_CELERY_PREFETCH="100",
    )  # fmt: skip
    with open(here / f"{queue}.log", "wb") as log:
        worker_process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_worker_app", "worker", "-P", "prefork",
             "-c", "1", "-Q", queue, "-l", "warning", "-n", f"{queue}@localhost"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-dead-letter-exchange": f"{queue}.dlx"})
    try:
        while channel.queue_declare(queue, passive=True).method.consumer_count < 1:
            assert worker_process.poll() is None
            time.sleep(0.1)
        client = Celery(f"bench-{mode}", broker=URL)
        client.conf.task_queues = [
            Queue(queue, Exchange(queue, type="direct"), routing_key=queue,
                  queue_arguments={"x-dead-letter-exchange": f"{queue}.dlx"})
        ]  # fmt: skip
        client.conf.task_default_queue = queue
        if mode == "letterlock":
            setup(client, identity=alice, recipients=[worker.public], serializer=f"ll-{queue}")
        text = "x" * 100
        with client.producer_or_acquire() as producer:
            start = time.perf_counter()
            for number in range(tasks):
                client.send_task("t.noop", args=(number, text), producer=producer)
            sent = time.perf_counter()
            marker = client.send_task("t.mark", producer=producer).id
        while not (here / "out" / marker).exists():
            time.sleep(0.002)
        done = time.perf_counter()
        return tasks / (sent - start), tasks / (done - start)
    finally:
        worker_process.terminate()
        worker_process.wait()
        if connection.is_open:
            connection.close()
        with pika.BlockingConnection(pika.URLParameters(URL)) as cleanup:
            channel = cleanup.channel()  # a new one: the first may have been lost meanwhile
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    worker, alice = Identity.generate(Suite.P256), Identity.generate(Suite.P256)
    with tempfile.TemporaryDirectory() as directory:
        here = Path(directory)
        (here / "out").mkdir()
        save_identity(here / "worker.key", worker, b"test", kdf=MIN_KDF)
        (here / "alice.pub").write_text(alice.public.to_text("alice"))
        rates: dict[str, list[tuple[float, float]]] = {"json": [], "letterlock": []}
        for _ in range(options.rounds):
            for mode, results in rates.items():
                results.append(one_round(here, mode, options.tasks, worker, alice))
    print(f"{options.tasks} tasks, {options.rounds} rounds (medians), one prefork worker")
    for mode, measured in rates.items():
        publish = statistics.median(r[0] for r in measured)
        end_to_end = statistics.median(r[1] for r in measured)
        print(f"{mode:>10}: publish {publish:7.0f}/s   end to end {end_to_end:7.0f}/s")


if __name__ == "__main__":
    main()
