"""ZeroMQ (pyzmq): sealed messages over PUB/SUB or PUSH/PULL sockets. At most once, by nature.

ZeroMQ is no broker: nothing stores a message, nothing acknowledges it, nothing delivers it
again. A message sent while no consumer is connected, or dropped at a full queue (a ``SUB``
over its high-water mark), or held by a consumer that dies, is lost; there are no durable
groups, no dead-letter store, no attempt counts and no leases. Use it where losing a message
is acceptable; letterlock still signs, encrypts and binds each one to its topic, and the
consumer still refuses forgeries, tampering, replays and re-routed messages.

``ZmqEndpoint.from_url("zmq+tcp://127.0.0.1:5555?pattern=pubsub")`` (or ``zmq+ipc:///path``).
Two frames per message: the topic (UTF-8), then the sealed bytes.

=====================  ==============================================================
``pattern=pubsub``     the publisher is an ``XPUB`` socket (a ``PUB`` that sees who
(the default)          subscribes), consumers ``SUB`` sockets subscribed to the literal
                       prefix of each pattern; every subscriber gets every message (a
                       group name means nothing). ``bind=publisher`` (the default): the
                       publisher binds, subscribers connect; ``bind=consumer``: one
                       subscriber binds and publishers connect (it takes a publisher in,
                       and sends it its subscriptions, only while it waits in
                       ``deliveries``).
``pattern=pushpull``   the publisher is a ``PUSH`` socket, consumers ``PULL`` sockets;
                       each message goes to one consumer. ``bind=consumer`` (the
                       default): one consumer binds and any number of publishers
                       connect (a connected ``PUSH`` queues what it sends until the
                       consumer is there, up to its high-water mark);
                       ``bind=publisher``: the publisher binds and consumers connect and
                       share its messages round-robin.
=====================  ==============================================================

``wait=SECONDS`` (default 1): a ``SUB`` joins a ``PUB`` some milliseconds after it connects,
and a publisher drops what it sends before. So a publisher gives subscribers up to ``wait``
seconds after its socket opened to subscribe to a message's topic before it sends (the
``XPUB`` sees their subscriptions); later, it sends at once, and what nobody subscribes to is
dropped unseen. A bound ``PUSH`` waits up to ``wait`` s for a consumer, then raises
TransportError. Closing waits up to ``wait`` + 1 s to hand over what is queued.

Settlement, as :mod:`letterlock.transports.base` maps it: Ack and ``extend_lease`` do nothing.
A Retry cannot be expressed, since nothing is delivered again: the consumer asks for one only
for a copy that another consumer is handling (busy, with a shared replay store), and that copy
is dropped, the other consumer handles it. A DeadLetter is sent as ``[topic, reason, body]`` on
a ``PUSH`` socket connected to ``dead=ADDRESS`` (a ZeroMQ address such as
``tcp://127.0.0.1:5556``) if the URL names one, and dropped otherwise (and when that socket's
queue is full): the consumer's warning and its ``dead_lettered:<reason>`` count are the report,
and :attr:`ZmqEndpoint.dead_letters_dropped` counts them. ``dead_letters`` is always empty and
``redrive`` moves nothing. ``lease=SECONDS`` is accepted, as by every endpoint, and means
nothing here: a delivery is never given to another consumer.

Every ``zmq.ZMQError`` (``zmq.Again`` included) leaves as
:class:`~letterlock.errors.TransportError`. A socket is used from the thread that made it: open
one endpoint per thread.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import zmq

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import DeadLetterRecord, Delivery, Subscription, delivery
from letterlock.transports.decide import DeadLetter, DeadLetterReason, Settlement

__all__ = ["ZmqEndpoint"]

PATTERNS: Final = ("pubsub", "pushpull")
DEFAULT_WAIT: Final = 1.0
_MAPPING: Final[ExceptionMapping] = {zmq.ZMQError: TransportError}
#: map_exceptions(_MAPPING), made once: it keeps no state, and adapters enter it per message.
_MAPPED: Final = map_exceptions(_MAPPING)
_DEFAULT_BIND: Final = {"pubsub": "publisher", "pushpull": "consumer"}


def _prefix(pattern: str) -> str:
    """The literal words before a pattern's first wildcard: what a ``SUB`` can filter on."""
    literal = []
    for word in pattern.split("."):
        if word in ("*", "#"):
            break
        literal.append(word)
    return ".".join(literal)


def _address(value: str) -> str:
    return value.removeprefix("zmq+")


