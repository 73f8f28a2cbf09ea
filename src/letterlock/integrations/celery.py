"""Celery tasks sealed by the sender and opened by the worker: the broker never sees arguments.

Call :func:`setup` on both sides, after configuring the app; then use Celery as usual::

    app = Celery("proj", broker="amqp://guest:guest@127.0.0.1:5672//")
    setup(app, identity=me, recipients=[worker_key], trust=pins)
    # what setup() sets, as you would write it yourself:
    #   app.conf.task_serializer = "letterlock"; app.conf.accept_content = ["letterlock"]
    #   app.conf.worker_consumer = "letterlock.integrations.celery:Consumer"

**Sending.** :func:`setup` registers a kombu serializer, ``letterlock`` (content type
``application/x-letterlock``), that seals what Celery would serialize (the body ``args, kwargs,
embed``) for ``recipients``, together with the message's headers. A serializer sees only the
body, so a ``before_task_publish`` hook hands it the rest, on the same thread, for the same
body object: the envelope's topic is the routing key the message is published with, and the
signed headers include the task name and id. In the headers the broker can read, ``argsrepr``
and ``kwargsrepr`` (where Celery writes a repr of the arguments) become ``"<sealed>"``. The
serializer refuses a body that did not come through the hook (``kombu.Producer.publish`` called
with it directly: it would not know which destination to bind), and kombu raises that as its
``EncodeError``.

**Receiving.** The worker's consumer (:class:`Consumer`) puts a :class:`Gate` before Celery: every
task message is opened before Celery looks at it, against the topics the worker serves (the
names and routing keys of the queues it consumes when it starts, or ``topics=``), never against
the routing key the broker reports. A message is refused if it is not sealed, does not open (a
sender ``trust`` does not admit, a tampered or replayed message, one bound to another routing
key), or if its ``task`` or ``id`` header is not the signed one (a broker re-labelling a task so
that another one runs). The other signed headers replace the delivered ones, so the broker
cannot change ``eta``, ``expires``, ``retries`` or ``timelimit`` either. An admitted body goes to
Celery decoded, as Celery itself hands bodies to its pool, so a message is opened once.

**Refusals.** A refused task never runs. The gate rejects it without requeue (``basic_reject``):
RabbitMQ moves it to the queue's dead-letter exchange if the queue has one
(``x-dead-letter-exchange``; its ``x-death`` reason is ``rejected``), else drops it. The
worker's log (logger ``letterlock.integrations.celery``) gets the local reason, at most once
per reason per ``log_interval`` seconds, and :attr:`Gate.metrics` counts it. How a refusal is
settled is :func:`letterlock.transports.decide.decide`'s table, by what the broker counts. A
classic queue does not count deliveries, so every refusal is dead-lettered at once, all alike.
A quorum queue does (``x-delivery-count``): a refusal that may pass later (``not_yet_valid``,
and ``unknown_sender``, ``untrusted`` and ``bad_signature`` alike) is held for the ``retry``
policy's backoff and rejected with requeue, up to ``max_attempts`` deliveries, then
dead-lettered; a message delivered more often than that (a worker that dies in its task, again
and again) is dead-lettered unopened (``max_attempts``). Either way the dead-letter queue does
not tell whom the worker trusts. The gate settles a refusal before Celery's acknowledgement
policy applies, so it is the same with or without ``task_acks_late``.

**Once.** An admitted message is claimed in the replay window, renewed while its task runs, and
finished when Celery acks it (a copy that comes later is refused as ``replayed``); see
:class:`Gate`. ``task_acks_late`` decides what a worker killed in a task means: without it
Celery acks the message as the task starts, so the task is lost (Celery's own rule); with it
the message stays unacked, the broker delivers it again, and once the dead worker's claim has
run out (its ``claim_lease``) the next worker takes it over and runs the task again, from the
start. With a replay store that the workers share and that outlives them (a
:class:`~letterlock.SQLiteReplayStore`), a task that completed is never run again. A task's
retry is a new message with the same task id, so replays are told by the envelope's message id,
not by the task id.

**What the broker still reads.** The headers Celery needs or shows: the task name and id,
``eta``, ``expires``, ``retries``, ``timelimit``, the ids of the root, parent and group, and
``origin`` (the sender's host name and process id), all signed. The argument reprs say
``"<sealed>"`` in the signed copy too, so a worker's own logs and events (``-E``, which go
through the broker) show no arguments either.

**Not sealed** (Celery's plain JSON, as without letterlock):

* what a task returns or raises: the result backend (``result_serializer``) and the worker's
  ``task-succeeded`` and ``task-failed`` events (``-E``), which carry the result's or the
  exception's repr (an exception's text may quote an argument);
* ``task-sent`` events (``task_send_sent_event``), which carry the argument reprs: :func:`setup`
  refuses that setting;
* remote control (``ping``, ``revoke``, ``shutdown``, the workers' ``hello`` at start), which
  Celery does not authenticate either: a worker that must not obey a hostile broker's
  ``shutdown`` or ``revoke`` runs with ``worker_enable_remote_control = False``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import kombu.serialization
import kombu.utils.json
from celery import signals
from celery.worker.consumer import Consumer as _CeleryConsumer

from letterlock import (
    Claim,
    Identity,
    Opener,
    PublicIdentity,
    Reason,
    Rejected,
    ReplayWindow,
    Sealer,
    Topics,
    TrustPolicy,
    UsageError,
)
from letterlock.transports.decide import DeadLetter, Outcome, Retry, RetryPolicy, decide

__all__ = [
    "CONTENT_TYPE",
    "SEALED_REPR",
    "SERIALIZER",
    "Admitted",
    "Consumer",
    "Gate",
    "gate_of",
    "served_topics",
    "setup",
]

SERIALIZER: Final = "letterlock"  #: the serializer's name (``task_serializer``) by default
CONTENT_TYPE: Final = "application/x-letterlock"  #: every sealed task message has it
SEALED_REPR: Final = "<sealed>"  #: what ``argsrepr`` and ``kwargsrepr`` say instead
_REPRS: Final = ("argsrepr", "kwargsrepr")
_BOUND: Final = ("task", "id")  #: headers Celery routes by: refused if they differ

log = logging.getLogger(__name__)

_registry: Any = kombu.serialization.registry  # kombu's functions are untyped
_json: Any = kombu.utils.json  # kombu's JSON: what Celery's own "json" serializer writes

_GATES: weakref.WeakKeyDictionary[Any, Gate] = weakref.WeakKeyDictionary()
_SENDERS: dict[str, _Sender] = {}  # serializer name -> its encoder (kombu's registry is global)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Publishing:
    """What ``before_task_publish`` saw of the task this thread is publishing."""

    body: object
    routing_key: str
    headers: dict[str, Any]


_publishing = threading.local()


def _on_before_task_publish(
    sender: object = None,
    body: object = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: object,
) -> None:
    """Keep the routing key and the (mutable) headers for the serializer, which sees neither."""
    _publishing.value = (
        None
        if headers is None
        else _Publishing(body=body, routing_key=routing_key or "", headers=headers)
    )


class _Sender:
    """The serializer's encoder for one sending identity and its recipients."""

    def __init__(self, identity: Identity, recipients: Iterable[PublicIdentity]) -> None:
        self._sealer = Sealer(identity)
        self._recipients = tuple(recipients)
        #: Who seals for whom: a second setup() under the same name must say the same.
        self.parties = (
            identity.public.fingerprint,
            frozenset(reader.fingerprint for reader in self._recipients),
        )

    def encode(self, body: object) -> bytes:
        publishing: _Publishing | None = getattr(_publishing, "value", None)
        _publishing.value = None
        if publishing is None or publishing.body is not body:
            raise UsageError(
                "the letterlock serializer seals Celery task messages (apply_async, send_task), "
                "whose routing key a before_task_publish hook binds; not other bodies"
            )
        headers = publishing.headers
        if not isinstance(headers.get("task"), str) or not isinstance(headers.get("id"), str):
            raise UsageError("letterlock seals Celery task messages of protocol 2 only")
        for key in _REPRS:
            if key in headers:
                headers[key] = SEALED_REPR
        inner = _json.dumps({"headers": headers, "body": body}).encode()
        # no seal options: the Sealer keeps one ready per topic (the content type is implied)
        return self._sealer.seal(inner, recipients=self._recipients, topic=publishing.routing_key)


