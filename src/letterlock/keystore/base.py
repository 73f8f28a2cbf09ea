"""The seam of key storage: where an application's private identities live.

A :class:`KeyStore` hands out :class:`~letterlock.core.keys.Identity` objects by name. What an
identity is made of depends on the store: the file store decrypts a key file and holds the keys
in memory (:class:`~letterlock.core.keys.PrivateKeys`); the PKCS#11 store
(:class:`letterlock.keystore.pkcs11.Pkcs11KeyStore`, the ``pkcs11`` extra) returns identities
whose :class:`~letterlock.core.keys.Signer` and :class:`~letterlock.core.keys.Decapsulator` call
into the token, whose keys never leave it. The
secret a store asks for (a passphrase, a token PIN) comes through a callable, asked only when
needed (a wrong one raises :class:`~letterlock.errors.KeyStoreError`, and a caller may ask again).

Today's file store is the CLI's home (``letterlock.cli.home.Home``): ``identities/NAME.key``
encrypted as ``docs/spec/keyfile-v1.md`` says, checked like OpenSSH's StrictModes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from letterlock.core.keys import Identity
from letterlock.core.suites import Suite

__all__ = ["KeyStore", "Secret"]

#: How a store gets the passphrase or PIN it needs: called at most once per operation.
Secret = Callable[[], bytes]


class KeyStore(Protocol):
    """Named private identities: list them, load one, create one."""

    def names(self) -> list[str]:
        """The names of the identities in the store, sorted."""
        ...

    def load(self, name: str, secret: Secret) -> Identity:
        """The identity ``name``, unlocked with ``secret``. KeyStoreError if it cannot be."""
        ...

    def create(self, name: str, suite: Suite, secret: Secret) -> Identity:
        """A new identity ``name`` of ``suite``, protected by ``secret``; never overwrites."""
        ...
