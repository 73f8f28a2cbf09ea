"""``letterlock id rotate / show / keyset`` and ``contact keyset``: keysets in the home.

Files (``docs/spec/keyset.md`` section 6), beside the identity's own::

    HOME/identities/NAME.keyset        its keyset, signed by NAME's identity key (one line)
    HOME/identities/NAME.keys/ID.key   the encrypted private key of key ID (keyfile-v1, the
                                       identity's passphrase); key 0 is NAME.key itself
    HOME/keysets/CONTACT.keyset        a contact's keyset, checked against the contact's key

Each is written atomically, checked as the rest of the home is (refused if others can write
it), and read back through the signature: a keyset file changed by anyone but its identity key
is refused. Rotation is one step per command: ``id rotate NAME`` adds a key, ``id keyset NAME``
prints the line to distribute, ``--promote``, ``--retire`` and ``--destroy`` take the others.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import click

from letterlock import Identity, Limits, PublicIdentity, ReplayWindow, UsageError
from letterlock._fs import make_private_dir, write_private_file
from letterlock._keyring import KeysetOpener
from letterlock.cli.home import Home, check_identity_name
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.passphrase import passphrase
from letterlock.cli.render import note, print_table, stdout_console
from letterlock.cli.streams import read_input
from letterlock.cli.strict import check_directory, read_checked
from letterlock.core.trust import TrustPolicy
from letterlock.errors import KeyStoreError
from letterlock.keystore import decrypt_identity, encrypt_identity
from letterlock.keystore.file import MAX_FILE_SIZE
from letterlock.trust.keysets import (
    MAX_TEXT,
    Keyset,
    SignedKeyset,
    Status,
    sealing_key,
    sign_keyset,
)
from letterlock.trust.pins import check_name

__all__ = [
    "change_passphrase",
    "contact_keyset",
    "forget_contact_keyset",
    "id_keyset",
    "id_rotate",
    "id_show",
    "keyset_opener",
    "own_recipient_ids",
    "passphrase_once",
    "recipient_key",
]

DEFAULT_LIFETIME: Final = "90d"
DEFAULT_GRACE: Final = "7d"
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION: Final = re.compile(r"([1-9][0-9]{0,9})([smhdw]?)")


def parse_duration(text: str, *, what: str, zero: bool = False) -> int:
    """Seconds from ``90d``, ``12h``, ``30m``, ``3600s`` or ``3600``; UsageError otherwise."""
    if zero and text.strip() == "0":
        return 0
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{what} must be a duration such as 7d, 12h, 30m or 3600s, not {text!r}")
    return int(match[1]) * _UNITS[match[2] or "s"]


# --------------------------------------------------------------------------- files


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


def _read_signed(path: Path, identity: PublicIdentity) -> SignedKeyset | None:
    data = read_checked(path, limit=MAX_TEXT)
    if data is None:
        return None
    try:
        return SignedKeyset.from_text(data.decode("utf-8"), identity=identity)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: refused: {exc}") from None


def own_keyset(home: Home, name: str) -> SignedKeyset | None:
    """Own identity ``name``'s keyset, verified against its identity key; None if it has none."""
    return _read_signed(keyset_path(home, name), home.public(name))


def _write(path: Path, signed: SignedKeyset) -> None:
    write_private_file(path, (signed.to_text() + "\n").encode(), overwrite=True, mode=0o644)


def _load_key(home: Home, name: str, key_id: int, secret: Callable[[], bytes],
              public: PublicIdentity) -> Identity:  # fmt: skip
    if key_id == 0:
        return home.load(name, secret)
    path = key_path(home, name, key_id)
    data = read_checked(path, limit=MAX_FILE_SIZE, secret=True)
    if data is None:
        raise UsageError(f"{path} is missing: the keyset certifies key {key_id}")
    try:
        identity = decrypt_identity(data, secret())
    except KeyStoreError as exc:
        raise KeyStoreError(f"{path}: {exc}") from None
    if identity.public != public:
        raise KeyStoreError(f"{path} is not the key {key_id} that {name}.keyset certifies")
    return identity


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
        signed = _read_signed(contact_keyset_path(home, name), contact.identity)
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
        ids[name] = {public.recipient_id} | {key.public.recipient_id for key in keys}
    return ids


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


# ----------------------------------------------------------------------- commands


def passphrase_once(passphrase_file: str | None, name: str) -> Callable[[], bytes]:
    """Identity ``name``'s passphrase, asked (or read) once however many keys it unlocks."""
    return _asked_once(lambda: passphrase(passphrase_file, prompt=f"Passphrase for {name!r}: "))


