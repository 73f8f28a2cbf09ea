"""Seal rate with the signing key on a PKCS#11 token against the key held in this process.

    SOFTHSM2_CONF=... .venv/bin/python benchmarks/token_signer.py [--seconds 2] [--suites p256 p384]

Without ``--token`` it makes a SoftHSM2 token of its own in a temporary directory (needs
``softhsm2-util``). For each suite it seals 1 KiB messages to one recipient for ``--seconds``
with a warm :class:`letterlock.Sealer` (the content key reused, so a seal is one signature plus
AEAD and hashing: the signer's cost shows), once with an identity from
:class:`letterlock.keystore.pkcs11.Pkcs11KeyStore` and once with an in-process one, alternating
three times, and prints the median rates and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import letterlock
from letterlock.keystore.pkcs11 import SOFTHSM2_MODULE, Pkcs11KeyStore

PIN = b"bench-pin-1234"


def _softhsm_token(root: Path) -> str:
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench",
         "--pin", PIN.decode(), "--so-pin", "bench-so-pin"],
        check=True, capture_output=True,
    )  # fmt: skip
    return "bench"


def _rate(sealer: letterlock.Sealer, recipient: letterlock.PublicIdentity, seconds: float) -> float:
    payload = bytes(1024)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sealer.seal(payload, recipients=[recipient], topic="bench")
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--suites", nargs="+", default=["p256", "p384"])
    parser.add_argument("--module", default=SOFTHSM2_MODULE)
    parser.add_argument("--token", help="label of an existing token (PIN in $LETTERLOCK_PIN)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pin = os.environb.get(b"LETTERLOCK_PIN", PIN) if args.token else PIN
        label = args.token or _softhsm_token(Path(tmp))
        with Pkcs11KeyStore(args.module, label) as store:
            print(f"{'suite':6} {'token seals/s':>14} {'in-process seals/s':>19} {'ratio':>7}")
            for suite_label in args.suites:
                suite = letterlock.Suite.from_label(suite_label)
                name = f"bench-{suite_label}-{os.getpid()}"
                on_token = store.create(name, suite, lambda: pin)
                in_process = letterlock.Identity.generate(suite)
                recipient = letterlock.Identity.generate(suite).public
                token_rates, local_rates = [], []
                for _ in range(3):
                    token_rates.append(_rate(letterlock.Sealer(on_token), recipient, args.seconds))
                    local_rates.append(
                        _rate(letterlock.Sealer(in_process), recipient, args.seconds)
                    )
                token, local = statistics.median(token_rates), statistics.median(local_rates)
                print(f"{suite_label:6} {token:14.0f} {local:19.0f} {token / local:7.2f}")


if __name__ == "__main__":
    main()
