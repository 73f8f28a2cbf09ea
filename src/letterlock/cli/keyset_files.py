"""Keyset files in the CLI's home (``docs/spec/keyset.md`` section 6): read, verified, written.

What ``seal``, ``open``, ``send``, ``listen`` and ``id passwd`` need of keysets, apart from the
commands (:mod:`letterlock.cli.keysets`), so that :mod:`letterlock.cli.options` can use it::

    HOME/identities/NAME.keyset        its keyset, signed by NAME's identity key (one line)
    HOME/identities/NAME.keys/ID.key   the encrypted private key of key ID (keyfile-v1, the
                                       identity's passphrase); key 0 is NAME.key itself
    HOME/keysets/CONTACT.keyset        a contact's keyset, checked against the contact's key

Each is written atomically, checked as the rest of the home is (refused if others can write
it), and read back through the signature: a keyset file changed by anyone but its identity key
is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from letterlock import Identity, Limits, PublicIdentity, ReplayWindow, UsageError
from letterlock._fs import write_private_file
from letterlock._keyring import KeysetOpener
from letterlock.cli.home import Home, check_identity_name
from letterlock.cli.passphrase import passphrase
from letterlock.cli.strict import read_checked, read_private_key
from letterlock.cli.trustdata import TrustData
from letterlock.core.trust import TrustPolicy
from letterlock.errors import KeyStoreError
from letterlock.keystore import encrypt_identity
from letterlock.trust.delegation import delegated
from letterlock.trust.keysets import MAX_TEXT, Keyset, Purpose, SignedKeyset, Status, sealing_key
from letterlock.trust.pins import check_name

__all__ = [
    "change_passphrase",
    "contact_keyset_path",
    "forget_contact_keyset",
    "key_path",
    "keyset_opener",
    "keyset_path",
    "known_keysets",
    "own_keyset",
    "own_recipient_ids",
    "passphrase_once",
    "read_signed",
    "recipient_key",
    "sealing_identity",
    "write_keyset",
]


def keyset_path(home: Home, name: str) -> Path:
    return home.identities / f"{check_identity_name(name)}.keyset"


def key_path(home: Home, name: str, key_id: int) -> Path:
    return home.identities / f"{check_identity_name(name)}.keys" / f"{key_id}.key"


def contact_keyset_path(home: Home, name: str) -> Path:
    return home.root / "keysets" / f"{check_name(name, 'contact name')}.keyset"


def forget_contact_keyset(home: Home, name: str) -> None:
    """Delete contact ``name``'s keyset, if the home holds one (under the home's lock)."""
    path = contact_keyset_path(home, name)
    if read_checked(path, limit=MAX_TEXT) is not None:
        os.unlink(path)


def read_signed(path: Path, identity: PublicIdentity) -> SignedKeyset | None:
    data = read_checked(path, limit=MAX_TEXT)
    if data is None:
        return None
    try:
        return SignedKeyset.from_text(data.decode("utf-8"), identity=identity)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: refused: {exc}") from None


def own_keyset(home: Home, name: str) -> SignedKeyset | None:
    """Own identity ``name``'s keyset, verified against its identity key; None if it has none."""
    return read_signed(keyset_path(home, name), home.public(name))


def write_keyset(path: Path, signed: SignedKeyset) -> None:
    write_private_file(path, (signed.to_text() + "\n").encode(), overwrite=True, mode=0o644)


def _load_key(home: Home, name: str, key_id: int, secret: Callable[[], bytes],
              public: PublicIdentity) -> Identity:  # fmt: skip
    if key_id == 0:
        return home.load(name, secret)
    path = key_path(home, name, key_id)
    return read_private_key(
        path, secret, public,
        missing=f"{path} is missing: the keyset certifies key {key_id}",
        mismatch=f"{path} is not the key {key_id} that {name}.keyset certifies",
    )  # fmt: skip


def change_passphrase(home: Home, name: str, old: Callable[[], bytes], new: bytes) -> int:
    """Re-encrypt the private keys of ``name``'s keyset (not key 0, NAME.key) under ``new``;
    returns how many. Each file is replaced atomically, one by one: a key already under ``new``
    (an interrupted run) is left as it is. Call it under the home's lock."""
    signed = own_keyset(home, name)
    if signed is None:
        return 0
    changed = 0
    for key in signed.keyset.keys:
        if key.key_id == 0 or key.status is Status.DESTROYED:
            continue
        try:
            identity = _load_key(home, name, key.key_id, old, key.public)
        except KeyStoreError:  # changed already by an interrupted run? else the error stands
            _load_key(home, name, key.key_id, lambda: new, key.public)
            continue
        path = key_path(home, name, key.key_id)
        write_private_file(path, encrypt_identity(identity, new), overwrite=True)
        changed += 1
    return changed


