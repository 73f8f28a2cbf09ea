"""``letterlock authority ...``: authorities that certify senders, and the anchors that trust them.

Issuer side: ``create`` (a key pair in HOME/authorities, with the namespace it certifies
within), ``export`` (its public key line, for receivers), ``certify`` (a credential line for a
principal's key or a sub-authority's, on stdout), ``show`` and ``list``.

Receiver side: ``anchor`` (trust an authority, with the scope the receiver gives it) and
``import`` (credentials, until they travel in the envelope). ``open``, ``listen`` and ``trust
check`` then admit senders whose chain reaches an anchor (:class:`letterlock.trust.Authorities`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from letterlock import Rejected, Suite, UsageError
from letterlock.cli.home import Home
from letterlock.cli.keys import read_key_line
from letterlock.cli.options import dialect_option, example, pass_home, passphrase_file_option
from letterlock.cli.passphrase import new_passphrase, passphrase
from letterlock.cli.render import iso_time, note, print_fields, print_table, stdout_console
from letterlock.cli.streams import read_input
from letterlock.cli.trustdata import AuthorityInfo, TrustData, anchor_of
from letterlock.core.keys import PublicIdentity
from letterlock.core.principal import Namespace, Principal
from letterlock.core.topics import Dialect
from letterlock.errors import ParseError
from letterlock.trust.credentials import (
    MAX_CHAIN,
    MAX_DEPTH,
    Anchor,
    Credential,
    Kind,
    Scope,
    issue,
    parse_credentials,
)
from letterlock.trust.pins import check_name
from letterlock.trust.scope import ScopePattern

__all__ = ["authority_group", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"([0-9]{1,9})([smhdwy]?)")


def parse_duration(text: str, what: str) -> int:
    """``30d``, ``12h``, ``90m``, ``3600`` (seconds) as seconds; UsageError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"{what} is a positive duration such as 30d, 12h, 90m or 3600, not {text!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _namespace(text: str) -> Namespace:
    try:
        return Namespace.parse(text)
    except ParseError as exc:
        raise UsageError(f"{text!r}: {exc}") from None


def _patterns(values: Sequence[str], dialect: str) -> tuple[ScopePattern, ...]:
    return tuple(ScopePattern.parse(value, Dialect(dialect)) for value in values)


def _info_json(info: AuthorityInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "suite": info.public.suite.label,
        "fingerprint": info.public.fingerprint_text,
        "namespace": str(info.namespace),
        "max_depth": info.max_depth,
    }


F = TypeVar("F", bound=Callable[..., Any])


def _depth_option(help_text: str) -> Callable[[F], F]:
    """``--depth``: how many authorities deep a delegation may go (0 to MAX_DEPTH, default 0)."""
    return click.option(
        "--depth", type=click.IntRange(0, MAX_DEPTH), default=0, show_default=True, help=help_text
    )


@click.group(
    "authority",
    short_help="Authorities that certify senders, and the ones you trust.",
    epilog=example(
        "letterlock authority create payments --namespace ll://acme/payments/",
        "letterlock authority certify payments --principal ll://acme/payments/billing "
        "--key billing.pub --role writer --publish 'orders.#' > billing.cred",
    ),
)
def authority_group() -> None:
    """Authorities: keys that certify principals (ll://...) with roles and topic scopes."""


