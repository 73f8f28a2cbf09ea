"""The demo's fourth act: senders certified by an authority, a revocation, a stale status.

The ``payments`` authority delegates to ``ledger-eu``, which certifies dave and erin. Frank's
audit consumer anchors ``payments``, pins a 2-of-3 root and follows the status documents the
status key publishes on the same spool (``letterlock.status``). Dave is accepted with his chain
printed; erin's key is revoked as compromised and refused; then no status arrives for two hours
(mallory drops them): frank fails closed, and dave's next entry waits (retried, not
dead-lettered) until a fresh status arrives, and then opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.table import Table
from rich.text import Text

import letterlock
from letterlock.cli.status_feed import follow_status, publish_status
from letterlock.core.carriage import CredentialBlock
from letterlock.core.principal import Namespace
from letterlock.sources.folder import Snapshot, SnapshotCache
from letterlock.sources.publish import make_root, make_status, sign_metadata
from letterlock.sources.updater import StatusUpdater
from letterlock.transports import RetryPolicy, SealedConsumer, Spool
from letterlock.trust import Anchor, Authorities
from letterlock.trust.credentials import Credential, Kind, Scope, issue
from letterlock.trust.root import TrustedRoot
from letterlock.trust.scope import ScopePattern
from letterlock.trust.status import Freshness, Revocations
from letterlock.trust.tufkeys import IdentitySigner

__all__ = ["authority_scene"]

SUITE = letterlock.Suite.P256
QUEUE = "frank-audit"
TOPIC = "ledger.eu"
HOUR = 3600
MAX_AGE = HOUR  # frank's freshness: a status older than this fails closed
RETRY_DELAY = 60.0
GROUP = "frank-status"


@dataclass(slots=True, kw_only=True)
class _Scene:
    spool: Spool
    now: float
    keys: dict[str, letterlock.Identity]
    consumer: SealedConsumer
    updater: StatusUpdater
    trust: _LiveTrust
    opened: list[letterlock.Opened] = field(default_factory=list)
    status_version: int = 0
    frank: letterlock.Identity = field(default_factory=lambda: letterlock.Identity.generate(SUITE))

    def send(self, sender: str, payload: bytes) -> None:
        sealed = letterlock.seal(
            payload, sender=self.keys[sender], recipients=[self.frank.public], topic=TOPIC,
            now=self.now,
        )  # fmt: skip
        self.spool.publish(TOPIC, sealed, now=self.now)

    def publish_status(self, revoked: dict[str, dict[str, object]]) -> None:
        self.status_version += 1
        issued = int(self.now)
        unsigned = make_status(self.status_version, issued=issued, expires=issued + 6 * HOUR,
                               keys=revoked, principals={})  # fmt: skip
        publish_status(self.spool, sign_metadata(unsigned, [IdentitySigner(self.keys["ts"])]))
        follow_status(self.spool, self.updater, group=GROUP, idle_timeout=0)

    def poll(self, times: int = 1) -> list[str]:
        """Poll ``times`` times, :data:`RETRY_DELAY` apart; each settlement, in order."""
        outcomes = []
        for n in range(times):
            if n:
                self.now += RETRY_DELAY
            before = self.consumer.metrics
            self.consumer.poll(self.opened.append, now=self.now)
            for key, count in self.consumer.metrics.items():
                outcomes += [key] * (count - before.get(key, 0))
        return outcomes

    def why(self, sender: str) -> str:
        """What frank's trust says to ``sender`` now: the refusal his consumer got."""
        context = letterlock.TrustContext(
            topic=TOPIC, suite=SUITE, content_type=None, headers={}, created=int(self.now),
            now=int(self.now),
        )  # fmt: skip
        verdict = self.trust.admit(self.keys[sender].public, context)
        return verdict.detail if isinstance(verdict, letterlock.Refusal) else "admitted"


def _credentials(keys: dict[str, letterlock.Identity], now: int) -> list[Credential]:
    everything = (ScopePattern.parse("#"),)
    lifetime = {"not_before": now - HOUR, "not_after": now + 30 * 24 * HOUR}
    ns = Namespace.parse("ll://acme/ledger/")
    sub = issue(
        keys["payments"], kind=Kind.AUTHORITY, subject="ledger-eu",
        subject_identity=keys["ledger-eu"].public, max_depth=0,
        scope=Scope(namespace=Namespace.parse("ll://acme/ledger/eu/"), roles=frozenset({"clerk"}),
                    publish=(ScopePattern.parse("ledger.eu.#"),), consume=everything),
        **lifetime,
    )  # fmt: skip
    leaves = [
        issue(
            keys["ledger-eu"],
            kind=Kind.PRINCIPAL,
            subject=f"ll://acme/ledger/eu/{name}",
            subject_identity=keys[name].public,
            scope=Scope(
                namespace=ns,
                roles=frozenset({"clerk"}),
                publish=(ScopePattern.parse("ledger.#"),),
                consume=everything,
            ),
            **lifetime,
        )
        for name in ("dave", "erin")
    ]
    return [sub, *leaves]


