"""Where private keys live: the :class:`KeyStore` seam; encrypted key files
(``docs/spec/keyfile-v1.md``) here, PKCS#11 tokens in :mod:`letterlock.keystore.pkcs11` (not
imported here: it needs the ``pkcs11`` extra)."""

from letterlock.keystore.base import KeyStore, Secret
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
    "KeyStore",
    "Secret",
    "decrypt_identity",
    "encrypt_identity",
    "load_identity",
    "save_identity",
]
