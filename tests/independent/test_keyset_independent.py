"""Check every keyset vector against the independent verifier (``keyset_verifier.py``), which
was written from ``docs/spec/keyset.md`` and imports nothing from ``letterlock``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .keyset_verifier import verify_vector

FOLDER = Path(__file__).parents[2] / "vectors" / "keyset"
FILES = sorted(FOLDER.glob("*.json"))
OUTCOME = (
    "expect", "reason", "version", "grace", "keys", "sealing_key", "opens_with", "signing_key",
    "signs",
)  # fmt: skip


def test_there_are_keyset_vectors() -> None:
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_keyset_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert vector["format"] == "letterlock-keyset-vector-v1"
    assert verify_vector(vector) == {k: vector[k] for k in OUTCOME if k in vector}
