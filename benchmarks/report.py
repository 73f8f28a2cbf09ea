"""What benchmarks/run.py prints and writes: tables, issue targets, JSON, the chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from compare import floor, letterlock
from compare.base import Mode
from measure import Op, Outcome, Scenario, format_size

__all__ = ["Target", "Verdict", "evaluate", "floor_table", "table", "write_chart", "write_json"]

_MB = 1_000_000
_OPS: tuple[Op, ...] = ("seal", "open")
Results = Sequence[tuple[Scenario, list[Outcome]]]


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _divide(mine: float | None, other: float | None) -> float | None:
    return mine / other if mine is not None and other else None


def _find(outcomes: list[Outcome], name: str) -> Outcome | None:
    return next((o for o in outcomes if o.contender.name == name), None)


def _median(outcomes: list[Outcome], name: str, op: Op) -> float | None:
    found = _find(outcomes, name)
    return found.median(op) if found is not None else None


def table(scenario: Scenario, outcomes: list[Outcome], reference: str, rounds: int) -> str:
    """The scenario's table: rates, MB/s, overhead and letterlock's ratio to each row."""
    warm, cold = letterlock.name_of(reference, "warm"), letterlock.name_of(reference, "cold")
    mb = scenario.size / _MB
    lines = [
        f"{scenario.label} (median of {rounds} rounds)",
        f"{'contender':<34}{'seal/s':>10}{'seal MB/s':>11}{'open/s':>10}{'open MB/s':>11}"
        f"{'overhead B':>12}{'w÷ seal':>9}{'w÷ open':>9}{'c÷ seal':>9}{'c÷ open':>9}",
    ]
    for outcome in outcomes:
        name = outcome.contender.name
        if outcome.skipped is not None:
            lines.append(f"{name:<34}skipped: {outcome.skipped}")
            continue
        seal, open_ = outcome.median("seal"), outcome.median("open")
        ratios = [
            _divide(_median(outcomes, mine, op), rate)
            for mine in (warm, cold)
            for op, rate in zip(_OPS, (seal, open_), strict=True)
        ]
        lines.append(
            f"{name:<34}{_rate(seal):>10}{_rate(seal and seal * mb):>11}"
            f"{_rate(open_):>10}{_rate(open_ and open_ * mb):>11}{outcome.overhead or 0:>12,}"
            + "".join(f"{_ratio(r):>9}" for r in ratios)
        )
    lines.append(
        f"w÷ / c÷: letterlock {reference} warm / cold rate divided by the row's "
        "(above 1: letterlock is faster). MB/s: payload bytes, 10^6 per MB."
    )
    return "\n".join(lines)


def floor_table(scenario: Scenario, outcomes: list[Outcome], suites: list[str]) -> str:
    """letterlock divided by the floor of its own suite, warm by warm, cold by cold."""
    bulk = any(o.contender.mode == "bulk" and o.skipped is None for o in outcomes)
    header = f"{'suite':<8}{'warm seal':>11}{'warm open':>11}{'cold seal':>11}{'cold open':>11}"
    if bulk:
        header += f"{'warm/bulk seal':>16}{'warm/bulk open':>16}"
    lines = [f"letterlock ÷ floor of the same suite ({scenario.label})", header]
    for suite in suites:
        pairs: list[tuple[Mode, Mode]] = [("warm", "warm"), ("cold", "cold")]
        if bulk:
            pairs.append(("warm", "bulk"))
        cells = [
            _divide(
                _median(outcomes, letterlock.name_of(suite, mine), op),
                _median(outcomes, floor.name_of(suite, base), op),
            )
            for mine, base in pairs
            for op in _OPS
        ]
        widths = [11, 11, 11, 11, 16, 16][: len(cells)]
        cells_text = (f"{_ratio(c):>{w}}" for c, w in zip(cells, widths, strict=True))
        lines.append(f"{suite:<8}" + "".join(cells_text))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One target of the issue: ``mine / other >= need`` for ``op`` in one scenario."""

    text: str
    size: int
    recipients: int
    mine: str
    other: str
    op: Op
    need: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    target: Target
    ratio: float | None
    status: Literal["PASS", "MISS", "n/a"]
    note: str


def issue_targets() -> list[Target]:
    """The speed targets: issue 6's ratios to the floor (it raised issue 3's), issue 3's
    ratios to the peers and the bulk floor (the RabbitMQ one is measured elsewhere)."""
    kib, mib = 1 << 10, 1 << 20
    warm, cold = letterlock.name_of("p256", "warm"), letterlock.name_of("p256", "cold")
    floor_warm, floor_cold = floor.name_of("p256", "warm"), floor.name_of("p256", "cold")
    targets = [
        Target(text="warm seal >= 0.75x the signature+AEAD floor", size=kib, recipients=1,
               mine=warm, other=floor_warm, op="seal", need=0.75),
        Target(text="warm seal >= 2x PyNaCl", size=kib, recipients=1,
               mine=warm, other="pynacl", op="seal", need=2.0),
        Target(text="warm seal >= 2x Tink", size=kib, recipients=1,
               mine=warm, other="tink", op="seal", need=2.0),
        Target(text="warm open >= 0.8x the verify+AEAD floor", size=kib, recipients=1,
               mine=warm, other=floor_warm, op="open", need=0.8),
        Target(text="10 recipients: warm seal >= 10x Tink", size=kib, recipients=10,
               mine=warm, other="tink", op="seal", need=10.0),
        Target(text="cold seal >= 0.8x the cold floor", size=kib, recipients=1,
               mine=cold, other=floor_cold, op="seal", need=0.8),
        Target(text="cold open >= 0.8x the cold floor", size=kib, recipients=1,
               mine=cold, other=floor_cold, op="open", need=0.8),
    ]  # fmt: skip
    targets += [
        Target(text=f"{label} {op} >= 100x the gpg command line", size=kib, recipients=1,
               mine=mine, other="gpg", op=op, need=100.0)
        for label, mine in (("warm", warm), ("cold", cold))
        for op in _OPS
    ]  # fmt: skip
    targets += [
        Target(text=f"{format_size(size)}: warm {op} >= 0.6x one AES-GCM + one hash pass",
               size=size, recipients=1, mine=warm, other=floor.name_of("p256", "bulk"),
               op=op, need=0.6)
        for size in (mib, 64 * mib)
        for op in _OPS
    ]  # fmt: skip
    return targets


