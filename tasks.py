#!/usr/bin/env python3
"""Project tasks that need nothing but Python 3.11+ (no make, no pre-installed tools).

    python3 tasks.py demo      set up .venv if needed, run `letterlock demo`
    python3 tasks.py test      set up .venv if needed; lint, type-check, the import contracts
                               of ARCHITECTURE.md and a short fuzz run (one summary line each
                               unless they fail), tests
    python3 tasks.py bench     seal/open rates per suite (benchmarks/rates.py)
    python3 tasks.py compare   letterlock vs the pyca floor, gpg, PyNaCl, Tink, jwcrypto and the
                               AWS Encryption SDK (~15 min, or add --quick for ~2 min); then
                               benchmarks/broker_rabbitmq.py and benchmarks/memory.py for the
                               broker and memory figures
    python3 tasks.py vectors   regenerate vectors/ (tools/make_vectors.py)
    python3 tasks.py fuzz [N]  run the envelope, keyset and status fuzz targets, N inputs each
                               (20000)

The virtual environment is updated when pyproject.toml changes; the demo installs letterlock
alone, every other task also the 'test', 'bench' and 'all' extras.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".letterlock-installed"


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    started = time.monotonic()
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode != 0:
        print(f"tasks.py: {Path(args[0]).name} failed with exit code {result.returncode}")
        sys.exit(result.returncode)
    print(f"  ({time.monotonic() - started:.1f}s)", flush=True)


def ensure_venv(extras: frozenset[str]) -> None:
    """Install letterlock with ``extras`` into .venv unless pyproject.toml is unchanged since
    an install that had them all."""
    if sys.version_info < (3, 11):  # noqa: UP036 - the bootstrap may meet an older Python
        sys.exit("tasks.py: letterlock needs Python 3.11 or newer")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists():
        stamped, _, had = STAMP.read_text().partition(" ")
        if stamped == digest and extras <= set(filter(None, had.split(","))):
            return
    if not (BIN / "python").exists():
        run(sys.executable, "-m", "venv", VENV)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{','.join(sorted(extras))}]" if extras else "."
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", target)
    STAMP.write_text(f"{digest} {','.join(sorted(extras))}")


def run_quietly(*args: str | Path, summary: str = "Done ") -> None:
    """As run(), but the tool's output is shown only if it fails; else its last line that
    starts with ``summary``."""
    print("+", " ".join(str(a) for a in args), flush=True)
    started = time.monotonic()
    result = subprocess.run(
        [str(a) for a in args], cwd=ROOT, check=False, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        print(output, end="" if output.endswith("\n") else "\n")
        print(f"tasks.py: {Path(args[0]).name} failed with exit code {result.returncode}")
        sys.exit(result.returncode)
    done = [line for line in output.splitlines() if line.startswith(summary)]
    shown = done[-1] if done else "ok"
    print(f"  {shown} ({time.monotonic() - started:.1f}s)", flush=True)


def fuzz(runs: int, *, quiet: bool = False) -> None:
    # libFuzzer writes new inputs into its first corpus directory: give it a scratch copy.
    for target, seeds in (
        ("fuzz_envelope.py", "corpus"),
        ("fuzz_keyset.py", "corpus-keyset"),
        ("fuzz_status.py", "corpus-status"),
    ):
        with tempfile.TemporaryDirectory(prefix="letterlock-fuzz-") as scratch:
            corpus = Path(scratch) / "corpus"
            shutil.copytree(ROOT / "fuzz" / seeds, corpus)
            runner = run_quietly if quiet else run
            runner(BIN / "python", f"fuzz/{target}", f"-atheris_runs={runs}", corpus)


def main(argv: list[str]) -> None:
    task = argv[0] if argv else "help"
    if task not in {"demo", "test", "bench", "compare", "vectors", "fuzz"}:
        print(__doc__)
        sys.exit(0 if task in {"help", "-h", "--help"} else 2)
    # the demo needs letterlock alone; everything else the test suite: every broker's client
    # (the broker tests run against real servers) and every benchmark peer
    ensure_venv(frozenset() if task == "demo" else frozenset({"test", "bench", "all"}))
    if task == "demo":
        run(BIN / "letterlock", "demo")
    elif task == "test":
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy")
        run_quietly(BIN / "lint-imports", "--no-logo", summary="Contracts: ")  # layer contracts
        fuzz(20_000, quiet=True)  # its output only if it finds something
        run(BIN / "pytest")  # last, so its summary closes the output
    elif task == "bench":
        run(BIN / "python", "benchmarks/rates.py", *argv[1:])
    elif task == "compare":
        run(BIN / "python", "benchmarks/run.py", *argv[1:])
    elif task == "vectors":
        run(BIN / "python", "tools/make_vectors.py", "vectors")
        run(BIN / "python", "tools/make_credential_vectors.py", "vectors")
        run(BIN / "python", "tools/make_root_vectors.py", "vectors/root")
        run(BIN / "python", "tools/make_keyset_vectors.py", "vectors")
    elif task == "fuzz":
        fuzz(int(argv[1]) if len(argv) > 1 else 20_000)


if __name__ == "__main__":
    main(sys.argv[1:])
