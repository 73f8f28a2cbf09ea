"""``letterlock id ...`` (your own identities) and ``letterlock trust ...`` (pinned senders)."""

from __future__ import annotations

import json
import time

import click

from letterlock import PublicIdentity, Rejected, Suite, UsageError
from letterlock.cli.home import DamagedIdentity, Home, check_identity_name
from letterlock.cli.keyset_files import change_passphrase, passphrase_once
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.passphrase import new_passphrase, passphrase
from letterlock.cli.render import note, print_table, stdout_console
from letterlock.cli.streams import read_input
from letterlock.core.keys import is_checked
from letterlock.core.topics import Dialect
from letterlock.trust.pins import Rotation, check_name, parse_topics, sign_rotation
from letterlock.trust.scope import ScopePattern

__all__ = ["id_group", "read_key_line", "trust_group"]

#: Debian's SoftHSM2 module (as letterlock.keystore.pkcs11, which needs the pkcs11 extra).
SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_SUITE_HELP = (
    "Algorithms of the identity. x25519 (the default): Ed25519 signatures and X25519 key "
    "agreement, fast, small keys, constant-time by design. p256/p384: NIST curves for FIPS "
    "and CNSA 1.0 environments. pq: ML-KEM-1024 + P-384 hybrid and ML-DSA-87 + ECDSA P-384, "
    "against harvest-now-decrypt-later (large keys and messages). "
    "Sender and recipients of a message must share one suite."
)


@click.group(
    "id",
    short_help="Your identities (encrypted private keys).",
    epilog=example("letterlock id new alice", "letterlock id list"),
)
def id_group() -> None:
    """Your own identities: private keys, encrypted at rest with your passphrase."""


@id_group.command("new", epilog=example("letterlock id new alice --suite p256"))
@click.argument("name")
@click.option(
    "--suite",
    type=click.Choice([suite.label for suite in Suite]),
    default=Suite.X25519.label,
    show_default=True,
    help=_SUITE_HELP,
)
@click.option(
    "--token",
    metavar="LABEL",
    default=None,
    help="Generate the keys on the PKCS#11 token LABEL instead of a key file (p256 or p384; "
    "they never leave the token). Its PIN is read as a passphrase is: --passphrase-file, "
    "LETTERLOCK_PASSPHRASE, or the terminal.",
)
@click.option(
    "--module",
    metavar="PATH",
    default=SOFTHSM2_MODULE,
    show_default=True,
    help="The token's PKCS#11 library (with --token).",
)
@passphrase_file_option
@pass_home
def id_new(
    home: Home, name: str, suite: str, *, token: str | None, module: str,
    passphrase_file: str | None,
) -> None:  # fmt: skip
    """Create identity NAME and print its fingerprint. Never overwrites an existing one."""
    check_identity_name(name)
    if token is not None:
        identity = home.create_on_token(
            name,
            Suite.from_label(suite),
            lambda: passphrase(passphrase_file, prompt=f"PIN of token {token!r}: "),
            module=module,
            token=token,
        )
        click.echo(identity.public.fingerprint_text)
        note(f"created {suite} identity {name!r} on token {token!r} ({home.token_path(name)})")
        note(f"give others your public key: letterlock id export {name}")
        return
    identity = home.create(
        name,
        Suite.from_label(suite),
        lambda: new_passphrase(passphrase_file, prompt=f"Passphrase for the new key {name!r}: "),
    )
    click.echo(identity.public.fingerprint_text)
    note(f"created {suite} identity {name!r} in {home.key_path(name)}")
    note(f"give others your public key: letterlock id export {name}")


@id_group.command("export", epilog=example("letterlock id export alice > alice.pub"))
@click.argument("name")
@passphrase_file_option
@pass_home
def id_export(home: Home, name: str, passphrase_file: str | None) -> None:
    """Print the public key line of identity NAME (for others to pin).

    If NAME.pub is missing or damaged, it is rebuilt from NAME.key, which asks for the
    passphrase.
    """
    try:
        public = home.public(name)
    except DamagedIdentity:
        public = home.rebuild_public(
            name, lambda: passphrase(passphrase_file, prompt=f"Passphrase for {name!r}: ")
        )
        note(f"rebuilt {home.pub_path(name)} from {name}.key")
    click.echo(public.to_text(name))


