"""Seal and open rates per suite for one payload size (a benchmark, not a test).

    python3 tasks.py bench                 # 1 KiB, 1 recipient, ~1 s per measurement
    .venv/bin/python benchmarks/rates.py --size 65536 --recipients 10 --seconds 2

Each measurement seals (or opens) distinct messages for about ``--seconds``; opening uses fresh
envelopes so the replay window does its real work. Numbers are messages per second on this
machine, in this run, and the envelope size.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import letterlock
from letterlock import Identity, Pins, ReplayWindow, Suite


def rate(operation: Callable[[int], object], seconds: float) -> tuple[float, int]:
    """Operations per second, calling ``operation(i)`` with i = 0, 1, ... for ``seconds``."""
    # i = 0 warms up and is not timed; every index is used once until the caller wraps around.
    operation(0)  # warm up
    count, started = 1, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(16):
            operation(count)
            count += 1
    return (count - 1) / (time.perf_counter() - started), count


def measure(suite: Suite, size: int, recipients: int, seconds: float) -> dict[str, float]:
    sender = Identity.generate(suite)
    readers = [Identity.generate(suite) for _ in range(recipients)]
    pins = Pins()
    pins.pin("sender", sender.public)
    payload = os.urandom(size)
    public = [r.public for r in readers]

    def seal(_: int) -> bytes:
        return letterlock.seal(payload, sender=sender, recipients=public, topic="bench")

    seal_rate, sealed_count = rate(seal, seconds)
    envelopes = [seal(i) for i in range(min(sealed_count, 20_000) + 17)]
    window = ReplayWindow()

    def open_one(i: int) -> None:
        nonlocal window
        if i and i % len(envelopes) == 0:  # every envelope opened once: start a fresh window
            window = ReplayWindow()
        envelope = envelopes[i % len(envelopes)]
        letterlock.open(envelope, identity=readers[0], trust=pins, replay=window, topic="bench")

    open_rate, _ = rate(open_one, seconds)
    return {"seal": seal_rate, "open": open_rate, "envelope": float(len(envelopes[0]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--suite", action="append", choices=[s.label for s in Suite])
    args = parser.parse_args()
    suites = [Suite.from_label(s) for s in args.suite] if args.suite else list(Suite)
    print(
        f"letterlock {letterlock.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; payload {args.size} B, "
        f"{args.recipients} recipient(s), fresh content key per message"
    )
    print(
        f"{'suite':<8} {'seal msg/s':>11} {'open msg/s':>11} {'envelope B':>11} {'overhead B':>11}"
    )
    for suite in suites:
        result = measure(suite, args.size, args.recipients, args.seconds)
        overhead = int(result["envelope"]) - args.size
        print(
            f"{suite.label:<8} {result['seal']:>11,.0f} {result['open']:>11,.0f} "
            f"{int(result['envelope']):>11,} {overhead:>11,}"
        )


if __name__ == "__main__":
    main()
