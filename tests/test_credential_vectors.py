"""The credential vectors (``vectors/credentials/``, ``docs/spec/credentials.md`` section 6),
checked against the library; ``tests/independent/`` checks them against the spec's second
implementation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from letterlock.core.principal import Namespace
from letterlock.errors import ParseError
from letterlock.hazmat import public_identity_from_bytes
from letterlock.trust.credentials import Anchor, Chain, Credential, verify_chain
from letterlock.trust.scope import ScopePattern

ROOT = Path(__file__).parents[1]
FOLDER = ROOT / "vectors" / "credentials"
GENERATOR = ROOT / "tools" / "make_credential_vectors.py"
FILES = sorted(FOLDER.glob("*.json"))


def outcome(vector: dict[str, Any]) -> dict[str, Any]:
    a = vector["anchor"]
    anchor = Anchor(
        name=a["name"],
        identity=public_identity_from_bytes(bytes.fromhex(a["public_identity"])),
        namespace=Namespace.parse(a["namespace"]),
        max_depth=a["max_depth"],
        roles=None if a["roles"] is None else frozenset(a["roles"]),
        publish=tuple(ScopePattern.parse(p) for p in a["publish"]),
    )
    try:
        chain = [Credential.parse(bytes.fromhex(c)) for c in vector["chain"]]
    except ParseError:
        return {"expect": "reject", "reason": "malformed"}
    verdict = verify_chain(anchor, chain, now=vector["now"])
    if not isinstance(verdict, Chain):
        return {"expect": "reject", "reason": str(verdict.why)}
    if not verdict.may_publish(vector["topic"]):
        return {"expect": "reject", "reason": "topic_outside_scope"}
    return {
        "expect": "success",
        "principal": str(verdict.principal),
        "authorities": list(verdict.authorities),
        "roles": sorted(verdict.roles),
        "sender": verdict.sender.fingerprint_text,
    }


def expected(vector: dict[str, Any]) -> dict[str, Any]:
    keys = ("expect", "reason", "principal", "authorities", "roles", "sender")
    return {k: vector[k] for k in keys if k in vector}


def test_there_are_vectors_of_every_reason() -> None:
    reasons = {json.loads(p.read_text())["name"].split("-")[1] for p in FILES}
    assert {"two", "malformed", "not", "wrong", "bad", "expired", "too", "outside", "topic"} <= (
        reasons
    )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert vector["format"] == "letterlock-credential-vector-v1"
    assert vector["name"] == path.stem
    assert outcome(vector) == expected(vector)


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    """Ed25519 signs deterministically: a new run writes the committed bytes."""
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], check=True)
    fresh = sorted((tmp_path / "credentials").glob("*.json"))
    assert [p.name for p in fresh] == [p.name for p in FILES]
    for path in fresh:
        assert path.read_bytes() == (FOLDER / path.name).read_bytes(), path.name