@authority_group.command(
    "create", epilog=example("letterlock authority create payments --namespace ll://acme/payments/")
)
@click.argument("name")
@click.option(
    "--namespace", required=True, help="The principals it certifies lie below this (ll://.../)."
)
@_depth_option("How many authorities deep it may delegate (0: it certifies principals only).")
@click.option(
    "--suite",
    type=click.Choice([suite.label for suite in Suite]),
    default=Suite.X25519.label,
    show_default=True,
    help="Algorithms of its key.",
)
@passphrase_file_option
@pass_home
def authority_create(
    home: Home, name: str, *, namespace: str, depth: int, suite: str, passphrase_file: str | None
) -> None:
    """Create authority NAME (an encrypted key in HOME/authorities) and print its fingerprint."""
    check_name(name, "authority name")
    info = TrustData(home).create_authority(
        name,
        Suite.from_label(suite),
        lambda: new_passphrase(passphrase_file, prompt=f"Passphrase for authority {name!r}: "),
        namespace=_namespace(namespace),
        max_depth=depth,
    )
    click.echo(info.public.fingerprint_text)
    note(f"created authority {name!r} for {info.namespace} (delegation depth {depth})")
    note(
        f"receivers trust it with: letterlock authority export {name} > {name}.pub; letterlock "
        f"authority anchor {name}.pub --name {name} --namespace {info.namespace}"
    )


@authority_group.command("export", epilog=example("letterlock authority export payments > p.pub"))
@click.argument("name")
@pass_home
def authority_export(home: Home, name: str) -> None:
    """Print the public key line of authority NAME (for receivers to anchor)."""
    info = TrustData(home).authority(name)
    click.echo(info.public.to_text(name))


@authority_group.command("show", epilog=example("letterlock authority show payments --json"))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def authority_show(home: Home, name: str, *, as_json: bool) -> None:
    """Show authority NAME: suite, fingerprint, namespace and delegation depth."""
    info = TrustData(home).authority(name)
    if as_json:
        click.echo(json.dumps(_info_json(info), indent=2))
        return
    fields = [(key.replace("_", " "), str(value)) for key, value in _info_json(info).items()]
    print_fields(stdout_console(), fields)


@authority_group.command("list", epilog=example("letterlock authority list --json"))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
@pass_home
def authority_list(home: Home, *, as_json: bool) -> None:
    """List your authorities and the anchors (authorities you trust) with their scope."""
    data = TrustData(home)
    own = [data.authority(name) for name in data.authority_names()]
    anchors = data.anchors()
    if as_json:
        click.echo(json.dumps({
            "authorities": [_info_json(info) for info in own],
            "anchors": [_anchor_json(anchor) for anchor in anchors],
            "credentials": len(data.credentials()),
        }, indent=2))  # fmt: skip
        return
    rows = [
        ("own", info.name, info.public.fingerprint_text, str(info.namespace), str(info.max_depth))
        for info in own
    ] + [
        ("anchor", a.name, a.identity.fingerprint_text, str(a.namespace), str(a.max_depth))
        for a in anchors
    ]
    if not rows:
        note(f"no authorities or anchors in {home.root}")
        return
    print_table(stdout_console(), ("kind", "name", "fingerprint", "namespace", "depth"), rows)


def _anchor_json(anchor: Anchor) -> dict[str, object]:
    return {
        "name": anchor.name,
        "fingerprint": anchor.identity.fingerprint_text,
        "namespace": str(anchor.namespace),
        "max_depth": anchor.max_depth,
        "roles": None if anchor.roles is None else sorted(anchor.roles),
        "publish": [str(p) for p in anchor.publish],
        "consume": [str(p) for p in anchor.consume],
    }


def _subject_key(
    home: Home, data: TrustData, key: str | None, identity: str | None
) -> PublicIdentity:
    if (key is None) == (identity is None):
        raise UsageError("give the subject's key with exactly one of --key FILE or --identity NAME")
    if key is not None:
        return read_key_line(key, None)[0]
    assert identity is not None
    if identity in data.authority_names():
        return data.authority(identity).public
    return home.public(identity)


