"""Opening a message from a sender certified through a 3-deep chain vs from a pinned sender.

    .venv/bin/python benchmarks/chain.py [--suite x25519] [--messages 300] [--rounds 15]

A benchmark, not a test (issue 9, "Speed"). The chain is anchor -> two authorities -> the
sender (three credentials); ``Authorities`` has seen it once before the timing starts, as a
consumer has after its first message from that sender. Each round opens ``--messages`` fresh
envelopes with each policy, message by message in turn, and the fastest round of each is
reported (the machine is shared: the minimum is the least disturbed). Also reported: one
``admit`` call of each policy, and the first sight of the chain (three signature checks).
"""

from __future__ import annotations

import argparse
import time
import timeit

import letterlock
from letterlock import Identity, Pins, ReplayWindow, Suite, TrustContext
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

    def open_both() -> tuple[float, float]:
        """Seconds per open with each policy, message by message in turn (so drift in the
        machine's speed falls on both alike)."""
        windows = ReplayWindow(), ReplayWindow()
        spent = [0.0, 0.0]
        clock = time.perf_counter
        policies: tuple[TrustPolicy, TrustPolicy] = (pins, certified)
        for envelope in envelopes:
            for index, policy in enumerate(policies):
                started = clock()
                letterlock.open(
                    envelope, identity=receiver, trust=policy, replay=windows[index], now=NOW
                )
                spent[index] += clock() - started
        return spent[0] / len(envelopes), spent[1] / len(envelopes)

    pinned = chained = float("inf")
    for _ in range(args.rounds):
        one, other = open_both()
        pinned, chained = min(pinned, one), min(chained, other)

    def admit_time(policy: TrustPolicy) -> float:
        runs = timeit.repeat(lambda: policy.admit(sender.public, context), number=20_000, repeat=5)
        return min(runs) / 20_000

    print(f"suite {suite.label}, 1 KiB messages, best of {args.rounds} rounds")
    print(f"  open, pinned sender:            {pinned * 1e6:8.1f} us")
    print(f"  open, 3-deep chain (seen):      {chained * 1e6:8.1f} us")
    print(f"  ratio chain / pinned:           {chained / pinned:8.3f}")
    print(f"  admit, pinned:                  {admit_time(pins) * 1e6:8.2f} us")
    print(f"  admit, 3-deep chain (seen):     {admit_time(certified) * 1e6:8.2f} us")
    print(f"  admit, chain at first sight:    {first_sight * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
