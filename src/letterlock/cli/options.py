"""Options and context shared by the CLI's commands."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar, cast

import click

from letterlock import DEFAULT_LIMITS, Padding, PublicIdentity, UsageError
from letterlock.cli.home import Home
from letterlock.cli.keyset_files import recipient_key
from letterlock.cli.render import quoted, warn
from letterlock.core.topics import Dialect

__all__ = [
    "MAX_EXPIRES_IN",
    "dialect_option",
    "example",
    "input_option",
    "max_size_option",
    "pass_home",
    "passphrase_file_option",
    "recipients_for",
    "sealing_options",
    "signed_headers",
    "whole_number",
]

F = TypeVar("F", bound=Callable[..., Any])


def pass_home(function: F) -> F:
    """Pass the home to the command, checked first (:mod:`letterlock.cli.strict`)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        home = click.get_current_context().find_object(Home)
        if home is None:  # pragma: no cover - the group always sets it
            raise RuntimeError("no letterlock home in the click context")
        home.check()
        return function(home, *args, **kwargs)

    return cast(F, wrapper)


def passphrase_file_option(function: F) -> F:
    """``--passphrase-file FILE``: read the passphrase from the first line of FILE."""
    decorator = click.option(
        "--passphrase-file",
        type=click.Path(exists=True, dir_okay=False, allow_dash=False),
        default=None,
        help=(
            "Read the passphrase from the first line of FILE "
            "(else $LETTERLOCK_PASSPHRASE, else the terminal)."
        ),
    )
    return decorator(function)


def whole_number(unit: str, maximum: int) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback: a whole number from 1 to ``maximum`` of ``unit``, else one sentence.

    (click's IntRange says "'1e20' is not a valid integer range", and a huge value let through
    would fail later with a message about something else.)
    """

    def convert(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isascii() and text.isdigit() and 1 <= int(text) <= maximum:
            return int(text)
        shown = repr(text) if len(text) <= 30 else repr(text[:27]) + "..."
        raise click.BadParameter(
            f"must be a whole number of {unit} from 1 to {maximum}, not {shown}"
        )

    return convert


MAX_SIZE_LIMIT: Final = 2**40  # 1 TiB: any envelope a machine can hold in memory


def dialect_option(help_text: str) -> Callable[[F], F]:
    """``--dialect``: the syntax of topic patterns, amqp (the default), mqtt or nats."""
    return click.option(
        "--dialect",
        type=click.Choice([d.value for d in Dialect]),
        default=Dialect.AMQP.value,
        show_default=True,
        help=help_text,
    )


def max_size_option(help_text: str) -> Callable[[F], F]:
    """``--max-size BYTES``: the largest envelope, by default what receivers accept by default."""
    return click.option(
        "--max-size",
        type=click.STRING,  # not inferred from the default: the callback converts
        callback=whole_number("bytes", MAX_SIZE_LIMIT),
        default=DEFAULT_LIMITS.max_size,
        show_default=True,
        metavar="BYTES",
        help=help_text,
    )


MAX_EXPIRES_IN: Final = 100 * 365 * 86400
_IN = click.Path(exists=True, dir_okay=False, allow_dash=True)


def _pad(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Padding:
    if value is None:
        return None
    if value == "padme":
        return "padme"
    if value.isascii() and value.isdigit() and 0 < int(value) <= DEFAULT_LIMITS.max_size:
        return int(value)
    raise click.BadParameter(
        f"must be 'padme' or a block size from 1 to {DEFAULT_LIMITS.max_size} bytes"
    )


#: The options of how a payload is sealed, in the order ``--help`` lists them; the same names
#: and help for ``seal`` and ``send`` (the topic and the sender each command says its own way).
_SEALING: Final = (
    click.option(
        "--to",
        "to",
        required=True,
        multiple=True,
        metavar="NAME[,NAME...]",
        help="Recipients: contacts or your own identities (comma-separated or repeated).",
    ),
    click.option(
        "--header",
        "header",
        multiple=True,
        metavar="NAME=VALUE",
        help="Signed application header, readable by brokers (repeatable).",
    ),
    click.option(
        "--content-type", metavar="TYPE", help="Signed content type, e.g. application/json."
    ),
    click.option(
        "--expires-in",
        callback=whole_number("seconds", MAX_EXPIRES_IN),
        metavar="SECONDS",
        help="Receivers refuse the message this long after it was sealed (at most "
        f"{MAX_EXPIRES_IN}, 100 years).",
    ),
    click.option(
        "--hide-sender",
        is_flag=True,
        help="Hide the sender's key id from brokers (inside the AEAD).",
    ),
    click.option(
        "--pad",
        metavar="padme|N",
        callback=_pad,
        help="Pad the size: Padmé, or a block of N bytes.",
    ),
)


def sealing_options(function: F) -> F:
    """``--to``, ``--header``, ``--content-type``, ``--expires-in``, ``--hide-sender`` and
    ``--pad``: the command receives ``to``, ``header``, ``content_type``, ``expires_in``,
    ``hide_sender`` and ``pad`` (see :func:`signed_headers` and :func:`recipients_for`)."""
    for option in reversed(_SEALING):  # click lists options in the order they are applied last
        function = option(function)
    return function


def input_option(function: F) -> F:
    """``--in FILE``: the payload (default: stdin); the command receives ``input_path``."""
    option = click.option(
        "--in", "input_path", type=_IN, metavar="FILE", help="Payload (default: stdin)."
    )
    return option(function)


def signed_headers(values: Sequence[str]) -> dict[str, str]:
    """``--header NAME=VALUE`` values as a mapping; each name once."""
    headers: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{quoted(item)} is not NAME=VALUE", param_hint="--header")
        if name in headers:
            raise click.BadParameter(f"header {quoted(name)} given twice", param_hint="--header")
        headers[name] = value
    return headers


def recipients_for(home: Home, sender: str, values: Sequence[str]) -> list[PublicIdentity]:
    """``--to`` values resolved (each name once), all of ``sender``'s suite."""
    names = dict.fromkeys(n.strip() for value in values for n in value.split(",") if n.strip())
    if not names:
        raise click.BadParameter("name at least one recipient", param_hint="--to")
    now = int(time.time())

    def resolve(name: str) -> PublicIdentity:
        return home.resolve_recipient(name, warn=warn)

    # a recipient with a keyset: its primary key (docs/spec/keyset.md section 5)
    recipients = [recipient_key(home, name, now=now, resolve=resolve) for name in names]
    suite = home.public(sender).suite
    for recipient in recipients:
        if recipient.suite is not suite:
            raise UsageError(
                f"{sender!r} uses suite {suite} but recipient {recipient.fingerprint_text} "
                f"uses {recipient.suite}; sender and recipients must share one suite"
            )
    return recipients


def example(*lines: str) -> str:
    """A command's epilog: ``Example:`` and its command lines, kept as written."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)
