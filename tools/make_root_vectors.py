"""Generate the root-of-trust test vectors (``docs/spec/root.md`` section 6).

Usage: ``python tools/make_root_vectors.py OUTDIR`` writes ``OUTDIR/<name>.json`` and removes any
other ``*.json`` there.

Keys are fixed: the key named ``N`` is derived from SHAKE-256("letterlock root vector key N")
(an Ed25519 seed, an EC scalar, an ML-DSA-87 seed, or the pq suite's signature seed and scalar);
``identity-SUITE-...`` keys are letterlock identities whose private keys are derived the same
way, signing through :class:`letterlock.trust.tufkeys.IdentitySigner`.
ECDSA and ML-DSA signatures are randomised by pyca/cryptography, so signatures differ between
runs; the outcomes and every other field do not.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from securesystemslib.signer import CryptoSigner, Signature, Signer, SSlibKey
from tuf.api.metadata import Metadata, Root, Timestamp

from letterlock import Identity, Suite
from letterlock.core.keys import format_fingerprint
from letterlock.hazmat import identity_from_private_bytes
from letterlock.trust.status import FIELD
from letterlock.trust.tufkeys import DualSigner, IdentitySigner

NOW = 1_800_000_000
HOUR = 3600
DAY = 24 * HOUR
YEAR = 365 * DAY
P384_N = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _seed(name: str, size: int) -> bytes:
    return hashlib.shake_256(f"letterlock root vector key {name}".encode()).digest(size)


def _scalar(name: str, size: int, order: int) -> int:
    return int.from_bytes(_seed(name, size), "big") % (order - 1) + 1


def identity(name: str, suite: Suite) -> Identity:
    """A letterlock identity of ``suite`` with keys derived from ``name``."""

    def scalar(label: str, size: int, order: int) -> bytes:
        return _scalar(f"{name} {label}", size + 8, order).to_bytes(size, "big")

    if suite is Suite.X25519:
        sig, kem = _seed(f"{name} sig", 32), _seed(f"{name} kem", 32)
    elif suite is Suite.P256:
        sig, kem = scalar("sig", 32, P256_N), scalar("kem", 32, P256_N)
    elif suite is Suite.P384:
        sig, kem = scalar("sig", 48, P384_N), scalar("kem", 48, P384_N)
    else:
        sig = _seed(f"{name} sig", 32) + scalar("sig ec", 48, P384_N)
        kem = _seed(f"{name} kem", 64) + scalar("kem ec", 48, P384_N)
    encoded = b"LLS\x01" + bytes([suite.value]) + struct.pack(">H", len(sig)) + sig
    return identity_from_private_bytes(encoded + struct.pack(">H", len(kem)) + kem)


def key(name: str) -> Signer:
    """The fixed signer named ``name``; its kind is the name's prefix."""
    kind = name.split("-", 1)[0]
    if kind == "identity":  # identity-SUITE-...: a letterlock identity (trust.tufkeys)
        return IdentitySigner(identity(name, Suite.from_label(name.split("-")[1])))
    if name.startswith("p384-dual-"):  # the ECDSA half of the dual key named by the rest
        scalar = _scalar(name.removeprefix("p384-") + " ecdsa", 56, P384_N)
        return CryptoSigner(ec.derive_private_key(scalar, ec.SECP384R1()))
    if kind == "ed25519":
        return CryptoSigner(ed25519.Ed25519PrivateKey.from_private_bytes(_seed(name, 32)))
    if kind == "p256":
        return CryptoSigner(ec.derive_private_key(_scalar(name, 40, P256_N), ec.SECP256R1()))
    if kind == "p384":
        return CryptoSigner(ec.derive_private_key(_scalar(name, 56, P384_N), ec.SECP384R1()))
    if kind == "mldsa87":
        return CryptoSigner(mldsa.MLDSA87PrivateKey.from_seed_bytes(_seed(name, 32)))
    if kind == "dual":
        half = _scalar(name + " ecdsa", 56, P384_N).to_bytes(48, "big")
        return DualSigner(_seed(name, 32) + half)
    raise ValueError(name)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def root(
    version: int,
    root_keys: list[str],
    threshold: int,
    status_keys: list[str],
    *,
    expires: int = NOW + YEAR,
) -> Metadata[Root]:
    signed = Root(version=version, expires=at(expires), consistent_snapshot=True)
    for name in root_keys:
        signed.add_key(key(name).public_key, Root.type)
    for name in status_keys:
        signed.add_key(key(name).public_key, Timestamp.type)
    signed.roles[Root.type].threshold = threshold
    return Metadata(signed)


