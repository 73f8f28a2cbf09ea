"""Redis Streams (redis-py): consumer groups, pending entries reclaimed, a dead-letter stream.

``RedisEndpoint.from_url("redis://127.0.0.1:6379/0?stream=letterlock&lease=30")``. Pull, with
the Redis Streams mapping of :mod:`letterlock.transports.base`:

==================  =========================================================================
seam                Redis
==================  =========================================================================
publish             ``XADD <stream> * topic <topic> body <bytes>`` (no Unroutable: a stream
                    exists once written)
subscribe           ``XGROUP CREATE <stream> <group> $ MKSTREAM`` (an existing group keeps
                    its place); one consumer name per subscription
deliveries          ``XAUTOCLAIM`` for entries idle longer than the lease (their holder went
                    quiet or died), else ``XREADGROUP ... >`` for new ones; attempts is the
                    entry's delivery count
Ack                 ``XACK``
Retry               the entry stays pending; ``XCLAIM ... IDLE`` sets its idle time so that
                    ``XAUTOCLAIM`` finds it due after the delay (``JUSTID``: not counted)
DeadLetter          ``XADD <stream>:dead:<group>`` (bytes, topic, the one word) and ``XACK``
extend_lease        ``XCLAIM <stream> <group> <consumer> 0 <id> JUSTID``: its idle clock restarts
dead_letters        ``XRANGE <stream>:dead:<group>``
redrive             each dead entry back onto the stream, addressed to its group (``for``)
==================  =========================================================================

Topics and streams. Redis has no pattern subscription, so one endpoint is one stream (the URL's
``stream``, default ``letterlock``) whose entries carry their topic in a field. A group reads
every entry of the stream; its subscription acks and skips, unseen by the consumer, the entries
whose topic matches none of the group's patterns (AMQP patterns: ``.``, ``*``, ``#``), as a
topic exchange would never have routed them. That is the broker dropping them, which a broker
always can; the consumer still opens what it is given against its own configured topics, never
against the ``topic`` field. Consumers of one group name the same patterns. A redriven entry
names its group in a ``for`` field, and the other groups of the stream skip it.

What the broker reports, and what it can decide. An entry's fields, its delivery count and the
replies of ``XPENDING`` and ``XACK`` are the broker's word (a hostile broker writes what it
likes), and they decide settlement in four places only; each can lose a message or have it
dead-lettered, none can make the application see a message as handled that it did not handle,
or leak one:

* the skip (``topic`` matching none of the group's patterns, ``for`` naming another group)
  acks the entry unseen: no handler runs, no message id is claimed or recorded in the replay
  window, nothing is counted as handled or dead-lettered. That is a dropped message, which a
  broker can always cause (it can delete the entry); the same bytes, delivered later with
  fields that let them through, are opened as new and handled once
  (``test_a_skip_by_the_brokers_fields_drops_and_leaves_no_trace``). Only the broker, or whoever
  writes the entry, sets its fields: another publisher cannot change them;
* the reclaim script acks an entry that the stream no longer holds: nothing is left to deliver;
* ``XPENDING``'s owner of an entry and ``XACK``'s count decide :class:`LeaseLost`: a false
  reply leaves our ack undone, so the entry comes back, and the consumer's replay window,
  where its id was recorded before the ack, refuses it as replayed (dead-lettered with the one
  word): the handler ran once;
* the delivery count is the attempts that :mod:`~letterlock.transports.decide` bounds: a high
  count dead-letters a message early (``redrive`` puts it back).

A dead letter holds the entry's own ``topic`` field, its bytes and the one word: nothing the
broker did not have, and nothing of whom the receiver trusts.

Settlement is atomic and checked: Ack, Retry, DeadLetter and ``extend_lease`` each run as one
Lua script that first asks ``XPENDING`` whether the entry is still this consumer's, and raises
:class:`~letterlock.transports.base.LeaseLost` if another consumer claimed it since (a plain
``XACK`` would settle it under that consumer's feet). The dead letter and its ``XACK`` happen
together or not at all. The one shortcut: an Ack within half a lease of the entry's reading is
a plain ``XACK``, since no other consumer can have reclaimed it yet (they wait until it is idle
for the lease: consumers of one group use one lease), and ``XACK``'s count still says whether
it was pending (0: settled already, LeaseLost). It saves the script's round of Lua and
``XPENDING`` on every message handled in time (~30 us of consumer CPU and ~75 us of waiting).

Leases. ``lease=SECONDS`` (default 30) is how long an entry may stay pending with a consumer
that neither settles it nor extends its lease before another consumer of the group reclaims it.
Redis can set an idle time but not one in the future, so a Retry comes back after
``min(delay, lease)``: choose a lease at least as long as the retry delays you want. A busy
copy (another consumer's claim holds it, for up to the consumer's ``claim_lease``) may so come
back busy more than once, each time counted against ``max_attempts``: keep ``lease`` x
``max_attempts`` above ``claim_lease`` (the defaults, 30 s x 5 and 60 s, do). Redis keeps time
itself: the seam's ``now`` is ignored.

Reconnecting. ``reconnect=SECONDS`` (default 30; 0: never) is how long a subscription keeps
trying to reach Redis again, backing off up to 1 s between tries, once a read or reclaim
found it out of reach (a ``ConnectionError`` or ``TimeoutError`` after redis-py's own retries,
a few seconds) or found the group gone (``NOGROUP``), before that error leaves ``deliveries``
as TransportError; time spent reconnecting is not idle time. Each try is ``XGROUP CREATE ...
MKSTREAM``, which finds the group in place (Redis was out of reach: its pending entries come
back through ``XAUTOCLAIM`` once idle for the lease, the subscription's unhanded entries with
them) or makes it again. A Redis that keeps nothing on disk and restarted has lost the stream,
the group and its pending entries: those messages are the server's loss, which the consumer
cannot see or undo. The group is made again at the last entry the subscription saw (or
Redis's clock when it subscribed), so the entries written since the restart, publishers often
being back first, are all read, and none from before it (assuming Redis's clock did not go
back). A settlement or heartbeat for an entry of a group Redis lost is LeaseLost. An outage
ends when a read succeeds: a group lost again at once backs off further, never spins.

Other parameters: ``batch`` (default 16): entries read per ``XREADGROUP``; an entry read but
not handed over within its lease is left for ``XAUTOCLAIM``. ``maxlen``: trim the stream to
about that many entries on publish (``MAXLEN ~``; default none: a trimmed entry that a slow
group has not read yet is lost, and Redis never removes acked entries by itself). Every other
query parameter is redis-py's own (``socket_timeout``, ...). ``rediss://`` is TLS.

:class:`AsyncRedisEndpoint` is the same on ``redis.asyncio``, for
:class:`~letterlock.transports.AsyncSealedConsumer`. The two share everything but the sending:
the options, the scripts and every command's keys and arguments (``_Stream``), the decoding of
replies and the settlement decisions (module functions), and a subscription's schedule of
reclaims, reads and hand-overs (``_Intake``), so a fix lands once.

Every ``redis.exceptions.RedisError`` (``ConnectionError`` and ``TimeoutError`` included)
leaves as :class:`~letterlock.errors.TransportError`, but for settling: a settlement or
``extend_lease`` that cannot reach Redis (a ``ConnectionError`` or ``TimeoutError`` once
redis-py's own retries on a new connection ran out), or whose group Redis no longer has
(``NOGROUP``), raises :class:`~letterlock.transports.base.LeaseLost`. Nothing was settled,
or all of it was (each settlement is one command): the entry stays pending, to be reclaimed
once idle for the lease, or it was acked (and dead-lettered) already (or its group, and it,
are gone). So a lost connection never stops a consumer in ``handle``, and the copy that comes
back, handled already, is refused as a replay. A connection refused (credentials, ACLs) and
every other error Redis answers stay TransportError. One client is one connection pool: open
one endpoint per process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.exceptions
from redis.commands.core import AsyncScript, Script

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    Subscription,
    slot_setters,
)
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason, Retry, Settlement

__all__ = ["AsyncRedisEndpoint", "AsyncRedisSubscription", "RedisDelivery", "RedisEndpoint"]

DEFAULT_STREAM: Final = "letterlock"
DEFAULT_LEASE: Final = 30.0
DEFAULT_BATCH: Final = 16
DEFAULT_RECONNECT: Final = 30.0
_FIRST_PAUSE: Final = 0.05  # seconds before the first try to reach Redis again, doubling
_LAST_PAUSE: Final = 1.0  # ... up to this
_MAX_BLOCK: Final = 1.0  # seconds an XREADGROUP blocks at most before due entries are reclaimed
_C = TypeVar("_C")
_S = TypeVar("_S")
_MAPPING: Final[ExceptionMapping] = {redis.exceptions.RedisError: TransportError}
#: map_exceptions(_MAPPING), made once: it keeps no state, and adapters enter it per message.
_MAPPED: Final = map_exceptions(_MAPPING)
#: What says Redis could not be reached (once redis-py's own retries, on a new connection, ran
#: out): a settlement or heartbeat that meets it is LeaseLost, the entry staying pending to be
#: reclaimed after the lease. Not what says a connection was refused (credentials, ACLs, a full
#: pool): those surface as TransportError.
_UNREACHABLE: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_REFUSED: Final = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.MaxConnectionsError,
    redis.exceptions.ExternalAuthProviderError,
)
#: What Redis answers when the stream or the group is gone (deleted, or a restart lost it).
_NOGROUP: Final = "NOGROUP"
#: redis-py refuses a malformed URL or an unknown parameter with ValueError or TypeError.
_URL_MAPPING: Final[ExceptionMapping] = {**_MAPPING, ValueError: UsageError, TypeError: UsageError}

#: Settle one pending entry if it is still this consumer's: 1, else 0 (it is someone else's, or
#: settled). KEYS: stream, dead stream. ARGV: group, consumer, id, action, then per action:
#: ``dead``: topic, body, reason, attempts; ``retry``: idle milliseconds.
_SETTLE: Final = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
local action = ARGV[4]
if action == 'ack' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
elseif action == 'dead' then
  redis.call('XADD', KEYS[2], '*', 'topic', ARGV[5], 'body', ARGV[6], 'reason', ARGV[7],
             'attempts', ARGV[8], 'id', ARGV[3])
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
elseif action == 'retry' then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[5], 'JUSTID')
else
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
end
return 1
"""

