"""``letterlock demo``: sealed messages through a broker nobody trusts, in a few seconds.

Alice (the billing service) seals payslips for bob and carol and publishes them on a local spool
(:class:`letterlock.transports.Spool` in a temporary directory). Mallory has keys of her own and
full access to the spool, but nobody pins her. Each person opens with one
:class:`letterlock.Opener`; each of their consumers serves the topics of its own configuration
(bob runs one for EU and one for US payroll), whatever the spool reports. The demo
shows what the relay sees beside what each recipient opens, then runs mallory's attacks and shows
each one refused with its reason code and kept as a dead letter. It checks every outcome itself:
:func:`run` returns 0 only if each one happened as expected and no plaintext reached the spool
file.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

import letterlock
from letterlock.cli.demo_authority import authority_scene
from letterlock.transports import RetryPolicy, SealedConsumer, Spool

__all__ = ["run"]

SUITE = letterlock.Suite.P256
TAP = "mallory.tap"
DELIVERED = "delivered"
DELAY = 300.0  # how long mallory holds the payout approval back, in seconds
#: queue -> the topics its consumer serves (its own configuration); the spool binds the same
BINDINGS = {"bob": "payroll.eu.#", "bob-us": "payroll.us", "carol": "payroll.*"}
OWNERS = {"bob": "bob", "bob-us": "bob", "carol": "carol"}  # queue -> whose consumer reads it
PEOPLE = ("bob", "carol")
INTRO = (
    "A local spool (one SQLite file, no server) stands in for the broker, and mallory runs it.\n"
    "Bob and carol pin alice's key; nobody pins mallory's.\n"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Letter:
    """A message alice sends."""

    key: str
    payload: bytes
    to: tuple[str, ...] = ("bob", "carol")
    topic: str = "payroll.eu"
    hide_sender: bool = False
    pad: Literal["padme"] | None = None
    expires_in: float | None = None


LETTERS = (
    Letter(key="payslip-1", payload=b"E-1042 June net EUR 4,310.00"),
    Letter(key="payslip-2", payload=b"E-2217 June net EUR 6,020.50", hide_sender=True, pad="padme"),
    Letter(key="bonus", payload=b"Q2 bonus pool EUR 12,000", to=("bob",), topic="payroll.eu.bonus"),
)
PAYSLIP_3 = Letter(key="payslip-3", payload=b"E-3090 June net EUR 3,875.25")
APPROVAL = Letter(key="approval", payload=b"approve payout run 2025-06", expires_in=60)
FORGERY = b"E-1042 June net EUR 99,999.00 to IBAN XX00 MALLORY"


@dataclass(slots=True, kw_only=True)
class Recipient:
    name: str
    identity: letterlock.Identity
    opener: letterlock.Opener  # one replay record per person, shared by their consumers
    consumers: list[SealedConsumer] = field(default_factory=list)
    opened: list[letterlock.Opened] = field(default_factory=list)

    def poll(self, now: float) -> list[str]:
        """Drain the queues; one outcome per message: ``delivered`` or the reason it was refused.

        The reasons come from each consumer's own report (its metrics), not from the spool:
        the spool only ever gets the word ``rejected``.
        """
        outcomes = []
        for consumer in self.consumers:
            before = consumer.metrics
            consumer.poll(self.opened.append, now=now)
            for key, count in consumer.metrics.items():
                outcome, _, reason = key.partition(":")
                fresh = count - before.get(key, 0)
                if outcome == "acked":
                    outcomes += [DELIVERED] * fresh
                elif outcome == "dead_lettered":
                    outcomes += [reason] * fresh
        return outcomes


class World:
    """Everyone in the demo and the spool between them; ``now`` is the demo's clock."""

    def __init__(self, directory: Path, stack: contextlib.ExitStack, now: float) -> None:
        self.now = now
        self.sent: dict[str, bytes] = {}  # letter key -> sealed envelope
        self.spool = stack.enter_context(Spool(directory / "spool.db"))
        self.alice, self.mallory = (letterlock.Identity.generate(SUITE) for _ in range(2))
        self.recipients = {name: self._recipient(name, directory, stack) for name in PEOPLE}
        for queue, topics in BINDINGS.items():
            self.spool.bind(queue, topics)
            owner = self.recipients[OWNERS[queue]]
            consumer = SealedConsumer(
                self.spool,
                queue,
                opener=owner.opener,
                topics=topics,  # what this consumer serves, never what the spool reports
                retry=RetryPolicy(max_attempts=3, delay=0.0),
            )
            owner.consumers.append(consumer)
        self.spool.bind(TAP, "#")  # mallory copies everything: she runs the broker

    def _recipient(self, name: str, directory: Path, stack: contextlib.ExitStack) -> Recipient:
        pins = letterlock.Pins()
        pins.pin("alice", self.alice.public)
        store = stack.enter_context(letterlock.SQLiteReplayStore(directory / f"{name}-replay.db"))
        identity = letterlock.Identity.generate(SUITE)
        opener = letterlock.Opener(identity, trust=pins, replay=letterlock.ReplayWindow(store))
        return Recipient(name=name, identity=identity, opener=opener)

    def seal(self, letter: Letter) -> bytes:
        sealed = letterlock.seal(
            letter.payload,
            sender=self.alice,
            recipients=[self.recipients[name].identity.public for name in letter.to],
            topic=letter.topic,
            now=self.now,
            hide_sender=letter.hide_sender,
            pad=letter.pad,
            expires_in=letter.expires_in,
        )
        self.sent[letter.key] = sealed
        return sealed

    def send(self, letter: Letter) -> None:
        self.spool.publish(letter.topic, self.seal(letter), now=self.now)

    def intercept(self, letter: Letter) -> bytes:
        """Alice sends ``letter``; mallory takes it out of every queue before anyone reads it."""
        self.send(letter)
        taken = self.sent[letter.key]
        for name in BINDINGS:
            delivery = self.spool.get(name, now=self.now)
            if delivery is not None:
                self.spool.ack(delivery.tag)
                taken = delivery.body
        return taken

    @contextlib.contextmanager
    def routed_only_to(self, queue: str, pattern: str) -> Iterator[None]:
        """Mallory rewires the spool: meanwhile, what matches ``pattern`` reaches ``queue`` only."""
        saved = self.spool.bindings()
        for binding in saved:
            self.spool.unbind(binding.queue, binding.pattern)
        self.spool.bind(queue, pattern)
        try:
            yield
        finally:
            self.spool.unbind(queue, pattern)
            for binding in saved:
                self.spool.bind(binding.queue, binding.pattern)

    def poll_all(self) -> dict[str, list[str]]:
        return {name: r.poll(self.now) for name, r in self.recipients.items()}