def status(
    version: int,
    *,
    issued: int = NOW - HOUR,
    expires: int = NOW + DAY,
    keys: dict[str, Any] | None = None,
    principals: dict[str, Any] | None = None,
) -> Metadata[Timestamp]:
    body = {"issued": issued, "keys": keys or {}, "principals": principals or {}}
    return Metadata(
        Timestamp(version=version, expires=at(expires), unrecognized_fields={FIELD: body})
    )


def sign(metadata: Metadata[Any], *names: str) -> dict[str, Any]:
    for name in names:
        metadata.sign(key(name), append=True)
    document: dict[str, Any] = metadata.to_dict()
    return document


def alias(metadata: Metadata[Root], name: str, keyid: str) -> None:
    public = key(name).public_key
    metadata.signed.add_key(
        SSlibKey(keyid, public.keytype, public.scheme, dict(public.keyval)), Root.type
    )


def alias_signature(metadata: Metadata[Any], name: str, keyid: str) -> None:
    metadata.signatures[keyid] = Signature(keyid, key(name).sign(metadata.signed_bytes).signature)


def fingerprint(label: str) -> str:
    return format_fingerprint(hashlib.sha256(label.encode()).digest())


OLD = ["p256-a", "p384-a", "ed25519-a"]
NEW = ["mldsa87-a", "dual-a", "ed25519-b"]
STATUS = ["ed25519-s", "p256-s"]
V1 = ["ed25519-r1", "ed25519-r2", "ed25519-r3"]


def v1() -> dict[str, Any]:
    return sign(root(1, V1, 2, STATUS), *V1[:2])


def _vector(name: str, description: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": "letterlock-root-vector-v1",
        "name": name,
        "description": description,
        "now": NOW,
        "max_age": 2 * HOUR,
        "trusted": v1(),
        "roots": [],
        "statuses": [],
        "checks": [],
    }
    expect = {
        "trusted": "accept",
        "roots": [],
        "statuses": [],
        "root_version": 1,
        "root_current": True,
        "status_version": None,
        "fresh": False,
    }
    expect.update(fields.pop("expect"))
    return {**base, **fields, "expect": expect}


