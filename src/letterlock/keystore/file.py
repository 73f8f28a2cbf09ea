"""Encrypted private key files (``docs/spec/keyfile-v1.md``).

:func:`save_identity` encrypts an identity's private encoding under Argon2id + AES-256-GCM and
writes it atomically with mode 0600 (:mod:`letterlock._fs`); :func:`load_identity` checks the
file's KDF parameters against a floor and a cap (per field, and on memory x passes) *before*
deriving any key, then decrypts. Every failure is a :class:`~letterlock.errors.KeyStoreError`; a
wrong passphrase and a modified file give the same message.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from letterlock import _crypto
from letterlock._fs import write_private_file
from letterlock.core.keys import Identity
from letterlock.errors import KeyStoreError, UsageError
from letterlock.hazmat import identity_from_private_bytes, identity_to_private_bytes

__all__ = [
    "DEFAULT_KDF",
    "MAX_KDF",
    "MAX_KDF_WORK",
    "MIN_KDF",
    "KdfParams",
    "decrypt_identity",
    "encrypt_identity",
    "load_identity",
    "save_identity",
]

MAGIC: Final = b"LLF\x01"
KDF_ARGON2ID: Final = 0x01
SALT_SIZE: Final = 16
NONCE_SIZE: Final = 12
MAX_FILE_SIZE: Final = 65536
_PREFIX = struct.Struct(">4sBIIB16s12sI")  # magic .. ct_len: the AAD, 46 bytes
WRONG_PASSPHRASE: Final = "wrong passphrase or damaged key file"  # noqa: S105 - a message


@dataclass(frozen=True, slots=True, kw_only=True)
class KdfParams:
    """Argon2id cost: memory in KiB, passes over memory, parallel lanes."""

    memory_kib: int
    iterations: int
    lanes: int


DEFAULT_KDF: Final = KdfParams(memory_kib=64 * 1024, iterations=3, lanes=4)  # RFC 9106 4(2)
MIN_KDF: Final = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)  # OWASP minimum
MAX_KDF: Final = KdfParams(memory_kib=1024 * 1024, iterations=64, lanes=64)
#: Cap on memory_kib * iterations (2 GiB-passes, about 10x the default's 192 MiB-passes):
#: the per-field caps together would allow 1 GiB x 64 passes, minutes per try.
MAX_KDF_WORK: Final = 2**21


def _out_of_bounds(params: KdfParams) -> str | None:
    """Why ``params`` fall outside [MIN_KDF, MAX_KDF] or above MAX_KDF_WORK, else None."""
    for field, unit in (("memory_kib", " KiB"), ("iterations", ""), ("lanes", "")):
        value = getattr(params, field)
        low, high = getattr(MIN_KDF, field), getattr(MAX_KDF, field)
        if value > high:
            return f"Argon2id {field} {value}{unit} is above the cap {high}{unit}"
        if value < low:
            return f"Argon2id {field} {value}{unit} is below the floor {low}{unit}"
    work = params.memory_kib * params.iterations
    if work > MAX_KDF_WORK:
        return (
            f"Argon2id memory_kib x iterations {work} KiB-passes is above the cap "
            f"{MAX_KDF_WORK} KiB-passes"
        )
    return None


def _derive(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return _crypto.argon2id(
        passphrase,
        salt=salt,
        memory_kib=params.memory_kib,
        iterations=params.iterations,
        lanes=params.lanes,
    )


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise UsageError("the passphrase must be bytes (encode text as UTF-8)")
    if not passphrase:
        raise UsageError("an empty passphrase is not allowed")


def encrypt_identity(
    identity: Identity, passphrase: bytes, *, kdf: KdfParams = DEFAULT_KDF
) -> bytes:
    """The key file bytes for ``identity`` (fresh salt and nonce every call)."""
    if not isinstance(identity, Identity):
        raise UsageError("only a private letterlock.Identity can be saved")
    _check_passphrase(passphrase)
    problem = _out_of_bounds(kdf)
    if problem is not None:
        raise UsageError(problem)
    salt = _crypto.random_bytes(SALT_SIZE)
    nonce = _crypto.random_bytes(NONCE_SIZE)
    private = identity_to_private_bytes(identity)
    prefix = _PREFIX.pack(
        MAGIC, KDF_ARGON2ID, kdf.memory_kib, kdf.iterations, kdf.lanes, salt, nonce,
        len(private) + 16,
    )  # fmt: skip
    key = _derive(passphrase, salt, kdf)
    return prefix + _crypto.sealed_box_encrypt(key, nonce, private, prefix)


def decrypt_identity(data: bytes, passphrase: bytes) -> Identity:
    """The identity in key file bytes (section 3 of the spec, in order). Raises KeyStoreError."""
    _check_passphrase(passphrase)
    if len(data) > MAX_FILE_SIZE:
        raise KeyStoreError("not a letterlock key file (too large)")
    if len(data) < _PREFIX.size or data[:3] != MAGIC[:3]:
        raise KeyStoreError("not a letterlock key file")
    magic, kdf_id, memory_kib, iterations, lanes, salt, nonce, ct_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise KeyStoreError(f"unsupported key file version {data[3]}")
    if kdf_id != KDF_ARGON2ID:
        raise KeyStoreError(f"unsupported key derivation function 0x{kdf_id:02x}")
    params = KdfParams(memory_kib=memory_kib, iterations=iterations, lanes=lanes)
    problem = _out_of_bounds(params)
    if problem is not None:
        raise KeyStoreError(f"refusing key file: {problem}")
    if ct_len != len(data) - _PREFIX.size:
        raise KeyStoreError("damaged key file (length does not match)")
    key = _derive(passphrase, salt, params)
    prefix = data[: _PREFIX.size]
    private = _crypto.sealed_box_decrypt(key, nonce, data[_PREFIX.size :], prefix)
    if private is None:
        raise KeyStoreError(WRONG_PASSPHRASE)
    try:
        return identity_from_private_bytes(private)
    except ValueError:
        raise KeyStoreError("damaged key file (no valid private key inside)") from None


def save_identity(
    path: str | os.PathLike[str],
    identity: Identity,
    passphrase: bytes,
    *,
    kdf: KdfParams = DEFAULT_KDF,
    overwrite: bool = False,
) -> None:
    """Encrypt ``identity`` under ``passphrase`` and write it to ``path`` atomically (0600).

    Missing parent directories are created with mode 0700. An existing file is never replaced
    unless ``overwrite`` is true. Raises KeyStoreError if the file cannot be written.
    """
    data = encrypt_identity(identity, passphrase, kdf=kdf)
    try:
        write_private_file(Path(path), data, overwrite=overwrite)
    except FileExistsError:
        raise KeyStoreError(f"{os.fspath(path)} already exists; refusing to overwrite") from None
    except OSError as exc:
        raise KeyStoreError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None


def load_identity(path: str | os.PathLike[str], passphrase: bytes) -> Identity:
    """Read and decrypt the key file at ``path``. Raises KeyStoreError."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyStoreError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    return decrypt_identity(data, passphrase)
