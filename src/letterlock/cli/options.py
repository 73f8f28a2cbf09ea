"""Options and context shared by the CLI's commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import click

from letterlock import DEFAULT_LIMITS
from letterlock.cli.home import Home

__all__ = ["example", "max_size_option", "pass_home", "passphrase_file_option", "whole_number"]

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


def example(*lines: str) -> str:
    """A command's epilog: ``Example:`` and its command lines, kept as written."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)
