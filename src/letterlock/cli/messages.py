"""``letterlock seal``, ``open`` and ``inspect``: messages in and out, binary-safe."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence

import click

import letterlock
from letterlock import Limits, PublicIdentity, Reason, Rejected, UsageError
from letterlock.cli.home import HOME_ENV, REPLAY_RETENTION, Home
from letterlock.cli.keyset_files import (
    keyset_opener,
    own_recipient_ids,
    passphrase_once,
    sealing_identity,
)
from letterlock.cli.options import (
    example,
    input_option,
    max_size_option,
    pass_home,
    passphrase_file_option,
    recipients_for,
    sealing_options,
    signed_headers,
    whole_number,
)
from letterlock.cli.passphrase import passphrase
from letterlock.cli.render import (
    envelope_fields,
    envelope_json,
    opened_fields,
    print_fields,
    stderr_console,
    stdout_console,
    warn,
)
from letterlock.cli.streams import (
    DeliveryFailed,
    check_output,
    delivered,
    read_input,
    refuse_binary_to_terminal,
    write_output,
)

__all__ = ["inspect_command", "open_command", "seal_command"]

_IN = click.Path(exists=True, dir_okay=False, allow_dash=True)
_OUT = click.Path(dir_okay=False, allow_dash=True)


@click.command(
    "seal",
    short_help="Sign and encrypt a payload for recipients.",
    epilog=example("letterlock seal --from alice --to bob --topic orders < order.json > order.ll"),
)
@click.option("--from", "sender", required=True, metavar="NAME", help="Your identity that signs.")
@click.option("--topic", required=True, help="Destination the message is bound to (signed).")
@sealing_options
@max_size_option(
    "The largest envelope the receivers accept (their 'open --max-size'); a larger one is "
    "refused here, not written."
)
@input_option
@click.option("--out", "output_path", type=_OUT, metavar="FILE", help="Envelope (default: stdout).")
@passphrase_file_option
@pass_home
def seal_command(
    home: Home,
    *,
    sender: str,
    to: tuple[str, ...],
    topic: str,
    header: tuple[str, ...],
    content_type: str | None,
    expires_in: int | None,
    hide_sender: bool,
    pad: letterlock.Padding,
    max_size: int,
    input_path: str | None,
    output_path: str | None,
    passphrase_file: str | None,
) -> None:
    """Sign and encrypt a payload (stdin) for recipients; the envelope goes to stdout."""
    refuse_binary_to_terminal(output_path)
    check_output(output_path)
    headers = signed_headers(header)
    recipients = recipients_for(home, sender, to)
    identity = sealing_identity(
        home, sender, lambda: passphrase(passphrase_file, prompt=f"Passphrase for {sender!r}: "),
        now=int(time.time()), hide_sender=hide_sender,
    )  # fmt: skip
    try:
        payload = read_input(input_path, limit=max_size)
    except Rejected:
        raise UsageError(
            f"the payload is larger than {max_size} bytes, the most receivers accept "
            "(--max-size; they raise theirs with 'open --max-size')"
        ) from None
    sealed = letterlock.seal(
        payload,
        sender=identity,
        recipients=recipients,
        topic=topic,
        headers=headers,
        content_type=content_type,
        expires_in=expires_in,
        hide_sender=hide_sender,
        pad=pad,
    )
    if len(sealed) > max_size:
        raise UsageError(
            f"the envelope would have {len(sealed)} bytes, but receivers accept {max_size} bytes "
            "(if they open with a larger 'open --max-size', seal with the same --max-size)"
        )
    write_output(output_path, sealed, private=False)


def _read_envelope(path: str | None, limits: Limits) -> bytes:
    try:
        return read_input(path, limit=limits.max_size)
    except Rejected as exc:
        raise Rejected(
            exc.reason, f"larger than {limits.max_size} bytes; accept more with --max-size BYTES"
        ) from None


def _addressee(home: Home, own: Mapping[str, PublicIdentity], envelope: letterlock.Envelope) -> str:
    """The one own identity the envelope is addressed to."""
    if not own and not home.names():  # a wrong --home, not a message for someone else
        raise UsageError(
            f"no identities in {home.root} (is --home or ${HOME_ENV} right? "
            "create one with: letterlock id new NAME)"
        )
    wanted = {entry.key_id for entry in envelope.header.recipients}
    mine = [name for name, ids in own_recipient_ids(home, own).items() if ids & wanted]
    if not mine:
        raise Rejected(Reason.NOT_FOR_ME, "none of your identities is a recipient")
    if len(mine) > 1:
        raise UsageError(f"the message is for several of your identities ({', '.join(mine)}); "
                         "choose one with --as")  # fmt: skip
    return mine[0]


@click.command(
    "open",
    short_help="Verify and decrypt an envelope.",
    epilog=example("letterlock open --topic orders --in order.ll --out order.json"),
)
@click.option(
    "--as", "name", metavar="NAME", help="Your identity to open with (default: the addressee)."
)
@click.option("--topic", help="The topic it arrived on; a message bound elsewhere is rejected.")
@click.option(
    "--max-age",
    type=click.STRING,  # not inferred from the default: the callback converts
    callback=whole_number("seconds", REPLAY_RETENTION),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="Refuse messages older than this, in this run only (the home remembers opened "
    f"messages for {REPLAY_RETENTION // 86400} days, the most --max-age can be).",
)
@max_size_option("Refuse larger envelopes (over_limit) before any cryptography.")
@click.option("--in", "input_path", type=_IN, metavar="FILE", help="Envelope (default: stdin).")
@click.option("--out", "output_path", type=_OUT, metavar="FILE", help="Payload (default: stdout).")
@click.option("-q", "--quiet", is_flag=True, help="Do not report the signer on stderr.")
@passphrase_file_option
@pass_home
def open_command(
    home: Home,
    *,
    name: str | None,
    topic: str | None,
    max_age: int,
    max_size: int,
    input_path: str | None,
    output_path: str | None,
    quiet: bool,
    passphrase_file: str | None,
) -> None:
    """Verify and decrypt an envelope (stdin); the payload goes to stdout, the signer to stderr.

    Nothing is written unless the signature, your trust (pins and your own identities), the
    replay window and decryption all agree. Each message opens once per home: its id is
    recorded in the home only after the payload is delivered (every byte written, a file
    synced to disk and in place). If the delivery fails (a full disk, a closed pipe, a killed
    run), the message is not recorded, the exit status is not 0, and it opens again.
    """
    check_output(output_path)  # fail before asking for a passphrase
    if name is not None:
        home.public(name)  # an unknown identity is a usage error, whatever the input
    limits = Limits(max_size=max_size)
    data = _read_envelope(input_path, limits)
    envelope = letterlock.inspect(data, limits=limits)  # refuse junk before asking
    own = home.own_publics(warn=warn)
    name = name or _addressee(home, own, envelope)
    secret = passphrase_once(passphrase_file, name)
    now = int(time.time())
    with home.replay_window(max_age=max_age, now=now) as window:
        trust = home.trust(own)
        keyset = keyset_opener(home, name, trust=trust, replay=window, now=now,
                               get_passphrase=secret, limits=limits)  # fmt: skip
        if keyset is not None:  # a keyset: the key the message is for, if it still opens
            opened = keyset.open(data, topic=topic, now=now, record=False)
        else:
            identity = home.load(name, secret)
            opened = letterlock.open(data, identity=identity, trust=trust, replay=window,
                                     topic=topic, now=now, limits=limits, record=False)  # fmt: skip
        fields = opened_fields(opened)  # before the payload is out: reporting cannot fail
        try:
            with delivered(output_path, opened.payload, private=True):
                window.record(sender=opened.sender.key_id, message_id=opened.message_id,
                              created=opened.created, now=now)  # fmt: skip
        except DeliveryFailed as exc:
            raise DeliveryFailed(f"{exc}; the message was not recorded and opens again") from None
    if not quiet:
        _report(fields)


def _report(fields: Sequence[tuple[str, str]]) -> None:
    """Who signed, on stderr; the message is handled already, so a failure here is ignored."""
    console = stderr_console()
    title = "[bold green]✓ good signature[/]" if console.is_terminal else "letterlock: verified"
    with contextlib.suppress(OSError):
        print_fields(console, fields, title=title)


def _known_names(home: Home) -> Mapping[bytes, str]:
    """Names this home has for sender fingerprints and recipient key ids (pins first)."""
    names: dict[bytes, str] = {}
    for pin in home.pins():
        label = pin.name + (", revoked" if pin.revoked else "")
        names[pin.identity.fingerprint] = names[pin.identity.recipient_id] = label
    for name, public in home.own_publics(warn=warn).items():
        names.setdefault(public.fingerprint, f"{name}, you")
        names.setdefault(public.recipient_id, f"{name}, you")
    for contact in home.contacts():
        names.setdefault(contact.identity.fingerprint, f"{contact.name}, contact")
        names.setdefault(contact.identity.recipient_id, f"{contact.name}, contact")
    return names


@click.command(
    "inspect",
    short_help="Show what a broker sees, without decrypting.",
    epilog=example("letterlock inspect --in order.ll"),
)
@click.option("--in", "input_path", type=_IN, metavar="FILE", help="Envelope (default: stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@max_size_option("Refuse larger envelopes (over_limit).")
@pass_home
def inspect_command(home: Home, input_path: str | None, as_json: bool, max_size: int) -> None:
    """Show what a broker sees in an envelope, without decrypting anything."""
    limits = Limits(max_size=max_size)
    data = _read_envelope(input_path, limits)
    envelope = letterlock.inspect(data, limits=limits)
    if as_json:
        click.echo(json.dumps(envelope_json(envelope, total=len(data)), indent=2))
        return
    rows = envelope_fields(envelope, total=len(data), names=_known_names(home))
    print_fields(stdout_console(), rows)
