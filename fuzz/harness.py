"""What the fuzz targets share: atheris instrumentation for a fuzzing run only, the prefixes
an input is also checked at, and the libFuzzer entry point.

A target imports this before letterlock (``from harness import ...``: the target's own folder
is on ``sys.path`` when it runs as a script; the tests that load a target add it) and imports
letterlock under ``with instrumentation(...)``. Nothing here imports atheris unless asked to.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

__all__ = [
    "DENSE_PREFIXES",
    "STRIDED_PREFIXES",
    "check_prefixes",
    "fuzz",
    "instrumentation",
    "prefix_lengths",
]

#: Every prefix shorter than DENSE_PREFIXES is checked, then at most STRIDED_PREFIXES more at a
#: stride: enough to cut inside every header field while keeping ~200 inputs a second.
DENSE_PREFIXES = 64
STRIDED_PREFIXES = 32


def instrumentation(fuzzing: bool) -> contextlib.AbstractContextManager[object]:
    """atheris's instrumentation of letterlock's modules if ``fuzzing`` (the target runs as the
    fuzzer's script), else nothing: imported as a module, a target needs no atheris."""
    if not fuzzing:
        return contextlib.nullcontext()
    import atheris  # noqa: PLC0415 - only the fuzzing run needs it (Linux only)

    instrument: contextlib.AbstractContextManager[object] = atheris.instrument_imports(
        include=["letterlock"]
    )
    return instrument


def prefix_lengths(size: int) -> range | list[int]:
    """The prefix lengths checked for an input of ``size`` bytes: dense, then strided."""
    if size <= DENSE_PREFIXES + STRIDED_PREFIXES:
        return range(size)
    stride = -(-(size - DENSE_PREFIXES) // STRIDED_PREFIXES)
    return [*range(DENSE_PREFIXES), *range(DENSE_PREFIXES, size, stride)]


def check_prefixes(check_one: Callable[[bytes], object], data: bytes) -> None:
    """``check_one`` of the input whole, then of each of its :func:`prefix_lengths` prefixes."""
    check_one(data)
    for end in prefix_lengths(len(data)):
        check_one(data[:end])


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer (through atheris) on ``test_one_input`` with this process's arguments."""
    import atheris  # noqa: PLC0415

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
