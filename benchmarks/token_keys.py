"""Seal and open rates with the keys on a PKCS#11 token against keys held in this process.

    SOFTHSM2_CONF=... .venv/bin/python benchmarks/token_keys.py [--seconds 2] [--suites p256 p384]

Without ``--token`` it makes a SoftHSM2 token of its own in a temporary directory (needs
``softhsm2-util``). For each suite it seals 1 KiB messages to one recipient for ``--seconds``
with a warm :class:`letterlock.Sealer` (the content key reused, so a seal is one signature plus
AEAD and hashing: the signer's cost shows), once with an identity from
:class:`letterlock.keystore.pkcs11.Pkcs11KeyStore` and once with an in-process one, alternating
three times, and prints the median rates and their ratio. Then it opens messages sealed to each
with :func:`letterlock.open` (no decapsulation cache: one DH on the token per message, as a
cold :class:`letterlock.Opener` does), the same way.
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


def _open_rate(receiver: letterlock.Identity, seconds: float) -> float:
    sender = letterlock.Identity.generate(receiver.suite)
    pins = letterlock.Pins()
    pins.pin("sender", sender.public)
    window = letterlock.ReplayWindow()
    sealed = [
        letterlock.seal(bytes(1024), sender=sender, recipients=[receiver.public], topic="bench")
        for _ in range(64)
    ]
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        letterlock.open(
            sealed[count % 64], identity=receiver, trust=pins, replay=window, record=False,
            topic="bench",
        )  # fmt: skip
        count += 1
    return count / (time.perf_counter() - start)


def _print(operation: str, suite: str, token: list[float], local: list[float]) -> None:
    on_token, in_process = statistics.median(token), statistics.median(local)
    ratio = on_token / in_process
    print(f"{operation:5} {suite:6} {on_token:14.0f} {in_process:19.0f} {ratio:7.2f}")


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
            print(
                f"{'op':5} {'suite':6} {'token msgs/s':>14} {'in-process msgs/s':>19} {'ratio':>7}"
            )
            for suite_label in args.suites:
                suite = letterlock.Suite.from_label(suite_label)
                name = f"bench-{suite_label}-{os.getpid()}"
                on_token = store.create(name, suite, lambda: pin)
                in_process = letterlock.Identity.generate(suite)
                recipient = letterlock.Identity.generate(suite).public
                rates: dict[str, list[float]] = {
                    "seal": [],
                    "seal-local": [],
                    "open": [],
                    "open-local": [],
                }
                for _ in range(3):
                    rates["seal"].append(
                        _rate(letterlock.Sealer(on_token), recipient, args.seconds)
                    )
                    rates["seal-local"].append(
                        _rate(letterlock.Sealer(in_process), recipient, args.seconds)
                    )
                    rates["open"].append(_open_rate(on_token, args.seconds))
                    rates["open-local"].append(_open_rate(in_process, args.seconds))
                _print("seal", suite_label, rates["seal"], rates["seal-local"])
                _print("open", suite_label, rates["open"], rates["open-local"])


if __name__ == "__main__":
    main()
