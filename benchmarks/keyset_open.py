"""Opening through a KeysetOpener (three keys) vs an Opener of the one key the message is for.

    .venv/bin/python benchmarks/keyset_open.py [--suite x25519] [--messages 2000] [--rounds 4]

A benchmark, not a test. The receiver's keyset has key 0 retired, key 1 primary and key 2
active; messages come from a Sealer (one cached HPKE wrap, as a stream from one sender has).
Measured in process CPU time (the machine is shared), fastest round of each: messages to the
primary key (the common case: the primary key's Opener is tried first) and to the retired key
(the primary refuses ``not_for_me``, then the header's recipient ids choose the key).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from measure import best_open_us

from letterlock import Identity, KeysetOpener, Opener, Pins, ReplayWindow, Sealer, Suite
from letterlock.trust.keysets import Keyset

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
    alice, bob, one, two = (Identity.generate(suite) for _ in range(4))
    keyset = Keyset.start(bob.public, now=NOW, lifetime=90 * DAY, grace=7 * DAY)
    keyset = keyset.add(one.public, now=NOW, lifetime=90 * DAY).promote(1, now=NOW)
    keyset = keyset.retire(0, now=NOW).add(two.public, now=NOW, lifetime=90 * DAY)
    pins = Pins()
    pins.pin("alice", alice.public)
    keys = {0: bob, 1: one, 2: two}
    sealer = Sealer(alice)
    for name, key in (("primary key 1", one), ("retired key 0", bob)):
        messages = [sealer.seal(b"x" * 256, recipients=[key.public], topic="t", now=NOW)
                    for _ in range(args.messages)]  # fmt: skip

        def single(receiver: Identity = key) -> Opener:
            return Opener(receiver, trust=pins, replay=ReplayWindow())

        plain = _per_message(single, messages, args.rounds)
        through = _per_message(
            lambda: KeysetOpener(keyset, keys, trust=pins, replay=ReplayWindow()), messages,
            args.rounds,
        )  # fmt: skip
        print(f"{suite.label} to {name}: Opener {plain:.1f} us, KeysetOpener {through:.1f} us, "
              f"ratio {through / plain:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
