"""Replay store operations per second, from one process (a benchmark, not a test).

    .venv/bin/python benchmarks/replay_stores.py                 # ~1 s per measurement, 3 rounds
    .venv/bin/python benchmarks/replay_stores.py --seconds 2 --rounds 5 --stores redis postgres

What a consumer does per message: ``add`` with a holder (the claim, before the handler), then
``finish`` (after it); and ``add`` alone (a plain open). Every add records a new id of one
sender, so the record grows as it would. Rounds rotate the stores and the table shows the
median. The Redis and PostgreSQL stores use the servers on this machine (a record of their own,
removed afterwards); a store whose server does not answer is reported and skipped.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from letterlock import MemoryReplayStore, ReplayStore
from letterlock.stores import SQLiteReplayStore

NOW = 1_700_000_000
SENDER = b"\xa1" * 32
HOLDER = b"bench-consumer-1"
REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


@contextmanager
def opened(kind: str, args: argparse.Namespace) -> Iterator[ReplayStore]:
    """A fresh, empty store of ``kind``; removed (file, keys, schema) afterwards."""
    name = f"ll_bench_{secrets.token_hex(4)}"
    if kind == "memory":
        yield MemoryReplayStore()
    elif kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            store = SQLiteReplayStore(Path(folder) / "replay.sqlite3")
            try:
                yield store
            finally:
                store.close()
    elif kind == "redis":
        import redis

        from letterlock.stores.redis import RedisReplayStore

        with RedisReplayStore(args.redis, prefix=name) as shared:
            try:
                yield shared
            finally:
                with redis.Redis.from_url(args.redis) as client:
                    for key in client.scan_iter(match=f"{name}:*", count=1000):
                        client.delete(key)
    else:
        import psycopg

        from letterlock.stores.postgres import PostgresReplayStore

        with PostgresReplayStore(args.postgres, schema=name) as database:
            try:
                yield database
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as db:
                    db.execute(f'DROP SCHEMA "{name}" CASCADE'.encode())


def rate(operation: Callable[[int], object], seconds: float) -> float:
    """Calls of ``operation(i)`` per second, i = 1, 2, ... for about ``seconds``."""
    operation(0)  # warm up (scripts loaded, statements prepared)
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(16):
            count += 1
            operation(count)
    return count / (time.perf_counter() - started)


def measure(store: ReplayStore, seconds: float) -> dict[str, float]:
    def claim_and_finish(n: int) -> None:
        message_id = n.to_bytes(16, "big")
        store.add(SENDER, message_id, NOW, now=NOW, holder=HOLDER, until=NOW + 60)
        store.finish(SENDER, message_id, HOLDER)

    def plain_add(n: int) -> None:
        store.add(SENDER, (1 << 64 | n).to_bytes(16, "big"), NOW, now=NOW)

    pairs = rate(claim_and_finish, seconds)
    return {"claim+finish": pairs, "ops": 2 * pairs, "add": rate(plain_add, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--stores",
        nargs="+",
        default=["memory", "sqlite", "redis", "postgres"],
        choices=["memory", "sqlite", "redis", "postgres"],
    )
    parser.add_argument("--redis", default=REDIS)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    kinds = []
    for kind in args.stores:
        url = {"redis": args.redis, "postgres": args.postgres}.get(kind)
        if url is not None and not _answers(url):
            print(f"{kind}: no server at {url}; skipped")
            continue
        kinds.append(kind)
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        for kind in kinds[round_ % len(kinds) :] + kinds[: round_ % len(kinds)]:
            with opened(kind, args) as store:
                results[kind].append(measure(store, args.seconds))
    print(f"{'store':<10} {'claim+finish/s':>15} {'ops/s':>10} {'plain add/s':>12}")
    for kind in kinds:
        median = {key: statistics.median(r[key] for r in results[kind]) for key in results[kind][0]}
        print(
            f"{kind:<10} {median['claim+finish']:>15,.0f} {median['ops']:>10,.0f} "
            f"{median['add']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