#: Claim up to ARGV[4] entries idle for ARGV[3] ms for consumer ARGV[2] of group ARGV[1], each
#: with its delivery count (XAUTOCLAIM raised it). Entries deleted from the stream are acked.
_RECLAIM: Final = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, e in ipairs(r[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    out[#out + 1] = {e[1], e[2], p[1][4]}
  else
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
end
return out
"""

#: Move up to ARGV[2] dead letters (KEYS[2]) back onto the stream (KEYS[1]) for group ARGV[1].
_REDRIVE: Final = """
local e = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[2])
for _, x in ipairs(e) do
  local f, t = x[2], {}
  for j = 1, #f, 2 do t[f[j]] = f[j + 1] end
  redis.call('XADD', KEYS[1], '*', 'topic', t['topic'] or '', 'body', t['body'] or '',
             'for', ARGV[1])
  redis.call('XDEL', KEYS[2], x[1])
end
return #e
"""

#: Forget consumer ARGV[2] of group ARGV[1] if nothing is pending with it (a consumer deleted
#: with pending entries would take them out of the group: they would never be reclaimed); -1
#: if the group is gone (the stream was deleted), which leaves nothing to forget.
_FORGET: Final = """
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if p['err'] then return -1 end
if #p == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return #p
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisDelivery(Delivery):
    """One pending stream entry, held by one consumer of the group (``tag`` is its id)."""

    consumer: str  #: the consumer name it is pending with
    read_at: float  #: when it was read (monotonic), to hand over only entries still leased


_REDIS_DELIVERY: Final = slot_setters(RedisDelivery)


def _positive(query: dict[str, str], name: str, default: float) -> float:
    return _number(query, name, default, zero=False)


def _seconds(query: dict[str, str], name: str, default: float) -> float:
    """A duration that may be 0 (never), not negative or infinite."""
    return _number(query, name, default, zero=True)


def _number(query: dict[str, str], name: str, default: float, *, zero: bool) -> float:
    """The finite number ``name`` of the URL's query: above 0, or from 0 if ``zero``."""
    text = query.pop(name, None)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        what = "a number of seconds" if zero else "a positive number"
        raise UsageError(f"the Redis URL's {name} must be {what}, not {text!r}")
    return value


def _lost(exc: TransportError) -> bool:
    """Whether ``exc`` says Redis is out of reach or lost the group, which a subscription
    outlives; not a connection refused, nor any other answer of Redis."""
    cause = exc.__cause__
    if isinstance(cause, _REFUSED):
        return False
    if isinstance(cause, _UNREACHABLE):
        return True
    return isinstance(cause, redis.exceptions.ResponseError) and _NOGROUP in str(cause)


def _millis(entry_id: bytes | str) -> float:
    """The time in an entry id (``<ms>-<n>``), in seconds."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0]) / 1000.0


def _seq(entry_id: str) -> int:
    """An entry id as one increasing number: milliseconds x 10^6 + its sequence."""
    ms, _, n = entry_id.partition("-")
    return int(ms) * 1_000_000 + int(n or 0)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """redis-py's URL (our parameters taken out), and the endpoint's options."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise UsageError("a Redis URL starts with redis:// or rediss://")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    stream = query.pop("stream", DEFAULT_STREAM)
    lease = _positive(query, "lease", DEFAULT_LEASE)
    batch = _positive(query, "batch", DEFAULT_BATCH)
    reconnect = _seconds(query, "reconnect", DEFAULT_RECONNECT)
    maxlen = query.pop("maxlen", None)
    if batch != int(batch) or (maxlen is not None and not maxlen.isdigit()):
        raise UsageError("the Redis URL's batch and maxlen are whole numbers")
    rest = urlunsplit((*parts[:3], urlencode(query), parts.fragment))
    maximum = None if maxlen is None else int(maxlen)
    options = {"stream": stream, "lease": lease, "batch": int(batch), "maxlen": maximum}
    return rest, {**options, "reconnect": reconnect}


def _held(delivery: Delivery) -> RedisDelivery:
    if not isinstance(delivery, RedisDelivery):
        raise UsageError("settle deliveries of this Redis endpoint's subscriptions only")
    return delivery


def _young(delivery: RedisDelivery, lease: float) -> bool:
    """Read less than half a lease ago: no other consumer can have reclaimed it yet. The half
    is the margin for the read's round trip (its idle clock started at the server before
    ``read_at``) and for the server's clock running fast."""
    return time.monotonic() - delivery.read_at < lease / 2


def _settle_args(delivery: RedisDelivery, settlement: Settlement, lease: float) -> list[Any]:
    """The settle script's action and its arguments."""
    match settlement:
        case Ack():
            return ["ack"]
        case Retry(delay=delay):
            idle = max(0.0, lease - delay)  # due once idle for the lease
            return ["retry", int(idle * 1000)]
        case DeadLetter(reason=reason):
            return [
                "dead", delivery.topic, delivery.body, DeadLetterReason(reason).value,
                delivery.attempts or 1,
            ]  # fmt: skip


def _check_acked(acked: object) -> None:
    """``XACK``'s count of one entry: 0 means it was not pending (settled already)."""
    if acked != 1:
        raise LeaseLost("this entry was settled already")


def _check_settled(done: object) -> None:
    """The settle script's answer: 0 means the entry is no longer this consumer's."""
    if done != 1:
        raise LeaseLost("another consumer of the group has claimed this entry since")


def _entries(got: object) -> list[tuple[bytes, Any, int]]:
    """The entries of an ``XREADGROUP`` reply on one stream, each delivered once so far."""
    if not got:
        return []
    if isinstance(got, dict):  # RESP3 (protocol=3): {stream: [[entries]]}
        [entries] = got.values()
        found = entries[0] if entries and isinstance(entries[0], list) else entries
    else:
        found = cast(list[Any], got)[0][1]  # RESP2: [[stream, [entries]]]
    return [(entry_id, raw, 1) for entry_id, raw in found]


def _reclaimed(got: object) -> list[tuple[bytes, Any, int]]:
    """The entries of the reclaim script's reply, each with its delivery count."""
    return [(entry_id, raw, int(count)) for entry_id, raw, count in cast(list[Any], got)]


def _fields(raw: object) -> Mapping[bytes, bytes]:
    """An entry's fields as a mapping, from redis-py's dict or a script's flat list."""
    if isinstance(raw, dict):
        return raw
    items = list(cast(list[bytes], raw))
    return dict(zip(items[::2], items[1::2], strict=False))


def _delivery(
    entry_id: bytes, raw: object, attempts: int, now: float, *, topics: Topics, group: str,
    consumer: str,
) -> RedisDelivery | None:  # fmt: skip
    """The entry as a delivery; None if the group skips it (its topic matches none of the
    group's patterns, or it was redriven for another group)."""
    fields = _fields(raw)
    topic = _text(fields.get(b"topic", b""))
    addressed = fields.get(b"for")
    if (addressed is not None and addressed != group.encode()) or topic not in topics:
        return None
    tag = _text(entry_id)
    # RedisDelivery(tag=tag, ...), its slots set directly (see base.delivery)
    made = object.__new__(RedisDelivery)
    s0, s1, s2, s3, s4, s5, s6, s7 = _REDIS_DELIVERY
    s0(made, tag)
    s1(made, group)
    s2(made, topic)
    s3(made, fields.get(b"body", b""))
    s4(made, attempts)
    s5(made, tag)
    s6(made, consumer)
    s7(made, now)
    return made


def _dead_records(group: str, entries: object) -> list[DeadLetterRecord]:
    records = []
    for dead_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], entries):
        original = _text(fields.get(b"id", b"0-0"))
        attempts = _text(fields.get(b"attempts", b"1"))
        records.append(
            DeadLetterRecord(
                queue=group,
                seq=_seq(original),
                topic=_text(fields.get(b"topic", b"")),
                body=fields.get(b"body", b""),
                reason=_text(fields.get(b"reason", b"")),
                attempts=int(attempts) if attempts.isdigit() else 1,
                published=_millis(original),
                dead_at=_millis(dead_id),
            )
        )
    return records