# mallory's moves -----------------------------------------------------------------------


def _forge(w: World) -> None:
    bob, carol = (w.recipients[n].identity.public for n in ("bob", "carol"))
    forged = letterlock.seal(
        FORGERY, sender=w.mallory, recipients=[bob, carol], topic="payroll.eu",
        headers={"from": "alice"}, now=w.now,
    )  # fmt: skip
    w.spool.publish("payroll.eu", forged, now=w.now)


def _tamper(w: World) -> None:
    sealed = bytearray(w.intercept(PAYSLIP_3))
    sealed[-SUITE.sizes.signature - 20] ^= 0x01  # one bit inside the ciphertext
    w.spool.publish("payroll.eu", bytes(sealed), now=w.now)


def _reroute(w: World) -> None:
    with w.routed_only_to("bob-us", "payroll.eu"):  # the spool truthfully reports payroll.eu
        w.spool.publish("payroll.eu", w.sent[PAYSLIP_3.key], now=w.now)


def _release(w: World) -> None:
    w.spool.publish("payroll.eu", w.sent[PAYSLIP_3.key], now=w.now)


def _misdirect(w: World) -> None:
    w.spool.bind("carol", "payroll.eu.bonus")
    w.spool.publish("payroll.eu.bonus", w.sent["bonus"], now=w.now)
    w.spool.unbind("carol", "payroll.eu.bonus")


def _delay(w: World) -> None:
    sealed = w.intercept(APPROVAL)
    w.now += DELAY
    w.spool.publish("payroll.eu", sealed, now=w.now)


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    name: str
    action: str
    perform: Callable[[World], None]
    bob: str | None  # None: nothing reaches this person
    carol: str | None

    def expected(self, name: str) -> list[str]:
        outcome = self.bob if name == "bob" else self.carol
        return [] if outcome is None else [outcome]


MOVES = (
    Move(name="forged", action="seals her own payslip with her key, header from=alice",
         perform=_forge, bob="unknown_sender", carol="unknown_sender"),
    Move(name="tampered", action="intercepts alice's next payslip, flips one ciphertext bit",
         perform=_tamper, bob="bad_signature", carol="bad_signature"),
    Move(name="re-routed", action="moves the intercepted payslip into bob's payroll.us queue",
         perform=_reroute, bob="wrong_topic", carol=None),
    Move(name="(genuine)", action="lets the real payslip through: bad copies never block it",
         perform=_release, bob=DELIVERED, carol=DELIVERED),
    Move(name="replayed", action="publishes that payslip a second time",
         perform=_release, bob="replayed", carol="replayed"),
    Move(name="misdirected", action="binds carol's queue to payroll.eu.bonus, re-sends bob's note",
         perform=_misdirect, bob="replayed", carol="wrong_topic"),
    Move(name="delayed", action=f"holds a payout approval (valid 60 s) back for {DELAY:.0f} s",
         perform=_delay, bob="expired", carol="expired"),
)  # fmt: skip


