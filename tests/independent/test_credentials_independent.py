"""Check every credential vector against the independent verifier (``credentials.py``), which
was written from ``docs/spec/credentials.md`` and imports nothing from ``letterlock``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .credentials import verify_vector

FOLDER = Path(__file__).parents[2] / "vectors" / "credentials"
FILES = sorted(FOLDER.glob("*.json"))
OUTCOME = ("expect", "reason", "principal", "authorities", "roles", "sender")


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def test_there_are_credential_vectors() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_credential_vector(path: Path) -> None:
    vector = _load(path)
    assert vector["format"] == "letterlock-credential-vector-v1"
    assert verify_vector(vector) == {k: vector[k] for k in OUTCOME if k in vector}
