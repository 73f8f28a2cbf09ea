"""``letterlock send``, ``listen`` and ``dlq``: sealed messages through a broker, by URL.

The broker is reached through :func:`letterlock.transports.urls.connect` (``spool:///path``,
``amqp://``, ``mqtt://``, ``nats://``, ``redis://``, ``zmq+tcp://``) and shown only as
:func:`~letterlock.transports.urls.redact` shows it: a password in a URL is never printed, not
even inside an error a client library raised.

``listen`` is a :class:`~letterlock.transports.SealedConsumer` on one group's durable
subscription (:meth:`~letterlock.transports.Endpoint.subscribe`). It opens every message
against ``--topic``, the listener's own configuration, never against the topic the broker
reports; a message is acknowledged only after its payload was delivered (written to stdout, or
to its own file in ``--out DIR``, complete and synced under its final name); one whose payload
could not be delivered is retried (:data:`RETRY`), not dead-lettered. What it refuses is
dead-lettered with the one word ``rejected`` the broker may read; the exact reason goes to
stderr, rate-limited. The ids of handled messages and the claims of running listeners live in
the home, one record per identity (:meth:`~letterlock.cli.home.Home.listener_store`), so a
listener started again refuses what it already handled; ``--replay URL`` keeps them in a
Redis or PostgreSQL store instead, shared with the group's listeners on other hosts.

The default group (:func:`default_group`) is derived from the identity's key and the pattern,
so a listener killed and started again with the same ``--as`` and ``--topic`` resumes the same
durable subscription, and what was sent meanwhile waits for it there.

SIGINT and SIGTERM wait for the message being handled to be acknowledged, then stop: SIGTERM
as a normal stop (exit 0, what a service manager sends), SIGINT as an interruption (130). A
second signal stops at once; a message not acknowledged comes back to the group.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import click
from rich.live import Live
from rich.spinner import Spinner

import letterlock
from letterlock import (
    DEFAULT_LIMITS,
    Identity,
    Opened,
    Opener,
    PublicIdentity,
    Rejected,
    ReplayWindow,
    Topics,
    TransportError,
    TrustPolicy,
    UsageError,
)
from letterlock._fs import make_private_dir
from letterlock.cli.home import REPLAY_RETENTION, Home
from letterlock.cli.keyset_files import keyset_opener, sealing_identity
from letterlock.cli.livetrust import LiveTrust, SavedStatusTrust, StatusFollower
from letterlock.cli.options import (
    example,
    input_option,
    pass_home,
    passphrase_file_option,
    recipients_for,
    sealing_options,
    signed_headers,
    whole_number,
)
from letterlock.cli.passphrase import passphrase
from letterlock.cli.render import (
    iso_time,
    note,
    opened_fields,
    print_fields,
    print_table,
    quoted,
    stderr_console,
    stdout_console,
    warn,
)
from letterlock.cli.streams import read_input, write_output
from letterlock.cli.trustdata import TrustData, status_group_of
from letterlock.sources.folder import Snapshot
from letterlock.sources.updater import StatusUpdater
from letterlock.stores import ClosingReplayStore, replay_store_from_url
from letterlock.transports import (
    DeadLetterRecord,
    Endpoint,
    OnHandlerError,
    RetryPolicy,
    SealedConsumer,
)
from letterlock.transports.pool import ConsumerPool, WorkerSecret
from letterlock.transports.urls import connect, redact

__all__ = [
    "RETRY",
    "Deliver",
    "ListenerOpener",
    "default_group",
    "dlq_group",
    "listen_command",
    "send_command",
]

#: The consumer pool behind ``listen --workers N`` (N > 1), built separately.
MAX_WORKERS: Final = 256
MAX_COUNT: Final = 2**62
MAX_TIMEOUT: Final = 10 * 365 * 86400.0
#: The library's retries, and one change: the handler only delivers the payload, so when it
#: fails (a full disk, a closed pipe) the message is not at fault, and is retried (then
#: dead-lettered, ``handler_error``, if it keeps failing) rather than dead-lettered at once.
RETRY: Final = RetryPolicy(on_handler_error=OnHandlerError.RETRY)
_LONGEST_SHOWN: Final = 80  # characters of an argument quoted back in an error
_GROUP_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def default_group(identity: PublicIdentity, name: str, pattern: str) -> str:
    """The group ``listen --as NAME --topic PATTERN`` uses unless ``--group`` names one.

    ``ll-<NAME>-<32 hex digits>``: the name with ``.``, ``@`` and ``+`` written as ``_``, and
    the first 128 bits of SHA-256 over the identity's fingerprint (32 bytes), a zero byte and
    the pattern in UTF-8. Stable across runs and hosts, so a restarted listener resumes its
    durable subscription; another key under the same name gets another group (it could not
    open what waits in the old one). Only ``A-Z a-z 0-9 _ -``, which every broker accepts in
    a queue, durable consumer or consumer group name.
    """
    digest = hashlib.sha256(identity.fingerprint + b"\0" + pattern.encode("utf-8"))
    return f"ll-{_GROUP_UNSAFE.sub('_', name)}-{digest.hexdigest()[:32]}"


# the URL, its password, its endpoint ---------------------------------------------------


@contextmanager
def _scrubbed(url: str, *values: str) -> Iterator[None]:
    """Errors raised inside, with the password of ``url`` and of any URL among ``values``
    replaced by ``***``, and long arguments (the URL, its path: a spool's file, ``values``)
    cut short.

    An adapter or its client library may quote the URL it was given; the CLI's one-line error
    must not print the password, nor echo a 10,000-character argument back. (KeyboardInterrupt
    and signals pass untouched.)
    """
    secrets: set[str] = set()
    shown = {url, _redact(url), *values}
    for given in (url, *values):
        try:
            parts = urlsplit(given)
        except ValueError:
            continue
        secrets.update(s for s in (parts.password, unquote(parts.password or "")) if s)
        if given == url:
            shown.update((parts.path, unquote(parts.path)))
    try:
        yield
    except Exception as exc:
        text = original = str(exc)
        for secret in secrets:
            text = text.replace(secret, "***")
        for value in sorted(shown, key=len, reverse=True):
            if len(value) > _LONGEST_SHOWN:
                text = text.replace(repr(value), quoted(value)).replace(value, quoted(value))
        if text == original:
            raise
        error = UsageError if isinstance(exc, UsageError) else TransportError
        raise error(text) from None


def _redact(url: str) -> str:
    try:
        return redact(url)
    except ValueError:  # not even a URL (an unclosed '[')
        return "the broker URL"


@contextmanager
def _endpoint(url: str) -> Iterator[Endpoint]:
    """The broker at ``url``, closed on the way out."""
    endpoint = connect(url)
    try:
        yield endpoint
    finally:
        endpoint.close()


#: The broker at a URL, closed on the way out (for other commands: ``status publish``).
endpoint_at = _endpoint


def _topics(endpoint: Endpoint, pattern: str) -> Topics:
    """``--topic`` read in the broker's own pattern syntax."""
    try:
        return Topics(pattern, dialect=endpoint.dialect)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--topic") from None


def _check_group(group: str | None) -> None:
    if group is not None and not (0 < len(group) <= 200 and group.isprintable()):
        raise click.BadParameter("must be 1 to 200 printable characters", param_hint="--group")


def _seconds(_ctx: click.Context, _param: click.Parameter, value: Any) -> float | None:
    """An option callback: a positive number of seconds (fractions allowed), else one sentence."""
    if value is None or isinstance(value, float):
        return value
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT:
        shown = repr(text) if len(text) <= 30 else repr(text[:27]) + "..."
        raise click.BadParameter(
            f"must be a number of seconds above 0, at most {MAX_TIMEOUT:.0f}, not {shown}"
        )
    return seconds


_BROKER_HELP = (
    "The broker: spool:///path/file.db, amqp://, mqtt://, nats://, redis://, zmq+tcp:// "
    "(query parameters tune it, e.g. ?lease=SECONDS)."
)


def _broker_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--broker", required=True, metavar="URL", help=_BROKER_HELP)(function)


# send ------------------------------------------------------------------------------------


def _sender(home: Home, name: str | None) -> str:
    """``--from``, or the home's one identity."""
    if name is not None:
        return name
    names = home.names()
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError(f"no identities in {home.root}; create one with: letterlock id new NAME")
    raise UsageError(f"this home has several identities ({', '.join(names)}); choose with --from")


def _payload(path: str | None, *, hide_sender: bool) -> bytes:
    """The payload, unless its envelope is sure to be larger than listeners accept (their
    default limits: a listener has no --max-size), which would make it a dead letter."""
    limit = DEFAULT_LIMITS.max_hidden_size if hide_sender else DEFAULT_LIMITS.max_size
    try:
        return read_input(path, limit=limit)
    except Rejected:
        what = "a hidden-sender envelope" if hide_sender else "an envelope"
        raise UsageError(
            f"the payload is larger than {limit} bytes, and listeners refuse {what} that large"
        ) from None


@click.command(
    "send",
    short_help="Seal a payload and publish it to a broker.",
    epilog=example(
        "letterlock send --broker spool:///tmp/spool.db --topic orders.eu --to bob < order.json"
    ),
)
@_broker_option
@click.option("--topic", required=True, help="The topic it is published on and bound to (signed).")
@click.option("--from", "sender", metavar="NAME", help="Your identity that signs (default: the "
              "home's only one).")  # fmt: skip
@sealing_options
@input_option
@click.option("-q", "--quiet", is_flag=True, help="Do not report the message sent on stderr.")
@passphrase_file_option
@pass_home
def send_command(
    home: Home,
    *,
    broker: str,
    topic: str,
    to: tuple[str, ...],
    sender: str | None,
    header: tuple[str, ...],
    content_type: str | None,
    expires_in: int | None,
    hide_sender: bool,
    pad: letterlock.Padding,
    input_path: str | None,
    quiet: bool,
    passphrase_file: str | None,
) -> None:
    """Seal a payload (stdin) for recipients and publish it on TOPIC, once the broker took it.

    The envelope is bound to TOPIC, so a receiver refuses it on any other. A broker that can
    tell that nobody would ever read TOPIC (no queue bound to it) refuses it, and exit status
    is 2: start a listener first, which declares its group.
    """
    with _scrubbed(broker, topic):
        sender = _sender(home, sender)
        headers = signed_headers(header)
        recipients = recipients_for(home, sender, to)
        with _endpoint(broker) as endpoint:
            identity = sealing_identity(
                home, sender,
                lambda: passphrase(passphrase_file, prompt=f"Passphrase for {sender!r}: "),
                now=int(time.time()), hide_sender=hide_sender,
            )  # fmt: skip
            payload = _payload(input_path, hide_sender=hide_sender)
            sealed = letterlock.seal(
                payload, sender=identity, recipients=recipients, topic=topic, headers=headers,
                content_type=content_type, expires_in=expires_in, hide_sender=hide_sender,
                pad=pad,
            )  # fmt: skip
            limit = DEFAULT_LIMITS.max_hidden_size if hide_sender else DEFAULT_LIMITS.max_size
            if len(sealed) > limit:
                raise UsageError(f"the envelope would have {len(sealed)} bytes, but listeners "
                                 f"accept {limit} bytes")  # fmt: skip
            endpoint.publish(topic, sealed)
    if not quiet:
        message_id = letterlock.inspect(sealed).header.message_id.hex()
        note(f"sent {message_id} to {topic} ({len(sealed)} bytes)")


# listen ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deliver:
    """The listener's handler: a payload to stdout, or to ``out/<message id>``; who signed to
    stderr. It returns only once the payload is delivered, and only then is it acknowledged.

    A plain, picklable value, so a pool of processes can call it in each worker.
    """

    out: Path | None = None
    quiet: bool = False

    def __call__(self, opened: Opened) -> None:
        fields = list(opened_fields(opened))
        if self.out is None:
            write_output(None, opened.payload, private=True)
        else:  # the id is unique per sender (the replay record refuses another with it)
            target = self.out / opened.message_id.hex()
            write_output(str(target), opened.payload, private=True)
            fields.append(("saved as", str(target)))
        if not self.quiet:
            console = stderr_console()
            with contextlib.suppress(OSError):  # delivered already: reporting cannot undo it
                print_fields(console, fields, title="letterlock: verified")


@dataclass(frozen=True, slots=True)
class ListenerOpener:
    """Builds a listener's :class:`~letterlock.Opener` inside a pool worker: the identity is
    unlocked there, its key file decrypted or a session of the worker's own logged in to its
    token (a key is never pickled, and its passphrase or PIN, a
    :class:`~letterlock.transports.pool.WorkerSecret`, is never pickled either), with the
    home's trust and the identity's replay record, which all workers share."""

    home: Path
    name: str
    secret: WorkerSecret = field(repr=False)
    replay: str | None = None  #: ``--replay URL``; None: the identity's record in the home
    #: ``--follow-status``: the status the pool's follower saves in the home, as it changes
    follow_status: bool = False

    def __call__(self) -> Opener:
        home = Home(self.home)
        home.check()
        window = ReplayWindow(_replay_store(home, self.name, self.replay), max_age=REPLAY_RETENTION)
        own = home.own_publics(warn=warn)
        trust = (
            SavedStatusTrust(TrustData(home), home.senders(own))
            if self.follow_status
            else home.trust(own)
        )
        return _listener_opener(home, self.name, self.secret, window, trust)


def _listener_opener(  # noqa: PLR0917 - what every listener's opener is made of
    home: Home, name: str, secret: Callable[[], bytes], window: ReplayWindow,
    trust: TrustPolicy, identity: Identity | None = None,
) -> Opener:  # fmt: skip
    """The opener of a listener of ``name``: every key of its keyset that opens now, if it has
    one (the keyset as it is at the start: restart listeners after each rotation step), else
    its identity key (``identity``, if it is loaded already)."""
    keyset = keyset_opener(home, name, trust=trust, replay=window, now=int(time.time()),
                           get_passphrase=secret, limits=DEFAULT_LIMITS)  # fmt: skip
    if keyset is not None:
        return keyset
    return Opener(identity or home.load(name, secret), trust=trust, replay=window)


def _replay_store(home: Home, name: str, url: str | None) -> ClosingReplayStore:
    """Where a listener keeps the ids it handled and its claims: ``--replay URL``, or the
    identity's record in the home (shared by the listeners of this host)."""
    return home.listener_store(name) if url is None else replay_store_from_url(url)


class _Noted(logging.Handler):
    """The consumer's log (refusals, retries, lost leases) as ``letterlock: ...`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):
            note(record.getMessage())


def _consumer_log(quiet: bool) -> logging.Logger:
    """Where the consumer logs: stderr. The whole ``letterlock`` tree, so that a pool's
    workers' records (re-emitted in this process at that level) come out the same way."""
    root = logging.getLogger("letterlock")
    root.propagate = False
    if not any(isinstance(h, _Noted) for h in root.handlers):
        root.addHandler(_Noted())
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    return logging.getLogger("letterlock.cli.listen")


class _Stopped(Exception):
    """A signal asked the listener to stop (raised between messages)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Graceful:
    """SIGINT and SIGTERM stop the listener between messages, never inside one's handling."""

    def __init__(self) -> None:
        self._busy = False
        self._pending: int | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Graceful:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._busy and self._pending is None:
            self._pending = signum  # after this message is settled
            return
        raise _Stopped(signum)

    @contextmanager
    def handling(self) -> Iterator[None]:
        """One message's open, handler and settlement: a signal waits until it is done."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
        if self._pending is not None:
            raise _Stopped(self._pending)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listening:
    """What one listener run is: where, as whom, for what, and when it stops."""

    url: str
    endpoint: Endpoint
    group: str
    topics: Topics
    opener: Opener
    #: How a pool worker builds its own ``opener`` (keys are never pickled); None: no pool.
    opener_factory: ListenerOpener | None
    handler: Deliver
    count: int | None  #: stop after this many messages handled (None: never)
    timeout: float | None  #: stop after this many seconds without a delivery (None: never)
    log: logging.Logger
    #: Called once the group's subscription is declared: what is sent from then on waits.
    ready: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True, kw_only=True)
class Listened:
    """How a listener run ended: messages handled, and settlements by cause."""

    handled: int
    metrics: Mapping[str, int]


def _run_listener(listening: Listening, *, workers: int) -> Listened:
    """Run the listener with ``workers`` consumers; the one place the pool is called from.

    Several workers are :class:`letterlock.transports.pool.ConsumerPool` processes, each
    with its own subscription to the group and its own Opener, built by
    ``listening.opener_factory``. The group is declared first, so that what is sent once
    ``ready`` said so waits for the workers.
    """
    if workers == 1:
        return _listen(listening)
    if listening.opener_factory is None:
        raise UsageError("a pool of listeners needs an opener factory")
    listening.endpoint.subscribe(listening.topics, group=listening.group).close()
    pool = ConsumerPool(
        listening.url, listening.topics, group=listening.group,
        opener=listening.opener_factory, handler=listening.handler, workers=workers,
        retry=RETRY,
    )  # fmt: skip
    listening.ready()
    handled = pool.run(count=listening.count, idle_timeout=listening.timeout)
    if pool.signalled is signal.SIGINT:  # as one worker does: exit status 130
        raise KeyboardInterrupt
    return Listened(handled=handled, metrics=dict(pool.metrics))


def _listen(listening: Listening) -> Listened:
    """One consumer on the group's subscription until --count, --timeout or a signal."""
    consumer = SealedConsumer(
        listening.endpoint, listening.group, opener=listening.opener, topics=listening.topics,
        retry=RETRY, logger=listening.log,
    )  # fmt: skip
    handled = 0
    shows = not listening.handler.quiet and (listening.handler.out is not None or _redirected())
    with _Graceful() as graceful, _progress(shows) as progress:
        subscription = listening.endpoint.subscribe(listening.topics, group=listening.group)
        try:
            listening.ready()
            for delivery in subscription.deliveries(idle_timeout=listening.timeout):
                with graceful.handling():
                    handled += consumer.handle(delivery, listening.handler)
                progress(handled, consumer.metrics)
                if listening.count is not None and handled >= listening.count:
                    break
        except _Stopped as stop:
            if stop.signum != signal.SIGTERM:
                raise KeyboardInterrupt from None
        finally:
            subscription.close()
    return Listened(handled=handled, metrics=consumer.metrics)


def _redirected() -> bool:
    """stdout is not a terminal (payloads written there do not cross a status line)."""
    return sys.stdout is not None and not sys.stdout.isatty()


Progress = Callable[[int, Mapping[str, int]], None]


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    """On a terminal, a status line below the reports while the listener runs: how many
    messages it handled and dead-lettered. Not when payloads go to the same terminal."""
    console = stderr_console()
    if not enabled or not console.is_terminal or console.is_dumb_terminal:
        yield lambda handled, metrics: None
        return

    def text(handled: int, metrics: Mapping[str, int]) -> str:
        dead = sum(n for key, n in metrics.items() if key.startswith("dead_lettered:"))
        return f"listening: {handled} handled, {dead} dead-lettered"

    spinner = Spinner("dots", text(0, {}))
    live = Live(spinner, console=console, transient=True, redirect_stdout=False,
                redirect_stderr=True, refresh_per_second=8)  # fmt: skip
    with live:
        yield lambda handled, metrics: spinner.update(text=text(handled, metrics))


def _ready(broker: str, name: str, group: str, quiet: bool) -> Callable[[], None]:
    """The line that says a listener is subscribed: a script may send from then on."""
    if quiet:
        return lambda: None
    return lambda: note(f"listening on {_redact(broker)} as {name}, group {group}")


def _summary(listened: Listened, group: str) -> str:
    refused = {
        key.partition(":")[2]: n
        for key, n in listened.metrics.items()
        if key.startswith("dead_lettered:")
    }
    plural = "" if listened.handled == 1 else "s"
    text = f"handled {listened.handled} message{plural} in group {group}"
    if refused:
        total = sum(refused.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(refused.items()))
        text += f"; dead-lettered {total} ({reasons}): letterlock dlq list"
    return text


@click.command(
    "listen",
    short_help="Receive, verify and decrypt messages from a broker.",
    epilog=example(
        "letterlock listen --broker spool:///tmp/spool.db --topic 'orders.*' --as bob --timeout 5"
    ),
)
@_broker_option
@click.option(
    "--topic",
    "pattern",
    required=True,
    metavar="PATTERN",
    help="The topics you serve, in the broker's pattern syntax; a message signed for any "
    "other topic is refused, whatever topic the broker reports.",
)
@click.option("--as", "name", required=True, metavar="NAME", help="Your identity that opens.")
@click.option(
    "--group",
    metavar="NAME",
    help="Durable subscription shared by the listeners that name it (default: derived from "
    "--as and --topic, so a restarted listener resumes).",
)
@click.option(
    "--count",
    callback=whole_number("messages", MAX_COUNT),
    metavar="N",
    help="Stop after N messages handled (exit 0).",
)
@click.option(
    "--timeout",
    callback=_seconds,
    metavar="SECONDS",
    help="Stop after SECONDS without a delivery (exit 0).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write each payload to DIR/<message id> (complete and synced before it is "
    "acknowledged) instead of stdout.",
)
@click.option(
    "--workers",
    type=click.STRING,  # not inferred from the default: the callback converts
    callback=whole_number("workers", MAX_WORKERS),
    default="1",
    show_default=True,
    metavar="N",
    help="Worker processes sharing the group, each opening its own messages; with several, "
    "prefer --out DIR (large payloads of two workers could interleave on stdout).",
)
@click.option(
    "--replay",
    metavar="URL",
    help="Where the ids of handled messages and the claims of running listeners are kept: "
    "redis://... or postgresql://... to share them with listeners on other hosts, "
    "sqlite:///path (default: a record per identity in the home).",
)
@click.option(
    "--follow-status",
    is_flag=True,
    help="Also follow status documents on the broker's letterlock.status topic (a home with a "
    "pinned root), using each newer one at once (with --workers N: saved in the home, each "
    "worker uses it from its next message).",
)
@click.option("-q", "--quiet", is_flag=True, help="Report only problems on stderr.")
@passphrase_file_option
@pass_home
def listen_command(
    home: Home,
    *,
    broker: str,
    pattern: str,
    name: str,
    group: str | None,
    count: int | None,
    timeout: float | None,
    out_dir: str | None,
    workers: int,
    replay: str | None,
    follow_status: bool,
    quiet: bool,
    passphrase_file: str | None,
) -> None:
    """Receive messages from a group's durable subscription, verify and decrypt each.

    Each payload goes to stdout as it is (or to its own file in --out DIR), who signed it to
    stderr, and only then is the message acknowledged. Refused messages (unknown or untrusted
    senders, bad signatures, replays, other topics) are dead-lettered: see 'letterlock dlq'.
    A payload that cannot be delivered (a full disk, a closed pipe) leaves its message
    unacknowledged, to be delivered again later, and stops the listener (exit status 2).
    Runs until --count messages, --timeout idle seconds or SIGTERM (exit 0), or Ctrl-C (130).
    """
    _check_group(group)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        make_private_dir(out)
    with _scrubbed(broker, pattern, *([replay] if replay else [])):
        public = home.public(name)
        own = home.own_publics(warn=warn)
        group = group or default_group(public, name, pattern)
        with _endpoint(broker) as endpoint:
            topics = _topics(endpoint, pattern)
            secret = passphrase(passphrase_file, prompt=f"Passphrase for {name!r}: ")
            identity = home.load(name, lambda: secret)  # a wrong passphrase fails here, once
            shared = WorkerSecret(secret) if workers > 1 else None
            factory = None if shared is None else ListenerOpener(home.root, name, shared, replay,
                                                                 follow_status)  # fmt: skip
            with shared or contextlib.nullcontext(), _replay_store(home, name, replay) as store:
                # older messages are refused (expired): the record forgets their ids by then
                window = ReplayWindow(store, max_age=REPLAY_RETENTION)
                trust, follower = _trust_of(home, own, broker, follow=follow_status)
                opener = _listener_opener(home, name, lambda: secret, window, trust, identity)
                listening = Listening(
                    url=broker, endpoint=endpoint, group=group, topics=topics, opener=opener,
                    opener_factory=factory, handler=Deliver(out, quiet), count=count,
                    timeout=timeout, log=_consumer_log(quiet),
                    ready=_ready(broker, name, group, quiet),
                )  # fmt: skip
                try:
                    listened = _run_listener(listening, workers=workers)
                finally:
                    if follower is not None:
                        follower.stop()
    if not quiet:
        note(_summary(listened, group))


def _trust_of(
    home: Home, own: dict[str, PublicIdentity], broker: str, *, follow: bool
) -> tuple[TrustPolicy, StatusFollower | None]:
    """The listener's trust; with ``follow``, a live one that each newer status replaces.

    The follower's updater saves each status it accepts in the home before it is used: a pool's
    workers (other processes) read it from there (:class:`SavedStatusTrust`)."""
    if not follow:
        return home.trust(own), None
    data = TrustData(home)
    snapshot = data.snapshot()
    if snapshot is None:
        raise UsageError("--follow-status needs a pinned root: letterlock root pin FILE")
    senders = home.senders(own)
    live = LiveTrust(data.revocations_in_front(senders, snapshot))

    def swap(new: Snapshot) -> None:
        live.swap(data.revocations_in_front(senders, new))

    updater = StatusUpdater(data.cache(), snapshot, on_change=swap)
    group = status_group_of(home)
    follower = StatusFollower(broker, updater, group=group, on_error=warn).start()
    return live, follower


# dlq -------------------------------------------------------------------------------------


def _dlq_group(home: Home, group: str | None, pattern: str | None, name: str | None) -> str:
    """``--group``, or the default group of ``--topic`` and ``--as``."""
    if group is not None:
        if pattern is not None or name is not None:
            raise click.UsageError("give --group, or --topic and --as, not both")
        _check_group(group)
        return group
    if pattern is None or name is None:
        raise click.UsageError("name the group: --group NAME, or the listener's --topic and --as")
    return default_group(home.public(name), name, pattern)


def _group_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            _broker_option,
            click.option("--group", metavar="NAME", help="The listeners' group."),
            click.option(
                "--topic", "pattern", metavar="PATTERN", help="With --as: the listener's group."
            ),
            click.option("--as", "name", metavar="NAME", help="With --topic: the listener."),
        )
    ):
        function = option(function)
    return function