def cases() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = []
    add: Callable[..., None] = lambda *a, **k: vectors.append(_vector(*a, **k))  # noqa: E731

    add(
        "rotate-every-key-kind",
        "3 Ed25519 keys (2 of 3) hand over to P-256, P-384, Ed25519 (2 of 3), then to ML-DSA-87, "
        "the pq dual key and Ed25519 (3 of 3)",
        roots=[
            sign(root(2, OLD, 2, STATUS), *V1[1:], *OLD[:2]),
            sign(root(3, NEW, 3, STATUS), *OLD[1:], *NEW),
        ],
        expect={"roots": ["accept", "accept"], "root_version": 3},
    )
    identities = ["identity-x25519-a", "identity-p256-a", "identity-p384-a", "identity-pq-a"]
    add(
        "identity-keys",
        "version 2 lists the signing keys of letterlock identities of every suite (x25519 as "
        "Ed25519, p256 and p384 as ECDSA in DER, pq as the dual key), 3 of 4; its status key "
        "is a p256 identity's",
        roots=[sign(root(2, identities, 3, ["identity-p256-s"]), *V1[:2], *identities[1:])],
        statuses=[sign(status(1), "identity-p256-s")],
        expect={
            "roots": ["accept"],
            "root_version": 2,
            "statuses": ["accept"],
            "status_version": 1,
            "fresh": True,
        },
    )
    add(
        "rollback",
        "version 2 accepted, then version 1 and version 2 again offered",
        roots=[sign(root(2, V1, 2, STATUS), *V1), v1(), sign(root(2, V1, 2, STATUS), *V1)],
        expect={"roots": ["accept", "refuse:rollback", "refuse:rollback"], "root_version": 2},
    )
    add(
        "skipped-version",
        "version 3 offered to a receiver at version 1",
        roots=[sign(root(3, V1, 2, STATUS), *V1)],
        expect={"roots": ["refuse:skipped_version"], "root_version": 1},
    )
    add(
        "below-old-threshold",
        "version 2 signed by 1 of the 2 required old keys and all its own",
        roots=[sign(root(2, OLD, 1, STATUS), V1[0], *OLD)],
        expect={"roots": ["refuse:threshold"], "root_version": 1},
    )
    add(
        "below-own-threshold",
        "version 2 signed by the old keys but only 1 of its own 2 required",
        roots=[sign(root(2, OLD, 2, STATUS), *V1, OLD[0])],
        expect={"roots": ["refuse:self_threshold"], "root_version": 1},
    )
    twice = root(2, ["ed25519-b", "ed25519-c"], 2, STATUS)
    alias(twice, "ed25519-b", "second-id-of-ed25519-b")
    sign(twice, *V1[:2], "ed25519-b")
    alias_signature(twice, "ed25519-b", "second-id-of-ed25519-b")
    add(
        "one-key-under-two-ids",
        "version 2 (2 of 3 ids) signed by one key under both of its ids: one key, not two",
        roots=[twice.to_dict()],
        expect={"roots": ["refuse:self_threshold"], "root_version": 1},
    )
    add(
        "dual-key-and-its-own-half",
        "version 2 lists the pq dual key dual-b and the P-384 key that is its ECDSA half (2 of 2),"
        " signed by both: one holder",
        roots=[
            sign(root(2, ["dual-b", "p384-dual-b"], 2, STATUS), *V1[:2], "dual-b", "p384-dual-b")
        ],
        expect={"roots": ["refuse:self_threshold"], "root_version": 1},
    )
    extra = root(2, ["ed25519-b", "ed25519-c", "ed25519-d"], 2, STATUS)
    sign(extra, *V1[:2], "ed25519-b", "ed25519-c")
    forged = key("ed25519-d").sign(extra.signed_bytes).signature
    keyid_d = key("ed25519-d").public_key.keyid
    extra.signatures[keyid_d] = Signature(
        keyid_d, ("00" if forged[:2] != "00" else "11") + forged[2:]
    )
    add(
        "extra-invalid-signature",
        "version 2 meets both thresholds and carries a forged signature by a third listed key",
        roots=[extra.to_dict()],
        expect={"roots": ["accept"], "root_version": 2},
    )
    add(
        "expired-intermediate-root",
        "version 2 expired a day ago; version 3 is current: updated through, and used",
        roots=[
            sign(root(2, V1, 2, STATUS, expires=NOW - DAY), *V1[:2]),
            sign(root(3, V1, 2, STATUS), *V1[:2]),
        ],
        expect={"roots": ["accept", "accept"], "root_version": 3},
    )
    add(
        "expired-final-root",
        "version 2 expired a day ago and is the newest: accepted, but not usable",
        roots=[sign(root(2, V1, 2, STATUS, expires=NOW - DAY), *V1[:2])],
        expect={"roots": ["accept"], "root_version": 2, "root_current": False},
    )

    alice, mallory, bob = fingerprint("alice"), fingerprint("mallory"), fingerprint("bob")
    revoked = {
        alice: {"reason": "compromised", "since": NOW - DAY},
        bob: {"reason": "superseded", "since": NOW - DAY},
        mallory: {"reason": "compromised-unknown-time"},
    }
    principals = {"ll://acme/svc/old": {"reason": "superseded", "since": NOW - 2 * DAY}}
    add(
        "status-revocations",
        "a status revoking three keys and a principal, and the decisions it gives",
        statuses=[sign(status(4, keys=revoked, principals=principals), STATUS[0])],
        checks=[
            {"key": alice, "dated": NOW - DAY - 1, "refused": False},
            {"key": alice, "dated": NOW - DAY, "refused": True},
            {"key": bob, "dated": NOW - DAY - 1, "refused": False},
            {"key": bob, "dated": NOW, "refused": True},
            {"key": mallory, "dated": 0, "refused": True},
            {"key": fingerprint("carol"), "dated": NOW, "refused": False},
            {"principal": "ll://acme/svc/old", "dated": NOW - 2 * DAY, "refused": True},
            {"principal": "ll://acme/svc/new", "dated": NOW, "refused": False},
        ],
        expect={"statuses": ["accept"], "status_version": 4, "fresh": True},
    )
    anchor, payments, issuing = fingerprint("anchor"), fingerprint("payments"), fingerprint("ca")
    on_path = {
        payments: {"reason": "superseded", "since": NOW - DAY},
        issuing: {"reason": "compromised-unknown-time"},
        anchor: {"reason": "compromised", "since": NOW - 3 * DAY},
    }
    carol = fingerprint("carol")
    add(
        "status-revocations-on-the-path",
        "a status revoking an authority, a CA and an anchor: the senders they vouch for",
        statuses=[sign(status(4, keys=on_path), STATUS[0])],
        checks=[
            {"key": carol, "path": [payments], "dated": NOW - DAY - 1, "refused": False},
            {"key": carol, "path": [payments], "dated": NOW - DAY, "refused": True},
            {"key": carol, "path": [issuing], "dated": 0, "refused": True},
            {"key": carol, "path": [anchor, fingerprint("x")], "dated": NOW, "refused": True},
            {"key": carol, "path": [anchor], "dated": NOW - 3 * DAY - 1, "refused": False},
            {
                "key": carol,
                "path": [fingerprint("x"), fingerprint("y")],
                "dated": NOW,
                "refused": False,
            },
            {"key": payments, "path": [], "dated": NOW, "refused": True},
        ],
        expect={"statuses": ["accept"], "status_version": 4, "fresh": True},
    )
    add(
        "status-rollback-and-equivocation",
        "status 5, then 4 (rollback), 5 re-signed by the other key (kept), 5 with other content",
        statuses=[
            sign(status(5), STATUS[0]),
            sign(status(4), STATUS[0]),
            sign(status(5), STATUS[1]),
            sign(status(5, issued=NOW), STATUS[0]),
        ],
        expect={
            "statuses": ["accept", "refuse:rollback", "accept", "refuse:equivocation"],
            "status_version": 5,
            "fresh": True,
        },
    )
    add(
        "status-by-root-keys",
        "a status signed by root keys, not by the status role's",
        statuses=[sign(status(1), *V1)],
        expect={"statuses": ["refuse:threshold"], "fresh": False},
    )
    add(
        "status-stale",
        "a status issued 3 hours ago, for a receiver that allows 2",
        statuses=[sign(status(1, issued=NOW - 3 * HOUR), STATUS[1])],
        expect={"statuses": ["accept"], "status_version": 1, "fresh": False},
    )
    add(
        "status-expired",
        "a status issued an hour ago that expired a minute ago",
        statuses=[sign(status(1, expires=NOW - 60), STATUS[1])],
        expect={"statuses": ["accept"], "status_version": 1, "fresh": False},
    )
    add(
        "status-unknown-reason",
        "a status with a revocation reason letterlock does not know",
        statuses=[sign(status(1, keys={alice: {"reason": "lost", "since": 1}}), STATUS[0])],
        expect={"statuses": ["refuse:malformed"], "fresh": False},
    )
    return vectors


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    written = set()
    for vector in cases():
        path = outdir / f"{vector['name']}.json"
        path.write_text(json.dumps(vector, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.add(path)
    for stale in set(outdir.glob("*.json")) - written:
        stale.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