@click.command(
    "rotate",
    short_help="Rotate identity NAME's encryption keys, one step at a time.",
    epilog=example(
        "letterlock id rotate alice                  # 1. add a key",
        "letterlock id keyset alice > alice.keyset   # 2. distribute (contact keyset ...)",
        "letterlock id rotate alice --promote 1      # 3. senders seal to key 1",
        "letterlock id rotate alice --retire 0 --grace 7d",
        "letterlock id rotate alice --destroy 0      # 5. after the grace period",
    ),
)
@click.argument("name")
@click.option("--promote", type=int, metavar="ID", help="Make key ID the primary key.")
@click.option(
    "--retire", type=int, metavar="ID",
    help="Retire key ID: it opens messages already queued for it until the grace period ends.",
)  # fmt: skip
@click.option(
    "--destroy", type=int, metavar="ID",
    help="Delete the private key of retired key ID (refused before its grace period ends).",
)  # fmt: skip
@click.option(
    "--lifetime", default=DEFAULT_LIFETIME, show_default=True, metavar="DURATION",
    help="Lifetime of the added key (and of key 0 when the keyset starts): senders stop "
    "sealing to a key at its end. 7d, 12h, 30m, 3600s.",
)  # fmt: skip
@click.option(
    "--grace", default=None, metavar="DURATION",
    help=f"How long a retired key still opens queued messages (when adding or retiring; "
    f"default {DEFAULT_GRACE} for a new keyset, else unchanged). 0 for none.",
)  # fmt: skip
@click.option(
    "--early", is_flag=True,
    help="With --destroy: destroy before the grace period ends (a compromised key); messages "
    "still queued for it can no longer be opened.",
)  # fmt: skip
@passphrase_file_option
@pass_home
def id_rotate(
    home: Home, name: str, *, promote: int | None, retire: int | None, destroy: int | None,
    lifetime: str, grace: str | None, early: bool, passphrase_file: str | None,
) -> None:  # fmt: skip
    """One step of rotating identity NAME's encryption keys (docs/spec/keyset.md).

    Without an option, add a new key (the first time, start NAME's keyset with NAME's own key
    as key 0, primary). Then distribute the keyset ('id keyset NAME'), promote the new key,
    retire the old one, and destroy it once its grace period is over.
    """
    steps = [opt for opt, value in (("--promote", promote), ("--retire", retire),
                                    ("--destroy", destroy)) if value is not None]  # fmt: skip
    if len(steps) > 1:
        raise UsageError(f"one step at a time: {' and '.join(steps)} given together")
    if grace is not None and (promote is not None or destroy is not None):
        raise UsageError("--grace goes with adding a key or --retire")
    if early and destroy is None:
        raise UsageError("--early goes with --destroy")
    if home.token_of(name) is not None:
        raise UsageError(f"identity {name!r} is on a PKCS#11 token; keysets need a key file")
    seconds = parse_duration(lifetime, what="--lifetime")
    grace_seconds = None if grace is None else parse_duration(grace, what="--grace", zero=True)
    secret = passphrase_once(passphrase_file, name)
    identity = home.load(name, secret)  # the identity key signs every version
    now = int(time.time())
    with home.locked():
        signed = own_keyset(home, name)
        if destroy is not None:
            _destroy(home, name, signed, destroy, now=now, early=early, identity=identity)
            return
        if signed is None:
            if promote is not None or retire is not None:
                raise UsageError(f"{name!r} has no keyset yet: add a key first (id rotate {name})")
            keyset = Keyset.start(identity.public, now=now, lifetime=seconds,
                                  grace=parse_duration(DEFAULT_GRACE, what="grace"))  # fmt: skip
        else:
            keyset = signed.keyset
        if promote is not None:
            keyset = keyset.promote(promote, now=now)
            done = f"key {promote} is now the primary key: senders with this keyset seal to it"
        elif retire is not None:
            keyset = keyset.retire(retire, now=now, grace=grace_seconds)
            deadline = _when(keyset.key(retire).deadline(keyset.grace))
            done = f"retired key {retire}: it opens queued messages until {deadline}"
        else:
            new = Identity.generate(identity.suite)
            keyset = keyset.add(new.public, now=now, lifetime=seconds, grace=grace_seconds)
            added = max(key.key_id for key in keyset.keys)
            path = key_path(home, name, added)
            make_private_dir(path.parent)
            check_directory(path.parent)
            # not yet certified: a file left by an interrupted add is nobody's key, replace it
            write_private_file(path, encrypt_identity(new, secret()), overwrite=True)
            done = f"added key {added} ({new.public.fingerprint_text}); it opens messages now"
        _write(keyset_path(home, name), sign_keyset(keyset, identity))
    note(f"{name!r} keyset version {keyset.version}: {done}")
    note(f"distribute it: letterlock id keyset {name} > {name}.keyset")


