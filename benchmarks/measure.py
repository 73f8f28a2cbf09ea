"""Interleaved timing: every contender once per round, rounds repeated, the median kept.

One measurement times ``seal()`` for about ``seconds`` (at least ``min_ops`` calls), then
``open()`` on the messages it made (made afresh, untimed, if opening outlasts them), each call
timed on its own so untimed work never counts. Rounds rotate the order of contenders so that
machine noise, warm CPU caches and the garbage collector fall on everyone alike.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from compare import Case, Contender

__all__ = ["Budget", "Outcome", "Scenario", "run_scenario"]

Op = Literal["seal", "open"]
_KEEP_BYTES = 256 << 20  # sealed messages kept for opening, at most
_KEEP_COUNT = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A payload size and a recipient count."""

    size: int
    recipients: int

    @property
    def label(self) -> str:
        plural = "" if self.recipients == 1 else "s"
        return f"{format_size(self.size)}, {self.recipients} recipient{plural}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """How long to measure: rounds, seconds per measurement, a floor on operations."""

    rounds: int
    seconds: float
    min_ops: int
    #: A contender whose first seal takes longer than this is skipped for the scenario.
    max_op_seconds: float


@dataclass(slots=True, kw_only=True)
class Outcome:
    """What one contender did in one scenario: a rate per round, or why it was not run."""

    contender: Contender
    seal: list[float] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    overhead: int | None = None
    skipped: str | None = None

    def median(self, op: Op) -> float | None:
        rates = self.seal if op == "seal" else self.open
        return statistics.median(rates) if rates and self.skipped is None else None


def format_size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def _skip_reason(contender: Contender, scenario: Scenario) -> str | None:
    if (reason := contender.available()) is not None:
        return f"unavailable: {reason}"
    if contender.max_size is not None and scenario.size > contender.max_size:
        return f"not run above {format_size(contender.max_size)}"
    if scenario.size < contender.min_size:
        return f"only run from {format_size(contender.min_size)}"
    return None


def _too_slow(took: float, budget: Budget, how: str) -> str:
    return f"too slow for this run: {how} {took:.1f} s (limit {budget.max_op_seconds:g} s)"


def _prepare(
    contender: Contender, scenario: Scenario, budget: Budget, predicted: float
) -> Outcome | Case:
    """Set up, then seal and open once (untimed): a Case, or an Outcome saying why not."""
    skipped = _skip_reason(contender, scenario)
    if skipped is None and predicted > budget.max_op_seconds:
        skipped = _too_slow(predicted, budget, "a seal would take about")
    if skipped is not None:
        return Outcome(contender=contender, skipped=skipped)
    try:
        case = contender.setup(scenario.size, scenario.recipients)
        started = time.perf_counter()
        sealed = case.seal()
        took = time.perf_counter() - started
        if case.open(sealed) != case.payload:
            return Outcome(contender=contender, skipped="failed: open gave another payload")
    except Exception as error:  # a peer that breaks is reported, never measured
        return Outcome(contender=contender, skipped=f"failed: {type(error).__name__}: {error}")
    if took > budget.max_op_seconds:
        return Outcome(contender=contender, skipped=_too_slow(took, budget, "one seal took"))
    return case


def _seal_rate(case: Case, budget: Budget, keep: int) -> tuple[float, list[bytes]]:
    made: list[bytes] = []
    spent, count = 0.0, 0
    while count < budget.min_ops or spent < budget.seconds:
        started = time.perf_counter()
        sealed = case.seal()
        spent += time.perf_counter() - started
        count += 1
        if len(made) < keep:
            made.append(sealed)
    return count / spent, made


def _open_rate(case: Case, budget: Budget, made: list[bytes], keep: int) -> float:
    queue = deque(made)
    made.clear()
    spent, count = 0.0, 0
    while count < budget.min_ops or spent < budget.seconds:
        if not queue:  # opening outlasted the sealed messages: make more, untimed
            queue.extend(case.seal() for _ in range(min(keep, max(16, count))))
        sealed = queue.popleft()
        started = time.perf_counter()
        payload = case.open(sealed)
        spent += time.perf_counter() - started
        if count == 0 and payload != case.payload:
            raise RuntimeError("open gave another payload")
        count += 1
    return count / spent


def _measure(case: Case, size: int, budget: Budget) -> tuple[float, float, int]:
    """(seals per second, opens per second, overhead bytes) for one round."""
    keep = max(2, min(_KEEP_COUNT, _KEEP_BYTES // max(size, 1)))
    gc.collect()
    seal_rate, made = _seal_rate(case, budget, keep)
    overhead = len(made[0]) - size
    gc.collect()
    return seal_rate, _open_rate(case, budget, made, keep), overhead


def run_scenario(
    scenario: Scenario,
    contenders: list[Contender],
    budget: Budget,
    predicted: Mapping[str, float] | None = None,
) -> list[Outcome]:
    """Every contender in ``scenario``, interleaved over ``budget.rounds`` rounds.

    ``predicted`` seconds per seal (from a smaller payload's rate) skip a contender that
    would outlast ``budget.max_op_seconds`` without trying it.
    """
    started = time.monotonic()
    outcomes: list[Outcome] = []
    active: list[tuple[Outcome, Case]] = []
    for contender in contenders:
        guess = (predicted or {}).get(contender.name, 0.0)
        prepared = _prepare(contender, scenario, budget, guess)
        if isinstance(prepared, Outcome):
            outcomes.append(prepared)
            continue
        outcome = Outcome(contender=contender)
        outcomes.append(outcome)
        active.append((outcome, prepared))
    for round_ in range(budget.rounds):
        elapsed = time.monotonic() - started
        print(
            f"  {scenario.label}: round {round_ + 1}/{budget.rounds} at {elapsed:.0f} s",
            file=sys.stderr,
        )
        shift = round_ % max(len(active), 1)
        for outcome, case in active[shift:] + active[:shift]:
            if outcome.skipped is not None:
                continue
            try:
                seal_rate, open_rate, outcome.overhead = _measure(case, scenario.size, budget)
            except Exception as error:  # reported in the table, and its numbers dropped
                outcome.skipped = f"failed in round {round_ + 1}: {type(error).__name__}: {error}"
                continue
            outcome.seal.append(seal_rate)
            outcome.open.append(open_rate)
    return outcomes


def best_open_us(make: Callable[[], Any], messages: list[bytes], rounds: int, now: int) -> float:
    """CPU microseconds per ``open`` at ``now``: the best of ``rounds`` runs over ``messages``,
    each with a fresh opener from ``make`` (so its caches start cold every round)."""
    best = float("inf")
    for _ in range(rounds):
        opener = make()
        started = time.process_time()
        for message in messages:
            opener.open(message, now=now)
        best = min(best, (time.process_time() - started) / len(messages))
    return best * 1e6
