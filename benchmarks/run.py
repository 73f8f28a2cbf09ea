"""letterlock against the floor of raw pyca/cryptography calls and the peers, in one run.

    .venv/bin/python benchmarks/run.py            # full run, about 15 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # under two minutes, noisier
    .venv/bin/python benchmarks/run.py --sizes 1k 1m --suites p256 x25519

Scenarios: each size with one recipient, and 1 KiB with ten. Contenders: letterlock per suite
(warm and cold caches), the floors, and the peers installed (``pip install -e '.[bench]'``);
a missing peer is reported, never estimated. Prints a table per scenario and the issue's
targets; writes the raw numbers as JSON and a chart of the 1 KiB rates (see README.md here).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import compare
import report
from compare import gpg
from compare import letterlock as letterlock_contenders
from measure import Budget, Outcome, Scenario, format_size, run_scenario

import letterlock
from letterlock import Suite

ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("letterlock", "cryptography", "pynacl", "tink", "jwcrypto", "aws-encryption-sdk")
_LARGE = 8 << 20  # from here on, fewer rounds and a single operation per measurement suffice


def parse_size(text: str) -> int:
    """``1k``, ``64m``, ``1KiB``, ``4096``: a size in bytes (k and m are powers of 1024)."""
    match = re.fullmatch(r"(\d+)\s*([km]?)(?:i?b)?", text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1k, 1m, 64m)")
    return int(match[1]) << {"": 0, "k": 10, "m": 20}[match[2]]


def budget_for(size: int, *, quick: bool, seconds: float | None, rounds: int | None) -> Budget:
    large = size >= _LARGE
    if quick:
        default = Budget(rounds=1 if large else 3, seconds=0.05, min_ops=1 if large else 2,
                         max_op_seconds=1.0)  # fmt: skip
    else:
        default = Budget(rounds=3 if large else 5, seconds=0.5, min_ops=1 if large else 3,
                         max_op_seconds=10.0)  # fmt: skip
    return Budget(
        rounds=rounds or default.rounds,
        seconds=seconds if seconds is not None else default.seconds,
        min_ops=default.min_ops,
        max_op_seconds=default.max_op_seconds,
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="short run (< 2 min), noisier")
    add("--sizes", nargs="+", type=parse_size, metavar="SIZE",
        default=[1 << 10, 1 << 20, 64 << 20], help="default: 1k 1m 64m")  # fmt: skip
    add("--many", type=int, default=10, metavar="N",
        help="recipients of the extra 1 KiB scenario (0: none; default 10)")  # fmt: skip
    add("--suites", nargs="+", choices=[s.label for s in Suite],
        default=[s.label for s in Suite])  # fmt: skip
    add("--rounds", type=int, help="rounds per scenario (default 5, 3 from 8 MiB)")
    add("--seconds", type=float, help="per measurement (default 0.5)")
    add("--out", type=Path, default=ROOT / "benchmarks" / "out",
        help="where results.json goes (default benchmarks/out)")  # fmt: skip
    add("--chart", type=Path,
        help="PNG chart (default docs/benchmark.png; with --quick, in --out)")  # fmt: skip
    return parser.parse_args(argv)


def scenarios_of(sizes: list[int], many: int) -> list[Scenario]:
    found: list[Scenario] = []
    for size in sorted(set(sizes)):
        found.append(Scenario(size=size, recipients=1))
        if size == 1 << 10 and many > 1:
            found.append(Scenario(size=size, recipients=many))
    return found


def predict(results: list[tuple[Scenario, list[Outcome]]], size: int) -> dict[str, float]:
    """Seconds per seal at ``size`` from each contender's rate at a smaller payload of 1 MiB
    or more, where the time per byte dominates (an over-estimate: fixed costs scale too)."""
    seconds: dict[str, float] = {}
    for scenario, outcomes in results:
        if scenario.recipients != 1 or not 1 << 20 <= scenario.size < size:
            continue
        for outcome in outcomes:
            rate = outcome.median("seal")
            if rate:
                seconds[outcome.contender.name] = size / (rate * scenario.size)
    return seconds


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name")), platform.processor())  # fmt: skip
    except OSError:
        return platform.processor() or platform.machine()


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["gpg"] = gpg.version()
    return versions


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "letterlock_api": letterlock_contenders.API,
        "versions": _versions(),
        "budgets": {
            format_size(size): dataclasses.asdict(
                budget_for(size, quick=args.quick, seconds=args.seconds, rounds=args.rounds)
            )
            for size in sorted(set(args.sizes))
        },
    }


def _header(meta: dict[str, Any], contenders: list[compare.Contender]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v is not None)
    lines = [
        f"letterlock benchmark ({meta['mode']}), {meta['date']}",
        f"{meta['cpu']}, {meta['cores']} cores, Python {meta['python']}, {meta['platform']}",
        f"versions: {versions}",
        f"letterlock API: {meta['letterlock_api']}",
        "",
        "Contenders:",
    ]
    for contender in contenders:
        reason = contender.available()
        note = f"  [UNAVAILABLE: {reason}]" if reason is not None else ""
        lines.append(f"  {contender.name:<32}{contender.what}{note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    suites = [Suite.from_label(label) for label in args.suites]
    contenders = compare.contenders(suites)
    meta = _meta(args)
    print(_header(meta, contenders), flush=True)
    results: list[tuple[Scenario, list[Outcome]]] = []
    started = time.monotonic()
    reference = "p256" if Suite.P256 in suites else suites[0].label
    for scenario in scenarios_of(args.sizes, args.many):
        budget = budget_for(scenario.size, quick=args.quick, seconds=args.seconds,
                            rounds=args.rounds)  # fmt: skip
        outcomes = run_scenario(scenario, contenders, budget, predict(results, scenario.size))
        results.append((scenario, outcomes))
        print()
        print(report.table(scenario, outcomes, reference, budget.rounds))
        print()
        print(report.floor_table(scenario, outcomes, [s.label for s in suites]), flush=True)
    verdicts, section = report.evaluate(results)
    print()
    print(section)
    meta["seconds"] = round(time.monotonic() - started, 1)
    out = args.out / "results.json"
    report.write_json(out, meta, results, verdicts)
    chart = args.chart or (args.out if args.quick else ROOT / "docs") / "benchmark.png"
    small = next(((s, o) for s, o in results if s.size == 1 << 10 and s.recipients == 1), None)
    print()
    print(f"raw numbers: {out}")
    if small is not None:
        subtitle = f"{meta['cpu']}, {meta['date']}, letterlock {letterlock.__version__}"
        try:
            report.write_chart(chart, *small, subtitle)
            print(f"chart: {chart}")
        except ImportError:
            print("chart not written: matplotlib is not installed (pip install -e '.[bench]')")
    print(f"measured in {meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
