"""The ``letterlock`` command: keys, trust and ad-hoc sealing, like ``age`` or ``ssh-keygen``.

Exit status:

* 0: success.
* 1: an incoming message was rejected; stderr says ``letterlock: rejected: <reason> (<detail>)``
  with a reason code of ``docs/spec/envelope-v1.md`` section 9. Nothing is written to the output.
* 2: usage or environment error: bad arguments, unknown identity or recipient, wrong
  passphrase or damaged key file, unreadable file, unsafe home (``letterlock.cli.strict``).
  stderr says ``letterlock: error: <what>``.
* 130: interrupted.

Every error is one line on stderr, never a traceback. Payloads are raw bytes on stdout.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, cast

import click
from rich.console import Console

import letterlock
from letterlock import LetterlockError, Rejected, UsageError
from letterlock.cli.authority import authority_group
from letterlock.cli.brokers import dlq_group, listen_command, send_command
from letterlock.cli.contacts import contact_group
from letterlock.cli.home import HOME_ENV, Home
from letterlock.cli.keys import id_group, trust_group
from letterlock.cli.keysets import contact_keyset, id_keyset, id_rotate, id_show
from letterlock.cli.messages import inspect_command, open_command, seal_command
from letterlock.cli.options import example
from letterlock.cli.passphrase import ENV_VAR
from letterlock.cli.policy import trust_check_command
from letterlock.cli.render import safe, stdout_console
from letterlock.cli.root import root_group
from letterlock.cli.status import revoke_command, status_group
from letterlock.cli.x509 import register as register_x509

__all__ = ["cli", "main", "run"]

EPILOG = f"""\b
Exit status:
  0    success
  1    message rejected: "letterlock: rejected: REASON (DETAIL)" on stderr
  2    usage or environment error (bad arguments, unknown identity,
       wrong passphrase, unreadable file, unsafe home permissions)
  130  interrupted
\b
Environment:
  {HOME_ENV}        home directory (default ~/.letterlock)
  {ENV_VAR}  passphrase for key files, unless --passphrase-file
                         is given; else asked on the terminal
\b
Example:
  letterlock id new alice
  letterlock id export alice > alice.pub      # give this to bob
  letterlock contact add bob.pub --name bob   # bob's exported key, to seal to
  letterlock trust pin bob.pub                # and to accept messages from
  letterlock seal --from alice --to bob --topic orders < order.json > order.ll
  letterlock open --topic orders < order.ll"""


@click.group(
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help=f"Home directory for identities, pins and the replay record (else ${HOME_ENV}, "
    "else ~/.letterlock).",
)
@click.version_option(letterlock.__version__, "-V", "--version", prog_name="letterlock")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Seal messages end to end (signed and encrypted) for brokers nobody has to trust."""
    ctx.obj = Home.locate(home)


cli.add_command(id_group)
cli.add_command(trust_group)
cli.add_command(contact_group)
cli.add_command(seal_command)
cli.add_command(open_command)
cli.add_command(inspect_command)
cli.add_command(send_command)
cli.add_command(listen_command)
cli.add_command(dlq_group)
cli.add_command(authority_group)
cli.add_command(root_group)
cli.add_command(revoke_command)
cli.add_command(status_group)
trust_group.add_command(trust_check_command)
register_x509(id_group, trust_group)
id_group.add_command(id_rotate)
id_group.add_command(id_show)
id_group.add_command(id_keyset)
contact_group.add_command(contact_keyset)


@cli.command(
    "demo",
    short_help="Show letterlock at work against a hostile relay.",
    epilog=example("letterlock demo"),
)
def demo_command() -> int:
    """Walk through sealing and opening messages in a throw-away home (no broker needed)."""
    try:
        module = importlib.import_module("letterlock.cli.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "letterlock.cli.demo":
            raise
        raise UsageError(
            "the demo is not available in this installation (letterlock.cli.demo is missing)"
        ) from None
    run_demo = cast(Callable[[Console], int], module.run)
    return run_demo(stdout_console())


def _say(message: str) -> None:
    sys.stderr.write(f"letterlock: {safe(message)}\n")
    sys.stderr.flush()


def _os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"cannot access {exc.filename}: {exc.strerror or exc}"
    return exc.strerror or str(exc)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status; errors become one line on stderr."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="letterlock",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _say(f"error: {exc.format_message()}{hint}")
        return exc.exit_code
    except click.ClickException as exc:
        _say(f"error: {exc.format_message()}")
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        _say("interrupted")
        return 130
    except Rejected as exc:
        _say(f"rejected: {exc.reason.value}" + (f" ({exc.detail})" if exc.detail else ""))
        return 1
    except (LetterlockError, ValueError) as exc:
        _say(f"error: {exc}")
        return 2
    except OSError as exc:
        _say(f"error: {_os_error(exc)}")
        return 2
    except Exception as exc:
        _say(f"error: internal error: {type(exc).__name__}: {exc}")
        return 2
    return result if isinstance(result, int) else 0


def keep_standard_descriptors() -> None:
    """Occupy descriptors 0, 1 and 2 if they were closed when the process started.

    Otherwise the next file opened (an ``--out`` file, the replay record) would get one of
    their numbers, and whatever was meant for stderr would land in it. A closed stdout stays
    unusable (reads only): a payload must fail to go there, not vanish into /dev/null.
    """
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            spare = os.open(os.devnull, flags)
            if spare != fd:
                os.dup2(spare, fd)
                os.close(spare)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - for life


def main() -> NoReturn:
    """Entry point of the ``letterlock`` script."""
    keep_standard_descriptors()
    sys.exit(run())


if __name__ == "__main__":
    main()