def _never_decode(data: bytes) -> object:
    """kombu's decoder for the content type: refuses. Only the worker's gate opens it."""
    raise UsageError(
        "a sealed task message is opened by the worker's gate (setup(app, trust=...) sets "
        "worker_consumer), never by kombu's decoder"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Admitted:
    """A task message that opened and is claimed: what Celery decodes, and who signed it."""

    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any]
    sender: str  #: the name the trust policy knows the sender by
    sender_key: bytes = field(repr=False)
    message_id: bytes


class Gate:
    """The worker side: opens each task message and refuses what must not run.

    Driven by the worker's consumer, on its event loop's thread. A message that opens is
    claimed in ``replay`` for this worker until ``claim_lease`` seconds from now, renewed while
    its task runs (:meth:`heartbeat`) and finished when Celery settles it (:meth:`settled`): a
    later copy is then refused as ``replayed``. A copy that arrives while another worker's claim
    is live waits ``claim_lease`` seconds and is delivered again; once the holder stops renewing
    (it was killed), the claim is taken over and the task runs here. Share ``replay``'s store
    between the workers (a :class:`~letterlock.SQLiteReplayStore` on one host, which outlives a
    worker) for this to hold across them and across restarts.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        trust: TrustPolicy,
        replay: ReplayWindow | None = None,
        topics: Topics | None = None,
        claim_lease: float = 60.0,
        retry: RetryPolicy | None = None,
        log_interval: float = 60.0,
    ) -> None:
        if log_interval < 0:
            raise UsageError("log_interval must not be negative")
        if claim_lease <= 0:
            raise UsageError("claim_lease must be positive")
        self.opener = Opener(identity, trust=trust, replay=replay or ReplayWindow())
        #: The topics this worker serves; None: the queues its consumer consumes.
        self.topics = topics
        self.claim_lease = claim_lease
        #: How often, and how late, refusals that may pass later are retried (where the broker
        #: counts deliveries: RabbitMQ's quorum queues); the most deliveries of any message.
        self.policy = retry or RetryPolicy()
        #: Counts: ``admitted`` (``taken_over`` among them), ``lease_lost``, and
        #: ``retried:<reason>`` / ``dead_lettered:<reason>`` (a reason code, ``busy`` or
        #: ``max_attempts``).
        self.metrics: Counter[str] = Counter()
        self._holder = secrets.token_bytes(16)
        self._claims: dict[tuple[bytes, bytes], None] = {}  # (sender, message id): live ones
        self._log_interval = log_interval
        self._last_logged: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def admit(self, message: Any, topics: Topics, *, now: float | None = None) -> Admitted | None:
        """Open a kombu ``message`` as a task for ``topics`` and claim it; raise Rejected if it
        must not run. None: another worker's live claim holds it (deliver it again later).

        Once claimed, the message's headers are replaced by the signed ones. A re-labelled copy
        is refused before the claim, so it does not use up the genuine message.
        """
        if message.content_type != CONTENT_TYPE:
            raise Rejected(Reason.UNSUPPORTED, "not a sealed task message (its content type)")
        when = time.time() if now is None else now
        body = message.body
        if not isinstance(body, bytes | bytearray | memoryview):
            raise Rejected(Reason.MALFORMED, "the body is not bytes")
        opened = self.opener.open(body, topic=topics, now=when, record=False)
        signed, args, kwargs, embed = _task(opened.payload)
        delivered = message.headers
        if not isinstance(delivered, dict):
            raise Rejected(Reason.MALFORMED, "no headers")
        for key in _BOUND:
            if delivered.get(key) != signed.get(key):
                raise Rejected(Reason.WRONG_TOPIC, f"its {key!r} header is not the signed one")
        claim = self.opener.replay.claim(
            sender=opened.sender.key_id,
            message_id=opened.message_id,
            created=opened.created,
            now=when,
            holder=self._holder,
            until=when + self.claim_lease,
        )
        if claim is Claim.BUSY:
            return None
        self._claims[opened.sender.key_id, opened.message_id] = None
        delivered.update(signed)
        self.metrics["admitted"] += 1
        if claim is Claim.TAKEN_OVER:  # its holder stopped renewing: it runs again here
            self.metrics["taken_over"] += 1
        return Admitted(
            args=args, kwargs=kwargs, embed=embed, sender=opened.sender.name,
            sender_key=opened.sender.key_id, message_id=opened.message_id,
        )  # fmt: skip

    def settled(self, admitted: Admitted, *, again: bool) -> None:
        """Celery settled the task's message: finish the claim (a later copy is ``replayed``),
        or, ``again`` (requeued to run again), release it."""
        key = (admitted.sender_key, admitted.message_id)
        if key not in self._claims:
            return  # settled already
        del self._claims[key]
        replay = self.opener.replay
        done = replay.release if again else replay.finish
        if not done(sender=key[0], message_id=key[1], holder=self._holder):
            self.metrics["lease_lost"] += 1
            self._warn("lease_lost", "a task's claim ran out before Celery settled it")

    def heartbeat(self, *, now: float | None = None) -> None:
        """Renew the claims of the tasks that have not been settled yet."""
        when = time.time() if now is None else now
        for sender, message_id in list(self._claims):
            if not self.opener.replay.extend(
                sender=sender, message_id=message_id, holder=self._holder,
                until=when + self.claim_lease,
            ):  # fmt: skip
                del self._claims[sender, message_id]
                self.metrics["lease_lost"] += 1
                self._warn("lease_lost", "a running task's claim was taken over")

    def delivered(self, message: Any, *, attempts: int | None) -> DeadLetter | None:
        """Before opening: a dead letter (``max_attempts``) for a message delivered more often
        than the policy allows (a worker that dies in its task, again and again), else None."""
        settlement = decide(Outcome.DELIVERED, attempts=attempts, policy=self.policy)
        if settlement is None:
            return None
        assert isinstance(settlement, DeadLetter)
        self._settled(message, "max_attempts", "delivered too often", settlement, attempts)
        return settlement

    def busy(self, message: Any, *, attempts: int | None) -> Retry | DeadLetter:
        """A copy of a claimed message: delivered again after a lease (or, delivered too often,
        a dead letter)."""
        settlement = decide(
            Outcome.BUSY, attempts=attempts, policy=self.policy, wait=self.claim_lease
        )
        assert isinstance(settlement, Retry | DeadLetter)
        self._settled(message, "busy", "claimed, by this worker or another", settlement, attempts)
        return settlement

    def forget(self) -> None:
        """A new connection: the broker delivers again what was not settled on the old one, so
        stop renewing those claims; each runs out after a lease and its copy takes it over."""
        self._claims.clear()

    def refused(
        self, message: Any, refusal: Rejected, *, attempts: int | None = None
    ) -> Retry | DeadLetter:
        """Count and log a refusal (the full reason stays local); say how to settle it.

        ``attempts`` as the broker counts deliveries (None: it does not, and every refusal is a
        dead letter at once); the decision is :func:`letterlock.transports.decide.decide`'s.
        """
        settlement = decide(refusal.reason, attempts=attempts, policy=self.policy)
        assert isinstance(settlement, Retry | DeadLetter)
        detail = f" ({refusal.detail})" if refusal.detail else ""
        why = f"refused a task message: {refusal.reason.value}{detail}"
        self._settled(message, refusal.reason.value, why, settlement, attempts)
        return settlement

    def _settled(
        self,
        message: Any,
        key: str,
        why: str,
        settlement: Retry | DeadLetter,
        attempts: int | None,
    ) -> None:
        """Count a settlement that is not an ack, and log it with the broker's claims."""
        if isinstance(settlement, Retry):
            self.metrics[f"retried:{key}"] += 1
            how = f"requeued in {settlement.delay:.1f} s"
        else:
            self.metrics[f"dead_lettered:{key}"] += 1
            how = f"rejected without requeue (dead letter {settlement.reason.value})"
        headers = message.headers if isinstance(message.headers, dict) else {}
        info = message.delivery_info if isinstance(message.delivery_info, dict) else {}
        self._warn(
            key,
            "%s; %s. The broker's claims: task %r, id %r, routing key %r, delivery %s",
            why,
            how,
            headers.get("task"),
            headers.get("id"),
            info.get("routing_key"),
            "uncounted" if attempts is None else attempts,
        )

    def _warn(self, key: str, text: str, *args: object) -> None:
        """Log at most once per ``key`` per ``log_interval``, counting what was held back."""
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < self._log_interval:
            self._held[key] += 1
            return
        self._last_logged[key] = now
        held = self._held.pop(key, 0)
        if held:
            text = f"{text} (and {held} more held back)"
        log.warning(text, *args)


