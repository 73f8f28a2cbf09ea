"""Options and context shared by the CLI's commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from letterlock import DEFAULT_LIMITS
from letterlock.cli.home import Home

__all__ = ["max_size_option", "pass_home", "passphrase_file_option"]

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


def max_size_option(help_text: str) -> Callable[[F], F]:
    """``--max-size BYTES``: the largest envelope, by default what receivers accept by default."""
    return click.option(
        "--max-size",
        type=click.IntRange(min=1),
        default=DEFAULT_LIMITS.max_size,
        show_default=True,
        metavar="BYTES",
        help=help_text,
    )
