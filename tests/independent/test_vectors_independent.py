"""Check every committed test vector against the independent verifier.

The library has its own vector test; this one runs ``vectors/**/*.json`` through
``tests/independent/verifier.py``, which was written from ``docs/spec/envelope-v1.md`` and
``docs/spec/vectors.md`` alone and imports nothing from ``letterlock``. A vector that passes here
and in the library's test is evidence that the specification, not the code, defines the format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .verifier import Outcome, verify_vector

VECTORS = Path(__file__).parents[2] / "vectors"
SUITES = ("p256", "p384", "x25519", "pq")
FILES = sorted(path for suite in SUITES for path in (VECTORS / suite).glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def _expected(vector: dict[str, Any]) -> Outcome:
    if vector["expect"] == "reject":
        return Outcome(
            ok=False,
            reason=vector["reason"],
            payload=None,
            signer_name=None,
            signer_fingerprint=None,
            topic=None,
            message_id=None,
            created=None,
            expires=None,
            content_type=None,
            headers=None,
        )
    assert vector["expect"] == "success", vector["expect"]
    carried = vector.get("credentials")
    return Outcome(
        ok=True,
        reason=None,
        payload=bytes.fromhex(vector["payload"]),
        signer_name=vector["signer"]["name"],
        signer_fingerprint=vector["signer"]["fingerprint"],
        topic=vector["topic"],
        message_id=bytes.fromhex(vector["message_id"]),
        created=vector["created"],
        expires=vector["expires"],
        content_type=vector["content_type"],
        headers=vector["headers"],
        credentials=None
        if carried is None
        else (
            carried["status_version"],
            carried["format"],
            tuple(bytes.fromhex(item) for item in carried["items"]),
        ),
    )


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(VECTORS).as_posix() for p in FILES])
def test_vector(path: Path) -> None:
    vector = _load(path)
    assert verify_vector(vector) == _expected(vector)


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(VECTORS).as_posix() for p in FILES])
def test_vector_file_is_well_formed(path: Path) -> None:
    vector = _load(path)
    assert vector["format"] == "letterlock-vector-v1"
    assert vector["suite"] in SUITES
    # vectors.md: files are named <suite>/<name>.json
    assert path.relative_to(VECTORS).as_posix() == f"{vector['suite']}/{vector['name']}.json"


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_has_vectors(suite: str) -> None:
    assert sorted((VECTORS / suite).glob("*.json")), f"no vectors for suite {suite} in {VECTORS}"
