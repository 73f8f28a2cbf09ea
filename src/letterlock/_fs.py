"""Private files written atomically: only a complete, synced file ever gets a name.

One implementation for everything letterlock writes to disk itself: key files
(:mod:`letterlock.keystore.file`), the CLI home's public keys and pinned senders, and ``--out``
files (:mod:`letterlock.cli.home`, :mod:`letterlock.cli.streams`). SQLite files are opened by
:mod:`letterlock._sqlite`, which builds and links a new database its own way.

An I/O module: the pure layers (``core``, ``trust``) never import it (``ARCHITECTURE.md``).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Final

from letterlock import _crypto

__all__ = ["make_private_dir", "write_private_file"]


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) with mode 0700; leave existing ones alone."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(created, 0o700)  # mkdir's mode is filtered by the umask


def write_private_file(path: Path, data: bytes, *, overwrite: bool, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically: only a complete, synced file ever gets a name.

    On Linux the file is written unnamed in the target's directory (``O_TMPFILE``), synced and
    then linked as ``path``, so a crash or kill at any point leaves no partial file behind.
    Elsewhere a hidden temporary file in the same directory is synced and renamed (and removed
    if the write fails). With ``overwrite`` false an existing ``path`` raises FileExistsError
    and is left untouched (the name is given by a hard link, which fails if it is taken).
    """
    make_private_dir(path.parent)
    if not _write_unnamed(path, data, overwrite=overwrite, mode=mode):
        _write_named(path, data, overwrite=overwrite, mode=mode)
        _fsync_dir(path.parent)


_TMPFILE: Final = getattr(os, "O_TMPFILE", 0)
_PROC_FD: Final = Path("/proc/self/fd")


def _write_unnamed(path: Path, data: bytes, *, overwrite: bool, mode: int) -> bool:
    """The O_TMPFILE way; False where the system or file system does not offer it."""
    if not _TMPFILE or not _PROC_FD.is_dir():
        return False
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fd = os.open(".", _TMPFILE | os.O_WRONLY, mode, dir_fd=directory)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                return False
            raise
        try:
            _write_synced(fd, data)
            # dst_dir_fd makes os.link call linkat(), which follows the /proc link to the file
            source = str(_PROC_FD / str(fd))
            try:
                os.link(source, path.name, dst_dir_fd=directory, follow_symlinks=True)
            except FileExistsError:
                if not overwrite:
                    raise
                temp = _temp_name(path)
                os.link(source, temp, dst_dir_fd=directory, follow_symlinks=True)
                try:  # complete and synced already: only its name is new
                    os.replace(temp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp, dir_fd=directory)
        finally:
            os.close(fd)
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


def _write_named(path: Path, data: bytes, *, overwrite: bool, mode: int) -> None:
    temp = path.with_name(_temp_name(path))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        try:
            _write_synced(fd, data)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            _link_exclusive(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _temp_name(path: Path) -> str:
    return f".{path.name}.{_crypto.random_bytes(6).hex()}.tmp"


def _write_synced(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb", closefd=False) as file:
        file.write(data)
        file.flush()
    os.fsync(fd)


def _link_exclusive(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless it is taken (FileExistsError)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temp, path)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