class ZmqEndpoint:
    """ZeroMQ sockets reached by URL: at most once, no durable groups (see the module)."""

    #: Subscriptions filter topics with AMQP patterns (``.``, ``*``, ``#``).
    dialect: Final = Dialect.AMQP

    def __init__(
        self,
        address: str,
        *,
        pattern: str = "pubsub",
        bind: str | None = None,
        wait: float = DEFAULT_WAIT,
        dead: str | None = None,
    ) -> None:
        """``address`` is a ZeroMQ address (``tcp://host:port``, ``ipc:///path``)."""
        if pattern not in PATTERNS:
            raise UsageError(f"a ZeroMQ pattern is pubsub or pushpull, not {pattern!r}")
        bind = _DEFAULT_BIND[pattern] if bind is None else bind
        if bind not in ("publisher", "consumer"):
            raise UsageError(f"bind is publisher or consumer, not {bind!r}")
        if not wait >= 0:
            raise UsageError("wait must not be negative")
        self.address = address
        self.pattern = pattern
        self.bind = bind
        self.wait = float(wait)
        #: Dead letters that no socket took (none was configured, or its queue was full).
        self.dead_letters_dropped = 0
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._publisher: zmq.Socket[bytes] | None = None
        self._opened_at = 0.0
        self._subscribed: set[bytes] = set()  # prefixes the XPUB has seen subscribed
        self._dead: zmq.Socket[bytes] | None = None
        self._consumers: list[zmq.Socket[bytes]] = []  # closed with the endpoint, at the latest
        if dead is not None:
            with _MAPPED:
                self._dead = self._socket(zmq.PUSH)
                self._dead.connect(_address(dead))

    @classmethod
    def from_url(cls, url: str) -> ZmqEndpoint:
        """``zmq+tcp://host:port`` or ``zmq+ipc:///path``, with ``?pattern=pubsub|pushpull
        &bind=publisher|consumer&wait=S&dead=ADDRESS&lease=S`` (lease: accepted, unused)."""
        parts = urlsplit(url)
        if parts.scheme not in ("zmq+tcp", "zmq+ipc") or parts.fragment:
            raise UsageError("a ZeroMQ URL is zmq+tcp://host:port or zmq+ipc:///path")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        known = {"pattern", "bind", "wait", "dead", "lease"}
        if set(query) - known:
            unknown = ", ".join(sorted(set(query) - known))
            raise UsageError(f"a ZeroMQ URL takes {', '.join(sorted(known))}, not {unknown}")
        numbers = {}
        for name in ("wait", "lease"):
            try:
                numbers[name] = float(query.get(name, DEFAULT_WAIT))
            except ValueError:
                raise UsageError(f"the ZeroMQ URL's {name} is a number of seconds") from None
        if not numbers["lease"] > 0:
            raise UsageError("lease must be positive")
        address = f"{_address(parts.scheme)}://{parts.netloc}{parts.path}"
        return cls(
            address, pattern=query.get("pattern", "pubsub"), bind=query.get("bind"),
            wait=numbers["wait"], dead=query.get("dead"),
        )  # fmt: skip

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, int((self.wait + 1.0) * 1000))
        return socket

    def _open(self, socket: zmq.Socket[bytes], *, binds: bool) -> None:
        if binds:
            socket.bind(self.address)
        else:
            socket.connect(self.address)

    # the broker seam ------------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> None:
        """Send ``[topic, body]``: to every subscriber of the topic (pubsub), to one consumer
        (pushpull). Nothing confirms it; on PUB/SUB what nobody subscribes to is dropped."""
        if not isinstance(topic, str) or not topic:
            raise UsageError("topic must be a non-empty string")
        frames = [topic.encode("utf-8"), bytes(body)]
        with _MAPPED:
            publisher = self._publisher_socket()
            if self.pattern == "pubsub":
                self._await_subscriber(publisher, frames[0])
            publisher.send_multipart(frames)

    def _publisher_socket(self) -> zmq.Socket[bytes]:
        if self._publisher is None:
            socket = self._socket(zmq.XPUB if self.pattern == "pubsub" else zmq.PUSH)
            if self.pattern == "pushpull":
                socket.setsockopt(zmq.SNDTIMEO, int(self.wait * 1000))
            self._open(socket, binds=self.bind == "publisher")
            self._publisher = socket
            self._opened_at = time.monotonic()
        return self._publisher

    def _await_subscriber(self, publisher: zmq.Socket[bytes], topic: bytes) -> None:
        """Take in subscriptions; within ``wait`` s of opening, wait for one to ``topic``."""
        deadline = self._opened_at + self.wait
        while True:
            while publisher.poll(0, zmq.POLLIN):
                event = publisher.recv()
                if event[:1] == b"\x01":
                    self._subscribed.add(event[1:])
                elif event[:1] == b"\x00":
                    self._subscribed.discard(event[1:])
            if any(topic.startswith(prefix) for prefix in self._subscribed):
                return
            left = deadline - time.monotonic()
            if left <= 0 or not publisher.poll(int(left * 1000) + 1, zmq.POLLIN):
                return

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """A dead letter goes to the ``dead`` socket, or is dropped; nothing else is said."""
        if not isinstance(settlement, DeadLetter):
            return  # Ack: nobody to tell; Retry: cannot come back (a busy copy, dropped)
        reason = DeadLetterReason(settlement.reason).value.encode()
        if self._dead is None:
            self.dead_letters_dropped += 1
            return
        frames = [delivery.topic.encode("utf-8", "replace"), reason, delivery.body]
        try:
            with _MAPPED:
                self._dead.send_multipart(frames, flags=zmq.NOBLOCK)
        except TransportError:  # its queue is full: the consumer's log and metrics remain
            self.dead_letters_dropped += 1

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Nothing: ZeroMQ never gives a delivery to another consumer."""

    # groups (not durable) -----------------------------------------------------------------

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        """Open a consumer socket for ``topics`` (a ``SUB`` subscribed to their prefixes, or a
        ``PULL``). ``group`` only names its deliveries: nothing is kept for it."""
        if not isinstance(topics, Topics) or topics.dialect is not Dialect.AMQP:
            raise UsageError("ZeroMQ subscriptions take AMQP patterns ('.', '*' and '#')")
        with _MAPPED:
            if self.pattern == "pubsub":
                socket = self._socket(zmq.SUB)
                for prefix in sorted({_prefix(p) for p in topics.patterns}):
                    socket.setsockopt(zmq.SUBSCRIBE, prefix.encode("utf-8"))
            else:
                socket = self._socket(zmq.PULL)
            socket.setsockopt(zmq.LINGER, 0)
            self._open(socket, binds=self.bind == "consumer")
        self._consumers = [s for s in self._consumers if not s.closed]
        self._consumers.append(socket)
        return _ZmqSubscription(socket, topics, group)

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """Always empty: ZeroMQ keeps nothing (see ``dead=`` in the module)."""
        return []

    def redrive(self, group: str, /) -> int:
        """Always 0: there is nothing kept to redrive."""
        return 0

    def close(self) -> None:
        """Close the sockets (waiting up to ``wait`` + 1 s to hand over what they queued)."""
        with _MAPPED:
            for consumer in self._consumers:
                consumer.close(linger=0)
            for socket in (self._publisher, self._dead):
                if socket is not None:
                    socket.close()
            self._consumers, self._publisher, self._dead = [], None, None
            self._context.term()

    def __enter__(self) -> ZmqEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ZmqSubscription:
    """One consumer socket; what arrives while it is closed is lost."""

    def __init__(self, socket: zmq.Socket[bytes], topics: Topics, group: str) -> None:
        self._socket = socket
        self._topics = topics
        self._group = group
        self._count = itertools.count(1)
        #: Messages dropped unseen: their topic matched none of the patterns.
        self.skipped = 0

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        """Each message that arrives; stop after ``idle_timeout`` s without one."""
        # One map_exceptions around the whole loop, not one per message (a context manager
        # entered per message cost ~80 us of a ~200 us receive). The handler runs between
        # next() calls, outside this frame, so only this loop's zmq calls are mapped.
        with _MAPPED:
            yield from self._receive(idle_timeout)

    def _receive(self, idle_timeout: float | None) -> Iterator[Delivery]:
        idle_since = time.monotonic()
        socket, topics, group, count = self._socket, self._topics, self._group, self._count
        while True:
            try:  # what is queued already needs no poll
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                left = (
                    None if idle_timeout is None else idle_timeout - (time.monotonic() - idle_since)
                )
                if left is not None and left <= 0:
                    return
                socket.poll(None if left is None else int(left * 1000) + 1)
                continue
            topic = frames[0].decode("utf-8", "replace")
            if topic not in topics:
                self.skipped += 1
                continue
            body = frames[1] if len(frames) == 2 else b""  # anything else fails to open
            yield delivery("", group, topic, body, None, str(next(count)))
            idle_since = time.monotonic()

    def close(self) -> None:
        """Close the socket: what it had received and not handed over is lost."""
        with _MAPPED:
            self._socket.close(linger=0)
