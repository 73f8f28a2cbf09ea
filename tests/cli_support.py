"""Running the ``letterlock`` command as a user does, for the CLI test modules.

Each run is a subprocess in its own session (no controlling terminal, so it can never prompt),
with stdin, stdout, stderr and the exit code captured. ``prepare_homes`` makes alice's and
bob's homes (each has pinned the other's exported key); the ``prepared`` and ``homes``
fixtures in conftest.py share them, so each key load runs the real Argon2id (64 MiB) only where
a test needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LETTERLOCK = [sys.executable, "-m", "letterlock.cli.main"]
PASS = "pass phrase for the cli tests"
PAYLOAD = bytes(range(256)) * 8 + b"\r\n\x00\x1a SECRET-MARKER \xff"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX terminals and file modes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8")

    def __repr__(self) -> str:  # a failed assertion must not print a 64 MiB payload
        shown = self.stdout if len(self.stdout) <= 200 else self.stdout[:200] + b"..."
        return (
            f"Result(code={self.code}, stdout={shown!r} ({len(self.stdout)} bytes), "
            f"stderr={self.stderr!r})"
        )


def cli_env(home: Path, passphrase: str | None = PASS) -> dict[str, str]:
    """The environment of a CLI run: this home, no colours, the passphrase (if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERLOCK_")}
    env.update(LETTERLOCK_HOME=str(home), NO_COLOR="1")
    if passphrase is not None:
        env["LETTERLOCK_PASSPHRASE"] = passphrase
    return env


def letterlock(home: Path, *args: str, stdin: bytes = b"", passphrase: str | None = PASS) -> Result:
    """Run the CLI in its own session (no controlling terminal: it can never prompt)."""
    done = subprocess.run(
        [*LETTERLOCK, *args],
        input=stdin,
        capture_output=True,
        env=cli_env(home, passphrase),
        timeout=60,
        start_new_session=True,
        check=False,
    )
    return Result(code=done.returncode, stdout=done.stdout, stderr=done.stderr.decode("utf-8"))


def spawn(home: Path, *args: str, passphrase: str | None = PASS) -> subprocess.Popen[bytes]:
    """Start the CLI without waiting: stdin, stdout and stderr are pipes for the test to drive."""
    return subprocess.Popen(
        [*LETTERLOCK, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(home, passphrase),
        start_new_session=True,
    )


def finish(process: subprocess.Popen[bytes], stdin: bytes | None = None) -> Result:
    """Feed ``stdin`` (if any) to a spawned run and wait for it."""
    stdout, stderr = process.communicate(stdin, timeout=60)
    return Result(code=process.returncode, stdout=stdout or b"", stderr=stderr.decode("utf-8"))


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, result
    assert result.stdout == b""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@dataclass(frozen=True, slots=True, kw_only=True)
class Homes:
    alice: Path
    bob: Path
    alice_fingerprint: str
    bob_fingerprint: str


def seal(homes: Homes, *extra: str, payload: bytes = PAYLOAD, topic: str = "orders") -> bytes:
    result = letterlock(
        homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", topic, *extra,
        stdin=payload,
    )  # fmt: skip
    assert result.code == 0, result
    assert result.stderr == ""
    return result.stdout


def prepare_homes(root: Path) -> Homes:
    """Alice's and bob's homes under ``root``, each with the other's exported key pinned (to
    accept its messages) and added as a contact (to seal to it)."""
    alice_home, bob_home = root / "alice", root / "bob"
    created = {}
    for name, home in (("alice", alice_home), ("bob", bob_home)):
        result = letterlock(home, "id", "new", name)
        assert result.code == 0, result
        created[name] = result.text.strip()
    for owner, home, peer, peer_home in (("alice", alice_home, "bob", bob_home),
                                         ("bob", bob_home, "alice", alice_home)):  # fmt: skip
        exported = letterlock(peer_home, "id", "export", peer)
        assert exported.code == 0, exported
        pinned = letterlock(home, "trust", "pin", "-", stdin=exported.stdout)
        assert pinned.code == 0, (owner, pinned)
        added = letterlock(home, "contact", "add", "-", "--name", peer, stdin=exported.stdout)
        assert added.code == 0, (owner, added)
    return Homes(
        alice=alice_home,
        bob=bob_home,
        alice_fingerprint=created["alice"],
        bob_fingerprint=created["bob"],
    )


def copy_homes(prepared: Homes, tmp_path: Path) -> Homes:
    """Private copies of prepared homes (modes preserved)."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    shutil.copytree(prepared.alice, alice)
    shutil.copytree(prepared.bob, bob)
    return Homes(
        alice=alice,
        bob=bob,
        alice_fingerprint=prepared.alice_fingerprint,
        bob_fingerprint=prepared.bob_fingerprint,
    )
