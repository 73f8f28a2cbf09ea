"""Every committed root-of-trust vector (``vectors/root/``) through the independent verifier.

``tests/independent/root_verifier.py`` was written from ``docs/spec/root.md`` alone and imports
neither ``letterlock`` nor python-tuf; ``tests/test_root_vectors.py`` runs the same files through
letterlock. Both agreeing with each vector's ``expect`` is evidence that the specification, not the
code, defines the rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .root_verifier import canonical, run_vector

FILES = sorted((Path(__file__).parents[2] / "vectors" / "root").glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    outcome, refused = run_vector(vector)
    assert outcome == vector["expect"]
    assert refused == [check["refused"] for check in vector["checks"]]


def test_canonical_json_escapes_only_quote_and_backslash() -> None:
    """OLPC canonical JSON (what TUF signs): sorted keys, no spaces, raw UTF-8, two escapes."""
    value = {"b": [1, True, None], "a": 'q"\\\n\u00e9'}
    assert canonical(value) == '{"a":"q\\"\\\\\n\u00e9","b":[1,true,null]}'
