"""Opening a message signed by a delegated signing key vs one signed by the identity key.

    .venv/bin/python benchmarks/delegated_open.py [--suite x25519] [--messages 2000] [--rounds 4]

A benchmark, not a test. Bob pins alice's identity key; alice seals through a Sealer, once
with her identity key, once with a signing key of her keyset (``docs/spec/keyset.md`` section
9: each message carries the keyset, which bob's ``DelegatedSigners`` verifies once per keyset
and then finds by the block's digest). Measured in process CPU time (the machine is shared),
fastest round of each; also the envelope sizes and, for the first message of a keyset (an
empty cache), the cost of verifying the keyset too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from measure import best_open_us

from letterlock import Identity, Opener, Pins, ReplayWindow, Sealer, Suite
from letterlock.core.trust import TrustPolicy
from letterlock.trust import DelegatedSigners, FirstKnown, delegated
from letterlock.trust.keysets import Keyset, Purpose, sign_keyset

NOW = 1_700_000_000
DAY = 86_400


def _per_message(make: Callable[[], Opener], messages: list[bytes], rounds: int) -> float:
    return best_open_us(make, messages, rounds, NOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="x25519", choices=[s.label for s in Suite])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    suite = Suite.from_label(args.suite)
    alice, bob, signer = (Identity.generate(suite) for _ in range(3))
    keyset = Keyset.start(alice.public, now=NOW, lifetime=90 * DAY, grace=7 * DAY)
    keyset = keyset.add(signer.public, now=NOW, lifetime=7 * DAY, purpose=Purpose.SIGN)
    sending = delegated(signer, sign_keyset(keyset, alice), now=NOW)
    pins = Pins()
    pins.pin("alice", alice.public)

    def trust() -> TrustPolicy:
        return DelegatedSigners(FirstKnown(pins))

    results = {}
    for name, sender in (("identity key", alice), ("signing key", sending)):
        sealer = Sealer(sender)
        messages = [sealer.seal(b"x" * 256, recipients=[bob.public], topic="t", now=NOW)
                    for _ in range(args.messages)]  # fmt: skip
        results[name] = _per_message(
            lambda: Opener(bob, trust=trust(), replay=ReplayWindow()), messages, args.rounds
        )
        print(f"{suite.label} signed by the {name}: {len(messages[0])} bytes, "
              f"{results[name]:.1f} us per open")  # fmt: skip
        if name == "signing key":
            cold = _per_message(
                lambda: Opener(bob, trust=trust(), replay=ReplayWindow()), messages[:1], 1
            )
            print(f"{suite.label} first message of a keyset (keyset verified too): {cold:.1f} us")
    ratio = results["signing key"] / results["identity key"]
    print(f"{suite.label} ratio signing key / identity key: {ratio:.3f}")


if __name__ == "__main__":
    main()
