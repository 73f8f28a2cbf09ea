"""``letterlock trust``: the known-senders file under concurrent writers, and pin names.

Concurrency is tested with real CLI processes started together; each ``trust pin -`` waits for
its key line on stdin, so the test can release them at (nearly) the same moment and their
read-modify-writes of the file overlap, as in a deployment script that pins in parallel.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cli_support import Homes, Result, assert_one_line_error, finish, letterlock, spawn
from letterlock import Identity, Suite


def _key_lines(count: int, prefix: str) -> list[bytes]:
    return [
        Identity.generate(Suite.X25519).public.to_text(f"{prefix}{i}").encode() + b"\n"
        for i in range(count)
    ]


def _release(processes: list[subprocess.Popen[bytes]], lines: list[bytes]) -> list[Result]:
    """Give every waiting process its key line at (nearly) the same moment, then wait."""
    for process, line in zip(processes, lines, strict=True):
        assert process.stdin is not None
        process.stdin.write(line)
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
        process.stdin = None  # communicate() must not flush it again
    return [finish(process) for process in processes]


def _pinned(home: Path) -> dict[str, str]:
    listed = letterlock(home, "trust", "list")
    assert listed.code == 0, listed
    return {row.split("\t")[0]: row.split("\t")[3] for row in listed.text.splitlines()}


def test_ten_concurrent_pins_all_survive(homes: Homes) -> None:
    lines = _key_lines(10, "peer")
    pins = [spawn(homes.bob, "trust", "pin", "-") for _ in lines]
    time.sleep(1.0)  # every process has started and waits for its key line on stdin
    results = _release(pins, lines)
    assert [r.code for r in results] == [0] * 10, results
    assert set(_pinned(homes.bob)) == {"alice"} | {f"peer{i}" for i in range(10)}


def test_a_revoke_racing_pins_is_never_lost(homes: Homes) -> None:
    """A revoke and four pins started together, ten times over, from alice trusted each time.

    Without a lock a pin that read the file before the revoke wrote it puts alice back as
    trusted (4 rounds of 10 here).
    """
    known_senders = homes.bob / "known_senders"
    alice_trusted = known_senders.read_bytes()
    for round_ in range(10):
        known_senders.write_bytes(alice_trusted)
        lines = _key_lines(4, f"r{round_}p")
        revoke = spawn(homes.bob, "trust", "revoke", "alice")
        pins = [spawn(homes.bob, "trust", "pin", "-") for _ in lines]
        results = _release(pins, lines)
        revoked = finish(revoke)
        assert revoked.code == 0, revoked
        assert [r.code for r in results] == [0] * 4, results
        pinned = _pinned(homes.bob)
        assert pinned["alice"] == "revoked", f"round {round_}: the revocation was lost"
        assert set(pinned) == {"alice"} | {f"r{round_}p{i}" for i in range(4)}, round_


@pytest.mark.parametrize(
    "name",
    ["\u0430lice", "al\u202eecila", "x\x1b[2Jx", "a" * 10_000, "carol,dave"],
    ids=["homoglyph", "right-to-left", "escape", "10000-characters", "comma"],
)
def test_pin_names_are_restricted_as_identity_names_are(homes: Homes, name: str) -> None:
    key_line = _key_lines(1, "carol")[0]
    result = letterlock(homes.bob, "trust", "pin", "-", "--name", name, stdin=key_line)
    assert_one_line_error(result, 2, "pin name", "1-64 characters of A-Z a-z 0-9")
    assert len(result.stderr) < 300
    assert set(_pinned(homes.bob)) == {"alice"}


def test_a_name_in_the_key_line_is_checked_too(homes: Homes) -> None:
    line = Identity.generate(Suite.X25519).public.to_text("ev\u202eil").encode()
    result = letterlock(homes.bob, "trust", "pin", "-", stdin=line)
    assert_one_line_error(result, 2, "pin name")


def test_pinning_a_binary_file_is_one_clear_line(homes: Homes, tmp_path: Path) -> None:
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    result = letterlock(homes.bob, "trust", "pin", str(binary))
    assert_one_line_error(result, 2, f"{binary} is not a public key line", "id export")
    assert "codec" not in result.stderr
