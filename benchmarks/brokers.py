"""Messages per second end to end through every broker, in one run: the issue-8 table.

    .venv/bin/python benchmarks/brokers.py [--messages 5000] [--size 1024] [--rounds 3]
        [--brokers rabbitmq mqtt nats redis zmq celery] [--durable [--store-dir DIR]]

For each broker, ``benchmarks/broker_<name>.py`` measures the rows of
``benchmarks/broker_common.py`` on the same stream of messages, its publisher in a process of
its own:

* ``plain``: the broker's client library alone, acking each message;
* ``plain+floor``: the same consumer code, plus per message the least cryptography a signed and
  encrypted message needs (one pyca ECDSA P-256 verification and one AES-256-GCM decryption of
  pre-made data);
* ``letterlock``: messages sealed by a warm :class:`letterlock.Sealer`, consumed through the
  broker's letterlock endpoint and :class:`letterlock.transports.SealedConsumer` (open, claim,
  handler, finish, ack), the replay window in memory: like for like with the plain rows;
* ``letterlock+sqlite`` (``--durable``): the same with the replay store ``letterlock listen``
  keeps, a SQLite file on disk (two ``synchronous=FULL`` commits per message), in ``--store-dir``.

Rounds alternate the rows and the median of each is printed, with the consumer process's CPU
time per message where the broker's benchmark measures it (the Celery worker is a process of
its own), and the ratio letterlock / (plain+floor) by rate (the issue's target is 0.85 or more
on every broker) and by CPU. A broker whose server is down is reported as such (under
``CI=true`` the run fails instead).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import broker_common
from broker_common import TARGET, Run, medians, rows, verdicts

BROKERS = ("rabbitmq", "mqtt", "nats", "redis", "zmq", "celery")


def measure(name: str, messages: int, size: int, rounds: int, durable: bool) -> dict[str, float]:
    """The median of each row's rate (and CPU) over ``rounds`` runs of ``broker_<name>.run``."""
    run = cast(Run, importlib.import_module(f"broker_{name}").run)
    return medians(run(messages, size, durable=durable) for _ in range(rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS))
    parser.add_argument("--durable", action="store_true", help="add the row letterlock+sqlite")
    parser.add_argument("--store-dir", type=Path, default=broker_common.STORE_DIR)
    args = parser.parse_args(argv)
    broker_common.STORE_DIR = args.store_dir
    names = rows(args.durable)
    print(f"{args.messages} messages of {args.size} B per row, median of {args.rounds} rounds; "
          "msg/s (consumer CPU us/msg)")  # fmt: skip
    print(f"| broker | {' | '.join(names)} | ratio by rate | ratio by CPU |")
    print("| --- |" + " --- |" * (len(names) + 2))
    missed = []
    for name in args.brokers:
        try:
            result = measure(name, args.messages, args.size, args.rounds, args.durable)
        except (ConnectionError, OSError) as exc:
            if os.environ.get("CI") == "true":
                raise
            print(f"| {name} | server not reachable: {exc} |")
            continue
        by_rate, by_cpu = verdicts(result)
        if by_rate < TARGET:
            missed.append(name)
        cells = []
        for row in names:
            cpu = result.get(f"{row} cpu_us")
            cells.append(f"{result[row]:,.0f}" + ("" if cpu is None else f" ({cpu:,.0f} us)"))
        shown_cpu = "-" if by_cpu is None else f"{by_cpu:.2f}x"
        print(f"| {name} | {' | '.join(cells)} | {by_rate:.2f}x | {shown_cpu} |", flush=True)
    print(
        f"target letterlock >= {TARGET}x plain+floor: "
        + (f"MISS on {', '.join(missed)}" if missed else "PASS")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
