"""Write the fuzz seed corpus: real envelopes from the fixed fuzz sender to the fixed receiver.

Usage: ``python fuzz/make_corpus.py [DIR [NAME ...]]`` (default ``fuzz/corpus``, every seed).
One envelope per suite
with headers, a content type and an expiry, plus one hidden-sender, padded envelope to two
recipients and one p256 envelope carrying a credential block (envelope-v1 section 4.1), so the
fuzzer starts from inputs that reach every step of the open procedure and every field.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fuzz_envelope import NOW, OPENED, RECEIVERS, SENDERS, check_one, fixed_identity

import letterlock
from letterlock import CredentialFormat, Suite

TOPIC = "fuzz/orders"


def seeds() -> dict[str, bytes]:
    """File name -> sealed envelope."""
    out = {}
    for suite in Suite:
        out[f"{suite.label}.bin"] = letterlock.seal(
            b'{"order": 1, "qty": 3}',
            sender=SENDERS[suite],
            recipients=[RECEIVERS[suite].public],
            topic=TOPIC,
            headers={"kind": "order", "region": "eu"},
            content_type="application/json",
            expires_in=3600,
            now=NOW,
        )
    suite = Suite.X25519
    out["x25519-hidden-padded.bin"] = letterlock.seal(
        b"hidden sender, padded",
        sender=SENDERS[suite],
        recipients=[RECEIVERS[suite].public, fixed_identity(suite, "other").public],
        topic=TOPIC,
        now=NOW,
        hide_sender=True,
        pad="padme",
    )
    suite = Suite.P256
    carrying = SENDERS[suite].with_credentials(
        CredentialFormat.X509, [b"0\x82 leaf (opaque)", b"0\x82 issuer"], status_version=3
    )
    out["p256-credentials.bin"] = letterlock.seal(
        b"credential block", sender=carrying, recipients=[RECEIVERS[suite].public],
        topic=TOPIC, now=NOW,
    )  # fmt: skip
    return out


def main(directory: Path, only: set[str] | None = None) -> None:
    """Write the seeds (only those named in ``only``, if given: HPKE draws fresh randomness, so
    rewriting the others would churn bytes without changing what they reach)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        if only is not None and name not in only:
            continue
        if check_one(data) != OPENED:
            raise SystemExit(f"{name}: the fuzz target does not open its own seed")
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus",
        set(sys.argv[2:]) or None,
    )
