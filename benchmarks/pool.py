"""Messages per second through a ConsumerPool with 1 and 2 workers, the speed-up, and (on
RabbitMQ) the same number of plain pika workers doing the crypto floor.

    .venv/bin/python benchmarks/pool.py [--messages 3000] [--rounds 3] [--size 1024]
        [--broker spool] [--broker amqp://guest:guest@127.0.0.1:5672/%2F] [--dir /dev/shm]
        [--replay sqlite|memory|redis://127.0.0.1:6379/0|postgresql://...]

For each broker and round, a fresh group gets ``--messages`` sealed messages (``--suite``, default
p256; one recipient, a warm Sealer), published before the pool starts; then a pool of 1, then of 2
workers (fresh group, fresh replay store for each) consumes exactly that many with a handler that
does nothing. The workers' replay store (``--replay``): ``sqlite``, a SQLiteReplayStore file in
``--dir`` (what ``letterlock listen --workers N`` uses; a claim and a finish per message, each a
``synchronous=FULL`` commit), ``memory`` (one worker only: it is not shared), or the URL of a
shared Redis or PostgreSQL store (a key prefix of the run's own). The rate is messages over the
pool's ``elapsed`` time: from the moment every worker was ready to the moment the last message
was acked, so process start-up is not counted.

On RabbitMQ, the row ``plain+floor`` runs as many pika worker processes (prefetch and acks per
write as the pool's AmqpEndpoint: 100 and 64) on the same queue, filled with plain payloads of
``--size`` bytes; each does per message one ECDSA P-256 verification and one AES-256-GCM
decryption of pre-made data (``benchmarks/broker_common.Floor``) and acks. Its rate is messages
over the time from the moment every worker was ready to the last message handled.

Rounds alternate 1 and 2 workers; the median is reported, with the speed-up 2 workers / 1
worker of the same run. A broker whose adapter cannot be imported is reported and skipped.
``--dir`` holds the spool and the SQLite replay stores (default: a temporary directory). On
RabbitMQ each run declares an exchange and queues of its own and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.queues import SimpleQueue
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_common import Floor

import letterlock
from letterlock import hazmat
from letterlock.stores import replay_store_from_url
from letterlock.transports.pool import ConsumerPool
from letterlock.transports.urls import connect, redact

TOPIC = "bench.pool"


def opener(reader: bytes, sender: bytes, replay: str) -> letterlock.Opener:
    """A worker's Opener: pins the sender; the replay store ``memory``, a store URL, or the
    path of a SQLite file the workers share."""
    pins = letterlock.Pins()
    pins.pin("sender", hazmat.public_identity_from_bytes(sender))
    store: letterlock.ReplayStore
    if replay == "memory":
        store = letterlock.MemoryReplayStore()
    elif "://" in replay:
        store = replay_store_from_url(replay)
    else:
        store = letterlock.SQLiteReplayStore(replay)
    window = letterlock.ReplayWindow(store)
    return letterlock.Opener(hazmat.identity_from_private_bytes(reader), trust=pins, replay=window)


def nothing(opened: letterlock.Opened) -> None:
    """The application: takes the message and returns."""


def one_run(
    url: str, workers: int, count: int, *, size: int, folder: Path, suite: letterlock.Suite,
    replay: str,
) -> float:  # fmt: skip
    sender, reader = letterlock.Identity.generate(suite), letterlock.Identity.generate(suite)
    group = f"bench-pool-{secrets.token_hex(4)}"
    topics = letterlock.Topics(TOPIC)
    endpoint = connect(url)
    try:
        endpoint.subscribe(topics, group=group).close()
        sealer, payload = letterlock.Sealer(sender), os.urandom(size)
        for _ in range(count):
            endpoint.publish(TOPIC, sealer.seal(payload, recipients=[reader.public], topic=TOPIC))
        if replay == "sqlite":
            replay = str(folder / f"{group}.replay.db")
        elif replay.startswith(("redis://", "rediss://")):  # keys of this run's own
            replay += ("&" if "?" in replay else "?") + f"prefix={group}:&ttl=3600"
        keys = (hazmat.identity_to_private_bytes(reader), sender.public.to_bytes())
        pool = ConsumerPool(
            url, topics, group=group, workers=workers, handler=nothing,
            opener=functools.partial(opener, *keys, replay),
        )  # fmt: skip
        handled = pool.run(count=count)
        assert handled == count, (handled, count)
        assert pool.metrics.get("acked") == count, pool.metrics
        return count / pool.elapsed
    finally:
        endpoint.close()
        if url.startswith("amqp"):
            _forget_amqp(url, group)


def plain_run(url: str, workers: int, count: int, *, size: int) -> float:
    """The ``plain+floor`` row on RabbitMQ: ``workers`` pika processes share a queue of
    ``count`` plain messages, each doing the floor's work per message; messages per second."""
    group = f"bench-pool-{secrets.token_hex(4)}"
    endpoint = connect(url)
    try:
        endpoint.subscribe(letterlock.Topics(TOPIC), group=group).close()  # the same topology
        payload = os.urandom(size)
        for _ in range(count):
            endpoint.publish(TOPIC, payload)
        context = multiprocessing.get_context("fork")
        handled = context.Value("q", 0)
        ready = context.Barrier(workers + 1)
        results = context.SimpleQueue()
        children = [
            context.Process(
                target=_plain_worker,
                args=(url.split("?", maxsplit=1)[0], group),
                kwargs={
                    "count": count,
                    "size": size,
                    "handled": handled,
                    "ready": ready,
                    "results": results,
                },
            )
            for _ in range(workers)
        ]
        for child in children:
            child.start()
        ready.wait(60)
        started = time.monotonic()
        finished = max(float(results.get()) for _ in children)
        for child in children:
            child.join(60)
        assert handled.value == count, (handled.value, count)
        return count / (finished - started)
    finally:
        endpoint.close()
        _forget_amqp(url, group)


