"""The status fuzz target (``fuzz/fuzz_status.py``): hostile bytes on the status topic can only
be accepted or refused with MetadataRefused, whole, truncated or with any byte changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_support import FUZZ, load_target
from letterlock.trust.root import Rule

CORPUS = sorted((FUZZ / "corpus-status").iterdir())


TARGET = load_target("fuzz_status")


def test_the_seeds_are_the_ones_the_target_makes() -> None:
    """Deterministic (Ed25519 keys from constant seeds): regenerate with --make-corpus."""
    assert {p.name: p.read_bytes() for p in CORPUS} == TARGET.seeds()


def test_seeds_are_accepted_and_ordered_against_a_held_version() -> None:
    outcomes = {p.name: TARGET.check_one(p.read_bytes()) for p in CORPUS}
    assert outcomes == {
        "empty-v1.json": "accepted,rollback",
        "revocations-v3.json": "accepted,accepted",
    }


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_target_accepts_seed_whole_and_in_prefixes(path: Path) -> None:
    TARGET.TestOneInput(path.read_bytes())


@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_changed_byte_is_accepted_or_refused(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(CORPUS)).read_bytes()
    at = data.draw(st.integers(min_value=0, max_value=len(seed) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    changed = seed[:at] + bytes([value]) + seed[at + 1 :]
    for outcome in TARGET.check_one(changed).split(","):  # no other exception escaped
        assert outcome in ALLOWED, outcome


ALLOWED = {"accepted", "copy", *(str(rule) for rule in Rule)}


@given(st.binary(max_size=2048))
@settings(max_examples=100, deadline=None)
def test_random_bytes_are_refused(data: bytes) -> None:
    assert "accepted" not in TARGET.check_one(data)


def test_a_number_canonical_json_cannot_write_is_malformed_not_a_crash() -> None:
    """Found by CI's run of the property above: one byte turned a time into a float
    (``"issued":1.00000000``): JSON reads it, canonical JSON cannot write it back, so the
    signed bytes did not exist and TUF's ``SerializationError`` escaped the parser."""
    seed = (FUZZ / "corpus-status" / "empty-v1.json").read_bytes()
    at = seed.index(b'"issued":1') + len(b'"issued":1')
    changed = seed[:at] + b"." + seed[at + 1 :]
    assert changed != seed
    assert set(TARGET.check_one(changed).split(",")) == {str(Rule.MALFORMED)}