def _task(payload: bytes) -> tuple[dict[str, Any], list[Any], dict[str, Any], dict[str, Any]]:
    """The signed headers and body of a task payload (a trusted sender's: checked for shape)."""
    try:
        inner = _json.loads(payload.decode())
        headers = inner["headers"]
        args, kwargs, embed = inner["body"]
    except (ValueError, KeyError, TypeError):
        raise Rejected(Reason.MALFORMED, "not a letterlock task payload") from None
    if not (
        isinstance(headers, dict)
        and isinstance(args, list)
        and isinstance(kwargs, dict)
        and isinstance(embed, dict)
    ):
        raise Rejected(Reason.MALFORMED, "not a letterlock task payload")
    return headers, args, kwargs, embed


def served_topics(queues: Iterable[Any]) -> Topics:
    """The topics a worker consuming kombu ``queues`` serves: their names and routing keys.

    Celery publishes a task to a queue of a direct exchange through the default exchange, with
    the queue's name as routing key; to other exchanges with the routing key (a pattern, on a
    topic exchange).
    """
    keys: set[str] = set()
    for queue in queues:
        keys.add(queue.name)
        if queue.routing_key:
            keys.add(queue.routing_key)
        for binding in getattr(queue, "bindings", ()) or ():
            if binding.routing_key:
                keys.add(binding.routing_key)
    keys.discard("")
    if not keys:
        raise UsageError("the worker consumes no queue to take topics from; pass topics=")
    return Topics.amqp(*sorted(keys))


