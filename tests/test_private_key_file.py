"""``read_private_key`` (cli/strict.py): the one reader of an encrypted private key file in a
home (a keyset's key N, an authority's key), checked against the public key the home expects."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from letterlock import Identity, KeyStoreError, Suite, UsageError
from letterlock._fs import write_private_file
from letterlock.cli.strict import read_private_key
from letterlock.keystore import encrypt_identity
from letterlock.keystore.file import MIN_KDF

PASS = b"correct horse battery staple"
KEY = Identity.generate(Suite.X25519)
OTHER = Identity.generate(Suite.X25519)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _key_file(tmp_path: Path, identity: Identity) -> Path:
    path = tmp_path / "k.key"
    write_private_file(path, encrypt_identity(identity, PASS, kdf=MIN_KDF), overwrite=True)
    return path


def _read(path: Path, expected: Identity, passphrase: bytes = PASS) -> Identity:
    return read_private_key(
        path, lambda: passphrase, expected.public, missing="MISSING", mismatch="MISMATCH"
    )


def test_the_key_the_home_expects_is_read(tmp_path: Path) -> None:
    assert _read(_key_file(tmp_path, KEY), KEY).public == KEY.public


def test_a_key_file_holding_another_key_is_refused(tmp_path: Path) -> None:
    """A swapped key file (another key under the same passphrase) must not stand in for the
    key the keyset or the authority's .pub names."""
    with pytest.raises(KeyStoreError, match=r"^MISMATCH$"):
        _read(_key_file(tmp_path, OTHER), KEY)


def test_a_missing_file_is_refused_before_the_passphrase_is_asked(tmp_path: Path) -> None:
    def ask() -> bytes:
        raise AssertionError("asked for a passphrase with no key file to open")

    with pytest.raises(UsageError, match=r"^MISSING$"):
        read_private_key(tmp_path / "absent.key", ask, KEY.public, missing="MISSING",
                         mismatch="MISMATCH")  # fmt: skip


def test_a_wrong_passphrase_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path, KEY)
    with pytest.raises(KeyStoreError, match=f"^{re.escape(str(path))}: "):
        _read(path, KEY, passphrase=b"not the passphrase at all")


@posix_only
def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path, KEY)
    path.chmod(0o644)
    with pytest.raises(UsageError, match="unsafe home"):
        _read(path, KEY)