def _consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _checked_client(make: Callable[[str], _C], url: str) -> _C:
    """``make(url)``, a redis-py client whose parameters are checked now, not at first use."""
    with map_exceptions(_URL_MAPPING):
        client = make(url)
        pool = cast(Any, client).connection_pool
        pool.connection_class(**pool.connection_kwargs)
    return client


def _check_group(topics: Topics, group: str) -> None:
    if not isinstance(topics, Topics) or topics.dialect is not Dialect.AMQP:
        raise UsageError("Redis groups take AMQP patterns ('.', '*' and '#')")
    if not isinstance(group, str) or not group:
        raise UsageError("a consumer group is named by a non-empty string")


class _Settling:
    """Map redis-py's errors for a settlement or heartbeat: Redis unreachable is LeaseLost.

    A class with one instance (:data:`_settling`), not a generator-based context manager: that
    costs several microseconds, and every message is settled through this.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if not isinstance(exc, TransportError):
            try:
                _MAPPED.__exit__(kind, exc, traceback)  # raises ours from a redis-py error
            except TransportError as mapped:
                self._lease_lost(mapped)
                raise
            return  # not redis-py's: unchanged
        self._lease_lost(exc)  # raised as ours inside: LeaseLost stays, others as mapped

    @staticmethod
    def _lease_lost(exc: TransportError) -> None:
        """Raise LeaseLost if ``exc`` says Redis could not be reached (and did not refuse)."""
        lost = exc.__cause__
        if isinstance(exc, LeaseLost) or not _lost(exc):
            return
        if isinstance(lost, redis.exceptions.ResponseError):
            raise LeaseLost(
                "Redis no longer has this entry's group (the stream was deleted, or a restart "
                "lost it): there is nothing left to settle"
            ) from lost
        raise LeaseLost(
            f"Redis could not be reached ({type(lost).__name__}): the entry stays pending, to "
            "be reclaimed once idle for the lease"
        ) from lost


_settling: Final = _Settling()


@contextmanager
def _creating_group() -> Iterator[None]:
    """Around ``XGROUP CREATE``: a group that exists already is left as it is (BUSYGROUP)."""
    with _MAPPED:
        try:
            yield
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class _Stream(Generic[_S]):
    """What both endpoints share: the stream, its options and scripts, and the commands each
    seam call sends, built here once (the endpoints only send them, sync or asyncio)."""

    #: Groups filter topics with AMQP patterns (``.``, ``*``, ``#``).
    dialect: Final = Dialect.AMQP

    def __init__(
        self, register: Callable[[str], _S], *, stream: str, lease: float, batch: int,
        maxlen: int | None, reconnect: float,
    ) -> None:  # fmt: skip
        if not isinstance(stream, str) or not stream:
            raise UsageError("a Redis stream is named by a non-empty string")
        if not lease > 0 or not batch >= 1 or (maxlen is not None and maxlen < 1):
            raise UsageError("lease must be positive, batch and maxlen at least 1")
        if not 0 <= reconnect < float("inf"):
            raise UsageError("reconnect is a number of seconds, 0 for never")
        self.stream = stream
        self.lease = float(lease)
        self.batch = int(batch)
        self.maxlen = maxlen
        self.reconnect = float(reconnect)
        self._settle_script = register(_SETTLE)
        self._reclaim_script = register(_RECLAIM)
        self._redrive_script = register(_REDRIVE)
        self._forget_script = register(_FORGET)

    def dead_stream(self, group: str) -> str:
        """The key of ``group``'s dead letters."""
        return f"{self.stream}:dead:{group}"

    def _publish_fields(self, topic: str, body: bytes) -> dict[Any, Any]:
        if not isinstance(topic, str) or not topic:
            raise UsageError("topic must be a non-empty string")
        return {"topic": topic, "body": bytes(body)}

    def _settle_call(
        self, delivery: Delivery, settlement: Settlement | None
    ) -> tuple[RedisDelivery, list[Any] | None]:
        """The delivery, and the settle script's keys and arguments; None: a plain ``XACK``
        (an Ack within half a lease, see the module). ``settlement`` None: extend the lease."""
        held = _held(delivery)
        if settlement is None:
            return held, self._script_args(held, ["extend"])
        if isinstance(settlement, Ack) and _young(held, self.lease):
            return held, None
        return held, self._script_args(held, _settle_args(held, settlement, self.lease))

    def _script_args(self, held: RedisDelivery, action: list[Any]) -> list[Any]:
        keys = [self.stream, self.dead_stream(held.queue)]
        return [keys, [held.queue, held.consumer, held.tag, *action]]

    def _reclaim_args(self, group: str, consumer: str) -> list[Any]:
        return [group, consumer, int(self.lease * 1000), self.batch]

    def _since(self, now: object) -> str:
        """The entry id of Redis's clock (``TIME``'s reply): a lost group is made again
        after it, at the latest."""
        seconds, micros = cast(tuple[Any, Any], now)
        return f"{int(seconds) * 1000 + int(micros) // 1000}-0"

    def _read_args(self, group: str, consumer: str, block: float) -> dict[str, Any]:
        return {
            "groupname": group, "consumername": consumer, "streams": {self.stream: ">"},
            "count": self.batch, "block": max(1, int(block * 1000)),
        }  # fmt: skip


