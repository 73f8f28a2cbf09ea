"""The CA key ids the X.509 vectors state (``docs/spec/x509-vectors.json``, ``path_key_ids``)
are the ones ``x509_key_ids.py`` computes from ``docs/spec/x509.md``, which imports nothing
from ``letterlock`` (``tests/test_x509_vectors.py`` checks letterlock's against the same)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .x509_key_ids import MalformedError, der_of, key_id, parse, path_key_ids

VECTORS = Path(__file__).parents[2] / "docs" / "spec" / "x509-vectors.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
ACCEPTED = [case for case in CASES if case["expect"] == "accept"]


def test_every_accepted_case_states_its_path_key_ids() -> None:
    assert len(ACCEPTED) >= 3
    assert all(case["path_key_ids"] for case in ACCEPTED)
    assert all(case["path_key_ids"] is None for case in CASES if case["expect"] != "accept")
    # one case with another intermediate: the ids name keys, not one constant
    assert len({case["path_key_ids"][-1] for case in ACCEPTED}) >= 2


@pytest.mark.parametrize("case", ACCEPTED, ids=[case["name"] for case in ACCEPTED])
def test_the_stated_key_ids_are_the_ones_the_spec_gives(case: dict[str, Any]) -> None:
    anchors = [der_of(anchor["certificate"]) for anchor in case["anchors"]]
    chain = [der_of(pem) for pem in case["chain"]]
    assert path_key_ids(anchors, chain) == case["path_key_ids"]


def test_the_anchor_carried_last_is_on_the_path_once() -> None:
    case = ACCEPTED[0]
    anchor = der_of(case["anchors"][0]["certificate"])
    chain = [der_of(pem) for pem in case["chain"]]
    assert path_key_ids([anchor], [*chain, anchor]) == case["path_key_ids"]


def test_a_chain_out_of_order_or_to_no_anchor_has_no_path() -> None:
    case = next(case for case in CASES if case["name"] == "too-deep")
    anchor = der_of(case["anchors"][0]["certificate"])
    leaf, *ladder = (der_of(pem) for pem in case["chain"])
    assert path_key_ids([anchor], [leaf, *ladder]) is not None
    assert path_key_ids([anchor], [leaf, *reversed(ladder)]) is None
    assert path_key_ids([], [leaf, *ladder]) is None


def test_the_key_id_hashes_the_subject_public_key_info_only() -> None:
    der = der_of(ACCEPTED[0]["chain"][1])
    spki = parse(der).spki
    assert spki[0] == 0x30
    assert spki in der
    assert key_id(der).startswith("SHA256:")
    assert len(key_id(der)) == len("SHA256:") + 43
    with pytest.raises(MalformedError):
        parse(der + b"\x00")
    with pytest.raises(MalformedError):
        parse(der[:-1])
