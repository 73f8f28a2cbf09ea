"""What refusing a forged envelope costs the receiver (a measurement, not a test).

    .venv/bin/python benchmarks/forgery_cost.py [--mib 64] [--suite p256]

Anyone who knows a receiver's public key can send it envelopes. A visible-sender forgery is
refused after one hash of the ciphertext and one signature verification; a hidden-sender one
only after HPKE and a pass of the AEAD (its signature is inside the ciphertext). Each case runs
in a fresh child process and reports the CPU time of the refusal and the peak memory it added
(ru_maxrss after minus before, the envelope already in memory), opening into a buffer of the
right size, as a long-lived consumer does.

Cases: the default receiver (hidden-sender envelopes capped at 1 MiB), a receiver that raised
that cap to accept the whole size, and the visible-sender forgery for comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import letterlock

CASES = ("visible forgery", "hidden forgery, default limits", "hidden forgery, cap raised")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, mib: int, suite_label: str) -> dict[str, float | str]:
    suite = letterlock.Suite.from_label(suite_label)
    mallory, bob, alice = (letterlock.Identity.generate(suite) for _ in range(3))
    pins = letterlock.Pins()
    pins.pin("alice", alice.public)
    hidden = case != "visible forgery"
    size = mib << 20
    forged = letterlock.seal(  # mallory signs; nobody pins her
        b"f", sender=mallory, recipients=[bob.public], topic="big", hide_sender=hidden, pad=size
    )
    limits = letterlock.Limits(
        max_size=len(forged) + 1,
        max_hidden_size=len(forged) + 1 if case.endswith("raised") else 1 << 20,
    )
    opener = letterlock.Opener(bob, trust=pins, replay=letterlock.ReplayWindow(), limits=limits)
    buffer = bytearray(len(forged))
    before = _peak_mib()
    started = time.process_time()
    try:
        opener.open_into(forged, buffer, topic="big")
        reason = "opened?!"
    except letterlock.Rejected as rejected:
        reason = rejected.reason.value
    took = time.process_time() - started
    return {"ms": took * 1000, "extra_mib": _peak_mib() - before, "reason": reason}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--suite", default="p256")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mib, args.suite)))
        return
    print(f"refusing a {args.mib} MiB forgery ({args.suite}), opening into a buffer")
    print(f"{'case':34s} {'CPU ms':>8s} {'extra MiB':>10s}  reason")
    for case in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--child", case, "--mib", str(args.mib),
             "--suite", args.suite],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(done.stdout)
        print(f"{case:34s} {result['ms']:8.1f} {result['extra_mib']:10.1f}  {result['reason']}")


if __name__ == "__main__":
    main()