# rendering -----------------------------------------------------------------------------


def _short(fingerprint: str) -> str:
    return fingerprint[:15] + "…"


def _key_text(key_id: bytes) -> str:
    return _short("SHA256:" + base64.b64encode(key_id).decode("ascii").rstrip("="))


def _relay_view(sealed: bytes) -> Text:
    try:
        header = letterlock.inspect(sealed).header
    except letterlock.Rejected as rejected:
        return Text(f"{len(sealed)} bytes, not an envelope ({rejected.reason})", style="red")
    sender = "hidden" if header.sender_key_id is None else _key_text(header.sender_key_id)
    count = len(header.recipients)
    return Text.assemble(
        (header.topic, "bold"), f"\n{len(sealed)} bytes, to {count} key{'s' * (count > 1)}\n",
        f"from {sender}\n", ("… " + sealed[-8:].hex(), "dim"),
    )  # fmt: skip


def _opened_view(opened: letterlock.Opened | None, routed: bool) -> Text:
    if opened is None:
        return Text("not routed here" if not routed else "nothing opened", style="dim")
    signer = opened.sender
    return Text.assemble(
        (opened.payload.decode("utf-8"), "green"), "\n",
        f"✓ signed by {signer.name} ({signer.via})\n  {_short(signer.fingerprint)}",
    )  # fmt: skip


def _table(title: str, caption: str, *, show_lines: bool = False) -> Table:
    return Table(
        title=title, caption=caption, box=box.ROUNDED, show_lines=show_lines,
        title_justify="left", caption_justify="left",
    )  # fmt: skip


def _cast_table(w: World) -> Table:
    table = _table(
        "The cast",
        "Each consumer opens only messages signed for the topics it serves (its own "
        "configuration), whatever topic the spool reports.",
    )
    for column in ("who", "role", "key", "queue ← topics"):
        table.add_column(column)
    table.add_row(
        "alice", "billing service, the sender", _short(w.alice.public.fingerprint_text), ""
    )
    for name, role in (("bob", "EU and US payroll, pins alice"), ("carol", "audit, pins alice")):
        key = _short(w.recipients[name].identity.public.fingerprint_text)
        queues = [f"{q} ← {topics}" for q, topics in BINDINGS.items() if OWNERS[q] == name]
        table.add_row(name, role, key, "\n".join(queues))
    table.add_row(
        "mallory", "runs the spool; pinned by nobody",
        _short(w.mallory.public.fingerprint_text), f"{TAP} ← #",
    )  # fmt: skip
    return table


def _letters_table(w: World, relay: dict[str, Text]) -> Table:
    table = _table(
        "1. Alice seals three messages: what the relay sees, what bob and carol open",
        "#2 was sealed with hide_sender=True, pad='padme': the relay can tell "
        "neither who sent it nor its exact size.",
        show_lines=True,
    )
    table.add_column("#", justify="right")
    for name in ("the relay sees", "bob opens", "carol opens"):
        table.add_column(name, ratio=1)
    for number, letter in enumerate(LETTERS, start=1):
        cells = []
        for name in PEOPLE:
            opened = next(
                (o for o in w.recipients[name].opened if o.payload == letter.payload), None
            )
            cells.append(_opened_view(opened, routed=name in letter.to))
        table.add_row(str(number), relay[letter.key], *cells)
    return table


def _outcome(outcome: Sequence[str], expected: list[str]) -> Text:
    shown = ", ".join(outcome) or "-"
    ok = list(outcome) == expected
    mark, style = ("✓ ", "green") if shown == DELIVERED else ("✗ ", "red")
    if not outcome:
        mark, style = "", "dim"  # nothing reached this person
    if not ok:
        style = "bold yellow reverse"  # an unexpected outcome must stand out, delivered or not
        shown += f" (expected {', '.join(expected) or 'nothing'})"
    return Text(mark + shown, style=style)


def _moves_table(results: list[dict[str, list[str]]]) -> Table:
    table = _table(
        "2. Mallory's attacks: she can read, publish, bind and consume on the spool",
        "The reasons come from bob's and carol's consumers (their local metrics); "
        "the spool is told only 'rejected'.",
    )
    for column in ("attack", "what mallory does", "bob", "carol"):
        table.add_column(column)
    for move, result in zip(MOVES, results, strict=True):
        table.add_row(
            move.name, move.action, _outcome(result["bob"], move.expected("bob")),
            _outcome(result["carol"], move.expected("carol")),
        )  # fmt: skip
    return table


