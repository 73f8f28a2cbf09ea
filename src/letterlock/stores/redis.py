"""A replay store in Redis, shared by every consumer of a group on any host.

Each operation of :class:`letterlock.core.replay.ReplayStore` is one Lua script (``EVALSHA``,
through redis-py's ``Script``), which Redis runs whole and alone: of two consumers adding copies
of one message exactly one gets ADDED, and a sender's ids, floor and capacity are read and
changed together. The keys, under ``prefix`` (``P``), with ``S`` the sender's key id in hex:

==================  ======================================================================
key                 holds
==================  ======================================================================
``P:floor``         the floor common to all senders (raised by ``prune`` only)
``P:senders``       the set of every ``S`` with keys (what ``prune`` and ``len`` visit)
``P:S:ids``         a sorted set: the sender's recorded ids, scored by their creation time
``P:S:claims``      a hash: id -> ``until:holder`` for each id that is claimed, not handled
``P:S:floor``       the sender's own floor (raised by eviction at capacity)
==================  ======================================================================

An id is set only if absent, by the script that checked everything else, into a sorted set
whose order is what eviction (the oldest ids) and pruning (ids older than a cutoff) need.
``prune`` and ``len`` visit every sender in one script, so Redis serves nobody else meanwhile:
let the window prune often (its default, every 1024 records) rather than rarely.

With ``ttl`` every write gives the sender's three keys that many seconds (of the server's
clock) to live: a sender that goes quiet vanishes whole after ``ttl`` without any ``prune``. A
floor vanishing with its ids is safe only when ``ttl`` exceeds the window's ``max_age + skew``:
every id it forgets is then older than the window, which refuses it by time. Without ``ttl``
(the default) ids go only by :meth:`~RedisReplayStore.prune` and eviction, as in the other
stores. The common floor never expires.

The scripts compute sender key names from ``prefix``, so on a Redis Cluster the prefix must be
one hash tag (``{letterlock}``). Every ``redis`` exception (and ``OSError``) becomes
:class:`~letterlock.errors.StoreError` at this module's edge, as the SQLite store's do.
"""

from __future__ import annotations

import threading
from typing import Final, cast

import redis
import redis.commands.core

from letterlock._edges import map_exceptions
from letterlock.core.replay import DEFAULT_CAPACITY, AddResult
from letterlock.errors import StoreError, UsageError

__all__ = ["DEFAULT_PREFIX", "RedisReplayStore"]

DEFAULT_PREFIX: Final = "letterlock:replay"

# Shared by the scripts: the sender's keys from ARGV[1] (prefix) and a sender in hex.
_KEYS = """
local function keys(prefix, sender)
  local base = prefix .. ':' .. sender
  return base .. ':ids', base .. ':claims', base .. ':floor'
end
local function number(value, default)
  if value then return tonumber(value) end
  return default
end
local function holder_of(claim)
  local colon = string.find(claim, ':', 1, true)
  return tonumber(string.sub(claim, 1, colon - 1)), string.sub(claim, colon + 1)
end
local function forget(ids, claims, members)
  for i = 1, #members, 1000 do
    local last = math.min(i + 999, #members)
    redis.call('ZREM', ids, unpack(members, i, last))
    redis.call('HDEL', claims, unpack(members, i, last))
  end
end
local function touch(ttl, ...)
  if ttl > 0 then
    for _, key in ipairs({...}) do redis.call('PEXPIRE', key, ttl) end
  end
end
"""

# ARGV: prefix, sender hex, id, created, now, holder ('' for a plain add), until, capacity, ttl
_ADD = (
    _KEYS
    + """
local prefix, sender, id = ARGV[1], ARGV[2], ARGV[3]
local created, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local holder, till = ARGV[6], ARGV[7]
local capacity, ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local ids, claims, own = keys(prefix, sender)
local common = number(redis.call('GET', prefix .. ':floor'), -1)
local floor = math.max(common, number(redis.call('GET', own), -1))
if created <= floor then return 'below_floor' end
if redis.call('ZSCORE', ids, id) then
  local claim = redis.call('HGET', claims, id)
  if (not claim) or holder == '' then return 'seen' end
  local held_until = holder_of(claim)
  if held_until > now then return 'busy' end
  redis.call('HSET', claims, id, till .. ':' .. holder)
  touch(ttl, ids, claims, own)
  return 'taken_over'
end
if redis.call('ZCARD', ids) >= capacity then
  local first = redis.call('ZRANGE', ids, 0, 0, 'WITHSCORES')
  local oldest = tonumber(first[2])
  if oldest > now then return 'full' end
  if created <= oldest then return 'below_floor' end
  forget(ids, claims, redis.call('ZRANGEBYSCORE', ids, '-inf', first[2]))
  if oldest > number(redis.call('GET', own), -1) then redis.call('SET', own, first[2]) end
end
redis.call('ZADD', ids, ARGV[4], id)
if holder ~= '' then redis.call('HSET', claims, id, till .. ':' .. holder) end
redis.call('SADD', prefix .. ':senders', sender)
touch(ttl, ids, claims, own)
return 'added'
"""
)