def _asked_once(get: Callable[[], bytes]) -> Callable[[], bytes]:
    """``get``, asked at most once (every key of a keyset shares the identity's passphrase)."""
    kept: list[bytes] = []

    def once() -> bytes:
        if not kept:
            kept.append(get())
        return kept[0]

    return once


# ------------------------------------------------------------- used by seal and open


def recipient_key(
    home: Home, name: str, *, now: int, resolve: Callable[[str], PublicIdentity]
) -> PublicIdentity:
    """The key to seal to for recipient ``name`` (``resolve`` finds its identity key): the
    primary key of its keyset, if the home holds one for it, else the identity key itself."""
    identity = resolve(name)
    contact = home.contacts().get(name)
    if contact is not None:
        signed = read_signed(contact_keyset_path(home, name), contact.identity)
    elif name in home.names():
        signed = own_keyset(home, name)
    else:
        signed = None
    if signed is None:
        return identity
    try:
        return sealing_key(signed.keyset, now)
    except UsageError as exc:
        raise UsageError(f"recipient {name!r}: {exc}") from None


def own_recipient_ids(home: Home, own: Mapping[str, PublicIdentity]) -> dict[str, set[bytes]]:
    """The recipient key ids each own identity opens with: its keyset's keys, or itself."""
    ids = {}
    for name, public in own.items():
        signed = own_keyset(home, name)
        keys = () if signed is None else signed.keyset.keys
        ids[name] = {public.recipient_id} | {
            key.public.recipient_id for key in keys if key.purpose is Purpose.ENCRYPT
        }
    return ids


def known_keysets(home: Home) -> dict[bytes, Keyset]:
    """The keysets the home holds (its own and its contacts'), by identity fingerprint: what
    decides a delegated signing key when a message carries an older version (keyset.md
    section 9, step 5)."""
    known = {}
    for contact in home.contacts():
        signed = read_signed(contact_keyset_path(home, contact.name), contact.identity)
        if signed is not None:
            known[contact.identity.fingerprint] = signed.keyset
    for own in home.own_identities():
        if own.public is None:
            continue  # damaged: its commands say so, and it vouches for nothing
        signed = own_keyset(home, own.name)
        if signed is not None:
            known[signed.keyset.identity] = signed.keyset
    return known


def sealing_identity(
    home: Home, name: str, get_passphrase: Callable[[], bytes], *, now: int,
    hide_sender: bool = False,
) -> Identity:  # fmt: skip
    """Own identity ``name`` as a sender: signing with the current signing key of its keyset
    (``docs/spec/keyset.md`` section 9), its messages carrying the keyset, if it has one; else
    (and for a hidden sender, or an identity that presents an X.509 or letterlock chain for
    its identity key) signing with the identity key (:meth:`Home.load`).

    With a signing key, the identity key's file (NAME.key) is not read: it is needed only to
    change the keyset, and may be kept elsewhere in between."""
    signed = own_keyset(home, name)
    key = None if signed is None else signed.keyset.signing_key(now)
    data = TrustData(home)
    if signed is None or key is None or hide_sender or home.chain(name) or data.presented(name):
        return home.load(name, get_passphrase)
    status = data.status()
    signing = _load_key(home, name, key.key_id, get_passphrase, key.public)
    held = 0 if status is None else status.version
    return delegated(signing, signed, now=now, status_version=held)


def keyset_opener(
    home: Home, name: str, *, trust: TrustPolicy, replay: ReplayWindow, now: int,
    get_passphrase: Callable[[], bytes], limits: Limits,
) -> KeysetOpener | None:  # fmt: skip
    """An opener with every key of ``name``'s keyset that opens at ``now``; None without one."""
    signed = own_keyset(home, name)
    if signed is None:
        return None
    secret = _asked_once(get_passphrase)
    keys = {key.key_id: _load_key(home, name, key.key_id, secret, key.public)
            for key in signed.keyset.opens_with(now)}  # fmt: skip
    if not keys:
        raise UsageError(f"no key of {name!r}'s keyset opens messages any more (id show {name})")
    return KeysetOpener(signed.keyset, keys, trust=trust, replay=replay, limits=limits)


def passphrase_once(passphrase_file: str | None, name: str) -> Callable[[], bytes]:
    """Identity ``name``'s passphrase, asked (or read) once however many keys it unlocks."""
    return _asked_once(lambda: passphrase(passphrase_file, prompt=f"Passphrase for {name!r}: "))
