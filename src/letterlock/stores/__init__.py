"""letterlock.stores: every replay store, in one place.

A :class:`~letterlock.core.replay.ReplayWindow` keeps the ids it has recorded in a store, per
sender; :class:`~letterlock.core.replay.ReplayStore` says what every store must do (its ``add``
atomically). Pick the store by who must share the record:

======================  ========================================  ================================
store                   where the ids live                        shared by
======================  ========================================  ================================
MemoryReplayStore       this process (a window's default)         the threads of one process
SQLiteReplayStore       a SQLite file (WAL, durable commits)      the processes of one host
Redis (planned)         a Redis server                            a consumer group, many hosts
PostgreSQL (planned)    a PostgreSQL table                        a consumer group, many hosts
======================  ========================================  ================================

:class:`MemoryReplayStore` is defined in :mod:`letterlock.core.replay`, beside the window, because
the core is pure and never imports from here; it is listed here so that this package names every
store. A store that does I/O lives in a module of this package (``stores/sqlite.py``; next
``stores/redis.py``, ``stores/postgres.py``), translates its client library's exceptions into
:class:`~letterlock.errors.StoreError` at its edge (:func:`letterlock._edges.map_exceptions`),
is exported here, and joins the one shared store test suite (``tests/test_replay.py``, which
says how).
"""

from letterlock.core.replay import AddResult, MemoryReplayStore, ReplayStore
from letterlock.stores.sqlite import SQLiteReplayStore

__all__ = ["AddResult", "MemoryReplayStore", "ReplayStore", "SQLiteReplayStore"]
