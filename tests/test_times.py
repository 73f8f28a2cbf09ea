"""core.times.iso_utc agrees with datetime for every second datetime can represent."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from letterlock.core.times import iso_utc

FIRST = int(datetime.datetime(1, 1, 1, tzinfo=datetime.UTC).timestamp())
LAST = int(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC).timestamp())


@given(st.integers(min_value=FIRST, max_value=LAST))
def test_iso_utc_agrees_with_datetime(seconds: int) -> None:
    expected = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    assert iso_utc(seconds) == expected.strftime("%Y-%m-%dT%H:%M:%SZ").rjust(20, "0")


def test_iso_utc_at_the_edges() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(-1) == "1969-12-31T23:59:59Z"
    assert iso_utc(951_782_400) == "2000-02-29T00:00:00Z"  # a leap day of a century year
    assert iso_utc(4_107_542_400) == "2100-03-01T00:00:00Z"  # 2100 is not a leap year
