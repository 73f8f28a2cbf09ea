"""The root-of-trust vectors (``vectors/root/``, docs/spec/root.md section 6) against letterlock."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from letterlock.core.suites import Suite
from letterlock.core.trust import Refusal, VerifiedSender, Via
from letterlock.trust import Pins
from letterlock.trust.root import MetadataRefused, TrustedRoot
from letterlock.trust.status import Freshness, Revocations, Status, accept_status

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "vectors" / "root").glob("*.json"))


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def run(vector: dict[str, Any]) -> tuple[dict[str, Any], list[bool]]:
    """What letterlock decides for ``vector``: its ``expect`` fields, and each check's refusal."""
    now = vector["now"]
    outcome: dict[str, Any] = {"roots": [], "statuses": []}
    try:
        root = TrustedRoot.pin(_bytes(vector["trusted"]))
    except MetadataRefused as exc:
        outcome["trusted"] = f"refuse:{exc.rule}"
        return outcome, []
    outcome["trusted"] = "accept"
    for document in vector["roots"]:
        try:
            root = root.update(_bytes(document))
            outcome["roots"].append("accept")
        except MetadataRefused as exc:
            outcome["roots"].append(f"refuse:{exc.rule}")
    outcome["root_version"] = root.version
    outcome["root_current"] = now < root.expires
    held: Status | None = None
    for document in vector["statuses"]:
        try:
            held = accept_status(root, held, _bytes(document), now=now)
            outcome["statuses"].append("accept")
        except MetadataRefused as exc:
            outcome["statuses"].append(f"refuse:{exc.rule}")
    outcome["status_version"] = held.version if held is not None else None
    try:
        Freshness(max_age=vector["max_age"]).check(held, now)
        outcome["fresh"] = True
    except MetadataRefused:
        outcome["fresh"] = False
    refused = []
    for check in vector["checks"]:
        assert held is not None
        key = check.get("key")
        raw = base64.b64decode(key[7:] + "=") if key is not None else None
        if "path" in check:  # through the policy that decides: the sender and its path keys
            assert raw is not None
            sender = VerifiedSender(
                name="sender", fingerprint=key, key_id=raw, suite=Suite.X25519,
                via=Via.AUTHORITY, path_keys=tuple(_raw(k) for k in check["path"]),
            )  # fmt: skip
            judged = Revocations(Pins(), held, Freshness(max_age=0, allow_stale=True)).judge(
                sender, created=check["dated"], now=now
            )
            refused.append(isinstance(judged, Refusal))
            continue
        found = held.revocation(key=raw, principal=check.get("principal"), dated=check["dated"])
        refused.append(found is not None)
    return outcome, refused


def _raw(fingerprint: str) -> bytes:
    return base64.b64decode(fingerprint.removeprefix("SHA256:") + "=")


def test_there_are_vectors() -> None:
    assert len(FILES) >= 16


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert vector["format"] == "letterlock-root-vector-v1"
    outcome, refused = run(vector)
    assert outcome == vector["expect"]
    assert refused == [check["refused"] for check in vector["checks"]]


def _without_signatures(value: Any) -> Any:
    """``value`` with every signature value blanked (ECDSA and ML-DSA ones differ per run)."""
    if isinstance(value, dict):
        return {k: ("" if k == "sig" else _without_signatures(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_signatures(item) for item in value]
    return value


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    """Everything but the randomised signatures: names, documents, checks and outcomes."""
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_root_vectors.py"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    made = sorted(tmp_path.glob("*.json"))
    assert [path.name for path in made] == [path.name for path in FILES]
    for new, committed in zip(made, FILES, strict=True):
        assert _without_signatures(json.loads(new.read_text())) == _without_signatures(
            json.loads(committed.read_text())
        ), new.name
