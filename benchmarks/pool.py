"""Messages per second through a ConsumerPool with 1 and 2 workers, and the speed-up.

    .venv/bin/python benchmarks/pool.py [--messages 3000] [--rounds 3] [--size 1024]
        [--broker spool] [--broker amqp://guest:guest@127.0.0.1:5672/%2F] [--dir /dev/shm]

For each broker and round, a fresh group gets ``--messages`` sealed messages (``--suite``, default
p256; one recipient, a warm Sealer), published before the pool starts; then a pool of 1, then of 2
workers (fresh group, fresh SQLiteReplayStore file for each) consumes exactly that many with a
handler that does nothing. The rate is messages over the pool's ``elapsed`` time: from the moment
every worker was ready to the moment the last message was acked, so process start-up is not
counted. Rounds alternate 1 and 2 workers; the median is reported, with the speed-up 2 workers / 1
worker of the same run. A broker whose adapter cannot be imported is reported and skipped.
``--dir`` holds the spool and the replay stores (default: a temporary directory). On RabbitMQ
each run declares an exchange and queues of its own and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import statistics
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import letterlock
from letterlock import hazmat
from letterlock.transports.pool import ConsumerPool
from letterlock.transports.urls import connect, redact

TOPIC = "bench.pool"


def opener(reader: bytes, sender: bytes, replay: str) -> letterlock.Opener:
    """A worker's Opener: pins the sender, shares the replay store file."""
    pins = letterlock.Pins()
    pins.pin("sender", hazmat.public_identity_from_bytes(sender))
    window = letterlock.ReplayWindow(letterlock.SQLiteReplayStore(replay))
    return letterlock.Opener(hazmat.identity_from_private_bytes(reader), trust=pins, replay=window)


def nothing(opened: letterlock.Opened) -> None:
    """The application: takes the message and returns."""


def one_run(
    url: str, workers: int, count: int, *, size: int, folder: Path, suite: letterlock.Suite
) -> float:
    sender, reader = letterlock.Identity.generate(suite), letterlock.Identity.generate(suite)
    group = f"bench-pool-{secrets.token_hex(4)}"
    topics = letterlock.Topics(TOPIC)
    endpoint = connect(url)
    try:
        endpoint.subscribe(topics, group=group).close()
        sealer, payload = letterlock.Sealer(sender), os.urandom(size)
        for _ in range(count):
            endpoint.publish(TOPIC, sealer.seal(payload, recipients=[reader.public], topic=TOPIC))
        replay = folder / f"{group}.replay.db"
        keys = (hazmat.identity_to_private_bytes(reader), sender.public.to_bytes())
        pool = ConsumerPool(
            url, topics, group=group, workers=workers, handler=nothing,
            opener=functools.partial(opener, *keys, str(replay)),
        )  # fmt: skip
        handled = pool.run(count=count)
        assert handled == count, (handled, count)
        assert pool.metrics.get("acked") == count, pool.metrics
        return count / pool.elapsed
    finally:
        endpoint.close()
        if url.startswith("amqp"):
            _forget_amqp(url, group)


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
    args = parser.parse_args()
    suite = letterlock.Suite.from_label(args.suite)
    brokers = args.broker or ["spool", "amqp://guest:guest@127.0.0.1:5672/%2F"]
    with tempfile.TemporaryDirectory(dir=args.dir) as temporary:
        folder = Path(temporary)
        print(
            f"ConsumerPool, {args.messages} messages of {args.size} B ({suite.label}), median of "
            f"{args.rounds} rounds, {os.cpu_count()} cores"
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
            rates: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for workers in (1, 2):
                    rate = one_run(
                        url, workers, args.messages, size=args.size, folder=folder, suite=suite
                    )
                    rates[workers].append(rate)
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            for workers, values in rates.items():
                shown = ", ".join(f"{v:,.0f}" for v in values)
                median = statistics.median(values)
                print(f"{redact(url)}  {workers} worker(s) {median:>8,.0f} msg/s  ({shown})")
            print(f"{redact(url)}  speed-up 2 workers / 1 worker = {two / one:.2f}x")


if __name__ == "__main__":
    main()
