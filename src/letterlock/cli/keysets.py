"""``letterlock id rotate / show / keyset`` and ``contact keyset``: keysets in the home.

The files are :mod:`letterlock.cli.keyset_files`'s (``docs/spec/keyset.md`` section 6).
Rotation is one step per command: ``id rotate NAME`` adds a key, ``id keyset NAME`` prints the
line to distribute, ``--promote``, ``--retire`` and ``--destroy`` take the others.
``id rotate NAME --signing`` adds a signing key (section 9), which signs NAME's messages from
then on; ``--retire`` and ``--destroy`` end it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from typing import Final

import click

from letterlock import Identity, UsageError
from letterlock._fs import make_private_dir, write_private_file
from letterlock.cli.home import Home
from letterlock.cli.keyset_files import (
    contact_keyset_path,
    key_path,
    keyset_path,
    own_keyset,
    passphrase_once,
    read_signed,
    write_keyset,
)
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.render import iso_time, note, print_table, stdout_console
from letterlock.cli.streams import read_input
from letterlock.cli.strict import check_directory, read_checked
from letterlock.keystore import encrypt_identity
from letterlock.keystore.file import MAX_FILE_SIZE
from letterlock.trust.keysets import (
    MAX_TEXT,
    Keyset,
    Purpose,
    SignedKeyset,
    Status,
    sign_keyset,
)

__all__ = ["contact_keyset", "id_keyset", "id_rotate", "id_show", "parse_duration"]

DEFAULT_LIFETIME: Final = "90d"
DEFAULT_SIGNING_LIFETIME: Final = "7d"  # a stolen signing key is good for days at most
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


# ----------------------------------------------------------------------- commands


@click.command(
    "rotate",
    short_help="Rotate identity NAME's encryption and signing keys, one step at a time.",
    epilog=example(
        "letterlock id rotate alice                  # 1. add a key",
        "letterlock id keyset alice > alice.keyset   # 2. distribute (contact keyset ...)",
        "letterlock id rotate alice --promote 1      # 3. senders seal to key 1",
        "letterlock id rotate alice --retire 0 --grace 7d",
        "letterlock id rotate alice --destroy 0      # 5. after the grace period",
        "letterlock id rotate alice --signing        # a signing key signs from now on",
    ),
)
@click.argument("name")
@click.option(
    "--signing", is_flag=True,
    help="Add a signing key instead (lifetime 7d unless --lifetime): NAME's messages are "
    "signed by it and carry the keyset, so receivers that pin NAME accept them; the former "
    "signing key still verifies until retired.",
)  # fmt: skip
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
    "--lifetime", default=None, metavar="DURATION",
    help=f"Lifetime of the added key (and of key 0 when the keyset starts, unless "
    f"--signing: then {DEFAULT_LIFETIME}): senders stop "
    f"sealing to a key, and a signing key signs, until its end. 7d, 12h, 30m, 3600s "
    f"[default: {DEFAULT_LIFETIME}; {DEFAULT_SIGNING_LIFETIME} with --signing].",
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
    home: Home, name: str, *, signing: bool, promote: int | None, retire: int | None,
    destroy: int | None, lifetime: str | None, grace: str | None, early: bool,
    passphrase_file: str | None,
) -> None:  # fmt: skip
    """One step of rotating identity NAME's encryption or signing keys (docs/spec/keyset.md).

    Without an option, add a new encryption key (the first time, start NAME's keyset with
    NAME's own key as key 0, primary). Then distribute the keyset ('id keyset NAME'), promote
    the new key, retire the old one, and destroy it once its grace period is over.

    With --signing, add a signing key: from then on 'seal' and 'send' sign NAME's messages
    with it, and NAME's key file is needed only to change the keyset. Add the next one before
    it expires; retire and destroy it like any key (no grace period: nothing is queued for it).
    """
    steps = [opt for opt, value in (("--promote", promote), ("--retire", retire),
                                    ("--destroy", destroy)) if value is not None]  # fmt: skip
    if signing:
        steps.insert(0, "--signing")
    if len(steps) > 1:
        raise UsageError(f"one step at a time: {' and '.join(steps)} given together")
    if grace is not None and (promote is not None or destroy is not None):
        raise UsageError("--grace goes with adding a key or --retire")
    if early and destroy is None:
        raise UsageError("--early goes with --destroy")
    if home.token_of(name) is not None:
        raise UsageError(f"identity {name!r} is on a PKCS#11 token; keysets need a key file")
    default = DEFAULT_SIGNING_LIFETIME if signing else DEFAULT_LIFETIME
    seconds = parse_duration(lifetime or default, what="--lifetime")
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
            first = parse_duration(DEFAULT_LIFETIME, what="lifetime") if signing else seconds
            keyset = Keyset.start(identity.public, now=now, lifetime=first,
                                  grace=parse_duration(DEFAULT_GRACE, what="grace"))  # fmt: skip
        else:
            keyset = signed.keyset
        if promote is not None:
            keyset = keyset.promote(promote, now=now)
            done = f"key {promote} is now the primary key: senders with this keyset seal to it"
        elif retire is not None:
            keyset = keyset.retire(retire, now=now, grace=grace_seconds)
            deadline = _when(keyset.key(retire).deadline(keyset.grace))
            done = (
                f"retired signing key {retire}: receivers holding this version refuse it"
                if keyset.key(retire).purpose is Purpose.SIGN
                else f"retired key {retire}: it opens queued messages until {deadline}"
            )
        else:
            new = Identity.generate(identity.suite)
            purpose = Purpose.SIGN if signing else Purpose.ENCRYPT
            keyset = keyset.add(new.public, now=now, lifetime=seconds, grace=grace_seconds,
                                purpose=purpose)  # fmt: skip
            added = max(key.key_id for key in keyset.keys)
            path = key_path(home, name, added)
            make_private_dir(path.parent)
            check_directory(path.parent)
            # not yet certified: a file left by an interrupted add is nobody's key, replace it
            write_private_file(path, encrypt_identity(new, secret()), overwrite=True)
            done = (
                f"added signing key {added} ({new.public.fingerprint_text}); it signs "
                f"{name}'s messages until {_when(keyset.key(added).not_after)}"
                if signing else
                f"added key {added} ({new.public.fingerprint_text}); it opens messages now"
            )  # fmt: skip
        write_keyset(keyset_path(home, name), sign_keyset(keyset, identity))
    note(f"{name!r} keyset version {keyset.version}: {done}")
    if not signing:  # messages carry the keyset that certifies a signing key
        note(f"distribute it: letterlock id keyset {name} > {name}.keyset")


def _destroy(
    home: Home, name: str, signed: SignedKeyset | None, key_id: int, *, now: int, early: bool,
    identity: Identity,
) -> None:  # fmt: skip
    if signed is None:
        raise UsageError(f"{name!r} has no keyset: there is no key to destroy")
    path = key_path(home, name, key_id)
    key = signed.keyset.key(key_id)
    if key.status is not Status.DESTROYED:
        deadline = key.deadline(signed.keyset.grace)
        if now < deadline and not early and key.status is Status.RETIRED:
            raise UsageError(
                f"key {key_id} opens queued messages until {iso_time(deadline)} (its grace "
                "period): destroy it then, or now with --early if it is compromised (messages "
                "still queued for it are lost)"
            )
        keyset = signed.keyset.destroy(key_id, now=now, early=early)
        # the new version first: from then on the key is never used, whatever happens next
        write_keyset(keyset_path(home, name), sign_keyset(keyset, identity))
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


def _rows(home: Home, name: str, keyset: Keyset, now: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for key in keyset.keys:
        file = home.key_path(name) if key.key_id == 0 else key_path(home, name, key.key_id)
        encrypts = key.purpose is Purpose.ENCRYPT
        rows.append({
            "id": key.key_id, "status": key.status.name.lower(),
            "purpose": "encrypt" if encrypts else "sign",
            "fingerprint": key.public.fingerprint_text,
            "not_before": _when(key.not_before), "not_after": _when(key.not_after),
            "retired": None if key.retired_at is None else _when(key.retired_at),
            "opens_until": None if key.status is Status.DESTROYED or not encrypts
            else _when(key.deadline(keyset.grace)),
            "signs": not encrypts and key.signs(created=now, now=now),
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
    """Show identity NAME: its identity key and its keyset's keys (id, purpose: encrypt or
    sign, status, lifetime, fingerprint, retirement and destroy dates, whether the private key
    is still on disk), and the signing key that signs its messages now, if any."""
    public = home.public(name)
    signed = own_keyset(home, name)
    now = int(time.time())
    keys = [] if signed is None else _rows(home, name, signed.keyset, now)
    signer = None if signed is None else signed.keyset.signing_key(now)
    if as_json:
        click.echo(json.dumps({
            "name": name, "suite": public.suite.label, "fingerprint": public.fingerprint_text,
            "keyset_version": None if signed is None else signed.keyset.version,
            "grace_seconds": None if signed is None else signed.keyset.grace,
            "signing_key": None if signer is None else signer.key_id, "keys": keys,
        }))  # fmt: skip
        return
    click.echo(f"identity {name} {public.suite.label} {public.fingerprint_text}")
    if signed is None:
        note(
            f"no keyset: senders seal to the identity key (start one: letterlock id rotate {name})"
        )
        return
    click.echo(f"keyset version {signed.keyset.version}, grace {signed.keyset.grace} s")
    if signer is not None:
        click.echo(f"messages are signed by signing key {signer.key_id}")
    columns = ("id", "purpose", "status", "fingerprint", "not_before", "not_after", "retired",
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
        held = read_signed(path, contact.identity)
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
        write_keyset(path, signed)
    primary = signed.keyset.primary
    note(f"contact {name!r} keyset version {signed.keyset.version}: sealing to key "
         f"{primary.key_id} ({primary.public.fingerprint_text})")  # fmt: skip
