"""The home's files, checked as OpenSSH's StrictModes checks ``~/.ssh``.

Another local user who can write the home, or who owns a file in it, could plant a pin so that
a forged message opens as "signed by: alice". So, on POSIX systems:

* every directory from ``/`` down to the home, the home itself and its ``identities``
  directory belong to you or root; directories above the home may be writable by others only
  with the sticky bit (as ``/tmp``), the home and what is in it not at all;
* the files in the home belong to you or root and are writable by nobody else; key files are
  not even readable by anyone else;
* files and directories inside the home are opened with ``O_NOFOLLOW`` (a link there is
  refused; the home itself may be a link, which is followed and its target checked) and
  checked with ``fstat`` on the open descriptor, so what is checked is what is read.

Once the home's directories are known to be safe, nobody else can rename entries in them, so
a path handed on (to SQLite, which creates a missing file itself, mode 0600) still names the
file that was checked. Every refusal is a
:class:`~letterlock.errors.UsageError` (exit 2) that starts with ``unsafe home:`` and names
the path and the fix.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final

from letterlock.core.keys import Identity, PublicIdentity
from letterlock.errors import KeyStoreError, UsageError
from letterlock.keystore import decrypt_identity
from letterlock.keystore.file import MAX_FILE_SIZE

__all__ = [
    "check_ancestors",
    "check_directory",
    "check_file",
    "open_private",
    "read_checked",
    "read_private_key",
]

STRICT: Final = os.name == "posix"
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a file must not hang us
_BINARY: Final = getattr(os, "O_BINARY", 0)


def _unsafe(message: str) -> UsageError:
    return UsageError(f"unsafe home: {message}")


def _owner_problem(status: os.stat_result, path: Path) -> str | None:
    me = os.geteuid()
    if status.st_uid in (me, 0):
        return None
    owners = "you (uid 0)" if me == 0 else f"you (uid {me}) or root"
    return f"{path} belongs to uid {status.st_uid}, not to {owners}"


def _check(status: os.stat_result, path: Path, *, secret: bool = False) -> None:
    """Refuse ``status`` of ``path`` unless it belongs to you or root and nobody else writes it."""
    if not STRICT:
        return
    problem = _owner_problem(status, path)
    if problem is not None:
        raise _unsafe(problem)
    mode = stat.S_IMODE(status.st_mode)
    if secret and mode & 0o077:
        raise _unsafe(
            f"permissions {mode:04o} on {path} are too open: a key file must be private to "
            f"its owner (chmod 600 {path})"
        )
    writers = [who for who, bit in (("group", 0o020), ("others", 0o002)) if mode & bit]
    if writers:
        raise _unsafe(f"{path} is writable by {' and '.join(writers)} (chmod go-w {path})")


def _refuse_link_or(path: Path, exc: OSError) -> UsageError | OSError:
    """An open with O_NOFOLLOW failed: a link becomes a refusal, anything else stays as it is."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and path.is_symlink():
        return _unsafe(f"{path} is a symbolic link; letterlock does not follow links in its home")
    return exc


def check_ancestors(path: Path) -> None:
    """Refuse ``path`` if a directory above it lets another user swap it (sticky bit allowed)."""
    if not STRICT:
        return
    named, real = Path(os.path.abspath(path)), Path(os.path.realpath(path))
    for directory in sorted({*named.parents, *real.parents}):  # a link's and its target's
        try:
            status = os.stat(directory)
        except FileNotFoundError:  # created later, mode 0700, by letterlock itself
            continue
        problem = _owner_problem(status, directory)
        if problem is not None:
            raise _unsafe(problem)
        if status.st_mode & 0o022 and not status.st_mode & stat.S_ISVTX:
            raise _unsafe(
                f"{directory}, above the home, is writable by others without the sticky bit "
                "(they could swap the home)"
            )


def check_directory(path: Path, *, follow: bool = False) -> bool:
    """Check the directory ``path`` (False if it does not exist). ``follow`` for the home itself."""
    flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | (0 if follow else _NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ENOTDIR and not path.is_symlink():
            raise UsageError(f"{path} is not a directory") from None
        raise _refuse_link_or(path, exc) from None
    try:
        _check(os.fstat(fd), path)
    finally:
        os.close(fd)
    return True


def _open_checked(path: Path, flags: int, *, secret: bool, mode: int = 0o600) -> int:
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK | _BINARY, mode)
    except OSError as exc:
        raise _refuse_link_or(path, exc) from None
    try:
        _check_file(os.fstat(fd), path, secret=secret)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_file(status: os.stat_result, path: Path, *, secret: bool) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise _unsafe(f"{path} is not a regular file")
    _check(status, path, secret=secret)


def read_checked(path: Path, *, limit: int, secret: bool = False) -> bytes | None:
    """The bytes of the file ``path`` in the home (None if it does not exist), checked first.

    ``secret`` files (private keys) must also be unreadable by group and others. More than
    ``limit`` bytes is refused: nothing in a home is large.
    """
    try:
        fd = _open_checked(path, os.O_RDONLY, secret=secret)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"{path} is larger than {limit} bytes; it is not a letterlock file")
    return data


def read_private_key(
    path: Path, secret: Callable[[], bytes], public: PublicIdentity, *, missing: str, mismatch: str
) -> Identity:
    """The private key in the encrypted key file ``path`` (checked as a secret file), which must
    be the key of ``public``. ``secret`` is asked only once the file is read. A missing file is
    a UsageError saying ``missing``; another key, a KeyStoreError saying ``mismatch``."""
    data = read_checked(path, limit=MAX_FILE_SIZE, secret=True)
    if data is None:
        raise UsageError(missing)
    try:
        identity = decrypt_identity(data, secret())
    except KeyStoreError as exc:
        raise KeyStoreError(f"{path}: {exc}") from None
    if identity.public != public:
        raise KeyStoreError(mismatch)
    return identity


def check_file(path: Path) -> bool:
    """Check the file ``path`` in the home without reading it; False if it does not exist."""
    try:
        fd = _open_checked(path, os.O_RDONLY, secret=False)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def open_private(path: Path) -> int:
    """A read-write descriptor of the private file ``path``, created (mode 0600) if missing."""
    return _open_checked(path, os.O_RDWR | os.O_CREAT, secret=False)
