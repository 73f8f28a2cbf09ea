"""Times for people: seconds since 1970 as ISO 8601 UTC, by arithmetic (pure: no clock, no
``datetime``, so :mod:`letterlock.trust` may use it in the details of its refusals)."""

from __future__ import annotations

__all__ = ["iso_utc"]


def iso_utc(seconds: int) -> str:
    """``seconds`` since 1970-01-01T00:00:00Z as ``YYYY-MM-DDTHH:MM:SSZ`` (proleptic Gregorian,
    no leap seconds, as POSIX time counts); years outside 0..9999 are written as they come."""
    days, rest = divmod(int(seconds), 86400)
    # days to a civil date: H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
