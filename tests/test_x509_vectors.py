"""The X.509 vectors (``docs/spec/x509-vectors.json``, made by ``tools/make_x509_vectors.py``).

Each case is checked twice: by letterlock (``verify_sender`` reaches the case's ``expect``), and
its path alone by an independent validator, ``openssl verify -purpose any`` (RFC 5280 path
validation without letterlock's rules reaches the case's ``path_valid``). A case letterlock
refuses although openssl finds the path valid is refused by one of letterlock's own rules of
``docs/spec/x509.md`` section 7 (EKU, principal, namespace, depth, binding, scope).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from independent.x509_key_ids import path_key_ids as independent_key_ids
from letterlock import Suite, format_fingerprint
from letterlock.core.trust import Refusal, TrustContext
from letterlock.trust.x509 import Anchor, AnchorSet, Refused, X509Sender, verify_sender
from letterlock.trust.x509_senders import X509Senders

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "spec" / "x509-vectors.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


def _der(pem: str) -> bytes:
    (body,) = _PEM.findall(pem)
    return base64.b64decode("".join(body.split()))


def test_the_vectors_cover_every_outcome() -> None:
    assert json.loads(VECTORS.read_text(encoding="utf-8"))["format"] == "letterlock-x509-vectors-v1"
    assert {case["expect"] for case in CASES} == {
        "accept", "scope", "wrong_eku", "no_principal", "out_of_namespace", "unknown_ca",
        "expired", "too_deep", "wrong_key",
    }  # fmt: skip


def _anchors(case: dict[str, Any]) -> AnchorSet:
    return AnchorSet(
        Anchor(name=a["name"], namespace=a["namespace"], certificate=_der(a["certificate"]))
        for a in case["anchors"]
    )


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_letterlock_reaches_the_expected_outcome(case: dict[str, Any]) -> None:
    anchors = _anchors(case)
    chain = [_der(pem) for pem in case["chain"]]
    result = verify_sender(
        anchors, chain[0], chain[1:], at=case["at"], key_id=bytes.fromhex(case["key_id"]),
        topic=case["topic"],
    )  # fmt: skip
    if case["expect"] == "accept":
        assert isinstance(result, X509Sender), result
        assert result.principal == case["principal"]
    else:
        assert isinstance(result, Refused)
        assert result.reason.value == case["expect"], result.detail


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_openssl_judges_the_path_alone(case: dict[str, Any], tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.pem"
    anchors.write_text("".join(a["certificate"] for a in case["anchors"]), encoding="ascii")
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(case["chain"][0], encoding="ascii")
    command = ["openssl", "verify", "-purpose", "any", "-attime", str(case["at"]),
               "-CAfile", str(anchors)]  # fmt: skip
    if len(case["chain"]) > 1:
        untrusted = tmp_path / "untrusted.pem"
        untrusted.write_text("".join(case["chain"][1:]), encoding="ascii")
        command += ["-untrusted", str(untrusted)]
    verdict = subprocess.run([*command, str(leaf)], capture_output=True, text=True, check=False)
    assert (verdict.returncode == 0) is case["path_valid"], verdict.stdout + verdict.stderr


ACCEPTED = [case for case in CASES if case["expect"] == "accept"]


@pytest.mark.parametrize("case", ACCEPTED, ids=[case["name"] for case in ACCEPTED])
def test_the_path_keys_letterlock_reports_are_the_stated_key_ids(case: dict[str, Any]) -> None:
    """``VerifiedSender.path_keys`` (what a status document's revocation is checked against)
    names the keys the vector states, which the independent reading of the spec computes."""
    chain = [_der(pem) for pem in case["chain"]]
    senders = X509Senders(_anchors(case), [chain], now=case["at"])
    identity = senders.lookup(bytes.fromhex(case["key_id"]))
    assert identity is not None
    context = TrustContext(topic=case["topic"], suite=Suite.P256, content_type=None, headers={},
                           created=case["at"], now=case["at"])  # fmt: skip
    verified = senders.admit(identity, context)
    assert not isinstance(verified, Refusal), verified
    assert [format_fingerprint(key) for key in verified.path_keys] == case["path_key_ids"]
    anchors = [_der(anchor["certificate"]) for anchor in case["anchors"]]
    assert independent_key_ids(anchors, chain) == case["path_key_ids"]
