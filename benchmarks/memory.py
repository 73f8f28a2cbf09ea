"""Peak resident memory of sealing and opening one large message (a measurement, not a test).

    .venv/bin/python benchmarks/memory.py [--mib 64] [--suite p256]

Every case runs in a fresh child process (peak RSS only ever grows), which reports its peak
resident set (ru_maxrss) just before the operation and after it. Sealing starts with the
payload in memory; opening starts with the envelope in memory (read from a file another child
wrote). "x payload" is the peak over the pre-existing input, in payload sizes: the output
itself is 1x, so 1.0x means no copy beyond the result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import letterlock
from letterlock import hazmat

CASES = ("seal into buffer", "seal to bytes", "open into buffer", "open to bytes")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _keys(
    workdir: Path, suite_label: str
) -> tuple[letterlock.Identity, letterlock.Identity, letterlock.Pins]:
    keyfile = workdir / "keys"
    if not keyfile.exists():
        suite = letterlock.Suite.from_label(suite_label)
        sender, reader = letterlock.Identity.generate(suite), letterlock.Identity.generate(suite)
        keyfile.write_text(
            json.dumps([hazmat.identity_to_private_bytes(k).hex() for k in (sender, reader)])
        )
    sender_hex, reader_hex = json.loads(keyfile.read_text())
    sender = hazmat.identity_from_private_bytes(bytes.fromhex(sender_hex))
    reader = hazmat.identity_from_private_bytes(bytes.fromhex(reader_hex))
    pins = letterlock.Pins()
    pins.pin("sender", sender.public)
    return sender, reader, pins


def child(case: str, mib: int, suite_label: str, workdir: Path) -> dict[str, float]:
    sender, reader, pins = _keys(workdir, suite_label)
    sealer = letterlock.Sealer(sender)
    limits = letterlock.Limits(max_size=(mib + 1) << 20)
    opener = letterlock.Opener(reader, trust=pins, replay=letterlock.ReplayWindow(), limits=limits)
    sealer.seal(b"warm-up", recipients=[reader.public], topic="big")
    size = mib << 20
    envelope_file = workdir / "envelope"
    if case == "make":
        envelope_file.write_bytes(
            sealer.seal(os.urandom(size), recipients=[reader.public], topic="big")
        )
        return {}
    if case.startswith("open"):
        sealed = envelope_file.read_bytes()
        baseline = _peak_mib()
        if "buffer" in case:
            assert opener.open_into(sealed, bytearray(), topic="big").size == size
        else:
            assert opener.open(sealed, topic="big").size == size
    else:
        payload = os.urandom(size)
        baseline = _peak_mib()
        if "buffer" in case:
            sealer.seal_into(payload, bytearray(), recipients=[reader.public], topic="big")
        else:
            sealer.seal(payload, recipients=[reader.public], topic="big")
    return {"baseline": baseline, "peak": _peak_mib()}


def run_child(case: str, args: argparse.Namespace, workdir: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", case, "--mib", str(args.mib)]
    command += ["--suite", args.suite, "--workdir", workdir]
    result: dict[str, float] = json.loads(
        subprocess.run(command, check=True, capture_output=True, text=True).stdout
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--suite", default="p256")
    parser.add_argument("--child")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mib, args.suite, Path(args.workdir))))
        return
    print(f"{args.mib} MiB payload, suite {args.suite}: peak resident memory in a fresh process")
    print(f"{'case':<17} {'input MiB':>10} {'peak MiB':>9} {'x payload':>10}")
    with tempfile.TemporaryDirectory() as workdir:
        run_child("make", args, workdir)
        for case in CASES:
            result = run_child(case, args, workdir)
            growth = (result["peak"] - result["baseline"]) / args.mib
            print(f"{case:<17} {result['baseline']:>10.0f} {result['peak']:>9.0f} {growth:>9.2f}x")


if __name__ == "__main__":
    main()
