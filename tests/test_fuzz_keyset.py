"""The keyset fuzz harness (``fuzz/fuzz_keyset.py``): its seeds parse, it survives every
truncation and byte flip of them, and only ParseError ever escapes the parsers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_support import FUZZ, load_target

CORPUS = sorted((FUZZ / "corpus-keyset").iterdir())


TARGET = load_target("fuzz_keyset")
fuzz_one_input: Callable[[bytes], None] = TARGET.TestOneInput
check_one: Callable[[bytes], str] = TARGET.check_one


def test_corpus_has_bytes_and_text_seeds() -> None:
    assert {p.name for p in CORPUS} >= {
        "started.bin", "started.txt", "rotated.bin", "rotated.txt", "signing.bin", "signing.txt",
    }  # fmt: skip


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_seed_parses(path: Path) -> None:
    """A seed that no longer parses would starve the fuzzer: python fuzz/make_keyset_corpus.py"""
    assert check_one(path.read_bytes()) == "parsed"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_every_truncation_of_a_seed_is_malformed(path: Path) -> None:
    data = path.read_bytes()
    assert {check_one(data[:end]) for end in range(len(data))} == {"malformed"}
    fuzz_one_input(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_byte_flips_of_a_seed_parse_or_are_malformed(path: Path, data: st.DataObject) -> None:
    raw = bytearray(path.read_bytes())
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    assert check_one(bytes(raw)) in {"parsed", "malformed"}


def test_a_non_ascii_character_in_the_base64_is_malformed() -> None:
    """Found by the fuzzer: base64 raised a bare ValueError for a non-ASCII character."""
    text = next(p for p in CORPUS if p.name == "rotated.txt").read_text()
    assert check_one(text.replace("A", "\u00e9", 1).encode()) == "malformed"
