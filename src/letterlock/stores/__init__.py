"""letterlock.stores: every replay store, in one place.

A :class:`~letterlock.core.replay.ReplayWindow` keeps the ids it has recorded in a store, per
sender; :class:`~letterlock.core.replay.ReplayStore` says what every store must do (its ``add``
atomically). Pick the store by who must share the record:

======================  ========================================  ================================
store                   where the ids live                        shared by
======================  ========================================  ================================
MemoryReplayStore       this process (a window's default)         the threads of one process
SQLiteReplayStore       a SQLite file (WAL, durable commits)      the processes of one host
RedisReplayStore        keys under a prefix on a Redis server     a consumer group, many hosts
PostgresReplayStore     a schema of a PostgreSQL database         a consumer group, many hosts
======================  ========================================  ================================

:class:`MemoryReplayStore` is defined in :mod:`letterlock.core.replay`, beside the window, because
the core is pure and never imports from here; it is listed here so that this package names every
store. A store that does I/O lives in a module of this package (``stores/sqlite.py``,
``stores/redis.py``, ``stores/postgres.py``), translates its client library's exceptions into
:class:`~letterlock.errors.StoreError` at its edge (:func:`letterlock._edges.map_exceptions`),
and joins the one shared store test suite (``tests/test_replay.py``, which says how). The Redis
and PostgreSQL stores need their extras (``letterlock[redis]``, ``letterlock[postgres]``), so
they are imported from their modules, or built by :func:`replay_store_from_url`, never here.
"""

from __future__ import annotations

import urllib.parse
from typing import Protocol, Self

from letterlock.core.replay import DEFAULT_CAPACITY, AddResult, MemoryReplayStore, ReplayStore
from letterlock.errors import UsageError
from letterlock.stores.sqlite import SQLiteReplayStore

__all__ = [
    "AddResult",
    "ClosingReplayStore",
    "MemoryReplayStore",
    "ReplayStore",
    "SQLiteReplayStore",
    "replay_store_from_url",
]


class ClosingReplayStore(ReplayStore, Protocol):
    """A replay store that holds a file or a connection until :meth:`close` (or ``with``)."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def replay_store_from_url(url: str) -> ClosingReplayStore:
    """The store a URL names; the query parameters that tune it are taken out of the URL.

    * ``sqlite:///path/replay.sqlite3`` (``sqlite:relative/path``): :class:`SQLiteReplayStore`;
    * ``redis://``, ``rediss://`` or ``unix://`` with ``prefix=`` and ``ttl=`` (seconds):
      :class:`letterlock.stores.redis.RedisReplayStore`;
    * ``postgresql://`` or ``postgres://`` with ``schema=``:
      :class:`letterlock.stores.postgres.PostgresReplayStore`;

    and ``capacity=`` (ids per sender) for each. Other query parameters stay in the URL for the
    client library (``sslmode=``, ``socket_timeout=``).
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ours = {"capacity", "prefix", "ttl", "schema"}
    tuning = {key: value for key, value in query if key in ours}
    rest = urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode([(k, v) for k, v in query if k not in ours]))
    )
    capacity = _integer(tuning.pop("capacity", str(DEFAULT_CAPACITY)), "capacity")
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        _only(scheme, tuning, set())
        if parts.netloc:
            raise UsageError("a sqlite: URL names a path: sqlite:///absolute or sqlite:relative")
        return SQLiteReplayStore(urllib.parse.unquote(parts.path), capacity=capacity)
    if scheme in {"redis", "rediss", "unix"}:
        from letterlock.stores.redis import DEFAULT_PREFIX, RedisReplayStore  # noqa: PLC0415

        _only(scheme, tuning, {"prefix", "ttl"})
        ttl = tuning.get("ttl")
        return RedisReplayStore(
            rest,
            prefix=tuning.get("prefix", DEFAULT_PREFIX),
            capacity=capacity,
            ttl=_number(ttl, "ttl") if ttl is not None else None,
        )
    if scheme in {"postgresql", "postgres"}:
        from letterlock.stores.postgres import DEFAULT_SCHEMA, PostgresReplayStore  # noqa: PLC0415

        _only(scheme, tuning, {"schema"})
        return PostgresReplayStore(
            rest, schema=tuning.get("schema", DEFAULT_SCHEMA), capacity=capacity
        )
    raise UsageError(f"no replay store for URL scheme {parts.scheme!r}")


def _only(scheme: str, tuning: dict[str, str], allowed: set[str]) -> None:
    extra = sorted(set(tuning) - allowed)
    if extra:
        raise UsageError(f"a {scheme}: replay store takes no {', '.join(extra)} parameter")


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be an integer, not {value!r}") from None


def _number(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {value!r}") from None
