"""Generate the credential test vectors (``docs/spec/credentials.md`` section 6).

Usage: ``python tools/make_credential_vectors.py OUTDIR`` writes ``OUTDIR/credentials/<name>.json``
and removes any other ``*.json`` left there.

Keys. The private identity of role ``R`` is the x25519 identity (``envelope-v1.md`` section 3.2)
whose 64 key bytes are SHAKE-256("letterlock credential vector key R"). Ed25519 signatures are
deterministic, so every run writes the same bytes.

Reject vectors built by hand ("malformed" ones) re-sign the altered bytes with the real issuer
key, so each breaks exactly the one rule it names.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from letterlock import Identity, Suite, hazmat
from letterlock.core.principal import Namespace
from letterlock.core.topics import Dialect
from letterlock.trust.credentials import (
    SIGNING_LABEL,
    Anchor,
    Chain,
    Credential,
    Kind,
    Scope,
    issue,
    verify_chain,
)
from letterlock.trust.scope import ScopePattern

NOW: Final = 1_800_000_000
START, END = NOW - 86_400, NOW + 86_400
FORMAT: Final = "letterlock-credential-vector-v1"


def key(role: str) -> Identity:
    stream = hashlib.shake_256(f"letterlock credential vector key {role}".encode()).digest(64)
    private = b"LLS\x01" + bytes([Suite.X25519.value])
    private += struct.pack(">H", 32) + stream[:32] + struct.pack(">H", 32) + stream[32:]
    return hazmat.identity_from_private_bytes(private)


ROOT, PAYMENTS, TEAM, BILLING, MALLORY = map(
    key, ("root", "payments", "team", "billing", "mallory")
)


def scope(namespace: str, publish: Sequence[str], roles: Sequence[str] = ()) -> Scope:
    return Scope(
        namespace=Namespace.parse(namespace),
        roles=frozenset(roles),
        publish=tuple(
            ScopePattern.parse(p, Dialect.MQTT if "/" in p else Dialect.AMQP) for p in publish
        ),
    )


def credential(
    issuer: Identity,
    subject: Identity,
    name: str,
    granted: Scope,
    *,
    kind: Kind = Kind.AUTHORITY,
    depth: int = 0,
    not_before: int = START,
    not_after: int = END,
) -> Credential:
    return issue(
        issuer,
        kind=kind,
        subject=name,
        subject_identity=subject.public,
        not_before=not_before,
        not_after=not_after,
        max_depth=depth,
        scope=granted,
    )


def resign(issuer: Identity, body: bytes) -> bytes:
    """``body`` (a credential without its signature) signed by ``issuer``, as it is."""
    return body + issuer.sign(SIGNING_LABEL + body)


def altered(issuer: Identity, original: Credential, old: bytes, new: bytes) -> bytes:
    body = original.encoded[: -len(original.signature)]
    assert body.count(old) == 1, (old, body)
    return resign(issuer, body.replace(old, new))


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    name: str
    description: str
    chain: Sequence[Credential | bytes]
    topic: str = "orders.eu"
    now: int = NOW
    anchor_depth: int = 1
    anchor_namespace: str = "ll://acme/"
    anchor_roles: Sequence[str] | None = None
    anchor_publish: Sequence[str] = ("#",)
    expect: dict[str, Any] = field(default_factory=dict)


def leaf(
    issuer: Identity,
    granted: Scope,
    principal: str = "ll://acme/payments/billing",
    *,
    not_before: int = START,
    not_after: int = END,
) -> Credential:
    return credential(
        issuer,
        BILLING,
        principal,
        granted,
        kind=Kind.PRINCIPAL,
        not_before=not_before,
        not_after=not_after,
    )


def middle(granted: Scope | None = None, *, depth: int = 0, not_after: int = END) -> Credential:
    default = scope("ll://acme/payments/", ["orders.#"], ["reader", "writer"])
    return credential(
        ROOT, PAYMENTS, "payments", granted or default, depth=depth, not_after=not_after
    )


BOTTOM = scope("ll://acme/payments/", ["orders.eu", "orders.us"], ["admin", "writer"])


def cases() -> list[Case]:
    two = [middle(), leaf(PAYMENTS, BOTTOM)]
    wide = leaf(PAYMENTS, scope("ll://acme/", ["#"], ["admin", "writer"]))
    team = credential(PAYMENTS, TEAM, "team", scope("ll://acme/payments/", ["orders.*"]))
    pattern_acb = b".\x03\x00\x01a\x01\x02"  # a.*.#
    with_pattern = leaf(PAYMENTS, scope("ll://acme/payments/", ["a.*.#", "orders.eu"]))
    return [
        Case(
            name="success-two-deep",
            description="root -> payments -> billing; roles intersect",
            chain=two,
        ),
        Case(
            name="success-three-deep",
            description="root -> payments -> team -> billing",
            chain=[middle(depth=1), team, leaf(TEAM, BOTTOM)],
            anchor_depth=2,
        ),
        Case(
            name="success-widening-child-narrowed",
            description="the leaf claims '#' and 'admin'; it keeps orders.eu and 'writer' only",
            chain=[middle(), wide],
        ),
        Case(
            name="success-mqtt-pattern",
            description="patterns with the separator '/'",
            chain=[
                middle(scope("ll://acme/", ["orders/+/#"])),
                leaf(PAYMENTS, scope("ll://acme/", ["orders/eu/#"])),
            ],
            topic="orders/eu/x",
        ),
        Case(
            name="success-spiffe-principal",
            description="a SPIFFE ID is a principal as it is",
            chain=[
                middle(scope("spiffe://acme/ns/", ["#"])),
                leaf(PAYMENTS, scope("spiffe://acme/", ["#"]), "spiffe://acme/ns/prod/sa/web"),
            ],
            anchor_namespace="spiffe://acme/",
        ),
        Case(
            name="success-anchor-roles",
            description="the anchor restricts roles to 'reader'",
            chain=two,
            anchor_roles=["reader"],
        ),
        Case(
            name="reject-topic-outside-scope-widening-child",
            description="the leaf claims '#'; its issuer holds orders.# only",
            chain=[middle(), wide],
            topic="payroll.eu",
        ),
        Case(
            name="reject-topic-outside-scope-anchor",
            description="the anchor grants audit.# only",
            chain=two,
            anchor_publish=["audit.#"],
        ),
        Case(
            name="reject-too-deep-anchor",
            description="the anchor allows no authority below it",
            chain=two,
            anchor_depth=0,
        ),
        Case(
            name="reject-too-deep-intermediate",
            description="payments allows no authority below it; team is one",
            chain=[middle(depth=0), team, leaf(TEAM, BOTTOM)],
            anchor_depth=2,
        ),
        Case(
            name="reject-expired-leaf",
            description="now is the leaf's not_after",
            chain=[middle(), leaf(PAYMENTS, BOTTOM, not_after=NOW)],
        ),
        Case(
            name="reject-expired-middle",
            description="the authority expired before now",
            chain=[middle(not_after=NOW - 1), leaf(PAYMENTS, BOTTOM)],
        ),
        Case(
            name="reject-not-yet-valid",
            description="the leaf is valid from now + 1",
            chain=[middle(), leaf(PAYMENTS, BOTTOM, not_before=NOW + 1)],
        ),
        Case(
            name="reject-outside-namespace-prefix",
            description="ll://acme/paymentsx/billing is not in ll://acme/payments/",
            chain=[
                middle(),
                leaf(PAYMENTS, scope("ll://acme/", ["#"]), "ll://acme/paymentsx/billing"),
            ],
        ),
        Case(
            name="reject-outside-namespace-anchor",
            description="the anchor serves ll://acme/hr/",
            chain=two,
            anchor_namespace="ll://acme/hr/",
        ),
        Case(
            name="reject-outside-namespace-leaf",
            description="the leaf's own namespace does not contain its principal",
            chain=[middle(), leaf(PAYMENTS, scope("ll://acme/payments/eu/", ["#"]))],
        ),
        Case(
            name="reject-wrong-issuer",
            description="the leaf is signed by mallory",
            chain=[middle(), leaf(MALLORY, BOTTOM)],
        ),
        Case(
            name="reject-bad-signature",
            description="a scope byte changed after signing",
            chain=[two[0], flip_role(two[1])],
        ),
        Case(
            name="reject-not-a-chain-no-principal", description="authorities only", chain=[middle()]
        ),
        Case(
            name="reject-malformed-noncanonical-pattern",
            description="a.#.* instead of a.*.# (re-signed)",
            chain=[two[0], altered(PAYMENTS, with_pattern, pattern_acb, b".\x03\x00\x01a\x02\x01")],
        ),
        Case(
            name="reject-malformed-roles-unsorted",
            description="writer before admin (re-signed)",
            chain=[
                two[0],
                altered(PAYMENTS, two[1], b"\x02\x05admin\x06writer", b"\x02\x06writer\x05admin"),
            ],
        ),
        Case(
            name="reject-malformed-principal-not-lower-case",
            description="LL://ACME/... in a credential (re-signed)",
            chain=[
                two[0],
                altered(
                    PAYMENTS, two[1], b"ll://acme/payments/billing", b"ll://ACME/payments/billing"
                ),
            ],
        ),
        Case(
            name="reject-malformed-dot-segment",
            description="ll://acme/payments/.. as the namespace (re-signed)",
            chain=[
                two[0],
                altered(
                    PAYMENTS,
                    two[1],
                    b"\x00\x13ll://acme/payments/",
                    b"\x00\x16ll://acme/payments/../",
                ),
            ],
        ),
        Case(
            name="reject-malformed-trailing-byte",
            description="a byte after the signature",
            chain=[two[0], two[1].encoded + b"\x00"],
        ),
        Case(
            name="reject-malformed-depth-on-principal",
            description="a principal's credential with max_depth 1 (re-signed)",
            chain=[
                two[0],
                altered(
                    PAYMENTS,
                    two[1],
                    struct.pack(">QQB", START, END, 0),
                    struct.pack(">QQB", START, END, 1),
                ),
            ],
        ),
    ]


def flip_role(original: Credential) -> bytes:
    encoded = original.encoded
    assert encoded.count(b"admin") == 1
    return encoded.replace(b"admin", b"adnin")


def outcome(case: Case, trusted: Anchor) -> dict[str, Any]:
    """What the library decides, the vector's expectation."""
    parsed = []
    for item in case.chain:
        try:
            parsed.append(Credential.parse(item) if isinstance(item, bytes) else item)
        except ValueError:
            return {"expect": "reject", "reason": "malformed"}
    verdict = verify_chain(trusted, parsed, now=case.now)
    if not isinstance(verdict, Chain):
        return {"expect": "reject", "reason": str(verdict.why)}
    if not verdict.may_publish(case.topic):
        return {"expect": "reject", "reason": "topic_outside_scope"}
    return {
        "expect": "success",
        "principal": str(verdict.principal),
        "authorities": list(verdict.authorities),
        "roles": sorted(verdict.roles),
        "sender": verdict.sender.fingerprint_text,
    }