def _setup(directory: Path, spool: Spool, now: float) -> _Scene:
    names = ("payments", "ledger-eu", "dave", "erin", "r1", "r2", "r3", "ts")
    keys = {name: letterlock.Identity.generate(SUITE) for name in names}
    anchor = Anchor(
        name="payments", identity=keys["payments"].public,
        namespace=Namespace.parse("ll://acme/ledger/"), max_depth=1,
    )  # fmt: skip
    authorities = Authorities([anchor], _credentials(keys, int(now)))
    unsigned = make_root(
        1, root_keys=[keys[n].public for n in ("r1", "r2", "r3")], threshold=2,
        status_keys=[keys["ts"].public], status_threshold=1, expires=int(now) + 365 * 24 * HOUR,
    )  # fmt: skip
    root = TrustedRoot.pin(
        sign_metadata(unsigned, [IdentitySigner(keys["r1"]), IdentitySigner(keys["r3"])])
    )
    frank = letterlock.Identity.generate(SUITE)
    store = letterlock.MemoryReplayStore()
    trust = _LiveTrust(Revocations(authorities, None, Freshness(max_age=MAX_AGE)))
    opener = letterlock.Opener(frank, trust=trust, replay=letterlock.ReplayWindow(store))
    spool.bind(QUEUE, "ledger.#")
    consumer = SealedConsumer(
        spool, QUEUE, opener=opener, topics="ledger.#",
        retry=RetryPolicy(max_attempts=3, delay=RETRY_DELAY, max_delay=RETRY_DELAY),
    )  # fmt: skip

    def swap(snapshot: Snapshot) -> None:
        trust.policy = Revocations(authorities, snapshot.status, Freshness(max_age=MAX_AGE))

    updater = StatusUpdater(SnapshotCache(directory / "frank-trust"), Snapshot(root=root),
                            on_change=swap)  # fmt: skip
    follow_status(spool, updater, group=GROUP, idle_timeout=0)  # frank follows from now on
    return _Scene(spool=spool, now=now, keys=keys, consumer=consumer, updater=updater,
                  trust=trust, frank=frank)  # fmt: skip


class _LiveTrust:
    """Frank's trust: the snapshot policy, replaced as newer status documents arrive."""

    def __init__(self, policy: Revocations) -> None:
        self.policy = policy

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> letterlock.PublicIdentity | None:
        return self.policy.lookup(key_id, credentials)

    def admit(
        self, sender: letterlock.PublicIdentity, context: letterlock.TrustContext
    ) -> letterlock.VerifiedSender | letterlock.Refusal:
        return self.policy.admit(sender, context)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    who: str
    what: str
    act: Callable[[_Scene], None]
    expected: tuple[str, ...]
    polls: int = 1


def _revoked(s: _Scene) -> dict[str, dict[str, object]]:
    fingerprint = s.keys["erin"].public.fingerprint_text
    return {fingerprint: {"reason": "compromised", "since": int(s.now) - 60}}


def _first(s: _Scene) -> None:
    s.publish_status({})
    s.send("dave", b"dave: entry 1, EUR 1,200.00")


def _revoke_erin(s: _Scene) -> None:
    s.publish_status(_revoked(s))
    s.send("erin", b"erin: move EUR 50,000 to IBAN XX00 ERIN")


def _stale(s: _Scene) -> None:
    s.now += 2 * HOUR  # mallory drops every status document for two hours
    s.send("dave", b"dave: entry 2, EUR 880.00")


def _fresh(s: _Scene) -> None:
    s.publish_status(_revoked(s))
    s.now += RETRY_DELAY  # the entry held back is delivered again


STEPS = (
    _Step(who="dave", what="status v1 published; dave sends an entry on ledger.eu",
          act=_first, expected=("acked",)),
    _Step(who="erin", what="erin's key revoked (compromised) in status v2; erin sends",
          act=_revoke_erin, polls=3,
          expected=("retried:untrusted", "retried:untrusted", "dead_lettered:untrusted")),
    _Step(who="dave", what="2 h without a status (mallory drops them); dave sends",
          act=_stale, expected=("retried:untrusted",)),
    _Step(who="dave", what="status v3 arrives; the entry held back is delivered again",
          act=_fresh, expected=("acked",)),
)  # fmt: skip


def _view(outcomes: list[str], step: _Step, opened: letterlock.Opened | None, why: str) -> Text:
    if tuple(outcomes) != step.expected:
        shown = ", ".join(outcomes) or "-"
        return Text(f"{shown} (expected {', '.join(step.expected)})", style="bold yellow reverse")
    if opened is not None:
        s = opened.sender
        chain = " > ".join(s.authorities)
        return Text(f"✓ {s.principal}\n  chain {chain}, status v{s.status_version}", style="green")
    if outcomes[-1].startswith("retried"):
        return Text(f"⟳ untrusted, retried later:\n  {why}", style="yellow")
    return Text(f"✗ untrusted, dead-lettered:\n  {why}", style="red")


def authority_scene(directory: Path, now: float) -> tuple[Table, list[str]]:
    """Play the scene on its own spool; the table and any outcome that was not the expected."""
    table = Table(title="4. Authorities, revocation and a stale status (frank audits ledger.eu)",
                  caption="Frank anchors 'payments', pins a 2-of-3 root and follows status "
                  "documents on the spool; a stale status fails closed, a revoked key is refused.",
                  title_justify="left", caption_justify="left", box=box.ROUNDED)  # fmt: skip
    for column in ("sender", "what happens", "frank"):
        table.add_column(column)
    problems = []
    with contextlib.ExitStack() as stack:
        spool = stack.enter_context(Spool(directory / "ledger.db"))
        scene = _setup(directory, spool, now)
        for step in STEPS:
            opened_before = len(scene.opened)
            step.act(scene)
            why = scene.why(step.who)
            outcomes = scene.poll(step.polls)
            opened = scene.opened[-1] if len(scene.opened) > opened_before else None
            table.add_row(step.who, step.what, _view(outcomes, step, opened, why))
            if tuple(outcomes) != step.expected:
                problems.append(f"{step.what}: frank got {outcomes}, expected {step.expected}")
    return table, problems
