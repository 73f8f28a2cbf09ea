"""MQTT (paho-mqtt 2, MQTT 5 or 3.1.1): the envelope is the payload, QoS 1, a session per group.

``mqtt://[user:password@]host[:port][?query]`` (``mqtts://`` for TLS with the system's CA
certificates). Query parameters:

=======================  ======================================================================
``version=5``            the protocol: ``5`` (the default) or ``3.1.1``
``session_expiry=S``     MQTT 5: seconds a group's session outlives its last consumer
                         (default 604800, a week); 3.1.1 sessions last as the broker keeps them
``keepalive=S``          the MQTT keep-alive (default 60)
``timeout=S``            how long a connect, SUBACK or PUBACK is waited for (default 10)
``lease=S``              accepted for every URL's sake, and has no effect: MQTT has no per-message
                         lease; an unacked message goes back only when its consumer disconnects
=======================  ======================================================================

What MQTT has, and what the adapter makes of it:

* A **group** is a persistent session: client id ``letterlock/<group>`` (the group's name
  percent-encoded wherever it names a session or a topic, so it is one level), connected with
  ``clean_start=False`` and a session expiry (MQTT 5) or ``clean_session=False`` (3.1.1). The
  broker queues for it what matches its subscriptions while no consumer is connected, and
  resends every unacked message when one connects again: MQTT's only redelivery, which serves
  crashes. A consumer does not reconnect by itself: when its connection drops,
  :meth:`Subscription.deliveries` raises TransportError, and subscribing again resumes (so a
  message is never settled on a connection other than the one it came on). One consumer per
  group at a time: a second one with the same group takes the session over, and the first one
  stops so (an MQTT 5 broker may say so, reason 142; Mosquitto 2.0 only closes the connection).
* **Ack** is a PUBACK (paho's ``manual_ack=True``): nothing is acked before the handler
  returned. paho's network loop runs in its own thread (``loop_start``) and hands each message
  to a queue that :meth:`Subscription.deliveries` reads; an ack appends a PUBACK to paho's
  outgoing deque (one atomic append) and wakes the loop, so settling from the iterating thread
  is safe. That wake-up hands the ack to another thread, which writes it with a system call of
  its own; so while more messages are already waiting in the queue, acks are held back and
  handed over together, up to 16 as one write (one wake-up): the held ones go as soon as the
  queue is empty when a message is settled, before :meth:`Subscription.deliveries` waits for
  more, and on ``close``. A consumer that dies, or whose connection drops, meanwhile has those
  messages delivered again (at-least-once: its replay window refuses them). Running paho's
  loop in the iterating thread instead (``client.loop()``) saves the wake-ups but was slower
  end to end, since reading the network then no longer overlaps opening messages.
  A delivery is settled only on the connection it came on (a packet id names a message on one
  connection only); settling one whose connection is gone (closed, taken over, or dropped: paho
  saw it end), or calling ``extend_lease`` for it, raises LeaseLost, and the broker sends it
  again to the next consumer of the group. An ack written just as the connection drops, before
  paho sees it end, is lost unseen (MQTT confirms no PUBACK): the message comes again too, and
  the replay window refuses it.
* **No nack, no delay, no attempt count** (``dup`` says only "maybe seen before"): attempts is
  None, so a refusal is never retried (see :mod:`~letterlock.transports.decide`). A Retry (a copy
  another consumer's live claim holds) keeps the message unacked in the session, where a crash
  leaves it for the next consumer, and hands the same delivery out again after the delay.
* **Dead letters**: MQTT keeps none, so the adapter publishes the exact bytes to
  ``letterlock/dead/<group>`` (QoS 1) and acks the original only after the broker's PUBACK. With
  MQTT 5 the reason, the topic the broker reported and the time travel as user properties
  (``reason``, ``topic``, ``dead_at``); 3.1.1 has no properties, so the payload is framed:
  ``b"LLDL\\x01"``, the reason (1 length byte), the topic (2 length bytes, big-endian, UTF-8),
  ``dead_at`` (8 bytes, big-endian IEEE double), then the bytes. A group's dead letters wait in
  a session of their own (``letterlock/dead/<group>``, subscribed when the group is), never as
  retained messages. MQTT cannot list a topic without taking its messages:
  :meth:`MqttEndpoint.dead_letters` takes them without acking (so they stay in that session and
  come again) and stops at a marker it publishes after them, so it lists at most what the broker
  sends unacked at once (MQTT 5: up to 65535, as it asks; a 3.1.1 broker its in-flight window,
  ``max_inflight_messages``, 20 in Mosquitto). :meth:`MqttEndpoint.redrive` republishes each to
  ``letterlock/redrive/<group>``, which only that group subscribes to, and acks it after the
  PUBACK. One caller of ``dead_letters``/``redrive`` per group at a time (they share a session).
* **Publish** is QoS 1 and waits for the PUBACK. An MQTT 5 broker says when no subscription
  matches (reason 16, "no matching subscribers"): Unroutable; a 3.1.1 broker drops it unseen.
* **Limits of the broker**, not of the adapter: Mosquitto keeps at most ``max_queued_messages``
  (default 1000) per session beyond those in flight, and drops QoS 1 messages over it, for an
  absent consumer (and for the dead-letter session, which nobody reads between listings); set
  ``max_queued_messages 0`` (no limit) where nothing may be lost. A connected MQTT 5 consumer
  asks for the largest in-flight window (Receive Maximum 65535; unasked, Mosquitto sends 20), so
  its backlog travels to it unacked instead of waiting in that queue; a 3.1.1 one gets the
  broker's window (``max_inflight_messages``, 20 in Mosquitto), and a backlog beyond the queue
  is dropped.

What paho raises (``OSError``, its ``WebsocketConnectionError`` among them, and ``ValueError``
or ``RuntimeError`` for what it refuses) and every error code it returns leave as
:class:`~letterlock.errors.TransportError` (:func:`~letterlock._edges.map_exceptions`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import queue
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.topics import Dialect, Topics
from letterlock.errors import TransportError, UsageError
from letterlock.transports.base import (
    DeadLetterRecord,
    Delivery,
    LeaseLost,
    Subscription,
    Unroutable,
    delivery,
)
from letterlock.transports.decide import Ack, DeadLetter, Retry, Settlement

__all__ = ["MqttEndpoint", "MqttSettings"]

#: Where a group's dead letters go, and where its redriven ones come back (``/<group>``).
DEAD_ROOT: Final = "letterlock/dead"
REDRIVE_ROOT: Final = "letterlock/redrive"
_SESSION_ROOT: Final = "letterlock"
_DL_MAGIC: Final = b"LLDL\x01"
_MARKER: Final = "letterlock-marker"
_RECEIVE_MAXIMUM: Final = 65_535  #: MQTT 5: unacked messages the broker may send at once
_QUIET: Final = 1.0  #: seconds without a dead letter after which a listing ends
_NO_MATCHING_SUBSCRIBERS: Final = 16
_SESSION_TAKEN_OVER: Final = 142
_ERRORS: Final[ExceptionMapping] = {
    OSError: TransportError,
    ValueError: TransportError,  # paho's refusals (a topic, a payload); never our UsageError
    RuntimeError: TransportError,  # paho's wait_for_publish on a failed publish
}
#: map_exceptions(_ERRORS), made once: it keeps no state, and adapters enter it per message.
_MAPPED: Final = map_exceptions(_ERRORS)
#: Numbers every connection of this process, so a packet id names a message on one only.
_CONNECTIONS: Final = itertools.count(1)
_ACK_BATCH: Final = 16  #: PUBACKs held back at most while more messages wait (one write)
#: A PUBACK as paho writes one (``_send_command_with_mid``), for either version: the packet
#: type, remaining length 2, the packet id (MQTT 5 may omit the reason code "success").
_PUBACK: Final = struct.Struct("!BBH")
_PUBACK_TYPE: Final = 0x40
_VERSIONS: Final = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Where the broker is and how to talk to it (what an ``mqtt://`` URL says)."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    version: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    session_expiry: int = 604_800
    keepalive: int = 60
    timeout: float = 10.0
    lease: float | None = None  #: accepted, no effect: MQTT has no per-message lease

    @property
    def v5(self) -> bool:
        return self.version is MQTTProtocolVersion.MQTTv5

    @classmethod
    def from_url(cls, url: str) -> MqttSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or parts.path not in ("", "/"):
            raise UsageError("an MQTT URL is mqtt://[user:password@]host[:port][?version=3.1.1]")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"bad port in MQTT URL: {exc}") from None
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        unknown = set(query) - {"version", "session_expiry", "keepalive", "timeout", "lease"}
        if unknown:
            raise UsageError(f"unknown MQTT URL parameters: {', '.join(sorted(unknown))}")
        version = query.get("version", "5")
        if version not in _VERSIONS:
            raise UsageError("MQTT version is 5 or 3.1.1")
        expiry, keepalive, timeout = (
            _number(query, name, low=low) for name, low in
            (("session_expiry", 0), ("keepalive", 1), ("timeout", 0.001))
        )  # fmt: skip
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port if port is not None else (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            version=_VERSIONS[version],
            session_expiry=604_800 if expiry is None else int(expiry),
            keepalive=60 if keepalive is None else int(keepalive),
            timeout=10.0 if timeout is None else timeout,
            lease=_number(query, "lease", low=0.001),
        )


def _number(query: dict[str, str], name: str, *, low: float) -> float | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"MQTT URL parameter {name} must be a number, not {text!r}") from None
    if not value >= low:
        raise UsageError(f"MQTT URL parameter {name} must be at least {low}")
    return value


def _level(group: str) -> str:
    """``group`` as one topic level and client-id part: percent-encoded, so that any printable
    name is one level and two names never meet (``/``, ``+``, ``#`` and ``$`` are escaped)."""
    if not isinstance(group, str) or not 0 < len(group) <= 200 or not group.isprintable():
        raise UsageError("an MQTT group is 1 to 200 printable characters")
    return quote(group, safe="")


def _failed(what: str, rc: MQTTErrorCode | ReasonCode | int) -> TransportError:
    text = paho.error_string(rc) if isinstance(rc, MQTTErrorCode) else str(rc)
    return TransportError(f"MQTT {what} failed: {text}")


class _Connection:
    """One paho client with its network loop in a thread, connected before it is returned."""

    def __init__(self, settings: MqttSettings, client_id: str, *, persistent: bool) -> None:
        self.settings = settings
        # SimpleQueue: put and get in C, no Python-level lock and condition per message
        self.inbox: queue.SimpleQueue[tuple[int, paho.MQTTMessage] | TransportError]
        self.inbox = queue.SimpleQueue()
        self.generation = 0  #: this connection's number (_CONNECTIONS); 0 before it is up
        #: Set once paho saw this connection end (dropped, taken over or closed): an ack
        #: written now would go nowhere, and its message comes back on the next connection.
        self.lost = threading.Event()
        self._unsent: list[int] = []  # packet ids of QoS 1 messages settled, not yet acked
        self._closing = False
        self._connected = threading.Event()
        self._refused: ReasonCode | None = None
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._done = threading.Condition()
        v5 = settings.v5
        with _MAPPED:
            client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=settings.version,
                clean_session=None if v5 else not persistent, manual_ack=True,
                reconnect_on_failure=not persistent,  # a session's consumer stops instead
            )  # fmt: skip
            if settings.username is not None:
                client.username_pw_set(settings.username, settings.password)
            if settings.tls:
                client.tls_set_context(ssl.create_default_context())
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_message = self._on_message
            client.on_publish = self._on_publish
            client.on_subscribe = self._on_subscribe
            properties = None
            if v5:
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = settings.session_expiry if persistent else 0
                properties.ReceiveMaximum = _RECEIVE_MAXIMUM  # unset, Mosquitto sends 20
            client.connect(
                settings.host, settings.port, settings.keepalive,
                clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )  # fmt: skip
            client.loop_start()
        self.client = client
        if not self._connected.wait(settings.timeout) or self._refused is not None:
            self.close()
            raise _failed("connect", self._refused or MQTTErrorCode.MQTT_ERR_NO_CONN)

    # paho's callbacks (its network thread) ----------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: object, flags: object,
                    reason: ReasonCode, properties: object) -> None:  # fmt: skip
        if reason.is_failure:
            self._refused = reason
        else:
            self.generation = next(_CONNECTIONS)
        self._connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object,
                       reason: ReasonCode, properties: object) -> None:  # fmt: skip
        self.lost.set()
        if self._closing:
            return
        why = (
            "another consumer of this group took its session over"
            if reason == _SESSION_TAKEN_OVER
            else f"the connection to the broker was lost ({reason}; or another consumer of "
            "this group took its session over)"
        )
        self.inbox.put(TransportError(f"{why}: subscribe again to resume"))

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self.inbox.put((self.generation, message))

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: object) -> None:  # fmt: skip
        with self._done:
            self._acks[mid] = reason
            self._done.notify_all()

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int,
                      reasons: list[ReasonCode], properties: object) -> None:  # fmt: skip
        with self._done:
            self._subacks[mid] = reasons
            self._done.notify_all()

    # calls from the caller's thread -----------------------------------------------------

    def _wait(self, table: dict[int, object], mid: int, what: str) -> object:
        with self._done:
            if not self._done.wait_for(lambda: mid in table, self.settings.timeout):
                raise TransportError(f"MQTT {what}: no answer within {self.settings.timeout} s")
            return table.pop(mid)

    def publish(self, topic: str, body: bytes, properties: Properties | None = None) -> int:
        """Publish at QoS 1 and wait for the PUBACK; Unroutable if MQTT 5 says nobody listens."""
        with _MAPPED:
            info = self.client.publish(topic, body, qos=1, properties=properties)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise _failed("publish", info.rc)
        reason = self._wait(self._acks, info.mid, "publish")  # type: ignore[arg-type]
        assert isinstance(reason, ReasonCode)
        if reason == _NO_MATCHING_SUBSCRIBERS:
            raise Unroutable(f"no MQTT subscription matches {topic!r}")
        if reason.is_failure:
            raise _failed("publish", reason)
        return info.mid

    def subscribe(self, filters: list[str]) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        with _MAPPED:
            rc, mid = self.client.subscribe([(f, 1) for f in filters])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _failed("subscribe", rc)
        reasons = self._wait(self._subacks, mid, "subscribe")  # type: ignore[arg-type]
        assert isinstance(reasons, list)
        for reason in reasons:
            if reason.is_failure:
                raise _failed("subscribe", reason)

    def ack(self, mid: int, qos: int) -> None:
        try:  # not map_exceptions: entering it per message costs more than the rest of this
            rc = self.client.ack(mid, qos)
        except Exception:
            with _MAPPED:
                raise  # the exception being handled, mapped
        if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:  # nothing to send it on: the message comes again
            raise LeaseLost("MQTT ack: the connection is gone")
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _failed("ack", rc)

    def ack_soon(self, mid: int, qos: int) -> None:
        """Ack a QoS 1 message with the next ones: at once if no other message is waiting in
        the inbox (or :data:`_ACK_BATCH` are held), else with the next ack or
        :meth:`send_acks`. QoS 0 needs no ack; QoS 2 (never asked for) is acked alone."""
        if qos != 1:
            self.ack(mid, qos)
            return
        unsent = self._unsent
        unsent.append(mid)
        if len(unsent) >= _ACK_BATCH or self.inbox.empty():
            self.send_acks()

    def send_acks(self) -> None:
        """Hand paho the held PUBACKs as one packet: one wake-up of its loop, one write."""
        unsent = self._unsent
        if not unsent:
            return
        packet = b"".join([_PUBACK.pack(_PUBACK_TYPE, 2, mid) for mid in unsent])
        unsent.clear()
        if self.lost.is_set():  # nowhere to write them: their messages come again
            raise _failed("ack", MQTTErrorCode.MQTT_ERR_NO_CONN)
        try:  # paho's own queueing of a PUBACK (Client.ack), for several at once
            rc = self.client._packet_queue(_PUBACK_TYPE, packet, 0, 1)
        except Exception:
            with _MAPPED:
                raise  # the exception being handled, mapped
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _failed("ack", rc)

    def close(self) -> None:
        """Send the held acks and disconnect; what was not acked stays with a persistent
        session."""
        with contextlib.suppress(TransportError):  # closing anyway: they come again
            self.send_acks()
        self._closing = True
        self.lost.set()
        with _MAPPED:
            self.client.disconnect()
            self.client.loop_stop()


