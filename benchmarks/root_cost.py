"""What the root of trust and status documents cost (a measurement, not a test).

    .venv/bin/python benchmarks/root_cost.py [--repeat 200]

Per key kind: one root rotation checked (3-of-5 of the old root's keys and 3-of-5 of the new
one's: six signature verifications), and one status document accepted (1 signature). Then the
per-message price of the ``Revocations`` policy in front of ``Pins`` (a fresh status, 1000
revoked keys), next to ``Pins`` alone, and what importing python-tuf adds to start-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import Metadata, Root, Timestamp

from letterlock import Identity, Pins, Suite, TrustContext
from letterlock.core.keys import format_fingerprint
from letterlock.trust.root import TrustedRoot
from letterlock.trust.status import FIELD, Freshness, Revocations, accept_status
from letterlock.trust.tufkeys import DualSigner

NOW = 1_800_000_000


def _signers(kind: str, n: int) -> list[Signer]:
    make: dict[str, Callable[[], Signer]] = {
        "p256": CryptoSigner.generate_ecdsa,
        "p384": lambda: CryptoSigner(ec.generate_private_key(ec.SECP384R1())),
        "ed25519": CryptoSigner.generate_ed25519,
        "ml-dsa-87": lambda: CryptoSigner.generate_mldsa(scheme="ml-dsa-87/1"),
        "dual (pq)": DualSigner.generate,
    }
    return [make[kind]() for _ in range(n)]


def _root(version: int, signers: list[Signer], status: Signer) -> Metadata[Root]:
    root = Root(version=version, expires=datetime.fromtimestamp(NOW + 10**7, UTC))
    for signer in signers:
        root.add_key(signer.public_key, Root.type)
    root.add_key(status.public_key, Timestamp.type)
    root.roles[Root.type].threshold = 3
    return Metadata(root)


def _per_call(repeat: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    for kind in ("p256", "p384", "ed25519", "ml-dsa-87", "dual (pq)"):
        old, new = _signers(kind, 5), _signers(kind, 5)
        v1 = _root(1, old, new[0])
        for signer in old[:3]:
            v1.sign(signer, append=True)
        v2 = _root(2, new, new[0])
        for signer in old[:3] + new[:3]:
            v2.sign(signer, append=True)
        trusted = TrustedRoot.pin(v1.to_bytes())
        v2_bytes = v2.to_bytes()
        rotated = trusted.update(v2_bytes)
        body = {"issued": NOW, "keys": {}, "principals": {}}
        status = Metadata(
            Timestamp(
                version=1,
                expires=datetime.fromtimestamp(NOW + 3600, UTC),
                unrecognized_fields={FIELD: body},
            )
        )
        status.sign(new[0])
        status_bytes = status.to_bytes()
        rotation = _per_call(max(repeat // 10, 5), partial(trusted.update, v2_bytes))
        accept = _per_call(repeat, partial(accept_status, rotated, None, status_bytes, now=NOW))
        print(
            f"{kind:10} root rotation 3-of-5 -> 3-of-5: {rotation * 1e3:7.2f} ms   "
            f"status accepted: {accept * 1e3:6.2f} ms   ({len(v2_bytes)} root bytes)"
        )

    alice = Identity.generate(Suite.X25519)
    pins = Pins()
    pins.pin("alice", alice.public)
    signer = CryptoSigner.generate_ed25519()
    root = _root(1, [signer] * 1, signer)
    root.signed.roles[Root.type].threshold = 1
    root.sign(signer)
    trusted = TrustedRoot.pin(root.to_bytes())
    revoked = {
        format_fingerprint(n.to_bytes(32, "big")): {"reason": "superseded", "since": NOW}
        for n in range(1000)
    }
    body = {"issued": NOW, "keys": revoked, "principals": {}}
    status_md = Metadata(
        Timestamp(
            version=1,
            expires=datetime.fromtimestamp(NOW + 3600, UTC),
            unrecognized_fields={FIELD: body},
        )
    )
    status_md.sign(signer)
    held = accept_status(trusted, None, status_md.to_bytes(), now=NOW)
    policy = Revocations(pins, held, Freshness(max_age=3600))
    context = TrustContext(
        topic="t", suite=Suite.X25519, content_type=None, headers={}, created=NOW, now=NOW + 1
    )
    many = repeat * 500
    plain = _per_call(many, lambda: pins.admit(alice.public, context))
    checked = _per_call(many, lambda: policy.admit(alice.public, context))
    print(
        f"admit: Pins {plain * 1e9:.0f} ns, Revocations(Pins) {checked * 1e9:.0f} ns "
        f"(+{(checked - plain) * 1e9:.0f} ns per message, 1000 revoked keys)"
    )
    imports = []
    for module in ("letterlock", "letterlock.trust.status"):
        code = f"import time; t = time.perf_counter(); import {module}; "
        code += "print(time.perf_counter() - t)"
        best = min(
            float(
                subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(5)
        )
        imports.append(f"import {module}: {best * 1e3:.0f} ms")
    print("; ".join(imports), "(best of 5, fresh interpreters)")


if __name__ == "__main__":
    main()
