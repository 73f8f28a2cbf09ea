"""The keyset vectors (``vectors/keyset/``, ``docs/spec/keyset.md`` section 8), checked against
the library; ``tests/independent/`` checks them against the spec's second implementation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from letterlock.errors import ParseError, UsageError
from letterlock.hazmat import public_identity_from_bytes
from letterlock.trust.keysets import SignedKeyset, sealing_key

ROOT = Path(__file__).parents[1]
FOLDER = ROOT / "vectors" / "keyset"
GENERATOR = ROOT / "tools" / "make_keyset_vectors.py"
FILES = sorted(FOLDER.glob("*.json"))
OUTCOME = (
    "expect", "reason", "version", "grace", "keys", "sealing_key", "opens_with", "signing_key",
    "signs",
)  # fmt: skip


def _reason(problem: ParseError) -> str:
    text = str(problem)
    if "different identity" in text:
        return "wrong_identity"
    if "not signed by its identity key" in text:
        return "bad_signature"
    return "malformed"


def outcome(vector: dict[str, Any]) -> dict[str, Any]:
    identity = public_identity_from_bytes(bytes.fromhex(vector["identity"]))
    try:
        keyset = SignedKeyset.from_text(vector["text"], identity=identity).keyset
    except ParseError as exc:
        return {"expect": "reject", "reason": _reason(exc)}
    now = vector["now"]
    try:
        sealing: str | None = sealing_key(keyset, now).fingerprint_text
    except UsageError:
        sealing = None
    signing = keyset.signing_key(now)
    return {
        "expect": "success", "version": keyset.version, "grace": keyset.grace,
        "keys": [
            {"id": k.key_id, "purpose": k.purpose.name.lower(), "status": k.status.name.lower(),
             "fingerprint": k.public.fingerprint_text, "not_before": k.not_before,
             "not_after": k.not_after, "retired_at": k.retired_at or 0}
            for k in keyset.keys
        ],
        "sealing_key": sealing, "opens_with": [k.key_id for k in keyset.opens_with(now)],
        "signing_key": None if signing is None else signing.public.fingerprint_text,
        "signs": [k.key_id for k in keyset.keys if k.signs(created=now, now=now)],
    }  # fmt: skip


def test_there_are_vectors_of_every_outcome() -> None:
    reasons = {json.loads(p.read_text()).get("reason") for p in FILES}
    assert reasons == {None, "malformed", "wrong_identity", "bad_signature"}
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert vector["format"] == "letterlock-keyset-vector-v1"
    assert vector["name"] == path.stem
    assert outcome(vector) == {k: vector[k] for k in OUTCOME if k in vector}


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    """Ed25519 signs deterministically: a new run writes the committed bytes."""
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], check=True)
    fresh = sorted((tmp_path / "keyset").glob("*.json"))
    assert [p.name for p in fresh] == [p.name for p in FILES]
    for path in fresh:
        assert path.read_bytes() == (FOLDER / path.name).read_bytes(), path.name