def vector(case: Case) -> dict[str, Any]:
    trusted = Anchor(
        name="acme",
        identity=ROOT.public,
        namespace=Namespace.parse(case.anchor_namespace),
        max_depth=case.anchor_depth,
        roles=None if case.anchor_roles is None else frozenset(case.anchor_roles),
        publish=tuple(ScopePattern.parse(p) for p in case.anchor_publish),
    )
    result = outcome(case, trusted)
    wanted = case.name.split("-")[0]
    assert result["expect"] == wanted, (case.name, result)
    if wanted == "reject":
        code = case.name.removeprefix("reject-").replace("-", "_")
        assert code.startswith(result["reason"]), (case.name, result)
    return {
        "format": FORMAT,
        "name": case.name,
        "description": case.description,
        "anchor": {
            "name": trusted.name,
            "public_identity": ROOT.public.to_bytes().hex(),
            "namespace": case.anchor_namespace,
            "max_depth": case.anchor_depth,
            "roles": None if case.anchor_roles is None else sorted(case.anchor_roles),
            "publish": list(case.anchor_publish),
        },
        "chain": [(c if isinstance(c, bytes) else c.encoded).hex() for c in case.chain],
        "now": case.now,
        "topic": case.topic,
        **result,
    }


def write(outdir: Path, make: Callable[[], list[Case]] = cases) -> list[Path]:
    folder = outdir / "credentials"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in make():
        path = folder / f"{case.name}.json"
        path.write_text(json.dumps(vector(case), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"wrote {len(write(Path(sys.argv[1])))} credential vectors")
