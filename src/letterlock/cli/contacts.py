"""``letterlock contact ...``: the keys you seal to, apart from the senders you trust."""

from __future__ import annotations

import json

import click

from letterlock import UsageError
from letterlock.cli.home import Home
from letterlock.cli.keys import read_key_line
from letterlock.cli.keyset_files import forget_contact_keyset
from letterlock.cli.options import example, pass_home
from letterlock.cli.render import note, print_table, stdout_console
from letterlock.trust import Source
from letterlock.trust.pins import check_name

__all__ = ["contact_group"]


@click.group(
    "contact",
    short_help="People and services you seal messages to.",
    epilog=example("letterlock contact add bob.pub --name bob", "letterlock contact list"),
)
def contact_group() -> None:
    """Your contacts: public keys you seal to. A contact is not a trusted sender:
    accepting its messages still needs 'letterlock trust pin'."""


@contact_group.command(
    "add",
    epilog=example(
        "letterlock contact add bob.pub --name bob",
        "letterlock id export bob | letterlock contact add - --name bob "
        "--expect-fingerprint SHA256:...",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--name", required=True, help="Your name for this contact (the rule of pin names).")
@click.option(
    "--expect-fingerprint",
    metavar="SHA256:...",
    help="Refuse unless the key has this fingerprint (as told to you over another channel); "
    "the contact is then marked fingerprint-verified.",
)
@pass_home
def contact_add(home: Home, file: str, name: str, expect_fingerprint: str | None) -> None:
    """Add the public key in FILE (an 'id export' line; - reads stdin) as contact NAME."""
    check_name(name, "contact name")
    identity, _, pasted = read_key_line(file, expect_fingerprint)
    source = Source.VERIFIED if expect_fingerprint else Source.PASTED if pasted else Source.FILE
    with home.changing_contacts() as contacts:
        if name in home.names():
            raise UsageError(f"{name!r} is one of your own identities; choose another name")
        contact = contacts.add(name, identity, source)
    note(f"contact {name!r} {identity.suite.label} {identity.fingerprint_text} ({contact.source})")
    if contact.source is not Source.VERIFIED:
        note("compare this fingerprint with its owner over a channel you trust")


@contact_group.command(
    "list", epilog=example("letterlock contact list", "letterlock contact list --json")
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead.")
@pass_home
def contact_list(home: Home, as_json: bool) -> None:
    """List contacts: name, suite, fingerprint, source (where the key came from)."""
    contacts = list(home.contacts())
    if as_json:
        click.echo(json.dumps([
            {"name": c.name, "suite": c.identity.suite.label,
             "fingerprint": c.identity.fingerprint_text, "source": str(c.source)}
            for c in contacts
        ]))  # fmt: skip
        return
    if not contacts:
        note(f"no contacts in {home.contacts_path} (add one: letterlock contact add FILE --name N)")
        return
    rows = [
        (c.name, c.identity.suite.label, c.identity.fingerprint_text, str(c.source))
        for c in contacts
    ]
    print_table(stdout_console(), ("name", "suite", "fingerprint", "source"), rows)


@contact_group.command("remove", epilog=example("letterlock contact remove bob"))
@click.argument("name")
@pass_home
def contact_remove(home: Home, name: str) -> None:
    """Forget contact NAME (messages can no longer be sealed to it by that name)."""
    with home.changing_contacts() as contacts:
        removed = contacts.remove(name)
        forget_contact_keyset(home, name)  # its keyset names its key: it goes with the key
    note(f"removed contact {name!r} ({removed.identity.fingerprint_text})")