@id_group.command("list", epilog=example("letterlock id list"))
@pass_home
def id_list(home: Home) -> None:
    """List your identities: name, suite, fingerprint, status (ok, or damaged and why)."""
    found = home.own_identities()
    if not found:
        note(f"no identities in {home.root} (create one: letterlock id new NAME)")
        return
    rows = [
        (own.name, own.public.suite.label, own.public.fingerprint_text, "ok")
        if own.public is not None
        else (own.name, "-", "-", f"damaged: {own.problem}")
        for own in found
    ]
    print_table(stdout_console(), ("name", "suite", "fingerprint", "status"), rows)


@id_group.command(
    "passwd",
    short_help="Change the passphrase of identity NAME.",
    epilog=example("letterlock id passwd alice"),
)
@click.argument("name")
@passphrase_file_option
@click.option(
    "--new-passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read the new passphrase from the first line of FILE (else ask on the terminal).",
)
@pass_home
def id_passwd(
    home: Home, name: str, passphrase_file: str | None, new_passphrase_file: str | None
) -> None:
    """Re-encrypt identity NAME under a new passphrase (fresh salt, default KDF cost)."""
    if home.token_of(name) is not None:
        raise UsageError(
            f"identity {name!r} is on a PKCS#11 token; change the token's PIN with its own tools"
        )
    current = passphrase_once(passphrase_file, name)
    identity = home.load(name, current)
    new = new_passphrase(
        new_passphrase_file, prompt=f"New passphrase for {name!r}: ", use_env=False
    )
    with home.locked():  # the keyset's keys first: NAME.key last, the old passphrase opens it
        keys = change_passphrase(home, name, current, new)
    home.save_private_key(name, identity, new)
    note(
        f"changed the passphrase of {name!r}" + (f" and of its {keys} keyset keys" if keys else "")
    )


@id_group.command(
    "sign-rotation",
    short_help="Sign that identity NEW replaces identity OLD (for 'trust rotate').",
    epilog=example("letterlock id sign-rotation alice-2025 alice-2026 > rotation.txt"),
)
@click.argument("old")
@click.argument("new")
@passphrase_file_option
@pass_home
def id_sign_rotation(home: Home, old: str, new: str, passphrase_file: str | None) -> None:
    """Print a rotation statement: OLD's key signs NEW's public key and the time.

    Those who pinned OLD accept NEW with 'letterlock trust rotate NAME FILE'.
    """
    new_public = home.public(new)
    identity = home.load(
        old, lambda: passphrase(passphrase_file, prompt=f"Passphrase for {old!r}: ")
    )
    click.echo(sign_rotation(identity, new_public, at=int(time.time())).to_text())


@click.group(
    "trust",
    short_help="Senders you trust (pinned keys).",
    epilog=example("letterlock trust pin bob.pub", "letterlock trust list"),
)
def trust_group() -> None:
    """Senders you trust: pinned public keys, like ssh's known_hosts."""


_EXPECTED = "expected the output of 'letterlock id export'"


def _first_key_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line
    raise UsageError(f"no public key line found ({_EXPECTED})")


def _check_fingerprint(identity: PublicIdentity, expected: str | None) -> None:
    if expected is None:
        return
    wanted = expected if expected.startswith("SHA256:") else "SHA256:" + expected
    if wanted != identity.fingerprint_text:
        raise UsageError(
            f"fingerprint mismatch: the key is {identity.fingerprint_text}, expected {wanted}"
        )


def read_key_line(
    file: str, expect_fingerprint: str | None
) -> tuple[PublicIdentity, str | None, bool]:
    """The key in FILE (- is stdin), its name, and whether it came from stdin.

    A line without a check (exported before checks existed) is accepted only with
    ``--expect-fingerprint``: without a check, a mistyped key would be another valid key.
    """
    where = "standard input" if file == "-" else file
    try:
        raw = read_input(file, limit=1024 * 1024)
    except Rejected:
        raise UsageError(f"{where} is too large to be a public key line") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not a public key line ({_EXPECTED})") from None
    line = _first_key_line(text)
    try:
        identity, line_name = PublicIdentity.from_text(
            line, allow_unchecked=expect_fingerprint is not None
        )
    except ValueError as exc:
        hint = " or give --expect-fingerprint" if not is_checked(line) else ""
        raise UsageError(f"{where}: {exc}{hint}") from None
    _check_fingerprint(identity, expect_fingerprint)
    return identity, line_name, file == "-"