def _dead_letter_table(spool: Spool) -> Table:
    table = _table(
        "3. Dead letters, as mallory sees them",
        "Bytes kept, one word for every refusal. Forged and tampered copies were both "
        "tried 3 times: mallory cannot tell whom bob and carol trust.",
    )
    for column in ("queue", "seq", "topic", "tries", "reason", "bytes"):
        table.add_column(column, justify="right" if column in ("seq", "tries", "bytes") else "left")
    for name in BINDINGS:
        for letter in spool.dead_letters(name):
            table.add_row(
                name, str(letter.seq), letter.topic, str(letter.attempts),
                Text(letter.reason, style="red"), str(len(letter.body)),
            )  # fmt: skip
    return table


# checking ------------------------------------------------------------------------------


def _check_letters(w: World) -> list[str]:
    problems = []
    for name, recipient in w.recipients.items():
        expected = [x.payload for x in (*LETTERS, PAYSLIP_3) if name in x.to]
        got = [o.payload for o in recipient.opened]
        if got != expected or any(o.sender.name != "alice" for o in recipient.opened):
            problems.append(
                f"{name} opened {len(got)} message(s), expected exactly alice's {len(expected)}"
            )
    return problems


def _check_moves(results: list[dict[str, list[str]]]) -> list[str]:
    problems = []
    for move, result in zip(MOVES, results, strict=True):
        for name in PEOPLE:
            if result[name] != move.expected(name):
                problems.append(
                    f"{move.name}: {name} got {result[name]}, expected {move.expected(name)}"
                )
    return problems


def _check_leaks(w: World) -> list[str]:
    """No plaintext anywhere in the spool's files; the relay only ever held sealed bytes."""
    raw = b"".join(p.read_bytes() for p in w.spool.path.parent.glob(w.spool.path.name + "*"))
    plaintexts = [x.payload for x in (*LETTERS, PAYSLIP_3, APPROVAL)] + [FORGERY]
    return [f"plaintext {p[:12]!r}… found in the spool file" for p in plaintexts if p in raw]


def _say(console: Console, what: RenderableType) -> None:
    """Print with wrapping, whatever the console's default (the CLI's soft-wraps)."""
    console.print(what, soft_wrap=False, highlight=False)


def _play(w: World, console: Console) -> list[str]:
    _say(console, INTRO)
    _say(console, _cast_table(w))
    for letter in LETTERS:
        w.send(letter)
    relay = {}
    for letter in LETTERS:  # mallory's tap has a copy of each, in order
        delivery = w.spool.get(TAP, now=w.now)
        if delivery is not None:
            relay[letter.key] = _relay_view(delivery.body)
            w.spool.ack(delivery.tag)
    w.poll_all()
    _say(console, _letters_table(w, relay))
    results = []
    for move in MOVES:
        move.perform(w)
        results.append(w.poll_all())
    _say(console, _moves_table(results))
    _say(console, _dead_letter_table(w.spool))
    scene, scene_problems = authority_scene(w.spool.path.parent, w.now)
    _say(console, scene)
    return _check_letters(w) + _check_moves(results) + _check_leaks(w) + scene_problems


TRY_NEXT = (
    "letterlock --home me id new me",
    "echo hello | letterlock --home me seal --from me --to me --topic t > note.ll",
    "letterlock --home me open --topic t --in note.ll",
)


def _summary(w: World, problems: list[str], console: Console) -> int:
    delivered = sum(len(r.opened) for r in w.recipients.values())
    refused = sum(len(w.spool.dead_letters(name)) for name in BINDINGS)
    counts = f"{delivered} delivered · {refused} refused and dead-lettered"
    _say(console, Text(counts + ("" if problems else " · 0 plaintext leaked"), style="bold"))
    if not problems:
        _say(console, Text("✓ every outcome was the expected one", style="green"))
        _say(console, Text("Next, the command line (after '. .venv/bin/activate'):", style="bold"))
        for line in TRY_NEXT:
            _say(console, Text(f"  {line}"))
        return 0
    _say(console, Text("✗ the demo did not go as expected:", style="red"))
    for problem in problems:
        _say(console, Text(f"  - {problem}", style="red"))
    return 1


def run(console: Console) -> int:
    """Play the demo on ``console``; 0 if every expected outcome happened, else 1."""
    console.rule("[bold]letterlock demo[/bold]: sealed messages through a spool nobody trusts")
    with (
        tempfile.TemporaryDirectory(prefix="letterlock-demo-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        try:
            world = World(Path(tmp), stack, now=time.time())
            problems = _play(world, console)
        except letterlock.LetterlockError as exc:  # a spool or store failure, not a bug
            _say(console, Text(f"✗ the demo stopped: {exc}", style="red"))
            return 1
        return _summary(world, problems, console)