def _destroy(
    home: Home, name: str, signed: SignedKeyset | None, key_id: int, *, now: int, early: bool,
    identity: Identity,
) -> None:  # fmt: skip
    if signed is None:
        raise UsageError(f"{name!r} has no keyset: there is no key to destroy")
    path = key_path(home, name, key_id)
    if signed.keyset.key(key_id).status is not Status.DESTROYED:
        keyset = signed.keyset.destroy(key_id, now=now, early=early)
        _write(keyset_path(home, name), sign_keyset(keyset, identity))  # first: never used again
    if key_id == 0:
        note(f"key 0 is {name!r}'s identity key, whose file also signs: it no longer opens "
             f"messages, but its private key stays in {home.key_path(name)}")  # fmt: skip
        return
    if read_checked(path, limit=MAX_FILE_SIZE, secret=True) is not None:
        os.unlink(path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the removal is on disk before we say so
        finally:
            os.close(fd)
    note(f"destroyed key {key_id}: {path} is deleted (unlinked, not overwritten)")


@click.command("keyset", epilog=example("letterlock id keyset alice > alice.keyset"))
@click.argument("name")
@pass_home
def id_keyset(home: Home, name: str) -> None:
    """Print identity NAME's signed keyset line, for contacts ('contact keyset')."""
    signed = own_keyset(home, name)
    if signed is None:
        raise UsageError(f"{name!r} has no keyset (start one: letterlock id rotate {name})")
    click.echo(signed.to_text())


def _when(seconds: int) -> str:
    if seconds >= 253402300800:  # beyond year 9999
        return "never"
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(home: Home, name: str, keyset: Keyset) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for key in keyset.keys:
        file = home.key_path(name) if key.key_id == 0 else key_path(home, name, key.key_id)
        rows.append({
            "id": key.key_id, "status": key.status.name.lower(), "purpose": "encrypt",
            "fingerprint": key.public.fingerprint_text,
            "not_before": _when(key.not_before), "not_after": _when(key.not_after),
            "retired": None if key.retired_at is None else _when(key.retired_at),
            "opens_until": None if key.status is Status.DESTROYED
            else _when(key.deadline(keyset.grace)),
            "destroy_after": _when(key.deadline(keyset.grace))
            if key.status is Status.RETIRED else None,
            "private_key": "present" if file.exists() else "gone",
        })  # fmt: skip
    return rows


@click.command(
    "show", epilog=example("letterlock id show alice", "letterlock id show alice --json")
)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def id_show(home: Home, name: str, as_json: bool) -> None:
    """Show identity NAME: its identity key and its keyset's keys (id, status, lifetime,
    fingerprint, retirement and destroy dates, whether the private key is still on disk)."""
    public = home.public(name)
    signed = own_keyset(home, name)
    keys = [] if signed is None else _rows(home, name, signed.keyset)
    if as_json:
        click.echo(json.dumps({
            "name": name, "suite": public.suite.label, "fingerprint": public.fingerprint_text,
            "keyset_version": None if signed is None else signed.keyset.version,
            "grace_seconds": None if signed is None else signed.keyset.grace, "keys": keys,
        }))  # fmt: skip
        return
    click.echo(f"identity {name} {public.suite.label} {public.fingerprint_text}")
    if signed is None:
        note(
            f"no keyset: senders seal to the identity key (start one: letterlock id rotate {name})"
        )
        return
    click.echo(f"keyset version {signed.keyset.version}, grace {signed.keyset.grace} s")
    columns = ("id", "status", "fingerprint", "not_before", "not_after", "retired",
               "destroy_after", "private_key")  # fmt: skip
    rows = [tuple("-" if row[c] is None else str(row[c]) for c in columns) for row in keys]
    print_table(stdout_console(), columns, rows)


@click.command("keyset", epilog=example("letterlock contact keyset bob bob.keyset"))
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_home
def contact_keyset(home: Home, name: str, file: str) -> None:
    """Take contact NAME's keyset from FILE ('id keyset' output): from then on messages to NAME
    are sealed to its primary key. Refused unless NAME's key signed it, and if older than the
    keyset held (a rollback)."""
    contact = home.contacts().get(name)
    if contact is None:
        raise UsageError(f"no contact named {name!r} (add its key first: letterlock contact add)")
    raw = read_input(file, limit=MAX_TEXT)
    try:
        signed = SignedKeyset.from_text(raw.decode("utf-8"), identity=contact.identity)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{file}: refused: {exc}") from None
    path = contact_keyset_path(home, name)
    with home.locked():
        held = _read_signed(path, contact.identity)
        if held is not None and held.keyset.version > signed.keyset.version:
            raise UsageError(
                f"{file} is version {signed.keyset.version}, older than the version "
                f"{held.keyset.version} held: refusing a rollback"
            )
        if held is not None and held.keyset.version == signed.keyset.version:
            if held.encoded != signed.encoded:
                raise UsageError(f"{file} differs from the version {held.keyset.version} held")
            note(f"contact {name!r} keyset version {held.keyset.version} is already held")
            return
        make_private_dir(path.parent)
        check_directory(path.parent)
        _write(path, signed)
    primary = signed.keyset.primary
    note(f"contact {name!r} keyset version {signed.keyset.version}: sealing to key "
         f"{primary.key_id} ({primary.public.fingerprint_text})")  # fmt: skip
