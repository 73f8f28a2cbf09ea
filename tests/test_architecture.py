"""The import contracts of ARCHITECTURE.md (pyproject.toml, ``[tool.importlinter]``) hold, and
each one really breaks when its rule is broken.

Each case copies the package into a temporary directory, adds one import that ARCHITECTURE.md
forbids, and runs ``lint-imports`` on the copy with the project's own configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

LAYERS = "Layers of ARCHITECTURE.md"
PURE = "core and trust are pure: no I/O, clock, randomness or environment"
CRYPTO = "Only letterlock._crypto imports cryptography"
SEAM = "Transport adapters import only the seam"
ROOT_PACKAGE = "Transport adapters do not import the package root"
ON_THE_SEAM = "Adapters and the consumer stand on the seam, not on each other"
TUF = "Only the root of trust and its sources import python-tuf"

#: (what is broken, module to change, line appended to it, the contracts that must break)
VIOLATIONS = [
    ("core-imports-trust", "core/topics.py", "import letterlock.trust.pins", {LAYERS}),
    ("trust-imports-keystore", "trust/pins.py", "import letterlock.keystore", {LAYERS}),
    ("core-imports-an-io-helper", "core/topics.py", "import letterlock._fs", {LAYERS}),
    ("errors-imports-crypto", "errors.py", "import letterlock._crypto", {LAYERS}),
    ("keystore-imports-transports", "keystore/file.py", "import letterlock.transports", {LAYERS}),
    ("stores-imports-cli", "stores/sqlite.py", "import letterlock.cli.main", {LAYERS}),
    ("core-reads-the-clock", "core/replay.py", "import time", {PURE}),
    ("core-touches-files", "core/envelope.py", "from pathlib import Path", {PURE}),
    ("core-draws-randomness", "core/suites.py", "import secrets", {PURE}),
    ("trust-reads-the-environment", "trust/pins.py", "import os", {PURE}),
    ("keystore-imports-cryptography", "keystore/file.py", "import cryptography", {CRYPTO}),
    (
        "hazmat-imports-cryptography",
        "hazmat.py",
        "from cryptography.hazmat.primitives import hashes",
        {CRYPTO},
    ),
    ("core-imports-cryptography", "core/keys.py", "import cryptography.x509", {CRYPTO}),
    ("trust-imports-cryptography", "trust/x509.py", "import cryptography.x509", {CRYPTO}),
    ("pins-import-tuf", "trust/pins.py", "import tuf.api.metadata", {TUF}),
    ("trust-imports-a-source", "trust/root.py", "import letterlock.sources", {LAYERS}),
    (
        "adapter-imports-protocol",
        "transports/spool.py",
        "from letterlock.core import protocol",
        {SEAM},
    ),
    (
        "adapter-imports-the-consumer",
        "transports/spool.py",
        "import letterlock.transports.consumer",
        {SEAM, ON_THE_SEAM},
    ),
    (
        "adapter-imports-the-root",  # which imports stores too
        "transports/spool.py",
        "import letterlock",
        {ROOT_PACKAGE, LAYERS},
    ),
]


def _lint(package_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with this project's configuration on the package under ``package_root``."""
    shutil.copy(ROOT / "pyproject.toml", package_root / "pyproject.toml")
    environment = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache", "pyproject.toml"],
        cwd=package_root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of ``src/letterlock`` to break, under ``tmp_path``."""
    shutil.copytree(
        ROOT / "src" / "letterlock",
        tmp_path / "letterlock",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


def _broken(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The names of the contracts lint-imports reports as broken."""
    return {line.split(" BROKEN")[0] for line in result.stdout.splitlines() if " BROKEN" in line}


def test_the_package_keeps_every_contract(copy: Path) -> None:
    result = _lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contracts"),
    [case[1:] for case in VIOLATIONS],
    ids=[case[0] for case in VIOLATIONS],
)
def test_each_contract_breaks_when_its_rule_is_broken(
    copy: Path, module: str, line: str, contracts: set[str]
) -> None:
    path = copy / "letterlock" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = _lint(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _broken(result) == contracts, result.stdout


def test_a_new_transport_module_must_be_declared(copy: Path) -> None:
    """transports/ is exhaustive: an adapter nobody declared fails until it is added."""
    (copy / "letterlock" / "transports" / "kafka.py").write_text('"""An adapter."""\n')
    result = _lint(copy)
    assert result.returncode == 1, result.stdout
    assert "letterlock.transports.kafka" in result.stdout
    assert _broken(result) == {ON_THE_SEAM}, result.stdout


def test_the_seam_may_not_import_an_adapter(copy: Path) -> None:
    """Once transports/base.py exists, it stands below every adapter and the consumer."""
    seam = copy / "letterlock" / "transports" / "base.py"
    seam.write_text('"""The seam."""\n\nfrom letterlock.errors import TransportError\n')
    assert _lint(copy).returncode == 0
    seam.write_text(seam.read_text() + "import letterlock.transports.spool\n")
    result = _lint(copy)
    assert result.returncode == 1, result.stdout
    assert _broken(result) == {ON_THE_SEAM}, result.stdout
