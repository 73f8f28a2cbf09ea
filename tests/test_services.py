"""The broker tests' gate: a missing server fails in CI and is skipped elsewhere, with its start
command; every server of this machine answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services import SERVICES, Service, require

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_server_fails_in_ci_and_is_skipped_elsewhere(ci: str, tmp_path: Path) -> None:
    script = tmp_path / "test_gate.py"
    script.write_text(
        "import services\n"
        "services.SERVICES['nothing'] = services.Service("
        "'Nothing', '127.0.0.1', 9, 'none://', 'start-nothing --now')\n"
        "def test_needs_it():\n"
        "    services.require('nothing')\n"
    )
    env = {"PYTHONPATH": str(HERE), "CI": ci, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(script)],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert "start it with: start-nothing --now" in out
    if ci == "true":
        assert result.returncode == 1
        assert "1 failed" in out
    else:
        assert result.returncode == 0
        assert "1 skipped" in out


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_program_fails_in_ci_and_is_skipped_elsewhere(ci: str, tmp_path: Path) -> None:
    script = tmp_path / "test_gate.py"
    script.write_text(
        "import services\n"
        "def test_needs_a_command():\n"
        "    services.require_binary('no-such-command-here', 'no-such-package')\n"
        "def test_needs_a_library():\n"
        "    services.require_binary('/nowhere/libnothing.so', 'no-such-package')\n"
        "def test_finds_what_is_there():\n"
        "    assert services.require_binary('sh', 'dash').endswith('/sh')\n"
        "    assert services.require_binary('/bin/sh', 'dash') == '/bin/sh'\n"
    )
    env = {"PYTHONPATH": str(HERE), "CI": ci, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(script)],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert "install it with: apt-get install no-such-package" in out
    if ci == "true":
        assert result.returncode == 1
        assert "2 failed, 1 passed" in out
    else:
        assert result.returncode == 0
        assert "1 passed, 2 skipped" in out


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_server_of_this_machine_answers(name: str) -> None:
    service: Service = require(name)
    assert service.port > 0
