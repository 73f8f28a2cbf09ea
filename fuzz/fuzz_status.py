"""Fuzz target: arbitrary bytes offered as a status document, as a hostile broker delivers them.

The bytes go where ``letterlock status update --broker`` and ``listen --follow-status`` send
what arrives on the status topic: :meth:`letterlock.sources.updater.StatusUpdater.offer`, which
parses them as TUF timestamp metadata, verifies them under a fixed root and applies the
rollback and equivocation rules (``docs/spec/root.md`` section 4). The only allowed outcomes are
acceptance and :class:`letterlock.trust.root.MetadataRefused`; any other exception is a crash.
Each input is checked whole and at many of its prefixes, against an updater holding nothing and
one holding version 2.

The root and status keys are fixed identities derived from constant seeds (public test keys),
so the seeds (``python fuzz/fuzz_status.py --make-corpus``) are real, accepted documents.

Run: ``python fuzz/fuzz_status.py -atheris_runs=20000 NEW_DIR fuzz/corpus-status``. Imported
as a module, nothing is instrumented and atheris is not needed.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

from harness import fuzz, instrumentation

with instrumentation(__name__ == "__main__" and "--make-corpus" not in sys.argv):
    from letterlock import Identity, Suite, hazmat
    from letterlock.sources.folder import Snapshot, SnapshotCache
    from letterlock.sources.publish import make_root, make_status, sign_metadata
    from letterlock.sources.updater import StatusUpdater
    from letterlock.trust.root import MetadataRefused, TrustedRoot
    from letterlock.trust.status import Status
    from letterlock.trust.tufkeys import IdentitySigner

__all__ = ["NOW", "ROOT", "TestOneInput", "check_one", "seeds"]

NOW = 1_700_000_000
DENSE_PREFIXES = 64
STRIDED_PREFIXES = 32


def _identity(role: str) -> Identity:
    seed = hashlib.shake_256(f"letterlock status fuzz {role}".encode()).digest(64)
    sig, kem = seed[:32], seed[32:]
    encoded = b"".join(
        (b"LLS\x01", bytes([Suite.X25519.value]), struct.pack(">H", 32), sig,
         struct.pack(">H", 32), kem)
    )  # fmt: skip
    return hazmat.identity_from_private_bytes(encoded)


KEYS = {role: _identity(role) for role in ("root", "status")}
ROOT = TrustedRoot.pin(
    sign_metadata(
        make_root(
            1,
            root_keys=[KEYS["root"].public],
            threshold=1,
            status_keys=[KEYS["status"].public],
            status_threshold=1,
            expires=NOW + 10 * 365 * 86400,
        ),
        [IdentitySigner(KEYS["root"])],
    )
)


def seeds() -> dict[str, bytes]:
    """Accepted status documents: an empty one, and one with every kind of revocation."""
    fingerprint = KEYS["root"].public.fingerprint_text
    revocations: dict[str, dict[str, object]] = {
        fingerprint: {"reason": "compromised", "since": NOW - 60},
    }
    principals: dict[str, dict[str, object]] = {
        "ll://acme/payments/billing": {"reason": "superseded", "since": NOW - 3600},
        "ll://acme/payments/eu/clerk": {"reason": "compromised-unknown-time"},
    }
    documents = {
        "empty-v1.json": make_status(1, issued=NOW, expires=NOW + 3600, keys={}, principals={}),
        "revocations-v3.json": make_status(
            3, issued=NOW, expires=NOW + 3600, keys=revocations, principals=principals
        ),
    }
    signer = IdentitySigner(KEYS["status"])
    return {name: sign_metadata(data, [signer]) for name, data in documents.items()}


HELD = sign_metadata(
    make_status(2, issued=NOW, expires=NOW + 3600, keys={}, principals={}),
    [IdentitySigner(KEYS["status"])],
)


class _Unsaved(SnapshotCache):
    """A cache that keeps nothing: the fuzzer exercises the rules, not the disk."""

    def __init__(self) -> None:
        super().__init__(".")

    def save(self, snapshot: Snapshot) -> None:
        pass


HELD_STATUS = Status.verify(ROOT, HELD)


def check_one(data: bytes) -> str:
    """Offer ``data`` to an updater holding nothing and to one holding version 2: the outcomes."""
    outcomes = []
    for held in (None, HELD_STATUS):
        updater = StatusUpdater(_Unsaved(), Snapshot(root=ROOT, status=held))
        try:
            outcomes.append("accepted" if updater.offer(data, now=NOW) else "copy")
        except MetadataRefused as exc:
            outcomes.append(str(exc.rule))
    return ",".join(outcomes)


def _prefixes(data: bytes) -> list[int]:
    dense = list(range(min(len(data), DENSE_PREFIXES)))
    stride = max(1, (len(data) - DENSE_PREFIXES) // STRIDED_PREFIXES)
    return dense + list(range(DENSE_PREFIXES, len(data), stride))


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris calls
    check_one(data)
    for end in _prefixes(data):
        check_one(data[:end])


def _make_corpus() -> None:
    folder = Path(__file__).parent / "corpus-status"
    folder.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (folder / name).write_bytes(data)


if __name__ == "__main__":
    if "--make-corpus" in sys.argv:
        _make_corpus()
    else:
        fuzz(TestOneInput)
