"""``letterlock revoke`` and ``letterlock status ...``: revocation and freshness that reach
offline consumers (docs/spec/root.md section 4).

Publisher side: ``revoke`` adds a key or principal to HOME/status/revocations.json; ``status
publish`` signs a status document with the status keys (version one above the last, a short
expiry) and puts it in HOME/status/timestamp.json, on stdout (``--out``) and, with
``--broker``, on the ``letterlock.status`` topic.

Receiver side: ``status update`` accepts a status document from a file or from the broker
(never a lower version, never one the pinned root's status keys did not sign); ``status
freshness`` sets how old it may be before ``open`` and ``listen`` fail closed; ``status show``.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import click

from letterlock import Rejected, UsageError
from letterlock.cli.authority import parse_duration
from letterlock.cli.brokers import endpoint_at
from letterlock.cli.home import Home
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.policy import key_id_of
from letterlock.cli.render import iso_time, note, print_fields, stdout_console
from letterlock.cli.root import signers
from letterlock.cli.status_feed import STATUS_TOPIC, follow_status, publish_status
from letterlock.cli.streams import read_input
from letterlock.cli.trustdata import TrustData, status_group_of
from letterlock.core.keys import format_fingerprint
from letterlock.core.principal import Principal
from letterlock.errors import ParseError
from letterlock.sources.publish import make_status, sign_metadata
from letterlock.sources.updater import StatusUpdater
from letterlock.trust.root import TrustedRoot
from letterlock.trust.status import (
    MAX_STATUS_BYTES,
    Freshness,
    RevocationReason,
    Status,
    unverified_status,
)
from letterlock.trust.x509 import ca_key_id

__all__ = ["revoke_command", "status_group"]


def _since(text: str | None, reason: str) -> int | None:
    """``--since``: None for ``unknown``, else seconds since the epoch (now if not given)."""
    if text is None:
        return int(time.time())
    if text == "unknown":
        if reason != RevocationReason.COMPROMISED:
            raise UsageError("--since unknown is for --reason compromised only")
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since is a time (2026-01-02T03:04:05Z or seconds) or 'unknown', not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


@click.command(
    "revoke",
    epilog=example(
        "letterlock revoke --key SHA256:... --reason compromised --since 2026-05-01T09:00:00Z",
        "letterlock revoke --principal ll://acme/payments/billing --reason superseded",
        "letterlock revoke --ca-cert issuing-ca.pem --reason compromised --since unknown",
        "letterlock status publish --key ts --broker spool:///var/lib/ll/spool.sqlite",
    ),
)
@click.option("--key", "fingerprint", metavar="SHA256:...", help="Revoke this key.")
@click.option(
    "--ca-cert",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="Revoke the key of this X.509 CA certificate (PEM or DER): every leaf it vouches for.",
)
@click.option("--principal", metavar="ll://...", help="Revoke every key of this principal.")
@click.option(
    "--reason",
    type=click.Choice([RevocationReason.COMPROMISED.value, RevocationReason.SUPERSEDED.value]),
    required=True,
    help="compromised: refused from --since on (all messages with --since unknown); "
    "superseded: replaced in the ordinary course, refused from --since on.",
)
@click.option(
    "--since", metavar="TIME|unknown", help="When it was compromised or replaced (default: now)."
)
@pass_home
def revoke_command(
    home: Home,
    *,
    fingerprint: str | None,
    ca_cert: str | None,
    principal: str | None,
    reason: str,
    since: str | None,
) -> None:
    """Add a revocation to the next status document ('letterlock status publish' sends it).

    --key names a sender's or an authority's key; revoking an authority's refuses every
    principal it certified. --ca-cert names an X.509 CA's key by its certificate."""
    if [fingerprint, ca_cert, principal].count(None) != 2:
        raise UsageError("revoke exactly one of --key FINGERPRINT, --ca-cert FILE or --principal P")
    if ca_cert is not None:
        try:
            fingerprint = format_fingerprint(ca_key_id(Path(ca_cert).read_bytes()))
        except ParseError as exc:
            raise UsageError(f"{ca_cert}: {exc}") from None
    when = _since(since, reason)
    entry: dict[str, object] = {"reason": reason, "since": when}
    if when is None:
        entry = {"reason": RevocationReason.COMPROMISED_UNKNOWN_TIME.value}
    with TrustData(home).changing_revocations() as revocations:
        if fingerprint is not None:
            name = format_fingerprint(key_id_of(fingerprint))
            revocations["keys"][name] = entry
        else:
            assert principal is not None
            try:
                name = str(Principal.parse(principal))
            except ParseError as exc:
                raise UsageError(f"{principal!r}: {exc}") from None
            revocations["principals"][name] = entry
    shown = "an unknown time (every message)" if when is None else iso_time(when)
    note(f"revoked {name} ({entry['reason']}) from {shown}; "
         "send it with: letterlock status publish --key NAME")  # fmt: skip