def _verdict(target: Target, results: Results) -> Verdict:
    outcomes = next(
        (o for s, o in results if (s.size, s.recipients) == (target.size, target.recipients)),
        None,
    )
    if outcomes is None:
        return Verdict(target=target, ratio=None, status="n/a", note="scenario not run")
    for name in (target.mine, target.other):
        found = _find(outcomes, name)
        if found is None or found.median(target.op) is None:
            why = found.skipped if found is not None else "not in this run"
            return Verdict(target=target, ratio=None, status="n/a", note=f"{name}: {why}")
    ratio = _divide(
        _median(outcomes, target.mine, target.op), _median(outcomes, target.other, target.op)
    )
    assert ratio is not None
    status: Literal["PASS", "MISS"] = "PASS" if ratio >= target.need else "MISS"
    return Verdict(target=target, ratio=ratio, status=status, note="")


def evaluate(results: Results) -> tuple[list[Verdict], str]:
    """Each issue target's verdict, and the section that prints them."""
    verdicts = [_verdict(t, results) for t in issue_targets()]
    lines = [
        "Targets (issues 3 and 6: 1 KiB, p256, one recipient unless said; RabbitMQ measured apart)"
    ]
    for v in verdicts:
        ratio = _ratio(v.ratio) if v.ratio is not None else v.note
        lines.append(f"{v.status:<5} {v.target.text:<58} {ratio:>8}  (need {v.target.need:g}x)")
    counts = {s: sum(v.status == s for v in verdicts) for s in ("PASS", "MISS", "n/a")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return verdicts, "\n".join(lines)


def _outcome_json(scenario: Scenario, outcome: Outcome) -> dict[str, Any]:
    c = outcome.contender
    seal, open_ = outcome.median("seal"), outcome.median("open")
    return {
        "name": c.name,
        "kind": c.kind,
        "suite": c.suite,
        "mode": c.mode,
        "what": c.what,
        "skipped": outcome.skipped,
        "seal_per_second_rounds": outcome.seal,
        "open_per_second_rounds": outcome.open,
        "seal_per_second": seal,
        "open_per_second": open_,
        "seal_mb_per_second": seal and seal * scenario.size / _MB,
        "open_mb_per_second": open_ and open_ * scenario.size / _MB,
        "overhead_bytes": outcome.overhead,
    }


def write_json(path: Path, meta: dict[str, Any], results: Results, verdicts: list[Verdict]) -> None:
    document = {
        "meta": meta,
        "scenarios": [
            {
                "size": s.size,
                "recipients": s.recipients,
                "label": s.label,
                "contenders": [_outcome_json(s, o) for o in outcomes],
            }
            for s, outcomes in results
        ],
        "targets": [
            {
                "target": v.target.text,
                "size": v.target.size,
                "recipients": v.target.recipients,
                "op": v.target.op,
                "mine": v.target.mine,
                "other": v.target.other,
                "need": v.target.need,
                "ratio": v.ratio,
                "status": v.status,
                "note": v.note,
            }
            for v in verdicts
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_chart(path: Path, scenario: Scenario, outcomes: list[Outcome], subtitle: str) -> None:
    """A log-scale bar chart of seal and open messages per second, one pair per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [o for o in outcomes if o.skipped is None and o.seal]
    names = [o.contender.name for o in measured]
    rows = range(len(measured))
    figure, axes = plt.subplots(figsize=(9, 1.5 + 0.32 * len(measured)), layout="constrained")
    height = 0.4
    seal = [o.median("seal") or 0.0 for o in measured]
    open_ = [o.median("open") or 0.0 for o in measured]
    axes.barh([r - height / 2 for r in rows], seal, height, label="seal", color="#3465a4")
    axes.barh([r + height / 2 for r in rows], open_, height, label="open", color="#f57900")
    axes.set_yticks(list(rows), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    slowest = min((r for r in seal + open_ if r > 0), default=1.0)
    axes.set_xlim(left=10 ** math.floor(math.log10(slowest)))  # the slowest bar stays visible
    axes.set_xlabel("messages per second (log scale; more is better)")
    axes.set_title(f"{scenario.label}: seal and open\n{subtitle}", fontsize=9)
    axes.grid(axis="x", which="both", alpha=0.3)
    axes.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