@authority_group.command(
    "certify",
    epilog=example(
        "letterlock authority certify payments --principal ll://acme/payments/billing "
        "--key billing.pub --role writer --publish 'orders.#' --lifetime 30d > billing.cred",
        "letterlock authority certify payments --sub-authority eu --identity eu "
        "--namespace ll://acme/payments/eu/ --publish 'orders.eu.#' > eu.cred",
    ),
)
@click.argument("authority")
@click.option("--principal", metavar="ll://...", help="Certify this principal's key (a sender).")
@click.option("--sub-authority", metavar="NAME", help="Certify another authority's key instead.")
@click.option("--key", metavar="FILE", help="The subject's public key line ('id export' output).")
@click.option("--identity", metavar="NAME", help="The subject: an identity or authority here.")
@click.option("--role", "roles", multiple=True, metavar="R", help="A role it holds (repeatable).")
@click.option("--publish", multiple=True, metavar="PATTERN", help="May publish on (repeatable).")
@click.option("--consume", multiple=True, metavar="PATTERN", help="May consume (repeatable).")
@dialect_option("Syntax of the patterns: amqp (* #), mqtt (+ #), nats (* >).")
@click.option("--namespace", help="A sub-authority's namespace (default: the issuer's).")
@_depth_option("How many authorities deep a sub-authority may delegate further.")
@click.option("--lifetime", default="30d", show_default=True, help="How long it is valid.")
@passphrase_file_option
@pass_home
def authority_certify(
    home: Home,
    authority: str,
    *,
    principal: str | None,
    sub_authority: str | None,
    key: str | None,
    identity: str | None,
    roles: tuple[str, ...],
    publish: tuple[str, ...],
    consume: tuple[str, ...],
    dialect: str,
    namespace: str | None,
    depth: int,
    lifetime: str,
    passphrase_file: str | None,
) -> None:
    """Print a credential: AUTHORITY certifies a principal's key (or a sub-authority's) with
    roles and publish/consume topic patterns, for --lifetime. Receivers recompute every scope
    along a chain: a credential never grants more than its issuer holds."""
    if (principal is None) == (sub_authority is None):
        raise UsageError("certify exactly one of --principal P or --sub-authority NAME")
    data = TrustData(home)
    issuer_info = data.authority(authority)
    subject_identity = _subject_key(home, data, key, identity)
    seconds = parse_duration(lifetime, "--lifetime")
    if principal is not None:
        if depth:
            raise UsageError("a principal's credential has --depth 0")
        try:
            subject = str(Principal.parse(principal))
        except ParseError as exc:
            raise UsageError(f"{principal!r}: {exc}") from None
        kind, scope_namespace = Kind.PRINCIPAL, issuer_info.namespace
    else:
        assert sub_authority is not None
        subject, kind = check_name(sub_authority, "authority name"), Kind.AUTHORITY
        scope_namespace = issuer_info.namespace if namespace is None else _namespace(namespace)
    if namespace is not None and principal is not None:
        scope_namespace = _namespace(namespace)
    scope = Scope(
        namespace=scope_namespace,
        roles=frozenset(roles),
        publish=_patterns(publish, dialect),
        consume=_patterns(consume, dialect),
    )
    issuer = data.load_authority(
        authority, lambda: passphrase(passphrase_file, prompt=f"Passphrase for {authority!r}: ")
    )
    now = int(time.time())
    credential = issue(
        issuer,
        kind=kind,
        subject=subject,
        subject_identity=subject_identity,
        not_before=now - 60,  # a minute for clocks that run a little behind
        not_after=now + seconds,
        scope=scope,
        max_depth=depth,
    )
    click.echo(credential.to_text())
    note(f"{authority!r} certified {subject} ({subject_identity.fingerprint_text}) "
         f"until {iso_time(credential.not_after)}")  # fmt: skip


