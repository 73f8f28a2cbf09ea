"""Where the CLI gets a passphrase: a file, the environment, or the terminal, in that order.

* ``--passphrase-file FILE``: the first line of FILE, its line ending stripped.
* ``LETTERLOCK_PASSPHRASE``: for scripts and services (visible only to the same user, in
  ``/proc/PID/environ``; prefer a file readable by the service alone).
* otherwise the controlling terminal (``/dev/tty``, never stdin, which carries the message),
  asked twice when a new key file is written.

Text is encoded as UTF-8 in NFC (``docs/spec/keyfile-v1.md`` section 2); an empty passphrase
is refused.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from pathlib import Path
from typing import Final

from letterlock.errors import UsageError

__all__ = ["ENV_VAR", "new_passphrase", "passphrase"]

ENV_VAR: Final = "LETTERLOCK_PASSPHRASE"
_MAX_FILE: Final = 64 * 1024
_NO_SOURCE: Final = (
    f"no passphrase: there is no terminal to ask on; set {ENV_VAR} or use --passphrase-file"
)


def _normalise(raw: bytes, source: str) -> bytes:
    if not raw:
        raise UsageError(f"the passphrase from {source} is empty; empty passphrases are refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # not text: use the bytes as they are
    return unicodedata.normalize("NFC", text).encode("utf-8")


def from_file(path: str) -> bytes:
    """The first line of ``path`` without its line ending."""
    with open(path, "rb") as file:
        data = file.read(_MAX_FILE)
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    return _normalise(line, f"--passphrase-file {path}")


def from_env() -> bytes | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return _normalise(os.fsencode(value), ENV_VAR)


def _terminal_available() -> bool:
    if os.name != "posix":
        return True
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def from_terminal(prompt: str, *, confirm: bool) -> bytes:
    """Ask on the terminal; with ``confirm``, ask twice and require the same answer."""
    if not _terminal_available():
        raise UsageError(_NO_SOURCE)
    first = getpass.getpass(prompt)
    raw = _normalise(first.encode("utf-8"), "the terminal")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise UsageError("the passphrases do not match")
    return raw


def passphrase(file: str | Path | None, *, prompt: str) -> bytes:
    """The passphrase of an existing key file, from the first source that is set."""
    if file is not None:
        return from_file(str(file))
    from_environment = from_env()
    if from_environment is not None:
        return from_environment
    return from_terminal(prompt, confirm=False)


def new_passphrase(file: str | Path | None, *, prompt: str, use_env: bool = True) -> bytes:
    """A passphrase for a new key file; asked twice when it comes from the terminal."""
    if file is not None:
        return from_file(str(file))
    from_environment = from_env() if use_env else None
    if from_environment is not None:
        return from_environment
    return from_terminal(prompt, confirm=True)