class Consumer(_CeleryConsumer):  # type: ignore[misc]  # celery ships no types
    """Celery's worker consumer with a :class:`Gate` before every task message
    (``worker_consumer = "letterlock.integrations.celery:Consumer"``).

    It uses the consumer's timer (the event loop's, on which Celery runs its ETA tasks; a worker
    on RabbitMQ runs one) for the claims' heartbeat and to requeue a message later (a busy copy,
    a retried refusal): AMQP cannot requeue later, so the message is held unacked until then,
    taking a prefetch slot. It wraps Celery's task handler (``create_task_handler``), which is
    not a documented API: tested with Celery and kombu 5.7.
    """

    _letterlock_heartbeat: Any = None

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], None]:
        on_task_received: Callable[[Any], None] = super().create_task_handler(*args, **kwargs)
        gate = gate_of(self.app)
        topics = gate.topics
        if topics is None:
            topics = served_topics(self.task_consumer.queues)
        errors = self.connection_errors
        timer = self.timer
        if self._letterlock_heartbeat is not None:  # a reconnection
            self._letterlock_heartbeat.cancel()
            gate.forget()
        self._letterlock_heartbeat = timer.call_repeatedly(gate.claim_lease / 3, gate.heartbeat)
        counted = all(_counts_deliveries(queue) for queue in self.task_consumer.queues)

        def settle(message: Any, settlement: Retry | DeadLetter) -> None:
            if isinstance(settlement, Retry):  # held, then requeued: AMQP cannot requeue later
                timer.call_after(settlement.delay, message.reject_log_error, (log, errors, True))
            else:
                message.reject_log_error(log, errors, requeue=False)

        def on_sealed_task(message: Any) -> None:
            attempts = _attempts(message, counted=counted)
            too_often = gate.delivered(message, attempts=attempts)
            if too_often is not None:
                settle(message, too_often)
                return
            try:
                admitted = gate.admit(message, topics)
            except Rejected as refusal:
                settle(message, gate.refused(message, refusal, attempts=attempts))
                return
            if admitted is None:  # a live claim holds it
                settle(message, gate.busy(message, attempts=attempts))
                return
            _settle_through(gate, admitted, message)
            # Celery's own form of a decoded body (a Request built with decoded=True): no
            # content type, so neither Celery here nor its pool decodes it again.
            message.body = (admitted.args, admitted.kwargs, admitted.embed)
            message.content_type, message.content_encoding = None, "binary"
            on_task_received(message)

        return on_sealed_task


