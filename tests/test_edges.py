"""map_exceptions: third-party errors become ours at an adapter's edge, and nothing else does."""

from __future__ import annotations

import sqlite3

import pytest

from letterlock import LetterlockError, Rejected, StoreError, TransportError, UsageError
from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.errors import Reason


class ClientError(Exception):
    """A client library's base error."""


class ClientTimeout(ClientError):
    pass


MAPPING: ExceptionMapping = {ClientTimeout: StoreError, ClientError: TransportError}


def test_a_listed_exception_becomes_ours_with_the_original_as_cause() -> None:
    original = ClientError("connection refused")
    with pytest.raises(TransportError, match="refused") as caught, map_exceptions(MAPPING):
        raise original
    assert caught.value.__cause__ is original


def test_the_first_listed_type_that_matches_wins() -> None:
    with pytest.raises(StoreError), map_exceptions(MAPPING):
        raise ClientTimeout("slow")
    with pytest.raises(TransportError), map_exceptions({ClientError: TransportError, **MAPPING}):
        raise ClientTimeout("slow")


def test_a_function_can_write_the_message() -> None:
    write: ExceptionMapping = {sqlite3.Error: lambda exc: StoreError(f"replay record x: {exc}")}
    with pytest.raises(StoreError, match=r"^replay record x: no such$"), map_exceptions(write):
        raise sqlite3.OperationalError("no such")


def test_an_unlisted_exception_passes_unchanged() -> None:
    with pytest.raises(KeyError), map_exceptions(MAPPING):
        raise KeyError("not theirs")


@pytest.mark.parametrize(
    "ours", [UsageError("a caller's mistake"), Rejected(Reason.MALFORMED), StoreError("x")]
)
def test_our_own_exceptions_are_never_translated(ours: LetterlockError) -> None:
    """UsageError is a ValueError: mapping ValueError (paho raises it) must not touch it."""
    with pytest.raises(type(ours)) as caught, map_exceptions({ValueError: TransportError}):
        raise ours
    assert caught.value is ours


@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_what_is_not_an_exception_is_never_translated(signal: type[BaseException]) -> None:
    with pytest.raises(signal), map_exceptions({Exception: TransportError}):
        raise signal()


def test_only_exception_types_can_be_mapped() -> None:
    with pytest.raises(UsageError), map_exceptions({KeyboardInterrupt: TransportError}):  # type: ignore[dict-item]
        pass


def test_nothing_happens_without_an_exception() -> None:
    with map_exceptions(MAPPING):
        value = 1
    assert value == 1


def test_one_instance_made_once_maps_every_use_nested_and_again() -> None:
    """Adapters make one map_exceptions per mapping at import and enter it per message."""
    mapped = map_exceptions({OSError: TransportError})
    for _ in range(2):
        with pytest.raises(TransportError) as caught, mapped, mapped:
            raise OSError("refused")
        assert isinstance(caught.value.__cause__, OSError)
    with mapped:
        pass  # and nothing raised, nothing happens