@trust_group.command(
    "pin",
    epilog=example(
        "letterlock trust pin bob.pub --expect-fingerprint SHA256:...",
        "letterlock trust pin billing.pub --topic 'billing.#' --topic 'invoices.*'",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--name",
    help="Your name for this sender (default: the name in the key line): 1-64 of A-Z a-z 0-9 "
    ". _ @ + -, starting with a letter or digit.",
)
@click.option(
    "--expect-fingerprint",
    metavar="SHA256:...",
    help="Refuse unless the key has this fingerprint (as told to you over another channel).",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="PATTERN",
    help="Accept this sender only on topics matching PATTERN (AMQP * and #, MQTT + and #, "
    "NATS * and >); repeat for more. Default: any topic.",
)
@pass_home
def trust_pin(
    home: Home,
    file: str,
    name: str | None,
    expect_fingerprint: str | None,
    topics: tuple[str, ...],
) -> None:
    """Trust the public key in FILE (an 'id export' line; - reads stdin)."""
    if name is not None:
        check_name(name)
    patterns = tuple(p for text in topics for p in _parse_topic(text))
    identity, line_name, _ = read_key_line(file, expect_fingerprint)
    name = name or line_name
    if not name:
        raise UsageError("the key line carries no name; give one with --name")
    check_name(name)
    with home.changing_pins() as pins:
        if name in home.names():
            raise UsageError(
                f"{name!r} is one of your own identities; pin this key under another name"
            )
        known = next((pin for pin in pins if pin.identity == identity), None)
        if known is not None and known.revoked:
            raise UsageError(f"this key was revoked as {known.name!r}; refusing to pin it again")
        if known is not None and known.name == name and not patterns:
            note(f"{name!r} is already pinned to {identity.fingerprint_text}")
            return
        pins.pin(name, identity, topics=patterns)
    note(f"pinned {name!r} {identity.suite.label} {identity.fingerprint_text}")
    note("compare this fingerprint with the sender over a channel you trust")


def _parse_topic(text: str) -> tuple[ScopePattern, ...]:
    dialect = Dialect.MQTT if "/" in text or "+" in text else Dialect.AMQP
    if ">" in text:
        dialect = Dialect.NATS
    return parse_topics([text], dialect)


@trust_group.command(
    "list", epilog=example("letterlock trust list", "letterlock trust list --json")
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead.")
@pass_home
def trust_list(home: Home, as_json: bool) -> None:
    """List pinned senders: name, suite, fingerprint, status, topics (* for any)."""
    pins = list(home.pins())
    if as_json:
        click.echo(json.dumps([
            {"name": pin.name, "suite": pin.identity.suite.label,
             "fingerprint": pin.identity.fingerprint_text,
             "status": "revoked" if pin.revoked else "trusted",
             "topics": [str(p) for p in pin.topics]}
            for pin in pins
        ]))  # fmt: skip
        return
    if not pins:
        note(f"no pinned senders in {home.known_senders}")
        return
    rows = [
        (pin.name, pin.identity.suite.label, pin.identity.fingerprint_text,
         "revoked" if pin.revoked else "trusted",
         ",".join(str(p) for p in pin.topics) or "*")
        for pin in pins
    ]  # fmt: skip
    print_table(stdout_console(), ("name", "suite", "fingerprint", "status", "topics"), rows)


@trust_group.command(
    "rotate",
    epilog=example(
        "letterlock --home alice id sign-rotation alice-2025 alice-2026 > rotation.txt",
        "letterlock trust rotate alice rotation.txt",
    ),
)
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@pass_home
def trust_rotate(home: Home, name: str, file: str) -> None:
    """Move pinned sender NAME to a new key, if FILE's rotation statement is signed by the old."""
    raw = read_input(file, limit=1024 * 1024)
    try:
        rotation = Rotation.from_text(raw.decode("utf-8").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{file}: not a rotation statement ({exc})") from None
    with home.changing_pins() as pins:
        pin = pins.rotate(name, rotation)
    note(f"rotated {name!r} to {pin.identity.suite.label} {pin.identity.fingerprint_text}")


@trust_group.command("revoke", epilog=example("letterlock trust revoke bob"))
@click.argument("name")
@pass_home
def trust_revoke(home: Home, name: str) -> None:
    """Refuse messages from pinned sender NAME from now on (the key stays known as revoked)."""
    with home.changing_pins() as pins:
        pins.revoke(name)
    note(f"revoked {name!r} ({pins[name].identity.fingerprint_text})")
