"""Messages per second end to end through every broker, in one run: the issue-8 table.

    .venv/bin/python benchmarks/brokers.py [--messages 5000] [--size 1024] [--rounds 3]
                                          [--brokers rabbitmq mqtt nats redis zmq celery]

For each broker, ``benchmarks/broker_<name>.py`` measures three consumers of the same stream of
messages, its publisher in a process of its own:

* ``plain``: the broker's client library alone, acking each message;
* ``plain+floor``: the same consumer code, plus per message the least cryptography a signed and
  encrypted message needs (one pyca ECDSA P-256 verification and one AES-256-GCM decryption of
  pre-made data);
* ``letterlock``: messages sealed by a warm :class:`letterlock.Sealer`, consumed through the
  broker's letterlock endpoint and :class:`letterlock.transports.SealedConsumer` (open, claim,
  handler, finish, ack).

Rounds alternate the three and the median of each is printed, with the ratio letterlock /
(plain+floor): the issue's target is 0.85 or more on every broker. A broker whose server is
down is reported as such (under ``CI=true`` the run fails instead).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

BROKERS = ("rabbitmq", "mqtt", "nats", "redis", "zmq", "celery")
ROWS = ("plain", "plain+floor", "letterlock")
TARGET = 0.85

Runner = Callable[[int, int], dict[str, float]]


def measure(name: str, messages: int, size: int, rounds: int) -> dict[str, float]:
    """The median rate of each row over ``rounds`` runs of ``broker_<name>.run``."""
    module = importlib.import_module(f"broker_{name}")
    run = cast(Runner, module.run)
    samples: dict[str, list[float]] = {row: [] for row in ROWS}
    for _ in range(rounds):
        for row, rate in run(messages, size).items():
            samples.setdefault(row, []).append(rate)
    return {row: statistics.median(rates) for row, rates in samples.items() if rates}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS))
    args = parser.parse_args(argv)
    print(f"{args.messages} messages of {args.size} B per row, median of {args.rounds} rounds")
    print(f"| broker | {' | '.join(ROWS)} | letterlock / plain+floor |")
    print("| --- |" + " --- |" * (len(ROWS) + 1))
    missed = []
    for name in args.brokers:
        try:
            rates = measure(name, args.messages, args.size, args.rounds)
        except (ConnectionError, OSError) as exc:
            if os.environ.get("CI") == "true":
                raise
            print(f"| {name} | server not reachable: {exc} |")
            continue
        ratio = rates["letterlock"] / rates["plain+floor"]
        if ratio < TARGET:
            missed.append(name)
        cells = " | ".join(f"{rates[row]:,.0f} msg/s" for row in ROWS)
        print(f"| {name} | {cells} | {ratio:.2f}x |", flush=True)
    print(
        f"target letterlock >= {TARGET}x plain+floor: "
        + (f"MISS on {', '.join(missed)}" if missed else "PASS")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
