"""Where private keys live: encrypted key files (``docs/spec/keyfile-v1.md``)."""

from letterlock.keystore.file import (
    DEFAULT_KDF,
    MAX_KDF,
    MAX_KDF_WORK,
    MIN_KDF,
    KdfParams,
    decrypt_identity,
    encrypt_identity,
    load_identity,
    save_identity,
)

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