@click.group(
    "status",
    short_help="Signed status documents: revocations and freshness.",
    epilog=example(
        "letterlock status publish --key ts --expires 1h --broker redis://localhost",
        "letterlock status update --broker redis://localhost    # on each receiver",
    ),
)
def status_group() -> None:
    """Status documents: revocations signed by the root's status keys, with a short expiry."""


def _newest_root(data: TrustData) -> TrustedRoot:
    versions = data.root_versions()
    if versions:
        return TrustedRoot.pin(data.read_root(versions[-1]))
    snapshot = data.snapshot()
    if snapshot is None:
        raise UsageError("no root in this home: 'root init' (or 'root pin' the published one)")
    return snapshot.root


@status_group.command(
    "publish", epilog=example("letterlock status publish --key ts --expires 1h --out status.json")
)
@click.option("--key", "keys", multiple=True, required=True, metavar="NAME", help="A status key.")
@click.option("--expires", default="6h", show_default=True, help="How long it is valid.")
@click.option("--out", "output", metavar="FILE", help="Also write it to FILE (- for stdout).")
@click.option("--broker", metavar="URL", help="Also publish it on the status topic there.")
@click.option("--topic", default=STATUS_TOPIC, show_default=True, help="The status topic.")
@passphrase_file_option
@pass_home
def status_publish(
    home: Home,
    *,
    keys: tuple[str, ...],
    expires: str,
    output: str | None,
    broker: str | None,
    topic: str,
    passphrase_file: str | None,
) -> None:
    """Sign the next status document (version one above the last published) listing every
    revocation, and publish it. Checked against the newest root before it leaves."""
    data = TrustData(home)
    root = _newest_root(data)
    last = data.published()
    # the last one published, whoever signed it (the status keys may have rotated since)
    version = 1 if last is None else unverified_status(last).version + 1
    revocations = data.revocations()
    now = int(time.time())
    unsigned = make_status(
        version,
        issued=now,
        expires=now + parse_duration(expires, "--expires"),
        keys=revocations["keys"],
        principals=revocations["principals"],
    )
    signed = sign_metadata(unsigned, signers(home, keys, passphrase_file))
    Status.verify(root, signed)  # what receivers will check: the status keys' threshold
    data.save_published(signed)
    if output == "-":
        click.echo(signed.decode("utf-8"))
    elif output is not None:
        with open(output, "wb") as file:
            file.write(signed)
    if broker is not None:
        with endpoint_at(broker) as endpoint:
            publish_status(endpoint, signed, topic=topic)
    count = len(revocations["keys"]) + len(revocations["principals"])
    until = iso_time(Status.verify(root, signed).expires)
    note(f"status version {version}: {count} revocation(s), expires {until}")


