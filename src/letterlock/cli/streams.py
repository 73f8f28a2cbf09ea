"""Binary input and output for the CLI: ``-`` is stdin/stdout; output is delivered safely.

Output counts as delivered only when every byte is written (a short write continues where it
stopped; a write that fails or makes no progress is an error, :class:`DeliveryFailed`), a
regular file is flushed to stable storage (``fsync``, stdout too when it is redirected to a
file), and an ``--out`` file is in place under its name. Such a file is written by
:func:`letterlock._fs.write_private_file`: unnamed until complete (Linux
``O_TMPFILE``), so a run killed halfway leaves no partial plaintext behind (elsewhere a hidden
temporary file, removed if the write fails). Pipes and devices (``--out /dev/...``, a FIFO)
are written directly.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from letterlock import LetterlockError, Reason, Rejected, UsageError
from letterlock._fs import write_private_file

__all__ = [
    "DeliveryFailed",
    "check_output",
    "delivered",
    "read_input",
    "refuse_binary_to_terminal",
    "write_output",
]

_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


class DeliveryFailed(LetterlockError):
    """The output could not be written completely (exit status 2)."""


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
    if path is None and sys.stdout is not None and sys.stdout.isatty():
        raise UsageError(
            "refusing to write a binary envelope to the terminal; "
            "redirect it, use --out FILE, or force it with --out -"
        )


def check_output(path: str | None) -> None:
    """Fail early, before a message is opened, if ``path`` cannot be created."""
    if path is None or path == "-":
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {target.parent} does not exist")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(target.parent, os.W_OK)
    if not writable:
        raise UsageError(f"cannot write {path}: permission denied")


def write_output(path: str | None, data: bytes, *, private: bool) -> Path | None:
    """Deliver ``data`` to stdout (None or ``-``) or to ``path``; raise DeliveryFailed if not.

    A regular file is replaced atomically (mode 0600 if ``private``, for decrypted payloads)
    and its path returned; for stdout, devices and pipes None is returned.
    """
    if path is None or path == "-":
        _write_stdout(data)
        return None
    target = Path(path)
    if target.exists() and not target.is_file():
        _write_device(target, data)
        return None
    check_output(path)
    _place_file(target, data, mode=0o600 if private else 0o644)
    return target


@contextmanager
def delivered(path: str | None, data: bytes, *, private: bool) -> Iterator[None]:
    """Deliver ``data`` as :func:`write_output`, then run the body (which records the message).

    If the body fails, a file this delivery put in place is removed again; what went to a
    stream cannot be taken back.
    """
    placed = write_output(path, data, private=private)
    try:
        yield
    except BaseException:
        if placed is not None:
            placed.unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes, where: str) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise DeliveryFailed(f"cannot write {where}: the write made no progress")
            view = view[written:]
    except OSError as exc:
        raise DeliveryFailed(f"cannot write {where}: {exc.strerror or exc}") from None


def _sync_if_file(fd: int, where: str) -> None:
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    except OSError as exc:
        raise DeliveryFailed(f"cannot write {where}: {exc.strerror or exc}") from None


def _write_stdout(data: bytes) -> None:
    where = "standard output"
    if sys.stdout is None:
        raise DeliveryFailed(f"{where} is closed (give --out FILE)")
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (OSError, ValueError) as exc:
        raise DeliveryFailed(f"cannot write {where}: {exc}") from None
    _write_all(fd, data, where)
    _sync_if_file(fd, where)


def _write_device(target: Path, data: bytes) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | _CLOEXEC)
    except OSError as exc:
        raise DeliveryFailed(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        _write_all(fd, data, str(target))
    finally:
        os.close(fd)


def _place_file(target: Path, data: bytes, *, mode: int) -> None:
    """Write ``target`` completely and durably, then give it its name (replacing any file)."""
    try:
        write_private_file(target, data, overwrite=True, mode=mode)
    except OSError as exc:
        raise DeliveryFailed(f"cannot write {target}: {exc.strerror or exc}") from None
