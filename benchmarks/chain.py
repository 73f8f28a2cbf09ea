"""Opening a message from a sender certified through a 3-deep chain vs from a pinned sender.

    .venv/bin/python benchmarks/chain.py [--suite x25519] [--messages 300] [--rounds 15]

A benchmark, not a test (issue 9, "Speed"). The chain is anchor -> two authorities -> the
sender (three credentials); ``Authorities`` has seen it once before the timing starts, as a
consumer has after its first message from that sender. Each round opens ``--messages`` fresh
envelopes with each policy, message by message in turn, and the fastest round of each is
reported (the machine is shared: the minimum is the least disturbed). Also reported: one
``admit`` call of each policy, and the first sight of the chain (three signature checks).
A third policy, ``Authorities`` with the anchor and no credentials at all, opens messages that
carry the chain in their credential block (``docs/spec/envelope-v1.md`` section 4.1), also
seen once before the timing starts. CPU time is also reported (the machine is loaded).
"""

from __future__ import annotations

import argparse
import time
import timeit

import letterlock
from letterlock import CredentialFormat, Identity, Pins, ReplayWindow, Suite, TrustContext
from letterlock.core.principal import Namespace
from letterlock.core.trust import TrustPolicy
from letterlock.trust import Anchor, Authorities, Credential, Kind, Scope, ScopePattern, issue

NOW = 1_800_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="x25519", choices=[s.label for s in Suite])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    suite = Suite.from_label(args.suite)
    root, first, second, sender, receiver = (Identity.generate(suite) for _ in range(5))
    granted = Scope(
        namespace=Namespace.parse("ll://acme/"),
        roles=frozenset({"writer"}),
        publish=(ScopePattern.parse("orders.#"),),
    )

    def certify(
        issuer: Identity, subject: Identity, kind: Kind, name: str, depth: int
    ) -> Credential:
        return issue(
            issuer,
            kind=kind,
            subject=name,
            subject_identity=subject.public,
            not_before=0,
            not_after=2**40,
            max_depth=depth,
            scope=granted,
        )

    chain = [
        certify(root, first, Kind.AUTHORITY, "payments", 2),
        certify(first, second, Kind.AUTHORITY, "billing-team", 1),
        certify(second, sender, Kind.PRINCIPAL, "ll://acme/payments/billing", 0),
    ]
    anchor = Anchor(
        name="acme", identity=root.public, namespace=Namespace.parse("ll://acme/"), max_depth=2
    )

    def authorities() -> Authorities:
        return Authorities([anchor], chain)

    pins = Pins()
    pins.pin("billing", sender.public)
    certified = authorities()
    context = TrustContext(
        topic="orders.eu", suite=suite, content_type=None, headers={}, created=NOW, now=NOW
    )
    started = time.perf_counter()
    assert not isinstance(authorities().admit(sender.public, context), letterlock.Refusal)
    first_sight = time.perf_counter() - started
    certified.admit(sender.public, context)  # seen once

    envelopes = [
        letterlock.seal(
            b"x" * 1024, sender=sender, recipients=[receiver.public], topic="orders.eu", now=NOW
        )
        for _ in range(args.messages)
    ]
    carrying = sender.with_credentials(
        CredentialFormat.LETTERLOCK, [c.encoded for c in reversed(chain)]
    )
    carried_envelopes = [
        letterlock.seal(
            b"x" * 1024, sender=carrying, recipients=[receiver.public], topic="orders.eu", now=NOW
        )
        for _ in range(args.messages)
    ]
    anchor_only = Authorities([anchor], [])
    letterlock.open(  # the carried chain, seen once
        carried_envelopes[0], identity=receiver, trust=anchor_only, replay=ReplayWindow(), now=NOW
    )

    def open_all() -> tuple[tuple[float, float], ...]:
        """(wall, CPU) seconds per open with each policy, message by message in turn (so drift
        in the machine's speed falls on all alike)."""
        windows = ReplayWindow(), ReplayWindow(), ReplayWindow()
        spent = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
        clock, cpu = time.perf_counter, time.process_time
        policies: tuple[TrustPolicy, ...] = (pins, certified, anchor_only)
        for plain, carried in zip(envelopes, carried_envelopes, strict=True):
            for index, policy in enumerate(policies):
                envelope = carried if index == 2 else plain
                started, started_cpu = clock(), cpu()
                letterlock.open(
                    envelope, identity=receiver, trust=policy, replay=windows[index], now=NOW
                )
                spent[index][0] += clock() - started
                spent[index][1] += cpu() - started_cpu
        return tuple((wall / len(envelopes), used / len(envelopes)) for wall, used in spent)

    best = [[float("inf")] * 2 for _ in range(3)]
    for _ in range(args.rounds):
        for index, times in enumerate(open_all()):
            best[index] = [min(b, t) for b, t in zip(best[index], times, strict=True)]
    pinned, chained = best[0][0], best[1][0]

    def admit_time(policy: TrustPolicy) -> float:
        runs = timeit.repeat(lambda: policy.admit(sender.public, context), number=20_000, repeat=5)
        return min(runs) / 20_000

    print(f"suite {suite.label}, 1 KiB messages, best of {args.rounds} rounds")
    print(f"  open, pinned sender:            {pinned * 1e6:8.1f} us")
    print(f"  open, 3-deep chain (seen):      {chained * 1e6:8.1f} us")
    print(f"  ratio chain / pinned:           {chained / pinned:8.3f}")
    print(f"  open, chain carried (seen):     {best[2][0] * 1e6:8.1f} us")
    print(f"  ratio carried / pinned:         {best[2][0] / pinned:8.3f}")
    print(
        f"  CPU per open: pinned {best[0][1] * 1e6:.1f} us, chain {best[1][1] * 1e6:.1f} us, "
        f"carried {best[2][1] * 1e6:.1f} us; carried / pinned {best[2][1] / best[0][1]:.3f}"
    )
    print(f"  admit, pinned:                  {admit_time(pins) * 1e6:8.2f} us")
    print(f"  admit, 3-deep chain (seen):     {admit_time(certified) * 1e6:8.2f} us")
    print(f"  admit, chain at first sight:    {first_sight * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