def _plain_worker(
    url: str, queue: str, *, count: int, size: int, handled: Synchronized[int],
    ready: threading.Barrier, results: SimpleQueue[float],
) -> None:  # fmt: skip
    """One plain worker: prefetch 100, the floor per message, acks 64 per write; sends the
    time (``time.monotonic``) it handled its last message once all ``count`` are handled."""
    import pika  # only for RabbitMQ runs

    channel = pika.BlockingConnection(pika.URLParameters(url)).channel()
    channel.basic_qos(prefetch_count=100)
    floor = Floor(size)
    last, pending, tag = 0.0, 0, None
    ready.wait(60)
    for method, _properties, _body in channel.consume(queue, inactivity_timeout=0.05):
        if method is None:  # nothing for 50 ms: are the others done?
            if pending:
                channel.basic_ack(tag, multiple=True)
                pending = 0
            if handled.value >= count:
                break
            continue
        floor()
        with handled.get_lock():
            handled.value += 1
        last, pending, tag = time.monotonic(), pending + 1, method.delivery_tag
        if pending == 64:
            channel.basic_ack(tag, multiple=True)
            pending = 0
    channel.cancel()
    channel.connection.close()
    results.put(last)


def _forget_amqp(url: str, group: str) -> None:
    """Delete the run's queues and exchanges on RabbitMQ (the amqp adapter's names: the
    group's queue, ``.dead`` and ``.delay``; the URL's own exchange and its ``.dead``)."""
    import pika  # only for RabbitMQ runs

    exchange = parse_qs(urlsplit(url).query)["exchange"][0]
    connection = pika.BlockingConnection(pika.URLParameters(url.split("?", maxsplit=1)[0]))
    channel = connection.channel()
    for queue in (group, f"{group}.dead", f"{group}.delay"):
        channel.queue_delete(queue)
    for name in (exchange, f"{exchange}.dead"):
        channel.exchange_delete(name)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--broker", action="append", help="a URL, or 'spool' (repeatable)")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--suite", default="p256", choices=[s.label for s in letterlock.Suite])
    parser.add_argument("--replay", default="sqlite", help="sqlite, memory, or a store URL")
    args = parser.parse_args()
    suite = letterlock.Suite.from_label(args.suite)
    brokers = args.broker or ["spool", "amqp://guest:guest@127.0.0.1:5672/%2F"]
    sizes = (1,) if args.replay == "memory" else (1, 2)
    with tempfile.TemporaryDirectory(dir=args.dir) as temporary:
        folder = Path(temporary)
        print(
            f"ConsumerPool, {args.messages} messages of {args.size} B ({suite.label}), replay "
            f"store {redact(args.replay)}, median of {args.rounds} rounds, {os.cpu_count()} cores"
        )
        for broker in brokers:
            url = f"spool://{folder}/spool.db" if broker == "spool" else broker
            if url.startswith("amqp") and "exchange=" not in url:  # our own, deleted after
                exchange = f"bench-pool-{secrets.token_hex(4)}"
                url += ("&" if "?" in url else "?") + f"exchange={exchange}"
            try:
                connect(url).close()
            except (letterlock.LetterlockError, ImportError) as exc:  # no adapter here
                print(f"{redact(url)}: skipped ({type(exc).__name__}: {exc})")
                continue
            rows = ("letterlock", "plain+floor") if url.startswith("amqp") else ("letterlock",)
            rates: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for workers in sizes:
                    for row in rows:
                        rate = (
                            one_run(
                                url, workers, args.messages, size=args.size, folder=folder,
                                suite=suite, replay=args.replay,
                            )
                            if row == "letterlock"
                            else plain_run(url, workers, args.messages, size=args.size)
                        )  # fmt: skip
                        rates.setdefault((row, workers), []).append(rate)
            medians = {key: statistics.median(values) for key, values in rates.items()}
            for (row, workers), values in rates.items():
                shown = ", ".join(f"{v:,.0f}" for v in values)
                print(
                    f"{redact(url)}  {row:<11} {workers} worker(s) {medians[row, workers]:>8,.0f}"
                    f" msg/s  ({shown})"
                )
            for row in rows:
                if (row, 2) in medians:
                    speedup = medians[row, 2] / medians[row, 1]
                    print(f"{redact(url)}  {row} speed-up 2 workers / 1 worker = {speedup:.2f}x")
            if "plain+floor" in rows:
                for workers in sizes:
                    ratio = medians["letterlock", workers] / medians["plain+floor", workers]
                    print(
                        f"{redact(url)}  {workers} worker(s): letterlock / plain+floor = "
                        f"{ratio:.2f}x (target >= 0.85)"
                    )


if __name__ == "__main__":
    main()