@status_group.command(
    "update",
    epilog=example(
        "letterlock status update status.json",
        "letterlock status update --broker redis://localhost --wait 2",
    ),
)
@click.argument("file", required=False)
@click.option("--broker", metavar="URL", help="Take status documents from the status topic.")
@click.option("--topic", default=STATUS_TOPIC, show_default=True, help="The status topic.")
@click.option("--group", help="This receiver's durable group (default: one per home).")
@click.option("--wait", type=float, default=1.0, show_default=True, help="Seconds without one.")
@pass_home
def status_update(
    home: Home, file: str | None, *, broker: str | None, topic: str, group: str | None, wait: float
) -> int:
    """Accept a newer status document from FILE or the broker: only one signed by a threshold
    of the pinned root's status keys, never a lower version. Exit 1 if one was refused."""
    if (file is None) == (broker is None):
        raise UsageError("give exactly one of FILE or --broker URL")
    data = TrustData(home)
    snapshot = data.snapshot()
    if snapshot is None:
        raise UsageError("no root pinned: letterlock root pin FILE")
    updater = StatusUpdater(data.cache(), snapshot)  # saves under the home's lock
    if file is not None:
        try:
            document = read_input(file, limit=MAX_STATUS_BYTES)
        except Rejected:
            raise UsageError(f"{file} is too large to be a status document") from None
        moved = updater.offer(document, now=int(time.time()))
        refused = 0
    else:
        with endpoint_at(broker or "") as endpoint:
            followed = follow_status(endpoint, updater, group=group or status_group_of(home),
                                     topic=topic, idle_timeout=wait)  # fmt: skip
        moved, refused = followed.accepted > 0, followed.refused
        if followed.last_refusal is not None:
            note(f"refused {refused} status document(s): {followed.last_refusal}")
    status = updater.snapshot.status
    held = "no status" if status is None else f"status version {status.version}"
    note(("updated to " if moved else "still at ") + held)
    return 1 if refused else 0


def _status_json(data: TrustData, now: int) -> dict[str, object]:
    snapshot = data.snapshot()
    freshness = data.freshness()
    status = None if snapshot is None else snapshot.status
    stale: str | None
    try:
        freshness.check(status, now)
        stale = None
    except ValueError as exc:
        stale = str(exc)
    return {
        "root_version": None if snapshot is None else snapshot.root.version,
        "version": None if status is None else status.version,
        "issued": None if status is None else status.issued,
        "expires": None if status is None else status.expires,
        "age": None if status is None else now - status.issued,
        "max_age": freshness.max_age,
        "allow_stale": freshness.allow_stale,
        "stale": stale if snapshot is not None else None,
        "revoked_keys": []
        if status is None
        else sorted(format_fingerprint(k) for k in status.keys),
        "revoked_principals": [] if status is None else sorted(status.principals),
    }


@status_group.command("show", epilog=example("letterlock status show --json"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def status_show(home: Home, *, as_json: bool) -> None:
    """Show the status this receiver holds, its age, and whether it is stale."""
    data = TrustData(home)
    shown = _status_json(data, int(time.time()))
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    if shown["root_version"] is None:
        note("no root pinned: this home does not use status documents")
        return
    for when in ("issued", "expires"):
        value = shown[when]
        if isinstance(value, int):
            shown[when] = iso_time(value)
    rows = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) else str(v))
            for k, v in shown.items()]  # fmt: skip
    print_fields(stdout_console(), rows)


@status_group.command(
    "freshness",
    epilog=example(
        "letterlock status freshness --max-age 2h", "letterlock status freshness --allow-stale"
    ),
)
@click.option("--max-age", help="How old a status may be before messages are refused.")
@click.option(
    "--allow-stale/--fail-closed",
    default=None,
    help="Accept messages whatever the status's age (explicit opt-out), or fail closed again.",
)
@pass_home
def status_freshness(home: Home, *, max_age: str | None, allow_stale: bool | None) -> None:
    """Set how old the status may be before open and listen fail closed (default 24h)."""
    data = TrustData(home)
    held = data.freshness()
    freshness = Freshness(
        max_age=held.max_age if max_age is None else parse_duration(max_age, "--max-age"),
        allow_stale=held.allow_stale if allow_stale is None else allow_stale,
    )
    data.set_freshness(freshness)
    mode = "accepting a stale status (allow-stale)" if freshness.allow_stale else "failing closed"
    note(f"status may be {freshness.max_age} s old; {mode} beyond that")