class RedisEndpoint(_Stream[Script]):
    """A Redis stream reached by URL: publish, consumer groups, dead letters (see the module)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str = DEFAULT_STREAM,
        lease: float = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        maxlen: int | None = None,
        reconnect: float = DEFAULT_RECONNECT,
    ) -> None:
        """Use ``client`` (bytes responses: ``decode_responses=False``) and ``stream``."""
        super().__init__(
            client.register_script, stream=stream, lease=lease, batch=batch, maxlen=maxlen,
            reconnect=reconnect,
        )  # fmt: skip
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> RedisEndpoint:
        """``redis://[user:password@]host[:port][/db]?stream=NAME&lease=S&batch=N&maxlen=N``
        ``&reconnect=S`` (``rediss://`` for TLS); other parameters go to redis-py."""
        rest, options = _parse_url(url)
        return cls(_checked_client(redis.Redis.from_url, rest), **options)

    # the broker seam ------------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> str:
        """``XADD`` the sealed bytes with their topic; the entry id. ``now`` is not used."""
        fields = self._publish_fields(topic, body)
        with _MAPPED:
            entry_id = self.client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        return _text(entry_id)

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack, retry after ``min(delay, lease)``, or dead-letter; LeaseLost if reclaimed."""
        self._settle(*self._settle_call(delivery, settlement))

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """``XCLAIM ... 0 <id> JUSTID``: the entry's idle clock restarts (another lease)."""
        self._settle(*self._settle_call(delivery, None))

    def _settle(self, held: RedisDelivery, script: list[Any] | None) -> None:
        with _settling:
            if script is None:
                _check_acked(self.client.xack(self.stream, held.queue, held.tag))
            else:
                _check_settled(self._settle_script(*script))

    # groups -----------------------------------------------------------------------------

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        """Create ``group`` on the stream (from its end; an existing group keeps its place)
        and attach a new consumer that hands over the entries matching ``topics``."""
        _check_group(topics, group)
        with _creating_group():
            self.client.xgroup_create(self.stream, group, id="$", mkstream=True)
        with _MAPPED:
            since = self._since(self.client.time())
        return _RedisSubscription(self, topics, group, _consumer_name(), since)

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """``group``'s dead letters, oldest first (``XRANGE``), without consuming them."""
        with _MAPPED:
            entries = self.client.xrange(self.dead_stream(group), count=limit)
        return _dead_records(group, entries)

    def redrive(self, group: str, /) -> int:
        """Put ``group``'s dead letters back on the stream for ``group`` only; how many."""
        moved = 0
        keys = [self.stream, self.dead_stream(group)]
        with _MAPPED:
            while count := int(self._redrive_script(keys=keys, args=[group, 100])):
                moved += count
        return moved

    def close(self) -> None:
        """Close the connection pool."""
        with _MAPPED:
            self.client.close()

    def __enter__(self) -> RedisEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # what subscriptions call ------------------------------------------------------------

    def _reclaim(self, group: str, consumer: str) -> list[tuple[bytes, Any, int]]:
        with _MAPPED:
            got = self._reclaim_script(keys=[self.stream], args=self._reclaim_args(group, consumer))
        return _reclaimed(got)

    def _read(self, group: str, consumer: str, block: float) -> list[tuple[bytes, Any, int]]:
        with _MAPPED:
            got = self.client.xreadgroup(**self._read_args(group, consumer, block))
        return _entries(got)

    def _regroup(self, group: str, since: str) -> None:
        with _creating_group():
            self.client.xgroup_create(self.stream, group, id=since, mkstream=True)

    def _skip(self, group: str, entry_ids: Sequence[bytes]) -> None:
        if entry_ids:
            with _MAPPED:
                self.client.xack(self.stream, group, *entry_ids)

    def _forget(self, group: str, consumer: str) -> None:
        with _MAPPED:
            self._forget_script(keys=[self.stream], args=[group, consumer])


class _Intake:
    """One consumer of a group without its I/O, which both subscriptions drive: the entries
    it took and has not handed over, when it next reclaims due entries, how long it blocks
    on a read, and when it has been idle long enough to stop. Each ``deliveries`` is::

        intake.start()
        while True:
            hand over each of intake.leased()
            if intake.reclaim_due():
                skip(intake.take(reclaim(), intake.now))
                if intake.buffer: continue
            block = intake.block(idle_timeout); stop if None
            entries = read(block)
            skip(intake.take(entries, time.monotonic()))
            intake.served()

    and when a reclaim or read raises TransportError ``exc``::

        while True:
            sleep(intake.pause(exc, time.monotonic()))  # raises exc once out of time
            try: regroup(intake.since)
            except TransportError as again: exc = again
            else: intake.resumed(); break
    """

    def __init__(
        self, topics: Topics, group: str, consumer: str, lease: float, *, reconnect: float,
        since: str,
    ) -> None:  # fmt: skip
        self.topics = topics
        self.group = group
        self.consumer = consumer
        self.lease = lease
        self.reconnect = reconnect
        #: The last entry id seen (at first, Redis's clock when subscribing): where a group
        #: Redis lost is made again.
        self.since = since
        self.outage_since: float | None = None  #: when Redis was first found gone, if it is
        self.next_pause = _FIRST_PAUSE
        self.every = min(_MAX_BLOCK, lease / 4)  #: how often due entries are reclaimed
        self.buffer: deque[RedisDelivery] = deque()
        self.reclaimed_at = float("-inf")
        self.now = self.idle_since = time.monotonic()
        #: Entries acked unseen: their topic matched none of the group's patterns, or they
        #: were redriven for another group.
        self.skipped = 0

    def start(self) -> None:
        self.now = self.idle_since = time.monotonic()

    def leased(self) -> Iterator[RedisDelivery]:
        """The buffered entries still within their lease (the others may be another
        consumer's by now, and are dropped: they stay pending, to be reclaimed)."""
        self.now = time.monotonic()
        while self.buffer:
            delivery = self.buffer.popleft()
            if self.now - delivery.read_at < self.lease:
                yield delivery
                self.idle_since = self.now = time.monotonic()

    def reclaim_due(self) -> bool:
        if self.now - self.reclaimed_at < self.every:
            return False
        self.reclaimed_at = self.now
        return True

    def block(self, idle_timeout: float | None) -> float | None:
        """How long the next read may block; None: idle for ``idle_timeout``, stop."""
        if idle_timeout is None:
            return self.every
        left = idle_timeout - (self.now - self.idle_since)
        return None if left <= 0 else min(self.every, left)

    def served(self) -> None:
        """A read succeeded: any outage is over."""
        self.outage_since = None
        self.next_pause = _FIRST_PAUSE

    def pause(self, exc: TransportError, now: float) -> float:
        """After ``exc`` from a reclaim, read or try to reach Redis again at ``now``: how long
        to wait before the next try (doubling up to 1 s). Raises ``exc`` if it is not Redis
        out of reach or a lost group, or once ``reconnect`` seconds have passed since the
        outage began."""
        if not self.reconnect or not _lost(exc):
            raise exc
        if self.outage_since is None:
            self.outage_since = now
        left = self.outage_since + self.reconnect - now
        if left <= 0:
            raise exc
        pause, self.next_pause = self.next_pause, min(_LAST_PAUSE, self.next_pause * 2)
        return min(pause, left)

    def resumed(self) -> None:
        """Redis is reached again and the group is in place: the entries taken before are
        dropped (they stay pending, to be reclaimed once idle for the lease, which is due
        now), and the time spent reconnecting is not idle time."""
        self.buffer.clear()
        self.reclaimed_at = float("-inf")
        self.now = self.idle_since = time.monotonic()

    def take(self, entries: Sequence[tuple[bytes, Any, int]], now: float) -> list[bytes]:
        """Buffer the entries the group takes, read at ``now``; the ids of those it skips
        (the caller acks them)."""
        if entries and _seq(last := _text(entries[-1][0])) > _seq(self.since):
            self.since = last  # a read's entries come in order, a reclaim's are older
        skipped = []
        for entry_id, raw, attempts in entries:
            delivery = _delivery(
                entry_id, raw, attempts, now, topics=self.topics, group=self.group,
                consumer=self.consumer,
            )  # fmt: skip
            if delivery is None:
                skipped.append(entry_id)
            else:
                self.buffer.append(delivery)
        self.skipped += len(skipped)
        return skipped


class _RedisSubscription:
    """One consumer of a group: reclaims due entries first, then reads new ones."""

    def __init__(
        self, endpoint: RedisEndpoint, topics: Topics, group: str, consumer: str, since: str
    ) -> None:
        self._endpoint = endpoint
        self._intake = _Intake(
            topics, group, consumer, endpoint.lease, reconnect=endpoint.reconnect, since=since
        )
        self.consumer = consumer

    @property
    def skipped(self) -> int:
        """Entries acked unseen (see :class:`_Intake`)."""
        return self._intake.skipped

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        """Each next entry of the group, as the module says; stop after ``idle_timeout`` s.

        An entry handed over and never settled stays pending with this consumer: once idle
        for the lease it is reclaimed, by this subscription as by any other of the group.
        Redis out of reach, or the group lost, is outlived for the endpoint's ``reconnect``
        seconds (see the module), which are not idle time.
        """
        endpoint, intake = self._endpoint, self._intake
        group, consumer = intake.group, intake.consumer
        intake.start()
        while True:
            yield from intake.leased()
            try:
                if intake.reclaim_due():
                    reclaimed = endpoint._reclaim(group, consumer)
                    endpoint._skip(group, intake.take(reclaimed, intake.now))
                    if intake.buffer:
                        continue
                block = intake.block(idle_timeout)
                if block is None:
                    return
                read = endpoint._read(group, consumer, block)
                endpoint._skip(group, intake.take(read, time.monotonic()))
                intake.served()
            except TransportError as exc:
                self._recover(exc)

    def _recover(self, exc: TransportError) -> None:
        """Reach Redis again and put the group back, or raise once out of time."""
        intake = self._intake
        while True:
            time.sleep(intake.pause(exc, time.monotonic()))
            try:
                self._endpoint._regroup(intake.group, intake.since)
            except TransportError as again:
                exc = again
            else:
                intake.resumed()
                return

    def close(self) -> None:
        """Detach: entries read but not handed over stay pending, to be reclaimed after the
        lease; the consumer name is removed from the group once nothing is pending with it."""
        self._intake.buffer.clear()
        self._endpoint._forget(self._intake.group, self.consumer)


class AsyncRedisEndpoint(_Stream[AsyncScript]):
    """:class:`RedisEndpoint` on ``redis.asyncio``: the same stream, groups, scripts and rules,
    for :class:`~letterlock.transports.AsyncSealedConsumer` (an
    :class:`~letterlock.transports.base.AsyncBroker`); ``subscribe``, ``dead_letters``,
    ``redrive`` and ``close`` are coroutines, and a subscription's ``deliveries`` an async
    iterator."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        stream: str = DEFAULT_STREAM,
        lease: float = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        maxlen: int | None = None,
        reconnect: float = DEFAULT_RECONNECT,
    ) -> None:
        """As :class:`RedisEndpoint`, with an asyncio client."""
        super().__init__(
            client.register_script, stream=stream, lease=lease, batch=batch, maxlen=maxlen,
            reconnect=reconnect,
        )  # fmt: skip
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> AsyncRedisEndpoint:
        """As :meth:`RedisEndpoint.from_url`."""
        rest, options = _parse_url(url)
        return cls(_checked_client(redis.asyncio.Redis.from_url, rest), **options)

    async def publish(self, topic: str, body: bytes, *, now: float | None = None) -> str:
        """As :meth:`RedisEndpoint.publish`."""
        fields = self._publish_fields(topic, body)
        with _MAPPED:
            entry_id = await self.client.xadd(
                self.stream, fields, maxlen=self.maxlen, approximate=True
            )
        return _text(entry_id)

    async def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """As :meth:`RedisEndpoint.settle`."""
        await self._settle(*self._settle_call(delivery, settlement))

    async def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """As :meth:`RedisEndpoint.extend_lease`."""
        await self._settle(*self._settle_call(delivery, None))

    async def _settle(self, held: RedisDelivery, script: list[Any] | None) -> None:
        with _settling:
            if script is None:
                _check_acked(await self.client.xack(self.stream, held.queue, held.tag))
            else:
                _check_settled(await self._settle_script(*script))

    async def subscribe(self, topics: Topics, *, group: str) -> AsyncRedisSubscription:
        """As :meth:`RedisEndpoint.subscribe`."""
        _check_group(topics, group)
        with _creating_group():
            await self.client.xgroup_create(self.stream, group, id="$", mkstream=True)
        with _MAPPED:
            since = self._since(await self.client.time())
        return AsyncRedisSubscription(self, topics, group, _consumer_name(), since)

    async def dead_letters(
        self, group: str, /, *, limit: int | None = None
    ) -> list[DeadLetterRecord]:
        """As :meth:`RedisEndpoint.dead_letters`."""
        with _MAPPED:
            entries = await self.client.xrange(self.dead_stream(group), count=limit)
        return _dead_records(group, entries)

    async def redrive(self, group: str, /) -> int:
        """As :meth:`RedisEndpoint.redrive`."""
        moved = 0
        keys = [self.stream, self.dead_stream(group)]
        with _MAPPED:
            while count := int(await self._redrive_script(keys=keys, args=[group, 100])):
                moved += count
        return moved

    async def close(self) -> None:
        """Close the connection pool."""
        with _MAPPED:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # what subscriptions call ------------------------------------------------------------

    async def _reclaim(self, group: str, consumer: str) -> list[tuple[bytes, Any, int]]:
        with _MAPPED:
            got = await self._reclaim_script(
                keys=[self.stream], args=self._reclaim_args(group, consumer)
            )
        return _reclaimed(got)

    async def _read(self, group: str, consumer: str, block: float) -> list[tuple[bytes, Any, int]]:
        with _MAPPED:
            got = await self.client.xreadgroup(**self._read_args(group, consumer, block))
        return _entries(got)

    async def _regroup(self, group: str, since: str) -> None:
        with _creating_group():
            await self.client.xgroup_create(self.stream, group, id=since, mkstream=True)

    async def _skip(self, group: str, entry_ids: Sequence[bytes]) -> None:
        if entry_ids:
            with _MAPPED:
                await self.client.xack(self.stream, group, *entry_ids)

    async def _forget(self, group: str, consumer: str) -> None:
        with _MAPPED:
            await self._forget_script(keys=[self.stream], args=[group, consumer])


class AsyncRedisSubscription:
    """:class:`_RedisSubscription` for asyncio: one consumer of a group."""

    def __init__(
        self, endpoint: AsyncRedisEndpoint, topics: Topics, group: str, consumer: str, since: str
    ) -> None:
        self._endpoint = endpoint
        self._intake = _Intake(
            topics, group, consumer, endpoint.lease, reconnect=endpoint.reconnect, since=since
        )
        self.consumer = consumer

    @property
    def skipped(self) -> int:
        """As :attr:`_RedisSubscription.skipped`."""
        return self._intake.skipped

    async def deliveries(self, *, idle_timeout: float | None = None) -> AsyncIterator[Delivery]:
        """As :meth:`_RedisSubscription.deliveries`."""
        endpoint, intake = self._endpoint, self._intake
        group, consumer = intake.group, intake.consumer
        intake.start()
        while True:
            for delivery in intake.leased():
                yield delivery
            try:
                if intake.reclaim_due():
                    reclaimed = await endpoint._reclaim(group, consumer)
                    await endpoint._skip(group, intake.take(reclaimed, intake.now))
                    if intake.buffer:
                        continue
                block = intake.block(idle_timeout)
                if block is None:
                    return
                read = await endpoint._read(group, consumer, block)
                await endpoint._skip(group, intake.take(read, time.monotonic()))
                intake.served()
            except TransportError as exc:
                await self._recover(exc)

    async def _recover(self, exc: TransportError) -> None:
        """As :meth:`_RedisSubscription._recover`."""
        intake = self._intake
        while True:
            await asyncio.sleep(intake.pause(exc, time.monotonic()))
            try:
                await self._endpoint._regroup(intake.group, intake.since)
            except TransportError as again:
                exc = again
            else:
                intake.resumed()
                return

    async def close(self) -> None:
        """As :meth:`_RedisSubscription.close`."""
        self._intake.buffer.clear()
        await self._endpoint._forget(self._intake.group, self.consumer)