def _counts_deliveries(queue: Any) -> bool:
    """Whether RabbitMQ counts the deliveries of ``queue``'s messages: a quorum queue does."""
    arguments = getattr(queue, "queue_arguments", None) or {}
    return bool(arguments.get("x-queue-type") == "quorum")


def _attempts(message: Any, *, counted: bool) -> int | None:
    """How often the broker says it delivered ``message``, this time included: a quorum queue's
    ``x-delivery-count`` (the deliveries before this one; absent on the first), None where the
    worker's queues do not count."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    before = headers.get("x-delivery-count")
    if isinstance(before, int) and not isinstance(before, bool) and before >= 0:
        return before + 1
    return 1 if counted else None


def _settle_through(gate: Gate, admitted: Admitted, message: Any) -> None:
    """Make Celery's settlement of ``message`` (its request's ack or reject, through kombu's
    ``ack_log_error``/``reject_log_error``) finish or release the claim first."""
    ack, reject = message.ack_log_error, message.reject_log_error

    def ack_log_error(logger: Any, errors: Any) -> None:
        gate.settled(admitted, again=False)
        ack(logger, errors)

    def reject_log_error(logger: Any, errors: Any, requeue: bool = False) -> None:
        gate.settled(admitted, again=requeue)
        reject(logger, errors, requeue=requeue)

    message.ack_log_error, message.reject_log_error = ack_log_error, reject_log_error


def gate_of(app: Any) -> Gate:
    """The gate :func:`setup` gave ``app``'s workers (its metrics); UsageError if none."""
    try:
        return _GATES[app]
    except KeyError:
        raise UsageError(
            "this app has no letterlock gate: call letterlock.integrations.celery.setup(app, "
            "identity=..., trust=...) before starting a worker"
        ) from None