# ARGV: prefix, sender hex, id, holder, what ('finish' | 'release' | 'extend'), until, ttl
_SETTLE = (
    _KEYS
    + """
local prefix, sender, id, holder, what = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ids, claims, own = keys(prefix, sender)
local claim = redis.call('HGET', claims, id)
if not claim then return 0 end
local _, current = holder_of(claim)
if current ~= holder then return 0 end
if what == 'finish' then
  redis.call('HDEL', claims, id)
elseif what == 'release' then
  forget(ids, claims, {id})
else
  redis.call('HSET', claims, id, ARGV[6] .. ':' .. holder)
end
touch(tonumber(ARGV[7]), ids, claims, own)
return 1
"""
)

# ARGV: prefix, sender hex (or '' for the common floor)
_FLOOR = (
    _KEYS
    + """
local common = redis.call('GET', ARGV[1] .. ':floor') or '-1'
if ARGV[2] == '' then return common end
local _, _, own = keys(ARGV[1], ARGV[2])
local value = redis.call('GET', own)
if value and tonumber(value) > tonumber(common) then return value end
return common
"""
)

# ARGV: prefix, sender hex, id
_CONTAINS = (
    _KEYS
    + """
local ids, claims = keys(ARGV[1], ARGV[2])
if redis.call('ZSCORE', ids, ARGV[3]) and redis.call('HEXISTS', claims, ARGV[3]) == 0 then
  return 1
end
return 0
"""
)

# ARGV: prefix, sender hex, id; {floor, 1 if handled}: _FLOOR's and _CONTAINS' in one round trip
_FLOOR_AND_CONTAINS = (
    _KEYS
    + """
local common = redis.call('GET', ARGV[1] .. ':floor') or '-1'
local ids, claims, own = keys(ARGV[1], ARGV[2])
local floor = common
local value = redis.call('GET', own)
if value and tonumber(value) > tonumber(common) then floor = value end
local seen = 0
if redis.call('ZSCORE', ids, ARGV[3]) and redis.call('HEXISTS', claims, ARGV[3]) == 0 then
  seen = 1
end
return {floor, seen}
"""
)

# ARGV: prefix, cutoff, cutoff - 1; forgets ids created before cutoff, then empty senders
_PRUNE = (
    _KEYS
    + """
local prefix = ARGV[1]
local common = number(redis.call('GET', prefix .. ':floor'), -1)
if tonumber(ARGV[3]) > common then
  redis.call('SET', prefix .. ':floor', ARGV[3])
  common = tonumber(ARGV[3])
end
for _, sender in ipairs(redis.call('SMEMBERS', prefix .. ':senders')) do
  local ids, claims, own = keys(prefix, sender)
  forget(ids, claims, redis.call('ZRANGEBYSCORE', ids, '-inf', '(' .. ARGV[2]))
  if redis.call('ZCARD', ids) == 0 and number(redis.call('GET', own), -1) <= common then
    redis.call('DEL', ids, claims, own)
    redis.call('SREM', prefix .. ':senders', sender)
  end
end
return 1
"""
)

# ARGV: prefix
_COUNT = (
    _KEYS
    + """
local total = 0
for _, sender in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':senders')) do
  local ids = keys(ARGV[1], sender)
  total = total + redis.call('ZCARD', ids)
end
return total
"""
)


def _number(value: float) -> str:
    """A float as Lua's ``tonumber`` reads it back exactly (``repr`` round-trips)."""
    return repr(float(value))


