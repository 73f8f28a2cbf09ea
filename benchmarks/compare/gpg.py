"""The gpg command line: one ``gpg`` process per message, as scripts and users run it.

Keys are NIST P-256 (ECDSA primary key to sign, ECDH subkey to encrypt), made without a
passphrase in two throw-away GnuPG homes: the sender's (its secret key, the recipients' public
keys) and the first recipient's (its secret key, the sender's public key). Sealing runs
``gpg --sign --encrypt`` with gpg's defaults (compression included); opening runs
``gpg --decrypt`` and accepts the output only with a good signature by the sender's key
(``VALIDSIG``) and ``DECRYPTION_OKAY`` in the status lines. The gpg-agent of each home stays
up between messages, as a desktop's does; both homes and agents are removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from compare.base import Case, Contender, OpenFailed, payload_of

__all__ = ["CONTENDER", "version"]


def _gpg() -> str:
    path = shutil.which("gpg")
    if path is None:
        raise FileNotFoundError("gpg")
    return path


def version() -> str | None:
    """The first line of ``gpg --version``, or None without gpg."""
    try:
        result = subprocess.run([_gpg(), "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.decode(errors="replace").splitlines()[0]


def _available() -> str | None:
    return None if version() is not None else "gpg command not found (apt-get install gnupg)"


def _run(home: Path, *args: str, stdin: bytes = b"") -> bytes:
    command = [_gpg(), "--homedir", str(home), "--batch", "--no-tty", "--quiet", *args]
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])}: {result.stderr.decode(errors='replace')}")
    return result.stdout


class _Keyring:
    """The sender's and the first recipient's GnuPG homes; recipients are made on demand."""

    def __init__(self) -> None:
        # Short paths under the system temp directory: gpg-agent's socket path is limited.
        self.sender_home = Path(tempfile.mkdtemp(prefix="bench-gpg-s-"))
        self.reader_home = Path(tempfile.mkdtemp(prefix="bench-gpg-r-"))
        atexit.register(self.close)
        self.sender = self._generate(self.sender_home, "sender")
        self.recipients = [self._generate(self.reader_home, "r0")]
        self._copy_public(self.sender_home, self.reader_home, self.sender)
        self._copy_public(self.reader_home, self.sender_home, self.recipients[0])

    def first(self, count: int) -> list[str]:
        """Fingerprints of ``count`` recipients, the first being the one who opens."""
        while len(self.recipients) < count:
            self.recipients.append(self._generate(self.sender_home, f"r{len(self.recipients)}"))
        return self.recipients[:count]

    @staticmethod
    def _generate(home: Path, name: str) -> str:
        uid = f"{name} <{name}@bench.invalid>"
        _run(home, "--passphrase", "", "--quick-gen-key", uid, "nistp256", "sign", "never")
        listing = _run(home, "--with-colons", "--list-keys", f"<{name}@bench.invalid>")
        fingerprint = next(
            line.split(":")[9] for line in listing.decode().splitlines() if line.startswith("fpr")
        )
        _run(home, "--passphrase", "", "--quick-add-key", fingerprint, "nistp256", "encr", "never")
        return fingerprint

    @staticmethod
    def _copy_public(source: Path, target: Path, fingerprint: str) -> None:
        _run(target, "--import", stdin=_run(source, "--export", fingerprint))

    def close(self) -> None:
        gpgconf = shutil.which("gpgconf")
        for home in (self.sender_home, self.reader_home):
            if gpgconf is not None:
                subprocess.run(
                    [gpgconf, "--homedir", str(home), "--kill", "gpg-agent"],
                    capture_output=True,
                    check=False,
                )
            shutil.rmtree(home, ignore_errors=True)


@functools.cache
def _keyring() -> _Keyring:
    return _Keyring()


class _Case:
    def __init__(self, size: int, recipients: int) -> None:
        self.payload = payload_of(size)
        self._keys = _keyring()
        to: list[str] = []
        for fingerprint in self._keys.first(recipients):
            to += ("--recipient", fingerprint)
        self._seal_args = (
            "--trust-model", "always", "--local-user", self._keys.sender,
            "--sign", "--encrypt", *to, "--output", "-",
        )  # fmt: skip

    def seal(self) -> bytes:
        return _run(self._keys.sender_home, *self._seal_args, stdin=self.payload)

    def open(self, sealed: bytes) -> bytes:
        command = [
            _gpg(), "--homedir", str(self._keys.reader_home), "--batch", "--no-tty",
            "--quiet", "--trust-model", "always", "--status-fd", "2", "--decrypt",
        ]  # fmt: skip
        result = subprocess.run(command, input=sealed, capture_output=True, check=False)
        status = [
            line.split()[1:]
            for line in result.stderr.decode(errors="replace").splitlines()
            if line.startswith("[GNUPG:] ")
        ]
        signed = any(s[:2] == ["VALIDSIG", self._keys.sender] for s in status)
        decrypted = ["DECRYPTION_OKAY"] in status
        if result.returncode != 0 or not signed or not decrypted:
            raise OpenFailed(f"gpg exit {result.returncode}, signed {signed}, ok {decrypted}")
        return result.stdout


def _setup(size: int, recipients: int) -> Case:
    return _Case(size, recipients)


CONTENDER = Contender(
    name="gpg",
    kind="peer",
    what="gpg command line, one process per message: --sign --encrypt, NIST P-256 keys",
    setup=_setup,
    available=_available,
)