def _record_json(record: DeadLetterRecord) -> dict[str, object]:
    return {
        "id": record.seq,
        "group": record.queue,
        "topic": record.topic,
        "reason": record.reason,
        "attempts": record.attempts,
        "size": len(record.body),
        "published": iso_time(int(record.published)),
        "dead_at": iso_time(int(record.dead_at)),
    }


def _fields(record: DeadLetterRecord) -> Sequence[tuple[str, str]]:
    """A dead letter as the broker keeps it; what the envelope shows anyone, never plaintext."""
    rows = [
        ("id", str(record.seq)),
        ("group", record.queue),
        ("topic (per the broker)", record.topic),
        ("reason", record.reason),
        ("attempts", str(record.attempts)),
        ("published", iso_time(int(record.published))),
        ("dead-lettered", iso_time(int(record.dead_at))),
        ("size", f"{len(record.body)} bytes"),
    ]
    try:
        header = letterlock.inspect(record.body).header
    except Rejected as exc:
        return [*rows, ("envelope", f"unreadable ({exc.reason.value})")]
    key_id = header.sender_key_id
    sender = "hidden" if key_id is None else letterlock.format_fingerprint(key_id)
    return [
        *rows,
        ("message id", header.message_id.hex()),
        ("topic (signed)", header.topic),
        ("sender", sender),
        ("created", iso_time(header.created)),
    ]