def setup(
    app: Any,
    *,
    identity: Identity,
    recipients: Iterable[PublicIdentity] = (),
    trust: TrustPolicy | None = None,
    replay: ReplayWindow | None = None,
    topics: str | Iterable[str] | Topics | None = None,
    serializer: str = SERIALIZER,
    claim_lease: float = 60.0,
    retry: RetryPolicy | None = None,
    log_interval: float = 60.0,
) -> Gate | None:
    """Seal ``app``'s task messages as ``identity`` for ``recipients``; open them in its workers.

    Registers the kombu serializer ``serializer`` and sets ``task_serializer``,
    ``accept_content`` and ``worker_consumer``; call it after the app's configuration is loaded
    (``config_from_object`` replaces what was set before it).

    A worker needs ``trust`` (whose tasks it runs). It opens against ``topics`` (default: the
    queues it consumes) with ``replay`` (default: a window of its own), claims each task for
    ``claim_lease`` seconds at a time, and retries refusals by ``retry`` where its queues count
    deliveries (default :class:`~letterlock.transports.decide.RetryPolicy`); see
    :class:`Gate`. A worker that sends tasks itself (a chain's next step, a task sent from a
    task) seals them as ``identity`` for ``recipients``: name itself there, and admit itself
    (``FirstKnown(OwnIdentities({"me": identity.public}), pins)``). Returns the worker's
    :class:`Gate`, None without ``trust`` (a sender only).

    kombu's serializers are global to the process, so a serializer name seals as one identity
    for one set of recipients: apps that send otherwise take a name each (UsageError if a name
    is reused for other parties).
    """
    if not isinstance(identity, Identity):
        raise UsageError("identity must be a letterlock.Identity (a private identity)")
    if app.conf.task_protocol != 2:
        raise UsageError("letterlock seals Celery task messages of protocol 2 (task_protocol)")
    if app.conf.task_send_sent_event:
        raise UsageError("task_send_sent_event would publish the arguments' reprs unsealed")
    sender = _Sender(identity, recipients)
    known = _SENDERS.get(serializer)
    if known is not None and known.parties != sender.parties:
        raise UsageError(
            f"the serializer {serializer!r} already seals as another identity or for other "
            "recipients in this process; give this app a serializer name of its own"
        )
    _SENDERS[serializer] = sender
    _registry.register(
        serializer, sender.encode, _never_decode, content_type=CONTENT_TYPE,
        content_encoding="binary",
    )  # fmt: skip
    signals.before_task_publish.connect(
        _on_before_task_publish, weak=False, dispatch_uid="letterlock.integrations.celery"
    )
    app.conf.task_serializer = serializer
    app.conf.accept_content = [serializer]
    app.conf.worker_consumer = f"{__name__}:Consumer"
    # Remote control (mingle's hello, ping, revoke) takes task_serializer and accept_content:
    # it stays Celery's plain JSON.
    app.control.mailbox.serializer = "json"
    app.control.mailbox.accept = ["json"]
    if trust is None:
        _GATES.pop(app, None)
        return None
    gate = Gate(
        identity,
        trust=trust,
        replay=replay,
        topics=None if topics is None else Topics.of(topics),
        claim_lease=claim_lease,
        retry=retry,
        log_interval=log_interval,
    )
    _GATES[app] = gate
    return gate