class RedisReplayStore:
    """A :class:`~letterlock.core.replay.ReplayStore` on a Redis server, shared by a group.

    ``client`` is a ``redis://`` URL (the store opens and closes its own connection pool) or a
    ``redis.Redis`` of the caller's (``decode_responses=False``; :meth:`close` leaves it open).
    ``prefix`` names this record: stores with one prefix share it. ``capacity`` is the number
    of ids kept per sender; ``ttl`` (seconds, see the module) lets quiet senders' keys expire.
    Thread-safe (redis-py's pool), and a store built before ``fork()`` reconnects in the child.
    """

    def __init__(
        self,
        client: str | redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        capacity: int = DEFAULT_CAPACITY,
        ttl: float | None = None,
    ) -> None:
        if capacity < 1:
            raise UsageError("capacity must be positive")
        if ttl is not None and not ttl >= 0.001:  # "not >=" refuses NaN too
            raise UsageError("ttl must be at least a millisecond (or None: no expiry)")
        if not prefix:
            raise UsageError("prefix must not be empty")
        self.prefix = prefix
        self._capacity = capacity
        self._ttl = round(ttl * 1000) if ttl is not None else 0  # ms
        self._owned = isinstance(client, str)
        with self._translated("connecting"):
            self._client = redis.Redis.from_url(client) if isinstance(client, str) else client
        if self._client.get_connection_kwargs().get("decode_responses"):
            raise UsageError("the Redis client must not decode responses (ids are bytes)")
        self._closed = threading.Event()
        register = self._client.register_script
        self._add, self._settle, self._floor = register(_ADD), register(_SETTLE), register(_FLOOR)
        self._contains, self._prune, self._count = (
            register(_CONTAINS),
            register(_PRUNE),
            register(_COUNT),
        )
        self._floor_and_contains = register(_FLOOR_AND_CONTAINS)

    def _translated(self, what: str) -> map_exceptions:
        """Redis's and the socket's errors as StoreError (a context manager, entered once or
        more per message: not a generator, which costs more to enter than this)."""
        where = f"Redis replay record {self.prefix!r}: {what} failed: "
        return map_exceptions(
            {
                redis.RedisError: lambda exc: StoreError(f"{where}{exc}"),
                OSError: lambda exc: StoreError(f"{where}{exc}"),
            }
        )

    def _run(self, what: str, script: redis.commands.core.Script, *args: bytes | str) -> object:
        if self._closed.is_set():
            raise StoreError(f"Redis replay record {self.prefix!r}: {what} failed: closed")
        with self._translated(what):
            return script(keys=[], args=[self.prefix, *args])

    def close(self) -> None:
        """Close the connection pool if this store opened it (from a URL)."""
        self._closed.set()
        if self._owned:
            with self._translated("closing"):
                self._client.close()

    def __enter__(self) -> RedisReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def floor(self, sender: bytes | None = None) -> int:
        value = self._run("reading the floor", self._floor, sender.hex() if sender else "")
        return int(_text(value))

    def contains(self, sender: bytes, message_id: bytes) -> bool:
        return self._run("looking up an id", self._contains, sender.hex(), message_id) == 1

    def floor_and_contains(self, sender: bytes, message_id: bytes) -> tuple[int, bool]:
        """:meth:`floor` and :meth:`contains` in one script: one round trip a message."""
        reply = self._run("looking up an id", self._floor_and_contains, sender.hex(), message_id)
        floor, seen = cast(list[object], reply)
        return int(_text(floor)), seen == 1

    def add(
        self,
        sender: bytes,
        message_id: bytes,
        created: int,
        *,
        now: float,
        holder: bytes | None = None,
        until: float = 0.0,
    ) -> AddResult:
        if holder is not None and not holder:
            raise UsageError("a claim needs a holder")
        result = self._run(
            "recording an id", self._add, sender.hex(), message_id, str(int(created)),
            _number(now), holder or b"", _number(until), str(self._capacity), str(self._ttl),
        )  # fmt: skip
        return AddResult(_text(result))

    def finish(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        return self._settle_claim("finish", sender, message_id, holder)

    def release(self, sender: bytes, message_id: bytes, holder: bytes) -> bool:
        return self._settle_claim("release", sender, message_id, holder)

    def extend(self, sender: bytes, message_id: bytes, holder: bytes, until: float) -> bool:
        return self._settle_claim("extend", sender, message_id, holder, until)

    def _settle_claim(
        self, how: str, sender: bytes, message_id: bytes, holder: bytes, until: float = 0.0
    ) -> bool:
        if not holder:
            return False  # no claim has an empty holder
        changed = self._run(
            f"{how} a claim", self._settle, sender.hex(), message_id, holder, how, _number(until),
            str(self._ttl),
        )  # fmt: skip
        return changed == 1

    def prune(self, cutoff: int) -> None:
        self._run("pruning", self._prune, str(int(cutoff)), str(int(cutoff) - 1))

    def __len__(self) -> int:
        value = self._run("counting ids", self._count)
        assert isinstance(value, int)
        return value


def _text(value: object) -> str:
    """A script's string reply (bytes, as the client does not decode)."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    return str(value)
