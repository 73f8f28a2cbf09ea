"""Loading a fuzz target (``fuzz/fuzz_*.py``) as a module, as the fuzz tests do: from its path,
without atheris (nothing is instrumented), with ``fuzz/`` on ``sys.path`` for the targets'
shared ``harness`` module (a target run as a script finds it next to itself)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["FUZZ", "load_target"]

FUZZ = Path(__file__).parents[1] / "fuzz"


def load_target(name: str) -> ModuleType:
    """The fuzz target ``fuzz/NAME.py``, imported once as module ``name``."""
    if str(FUZZ) not in sys.path:
        sys.path.append(str(FUZZ))
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
