"""Binary input and output for the CLI: ``-`` is stdin/stdout, files are written atomically."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from letterlock import Reason, Rejected, UsageError
from letterlock.keystore.file import write_private_file

__all__ = ["check_output", "read_input", "refuse_binary_to_terminal", "write_output"]


def read_input(path: str | None, *, limit: int | None = None) -> bytes:
    """All of ``path`` (stdin for None or ``-``); more than ``limit`` bytes is over_limit."""
    if path is None or path == "-":
        if sys.stdin is None:
            raise UsageError("no standard input to read (give --in FILE)")
        stream = sys.stdin.buffer
        data = stream.read() if limit is None else stream.read(limit + 1)
    else:
        with open(path, "rb") as file:
            data = file.read() if limit is None else file.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise Rejected(Reason.OVER_LIMIT, f"input is larger than {limit} bytes")
    return data


def refuse_binary_to_terminal(path: str | None) -> None:
    """Refuse to dump an envelope on a terminal unless ``--out -`` asked for it (as age does)."""
    if path is None and sys.stdout.isatty():
        raise UsageError(
            "refusing to write a binary envelope to the terminal; "
            "redirect it, use --out FILE, or force it with --out -"
        )


def check_output(path: str | None) -> None:
    """Fail early, before a message is opened and recorded, if ``path`` cannot be created."""
    if path is None or path == "-":
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {target.parent} does not exist")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(target.parent, os.W_OK)
    if not writable:
        raise UsageError(f"cannot write {path}: permission denied")


def write_output(path: str | None, data: bytes, *, private: bool) -> None:
    """Write ``data`` to stdout (None or ``-``) or to ``path``.

    A regular file is replaced atomically, so a reader never sees half a message; ``private``
    output (decrypted payloads) gets mode 0600. Devices and pipes are written directly.
    """
    if path is None or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if target.exists() and not target.is_file():
        with open(target, "wb") as file:
            file.write(data)
        return
    check_output(path)
    write_private_file(target, data, overwrite=True, mode=0o600 if private else 0o644)