@click.group(
    "dlq",
    short_help="List, show and redrive a group's dead letters.",
    epilog=example(
        "letterlock dlq list --broker spool:///tmp/spool.db --topic 'orders.*' --as bob",
        "letterlock dlq redrive --broker spool:///tmp/spool.db --group orders-workers",
    ),
)
def dlq_group() -> None:
    """A group's dead letters: what its listeners refused, with the one word the broker got.

    The exact reason of each refusal was reported by the listener (stderr); the broker keeps
    only 'rejected', 'handler_error' or 'max_attempts', so that it never learns whom you trust.
    """


@dlq_group.command(
    "list",
    short_help="List a group's dead letters.",
    epilog=example("letterlock dlq list --broker spool:///tmp/spool.db --group orders-workers"),
)
@_group_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead.")
@pass_home
def dlq_list_command(
    home: Home, *, broker: str, group: str | None, pattern: str | None, name: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """List a group's dead letters, oldest first: id, topic, reason, attempts, size, time."""
    with _scrubbed(broker):
        group = _dlq_group(home, group, pattern, name)
        with _endpoint(broker) as endpoint:
            records = endpoint.dead_letters(group)
    if as_json:
        click.echo(json.dumps([_record_json(r) for r in records], indent=2))
        return
    rows = [
        (str(r.seq), r.topic, r.reason, str(r.attempts), str(len(r.body)),
         iso_time(int(r.dead_at)))
        for r in records
    ]  # fmt: skip
    print_table(stdout_console(), ("id", "topic", "reason", "attempts", "bytes", "dead"), rows)


@dlq_group.command(
    "show",
    short_help="Show one dead letter (never its plaintext).",
    epilog=example("letterlock dlq show --broker spool:///tmp/spool.db --group orders-workers 7"),
)
@_group_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@click.argument("dead_id", metavar="ID", type=click.INT)
@pass_home
def dlq_show_command(
    home: Home, *, broker: str, group: str | None, pattern: str | None, name: str | None,
    as_json: bool, dead_id: int,
) -> None:  # fmt: skip
    """Show dead letter ID of a group: its reason, attempts, times and size (not decrypted)."""
    with _scrubbed(broker):
        group = _dlq_group(home, group, pattern, name)
        with _endpoint(broker) as endpoint:
            records = endpoint.dead_letters(group)
    record = next((r for r in records if r.seq == dead_id), None)
    if record is None:
        raise UsageError(f"group {group} has no dead letter {dead_id} (see: letterlock dlq list)")
    if as_json:
        click.echo(json.dumps(_record_json(record), indent=2))
        return
    print_fields(stdout_console(), _fields(record))


@dlq_group.command(
    "redrive",
    short_help="Deliver a group's dead letters again.",
    epilog=example("letterlock dlq redrive --broker spool:///tmp/spool.db --group orders-workers"),
)
@_group_options
@pass_home
def dlq_redrive_command(
    home: Home, *, broker: str, group: str | None, pattern: str | None, name: str | None
) -> None:
    """Put a group's dead letters back to be delivered again (after fixing the cause: a pin).

    A message refused as a replay, or whose handler failed after it was recorded, is refused
    as a replay again.
    """
    with _scrubbed(broker):
        group = _dlq_group(home, group, pattern, name)
        with _endpoint(broker) as endpoint:
            moved = endpoint.redrive(group)
    note(f"redrove {moved} dead letter{'' if moved == 1 else 's'} of group {group}")
