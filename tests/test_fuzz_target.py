"""The fuzz harness itself: its seeds open, and it survives every truncation of them.

``fuzz/fuzz_envelope.py`` is loaded from its path without atheris (nothing is instrumented), so
this runs everywhere pytest runs; the real fuzzing run is ``make fuzz``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz_support import FUZZ, load_target

CORPUS = sorted((FUZZ / "corpus").iterdir())


TARGET = load_target("fuzz_envelope")
fuzz_one_input: Callable[[bytes], None] = TARGET.TestOneInput
check_one: Callable[[bytes], str] = TARGET.check_one


def test_corpus_has_one_seed_per_suite_and_is_small() -> None:
    names = {path.name for path in CORPUS}
    assert {"p256.bin", "p384.bin", "x25519.bin", "pq.bin"} <= names
    assert sum(path.stat().st_size for path in CORPUS) < 64 * 1024


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_seed_opens_as_the_fixed_receiver(path: Path) -> None:
    """A seed that no longer opens (keys or format changed) would starve the fuzzer: regenerate
    with ``python fuzz/make_corpus.py``."""
    assert check_one(path.read_bytes()) == "opened"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_target_accepts_seed_whole_and_in_prefixes(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_every_truncation_of_a_seed_is_malformed(path: Path) -> None:
    data = path.read_bytes()
    outcomes = {check_one(data[:end]) for end in range(len(data))}
    assert outcomes == {"malformed"}


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_flipped_bytes_of_a_seed_are_only_rejected(path: Path) -> None:
    """About 200 bytes spread over each seed, flipped: a reason each time, never a crash."""
    data = path.read_bytes()
    for index in range(0, len(data), max(1, len(data) // 200)):
        damaged = data[:index] + bytes([data[index] ^ 0x80]) + data[index + 1 :]
        assert check_one(damaged) != "opened", index


def test_target_rejects_other_exceptions() -> None:
    """The harness catches Rejected only: a crash in the library would surface."""
    with pytest.raises(TypeError):
        fuzz_one_input(None)  # type: ignore[arg-type]
