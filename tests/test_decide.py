"""The consumer core (``letterlock.transports.decide``): its table, row by row, and invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from letterlock import Reason, UsageError
from letterlock.transports.decide import (
    SETTLEMENT,
    TABLE,
    Ack,
    Count,
    DeadLetter,
    DeadLetterReason,
    OnHandlerError,
    OnRefusal,
    Outcome,
    Retry,
    RetryPolicy,
    Row,
    Settlement,
    decide,
)

POLICY = RetryPolicy(max_attempts=3, delay=10.0, max_delay=300.0)
RETRYING = RetryPolicy(
    max_attempts=3, delay=10.0, max_delay=300.0, on_handler_error=OnHandlerError.RETRY
)
WAIT = 60.0  # a busy copy's wait (the consumer's claim lease)
RETRIED = sorted(r for r, how in SETTLEMENT.items() if how is OnRefusal.RETRY)
OTHERS = sorted(r for r, how in SETTLEMENT.items() if how is OnRefusal.DEAD_LETTER)
REJECTED = DeadLetter(reason=DeadLetterReason.REJECTED)
HANDLER_ERROR = DeadLetter(reason=DeadLetterReason.HANDLER_ERROR)
MAX_ATTEMPTS = DeadLetter(reason=DeadLetterReason.MAX_ATTEMPTS)

#: An attempt count for each column of the table, under POLICY (max_attempts 3).
ATTEMPTS = {Count.UNKNOWN: None, Count.LEFT: 2, Count.LAST: 3, Count.OVER: 4}

#: Every row of the module's table, written out again: (row, count) -> expected settlement.
EXPECTED: dict[tuple[Row, Count], Settlement | None] = {
    (Row.DELIVERED, Count.UNKNOWN): None,
    (Row.DELIVERED, Count.LEFT): None,
    (Row.DELIVERED, Count.LAST): None,
    (Row.DELIVERED, Count.OVER): MAX_ATTEMPTS,
    (Row.BUSY, Count.UNKNOWN): Retry(delay=WAIT),  # a claim bounds it, not a count
    (Row.BUSY, Count.LEFT): Retry(delay=WAIT),
    (Row.BUSY, Count.LAST): Retry(delay=WAIT),
    (Row.BUSY, Count.OVER): MAX_ATTEMPTS,
    (Row.HANDLED, Count.UNKNOWN): Ack(),
    (Row.HANDLED, Count.LEFT): Ack(),
    (Row.HANDLED, Count.LAST): Ack(),
    (Row.HANDLED, Count.OVER): Ack(),
    (Row.HANDLER_RAISED, Count.UNKNOWN): HANDLER_ERROR,
    (Row.HANDLER_RAISED, Count.LEFT): HANDLER_ERROR,
    (Row.HANDLER_RAISED, Count.LAST): HANDLER_ERROR,
    (Row.HANDLER_RAISED, Count.OVER): HANDLER_ERROR,
    (Row.HANDLER_RAISED_RETRIED, Count.UNKNOWN): HANDLER_ERROR,
    (Row.HANDLER_RAISED_RETRIED, Count.LEFT): Retry(delay=20.0),
    (Row.HANDLER_RAISED_RETRIED, Count.LAST): HANDLER_ERROR,
    (Row.HANDLER_RAISED_RETRIED, Count.OVER): HANDLER_ERROR,
    (Row.REFUSED_RETRIED, Count.UNKNOWN): REJECTED,
    (Row.REFUSED_RETRIED, Count.LEFT): Retry(delay=20.0),  # after attempt 2: 10 * 2**1
    (Row.REFUSED_RETRIED, Count.LAST): REJECTED,
    (Row.REFUSED_RETRIED, Count.OVER): REJECTED,
    (Row.REFUSED_OTHER, Count.UNKNOWN): REJECTED,
    (Row.REFUSED_OTHER, Count.LEFT): REJECTED,
    (Row.REFUSED_OTHER, Count.LAST): REJECTED,
    (Row.REFUSED_OTHER, Count.OVER): REJECTED,
}


def _outcomes(row: Row) -> list[Outcome | Reason]:
    if row is Row.REFUSED_RETRIED:
        return list(RETRIED)
    if row is Row.REFUSED_OTHER:
        return list(OTHERS)
    if row is Row.HANDLER_RAISED_RETRIED:
        return [Outcome.HANDLER_RAISED]
    return [Outcome[row.name]]


def _decide(outcome: Outcome | Reason, attempts: int | None, policy: RetryPolicy) -> object:
    wait = WAIT if outcome is Outcome.BUSY else None
    return decide(outcome, attempts=attempts, policy=policy, wait=wait)


def test_the_table_lists_every_pair_once() -> None:
    assert set(TABLE) == set(itertools.product(Row, Count))
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize(("row", "count"), list(itertools.product(Row, Count)))
def test_each_row(row: Row, count: Count) -> None:
    policy = RETRYING if row is Row.HANDLER_RAISED_RETRIED else POLICY
    for outcome in _outcomes(row):
        got = _decide(outcome, ATTEMPTS[count], policy)
        assert got == EXPECTED[row, count], (outcome, count)


def test_a_wait_is_for_a_busy_copy_and_only_for_one() -> None:
    with pytest.raises(UsageError, match="busy"):
        decide(Outcome.BUSY, attempts=1, policy=POLICY)
    with pytest.raises(UsageError, match="busy"):
        decide(Outcome.HANDLED, attempts=1, policy=POLICY, wait=1.0)
    with pytest.raises(UsageError, match="negative"):
        decide(Outcome.BUSY, attempts=1, policy=POLICY, wait=-1.0)


def test_backoff_doubles_up_to_the_cap_and_never_overflows() -> None:
    policy = RetryPolicy(max_attempts=100, delay=5.0, max_delay=300.0)
    assert [policy.backoff(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert policy.backoff(10**9) == 300.0
    assert RetryPolicy(delay=0.0).backoff(50) == 0.0


def test_attempts_count_this_delivery() -> None:
    with pytest.raises(UsageError, match="attempts"):
        decide(Outcome.DELIVERED, attempts=0, policy=POLICY)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"delay": -1.0},
        {"delay": 10.0, "max_delay": 1.0},
        {"delay": float("nan")},
        {"on_handler_error": "retry"},
    ],
)
def test_nonsense_policies_are_usage_errors(bad: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


# invariants over every outcome, attempt count and policy --------------------------------

outcomes = st.sampled_from([*Outcome, *Reason])
attempts = st.one_of(st.none(), st.integers(min_value=1, max_value=10**6))
policies = st.builds(
    lambda n, d, extra, on_error: RetryPolicy(
        max_attempts=n, delay=d, max_delay=d + extra, on_handler_error=on_error
    ),
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from(OnHandlerError),
)


@given(outcome=outcomes, attempts=attempts, policy=policies)
def test_decide_is_total_and_keeps_its_promises(
    outcome: Outcome | Reason, attempts: int | None, policy: RetryPolicy
) -> None:
    got = _decide(outcome, attempts, policy)
    over = attempts is not None and attempts > policy.max_attempts
    if got is None:  # only before opening, and only within the attempts allowed
        assert outcome is Outcome.DELIVERED
        assert not over
    elif isinstance(got, Ack):  # the only path to an ack: the handler returned
        assert outcome is Outcome.HANDLED
    elif isinstance(got, Retry) and outcome is Outcome.BUSY:  # bounded by the claim's lease
        assert got.delay == WAIT
        assert not over
    elif isinstance(got, Retry):  # bounded: only with a count, and attempts left
        if isinstance(outcome, Reason):
            assert SETTLEMENT[outcome] is OnRefusal.RETRY
        else:  # a handler error, retried only where the user chose so
            assert outcome is Outcome.HANDLER_RAISED
            assert policy.on_handler_error is OnHandlerError.RETRY
        assert attempts is not None
        assert attempts < policy.max_attempts
        assert 0 <= got.delay <= policy.max_delay
        assert got.delay == policy.backoff(attempts)
    else:
        assert isinstance(got, DeadLetter)
        if isinstance(outcome, Reason):  # the broker reads one word for every refusal
            assert got.reason is DeadLetterReason.REJECTED
        elif outcome is Outcome.HANDLER_RAISED:
            assert got.reason is DeadLetterReason.HANDLER_ERROR
        else:
            assert outcome in {Outcome.DELIVERED, Outcome.BUSY}
            assert (got.reason, over) == (DeadLetterReason.MAX_ATTEMPTS, True)


@given(attempts=attempts, policy=policies)
def test_every_retried_reason_is_settled_alike(attempts: int | None, policy: RetryPolicy) -> None:
    """The trust oracle stays closed: whatever the attempt count, unknown_sender, untrusted,
    bad_signature and not_yet_valid get the very same settlement."""
    settled = {decide(reason, attempts=attempts, policy=policy) for reason in RETRIED}
    assert len(settled) == 1


@given(reason=st.sampled_from(RETRIED), policy=policies)
def test_retries_end_in_a_dead_letter(reason: Reason, policy: RetryPolicy) -> None:
    """Retried exactly until attempt max_attempts, dead-lettered from then on."""
    for attempt in range(1, policy.max_attempts + 3):
        got = decide(reason, attempts=attempt, policy=policy)
        assert isinstance(got, Retry) is (attempt < policy.max_attempts)