@dataclass(order=True)
class _Held:
    due: float
    order: int
    delivery: Delivery = field(compare=False)


class _MqttSubscription:
    """A consumer on a group's session: yields what paho's loop put in the inbox."""

    def __init__(self, connection: _Connection, group: str) -> None:
        self.connection = connection
        self.group = group
        self.closed = False
        self._held: list[_Held] = []
        self._order = itertools.count()

    def deliveries(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        idle_since = time.monotonic()
        while not self.closed:
            now = time.monotonic()
            if self._held and self._held[0].due <= now:
                yield heapq.heappop(self._held).delivery
                idle_since = time.monotonic()
                continue
            try:  # what is there already, without working out how long to wait
                item = self.connection.inbox.get_nowait()
            except queue.Empty:
                self.connection.send_acks()  # nothing is held back while this waits
                waits = [] if idle_timeout is None else [idle_since + idle_timeout - now]
                if self._held:
                    waits.append(self._held[0].due - now)
                try:
                    item = self.connection.inbox.get(
                        timeout=max(0.0, min(waits)) if waits else None
                    )
                except queue.Empty:
                    if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                        return
                    continue
            if isinstance(item, TransportError):
                raise item
            generation, message = item
            if generation != self.connection.generation:
                continue  # from before a reconnect: the broker sends it again on this one
            yield delivery(
                f"{generation}:{message.mid}:{message.qos}", self.group, message.topic,
                bytes(message.payload), None, f"mid {message.mid}",
            )  # fmt: skip
            idle_since = time.monotonic()

    def hold(self, delivery: Delivery, delay: float) -> None:
        """Hand ``delivery`` out again after ``delay`` s; unacked meanwhile (crash-safe)."""
        heapq.heappush(self._held, _Held(time.monotonic() + delay, next(self._order), delivery))

    def close(self) -> None:
        self.closed = True
        self.connection.close()


class MqttEndpoint:
    """An MQTT broker by URL (see the module): publish, subscribe a group, settle, dead letters."""

    #: MQTT topic filters: ``/`` separates levels, ``+`` is one level, ``#`` the rest.
    dialect: Final = Dialect.MQTT

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._publisher = _Connection(settings, "", persistent=False)
        self._subscriptions: dict[str, _MqttSubscription] = {}

    @classmethod
    def from_url(cls, url: str) -> MqttEndpoint:
        """``mqtt://host:port?version=3.1.1&session_expiry=S&lease=S`` (see the module)."""
        return cls(MqttSettings.from_url(url))

    # the broker seam ---------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, now: float | None = None) -> int:
        """Publish at QoS 1 once the broker's PUBACK came; the packet id."""
        return self._publisher.publish(topic, bytes(body))

    def settle(
        self, delivery: Delivery, settlement: Settlement, *, now: float | None = None
    ) -> None:
        """Ack; hold for a retry; or publish a dead-letter copy, wait for its PUBACK, then ack.

        LeaseLost once the connection the delivery came on is gone (see the module): the
        message stays in the group's session and comes again when it is subscribed again. A
        dead letter whose copy was published when that connection dropped is so published
        twice (the copy that comes again is refused again): noise, never a loss. A dead-letter
        copy the broker refuses, or whose PUBACK does not come, raises TransportError, and the
        delivery is left unacked.
        """
        subscription, mid, qos = self._owner(delivery)
        match settlement:
            case Ack():
                self._ack(subscription, mid, qos)
            case Retry(delay=delay):
                subscription.hold(delivery, delay)
            case DeadLetter(reason=reason):
                self._publisher.publish(
                    f"{DEAD_ROOT}/{_level(delivery.queue)}",
                    *_dead_letter(self.settings.v5, reason.value, delivery.topic, delivery.body),
                )  # fmt: skip
                self._owner(delivery)  # a reconnect while waiting: the resent copy settles
                self._ack(subscription, mid, qos)

    @staticmethod
    def _ack(subscription: _MqttSubscription, mid: int, qos: int) -> None:
        """Ack on the delivery's connection; LeaseLost if paho has no connection to send it
        on. (MQTT answers no PUBACK: one written as the connection dropped is lost unseen, and
        the copy that comes again is refused as a replay.)"""
        connection = subscription.connection
        try:
            connection.ack_soon(mid, qos)
        except TransportError as exc:
            if not connection.lost.is_set():
                raise
            raise LeaseLost(
                "the connection was lost while acking; the message comes again"
            ) from exc

    def extend_lease(self, delivery: Delivery, *, now: float | None = None) -> None:
        """Nothing to extend: MQTT has no lease (a delivery stays until its consumer leaves).

        LeaseLost once the connection the delivery came on is gone: the broker sends the
        message again on the group's next connection."""
        self._owner(delivery)

    def _owner(self, delivery: Delivery) -> tuple[_MqttSubscription, int, int]:
        subscription = self._subscriptions.get(delivery.queue)
        generation, mid, qos = map(int, delivery.tag.split(":"))
        if (
            subscription is None
            or subscription.closed
            or subscription.connection.generation != generation
            or subscription.connection.lost.is_set()
        ):
            raise LeaseLost("the connection that took this delivery is gone; it comes again")
        return subscription, mid, qos

    # by URL ------------------------------------------------------------------------------

    def subscribe(self, topics: Topics, *, group: str) -> Subscription:
        """Attach to ``group``'s persistent session, subscribed to ``topics`` (and its redrive
        topic); its dead-letter session is subscribed too, so no dead letter is published to
        nobody."""
        if topics.dialect is not Dialect.MQTT:
            raise UsageError("MQTT subscriptions are MQTT topic filters ('/', '+' and '#')")
        level = _level(group)
        old = self._subscriptions.get(group)
        if old is not None and not old.closed:
            if not old.connection.lost.is_set():
                raise UsageError(f"group {group!r} already has a consumer on this endpoint")
            old.close()  # its connection dropped: subscribing again resumes the session
        dead = _Connection(self.settings, f"{_SESSION_ROOT}/dead/{level}", persistent=True)
        try:
            dead.subscribe([f"{DEAD_ROOT}/{level}"])
        finally:
            dead.close()
        connection = _Connection(self.settings, f"{_SESSION_ROOT}/{level}", persistent=True)
        try:
            connection.subscribe([*topics.patterns, f"{REDRIVE_ROOT}/{level}"])
        except BaseException:
            connection.close()
            raise
        subscription = _MqttSubscription(connection, group)
        self._subscriptions[group] = subscription
        return subscription

    def dead_letters(self, group: str, /, *, limit: int | None = None) -> list[DeadLetterRecord]:
        """The group's dead letters, oldest first, taken unacked so they stay (see the module)."""
        records: list[DeadLetterRecord] = []
        for _message, record in self._dead(group, redrive=False):
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
        return records

    def redrive(self, group: str, /) -> int:
        """Republish each dead letter to the group's redrive topic, acking it after the PUBACK."""
        return sum(1 for _ in self._dead(group, redrive=True))

    def _dead(
        self, group: str, *, redrive: bool
    ) -> Iterator[tuple[paho.MQTTMessage, DeadLetterRecord]]:
        level = _level(group)
        connection = _Connection(self.settings, f"{_SESSION_ROOT}/dead/{level}", persistent=True)
        try:
            marker = f"{_MARKER}-{time.monotonic_ns()}".encode()
            try:
                connection.publish(f"{DEAD_ROOT}/{level}", *_dead_letter(
                    self.settings.v5, _MARKER, "", marker))  # fmt: skip
            except Unroutable:
                return  # the group was never subscribed: it keeps no dead letters
            seq = itertools.count(1)
            while True:
                try:
                    item = connection.inbox.get(timeout=min(_QUIET, self.settings.timeout))
                except queue.Empty:
                    return  # no marker: the in-flight window is full (3.1.1), or none was kept
                if isinstance(item, TransportError):
                    raise item
                _generation, message = item
                record = _read_dead_letter(message, group, next(seq))
                if record.reason == _MARKER:
                    if record.body == marker:
                        connection.ack(message.mid, message.qos)
                        return
                    connection.ack(message.mid, message.qos)  # an earlier call's, left over
                    continue
                if redrive:
                    connection.publish(f"{REDRIVE_ROOT}/{level}", record.body)
                    connection.ack(message.mid, message.qos)
                yield message, record
        finally:
            connection.close()

    def forget(self, group: str, /) -> None:
        """End ``group``'s sessions for good: what waits in them, dead letters included, is gone."""
        level = _level(group)
        subscription = self._subscriptions.pop(group, None)
        if subscription is not None and not subscription.closed:
            subscription.close()
        for client_id in (f"{_SESSION_ROOT}/{level}", f"{_SESSION_ROOT}/dead/{level}"):
            _Connection(self.settings, client_id, persistent=False).close()

    def close(self) -> None:
        """Disconnect the publisher and every consumer; sessions and what waits in them stay."""
        for subscription in self._subscriptions.values():
            if not subscription.closed:
                subscription.close()
        self._subscriptions.clear()
        self._publisher.close()


def _dead_letter(v5: bool, reason: str, topic: str, body: bytes) -> tuple[bytes, Properties | None]:
    """The payload and properties of a dead-letter copy (module: user properties or framing)."""
    dead_at = time.time()
    if v5:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [("reason", reason), ("topic", topic), ("dead_at", repr(dead_at))]
        return body, properties
    word, where = reason.encode(), topic.encode()
    head = struct.pack(
        f"!B{len(word)}sH{len(where)}sd", len(word), word, len(where), where, dead_at
    )
    return _DL_MAGIC + head + body, None


def _read_dead_letter(message: paho.MQTTMessage, group: str, seq: int) -> DeadLetterRecord:
    """A dead-letter copy as a record; TransportError for one this adapter did not write."""
    payload = bytes(message.payload)
    said = dict(getattr(message.properties, "UserProperty", None) or [])
    try:
        if "reason" in said:  # MQTT 5: the user properties say it, the payload is the bytes
            reason, topic, body = said["reason"], said["topic"], payload
            dead_at = float(said["dead_at"])
        else:
            reason, topic, dead_at, body = _unframe(payload)
    except (KeyError, ValueError, struct.error) as exc:
        raise TransportError(f"a dead letter of {group!r} is not in letterlock's form") from exc
    return DeadLetterRecord(
        queue=group, seq=seq, topic=topic, body=body, attempts=0, reason=reason,
        published=0.0, dead_at=dead_at,
    )  # fmt: skip


def _unframe(payload: bytes) -> tuple[str, str, float, bytes]:
    """The 3.1.1 framing of a dead letter (see the module): reason, topic, dead_at, bytes."""
    if not payload.startswith(_DL_MAGIC):
        raise ValueError("no dead-letter framing")
    at = len(_DL_MAGIC)
    (size,) = struct.unpack_from("!B", payload, at)
    reason = payload[at + 1 : at + 1 + size].decode()
    at += 1 + size
    (size,) = struct.unpack_from("!H", payload, at)
    topic = payload[at + 2 : at + 2 + size].decode()
    at += 2 + size
    (dead_at,) = struct.unpack_from("!d", payload, at)
    return reason, topic, dead_at, payload[at + 8 :]
