"""The credential vectors (``vectors/credentials/``, ``docs/spec/credentials.md`` section 6),
checked against the library; ``tests/independent/`` checks them against the spec's second
implementation."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from independent.credentials import verify_vector as independent
from letterlock.core.principal import Namespace
from letterlock.errors import ParseError
from letterlock.hazmat import public_identity_from_bytes
from letterlock.trust.credentials import MAGIC, Anchor, Chain, Credential, verify_chain
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


@pytest.mark.parametrize("name", ["success-two-deep", "success-mqtt-pattern"])
def test_library_and_independent_verifier_agree_on_every_flipped_bit(name: str) -> None:
    """Differential: each credential of a success vector with one bit flipped, at every byte
    and two bit positions; the library and the spec's second implementation reach the same
    outcome (parse failure, refusal code, or success with the same fields)."""
    vector = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    for index, credential in enumerate(vector["chain"]):
        data = bytes.fromhex(credential)
        for position in range(len(data)):
            for bit in (0x01, 0x80):
                flipped = bytearray(data)
                flipped[position] ^= bit
                chain = list(vector["chain"])
                chain[index] = flipped.hex()
                mutant = {**vector, "chain": chain}
                assert outcome(mutant) == independent(mutant), (index, position, bit)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_only_parse_error_comes_out_of_parsing(tail: bytes) -> None:
    """Whatever follows the magic (or replaces it), parsing returns or raises ParseError."""
    for data in (tail, MAGIC + tail, MAGIC + b"\x03" + tail):
        with contextlib.suppress(ParseError):
            Credential.parse(data)
