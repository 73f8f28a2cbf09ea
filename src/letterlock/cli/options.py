"""Options and context shared by the CLI's commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from letterlock.cli.home import Home

__all__ = ["pass_home", "passphrase_file_option"]

F = TypeVar("F", bound=Callable[..., Any])

pass_home = click.make_pass_decorator(Home)


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