@authority_group.command(
    "anchor",
    epilog=example(
        "letterlock authority anchor payments.pub --name payments --namespace ll://acme/payments/"
    ),
)
@click.argument("file")
@click.option("--name", required=True, help="Your name for this authority.")
@click.option("--namespace", required=True, help="Accept only principals below this (ll://.../).")
@_depth_option("How many sub-authorities deep you accept its delegation.")
@click.option("--role", "roles", multiple=True, help="Restrict to these roles (default: any).")
@click.option("--publish", multiple=True, metavar="PATTERN", help="Restrict topics (amqp syntax).")
@click.option("--expect-fingerprint", metavar="SHA256:...", help="Refuse any other key.")
@pass_home
def authority_anchor(
    home: Home,
    file: str,
    *,
    name: str,
    namespace: str,
    depth: int,
    roles: tuple[str, ...],
    publish: tuple[str, ...],
    expect_fingerprint: str | None,
) -> None:
    """Trust the authority whose public key line is FILE ('authority export' output): senders
    it certifies within --namespace are accepted by open, listen and trust check."""
    public = read_key_line(file, expect_fingerprint)[0]
    entry: dict[str, object] = {
        "name": check_name(name, "anchor name"),
        "key": public.to_text(name),
        "namespace": str(_namespace(namespace)),
        "max_depth": depth,
        "roles": sorted(roles) if roles else None,
        "publish": [str(p) for p in _patterns(publish, "amqp")] or ["#"],
        "consume": ["#"],
    }
    anchor = anchor_of(entry)
    TrustData(home).add_anchor(anchor, entry)
    note(f"anchored authority {name!r} ({public.fingerprint_text}) for {anchor.namespace}")


def leaf_first(public: PublicIdentity, found: Sequence[Credential]) -> tuple[Credential, ...]:
    """The chain in ``found`` from ``public``'s principal credential up to the authority an
    anchor issued, leaf first (UsageError if ``found`` has no credential for ``public``)."""
    leaves = [c for c in found if c.kind is Kind.PRINCIPAL and c.subject_identity == public]
    if not leaves:
        raise UsageError(f"no credential certifies {public.fingerprint_text}")
    chain = [leaves[0]]
    while len(chain) < MAX_CHAIN:
        above = [c for c in found if c.kind is Kind.AUTHORITY and c not in chain
                 and c.subject_identity.fingerprint == chain[-1].issuer_key_id]  # fmt: skip
        if not above:
            break
        chain.append(above[0])
    return tuple(chain)


def _read_credentials(files: Sequence[str]) -> list[Credential]:
    found: list[Credential] = []
    for file in files:
        try:
            text = read_input(file, limit=16 * 1024 * 1024).decode("utf-8")
        except (Rejected, UnicodeDecodeError):
            raise UsageError(f"{file} is not a credentials file") from None
        try:
            found.extend(parse_credentials(text))
        except ParseError as exc:
            raise UsageError(f"{file}: {exc}") from None
    return found


@authority_group.command(
    "present", epilog=example("letterlock authority present billing billing.cred eu.cred")
)
@click.argument("name")
@click.argument("files", nargs=-1, required=True)
@pass_home
def authority_present(home: Home, name: str, files: tuple[str, ...]) -> None:
    """Make identity NAME present its credentials (FILES: 'authority certify' output, its own
    and its authorities') in every envelope it seals, so receivers that anchor the top
    authority need nothing else. Replaces credentials presented before."""
    public = home.public(name)
    if home.chain(name):
        raise UsageError(f"identity {name!r} presents an X.509 chain already ('id attach')")
    chain = leaf_first(public, _read_credentials(files))
    TrustData(home).present(name, chain)
    top = chain[-1].subject if len(chain) > 1 else "its issuer"
    note(f"{name} now presents {chain[0].subject} with {len(chain)} credential(s), up to {top}")


@authority_group.command("import", epilog=example("letterlock authority import billing.cred"))
@click.argument("files", nargs=-1, required=True)
@pass_home
def authority_import(home: Home, files: tuple[str, ...]) -> None:
    """Keep the credentials in FILES ('authority certify' output) for building chains."""
    found = _read_credentials(files)
    added = TrustData(home).add_credentials(tuple(found))
    note(f"imported {added} new credential(s) of {len(found)}")
