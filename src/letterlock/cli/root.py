"""``letterlock root ...``: the k-of-n root of trust, as TUF root metadata (docs/spec/root.md).

Publisher side (an offline machine): ``init`` writes version 1 listing the root keys, the
threshold, and the status keys that sign status documents; ``rotate`` writes version N+1;
``sign`` adds signatures to a version (keys held in other homes sign the same file in turn);
every version is kept as HOME/root/N.root.json. Root and status keys are identities of the
home (``letterlock id new``), used through :class:`letterlock.trust.tufkeys.IdentitySigner`.

Receiver side: ``pin`` trusts version 1 (or any version) given out of band; ``update`` moves to
version N+1, accepted only when signed by a threshold of N's distinct keys and of its own;
``show`` says what is held.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from letterlock import Rejected, UsageError
from letterlock._fs import write_private_file
from letterlock.cli.authority import parse_duration
from letterlock.cli.home import Home
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.passphrase import passphrase
from letterlock.cli.render import iso_time, note, print_fields, stdout_console
from letterlock.cli.streams import read_input
from letterlock.cli.trustdata import TrustData
from letterlock.sources.folder import Snapshot
from letterlock.sources.publish import (
    is_root,
    make_root,
    root_keyids,
    root_progress,
    sign_metadata,
)
from letterlock.trust.root import MAX_ROOT_BYTES, TrustedRoot
from letterlock.trust.status import rebase_status
from letterlock.trust.tufkeys import IdentitySigner, tuf_key

__all__ = ["root_group", "signers"]

F = TypeVar("F", bound=Callable[..., Any])


def signers(home: Home, names: Sequence[str], passphrase_file: str | None) -> list[IdentitySigner]:
    """TUF signers over the home's identities ``names`` (each unlocked in turn)."""
    found = []
    for name in dict.fromkeys(names):
        ask = functools.partial(passphrase, passphrase_file, prompt=f"Passphrase for {name!r}: ")
        found.append(IdentitySigner(home.load(name, ask)))
    return found


def _make(
    home: Home,
    version: int,
    *,
    keys: Sequence[str],
    threshold: int,
    status_keys: Sequence[str],
    status_threshold: int,
    expires: str,
) -> bytes:
    if not keys or not status_keys:
        raise UsageError("a root lists at least one --key and one --status-key")
    return make_root(
        version,
        root_keys=[home.public(name) for name in keys],
        threshold=threshold,
        status_keys=[home.public(name) for name in status_keys],
        status_threshold=status_threshold,
        expires=int(time.time()) + parse_duration(expires, "--expires"),
    )


_KEY_OPTIONS = (
    click.option("--key", "keys", multiple=True, metavar="NAME", help="A root key (repeat: n)."),
    click.option("--threshold", type=int, required=True, help="k: root keys needed to sign."),
    click.option(
        "--status-key", "status_keys", multiple=True, metavar="NAME", help="A status key."
    ),
    click.option("--status-threshold", type=int, default=1, show_default=True),
    click.option("--expires", default="365d", show_default=True, help="Lifetime of the root."),
)


def _key_options(function: F) -> F:
    for option in reversed(_KEY_OPTIONS):
        function = option(function)
    return function


@click.group(
    "root",
    short_help="The k-of-n root of trust (TUF root metadata).",
    epilog=example(
        "letterlock root init --threshold 2 --key r1 --key r2 --key r3 --status-key ts",
        "letterlock root pin 1.root.json        # on each receiver",
    ),
)
def root_group() -> None:
    """The root of trust: k-of-n root keys and the status keys, versioned, never rolled back."""


@root_group.command(
    "init",
    epilog=example("letterlock root init --threshold 2 --key r1 --key r2 --key r3 --status-key ts"),
)
@_key_options
@click.option("--sign", "sign_with", multiple=True, metavar="NAME", help="Sign with these only.")
@passphrase_file_option
@pass_home
def root_init(
    home: Home,
    *,
    keys: tuple[str, ...],
    threshold: int,
    status_keys: tuple[str, ...],
    status_threshold: int,
    expires: str,
    sign_with: tuple[str, ...],
    passphrase_file: str | None,
) -> None:
    """Write root version 1 (HOME/root/1.root.json), signed by every --key (or by --sign)."""
    data = TrustData(home)
    if data.root_versions():
        raise UsageError(f"{data.roots} has roots already; make the next with 'root rotate'")
    unsigned = _make(home, 1, keys=keys, threshold=threshold, status_keys=status_keys,
                     status_threshold=status_threshold, expires=expires)  # fmt: skip
    signed = sign_metadata(unsigned, signers(home, sign_with or keys, passphrase_file))
    path = data.write_root(1, signed, overwrite=False)
    click.echo(str(path))
    note(f"root version 1 ({threshold} of {len(set(keys))}): {root_progress(signed)}")


@root_group.command(
    "rotate",
    epilog=example(
        "letterlock root rotate --threshold 2 --key r2 --key r3 --key r4 --status-key ts2"
    ),
)
@_key_options
@click.option(
    "--sign", "sign_with", multiple=True, metavar="NAME",
    help="Sign with these (default: every old and new root key in this home).",
)  # fmt: skip
@passphrase_file_option
@pass_home
def root_rotate(
    home: Home,
    *,
    keys: tuple[str, ...],
    threshold: int,
    status_keys: tuple[str, ...],
    status_threshold: int,
    expires: str,
    sign_with: tuple[str, ...],
    passphrase_file: str | None,
) -> None:
    """Write root version N+1 after the newest here. Receivers accept it only once it is signed
    by a threshold of version N's keys and of its own ('root sign' adds signatures)."""
    data = TrustData(home)
    versions = data.root_versions()
    if not versions:
        raise UsageError("no root here yet: make version 1 with 'root init'")
    previous = data.read_root(versions[-1])
    version = versions[-1] + 1
    unsigned = _make(home, version, keys=keys, threshold=threshold, status_keys=status_keys,
                     status_threshold=status_threshold, expires=expires)  # fmt: skip
    if not sign_with:
        old_ids = root_keyids(previous)
        old_names = [n for n in home.names() if tuf_key(home.public(n)).keyid in old_ids]
        sign_with = tuple(dict.fromkeys([*old_names, *keys]))
    signed = sign_metadata(unsigned, signers(home, sign_with, passphrase_file))
    path = data.write_root(version, signed, overwrite=False)
    click.echo(str(path))
    note(f"root version {version}: {root_progress(signed, previous)}")


@root_group.command("sign", epilog=example("letterlock root sign 2.root.json --key r4"))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "keys", multiple=True, required=True, metavar="NAME", help="Sign with it.")
@passphrase_file_option
@pass_home
def root_sign(home: Home, file: str, *, keys: tuple[str, ...], passphrase_file: str | None) -> None:
    """Add signatures to the root in FILE (in place): for keys held in different homes."""
    path = Path(file)
    data = _read_root(file)
    if not is_root(data):
        raise UsageError(f"{file} is not root metadata")
    signed = sign_metadata(data, signers(home, keys, passphrase_file))
    write_private_file(path, signed, overwrite=True, mode=0o644)
    note(f"{file}: {root_progress(signed)}")


def _read_root(file: str) -> bytes:
    try:
        return read_input(file, limit=MAX_ROOT_BYTES + 1)
    except Rejected:
        raise UsageError(f"{file} is too large to be a root") from None


@root_group.command("pin", epilog=example("letterlock root pin 1.root.json"))
@click.argument("file")
@pass_home
def root_pin(home: Home, file: str) -> None:
    """Trust the root in FILE, given out of band (it must meet its own threshold)."""
    root = TrustData(home).pin_root(_read_root(file))
    note(f"pinned root version {root.version}, expires {iso_time(root.expires)}")
    note("every message now needs a fresh status document: letterlock status update ...")


@root_group.command("update", epilog=example("letterlock root update 2.root.json 3.root.json"))
@click.argument("files", nargs=-1, required=True)
@pass_home
def root_update(home: Home, files: tuple[str, ...]) -> None:
    """Move to the next root version(s), in order: each must be N+1 and signed by a threshold
    of N's keys and of its own. Never rolls back."""
    data = TrustData(home)
    snapshot = data.snapshot()
    if snapshot is None:
        raise UsageError("no root pinned: letterlock root pin FILE")
    root = snapshot.root
    for file in files:
        root = root.update(_read_root(file))
    data.save_snapshot(Snapshot(root=root, status=rebase_status(root, snapshot.status)))
    note(f"root is now version {root.version}, expires {iso_time(root.expires)}")


def _root_json(root: TrustedRoot) -> dict[str, object]:
    return {
        "version": root.version,
        "expires": root.expires,
        "root_threshold": root.threshold("root"),
        "root_keys": sorted(root.keyids("root")),
        "status_threshold": root.threshold("timestamp"),
        "status_keys": sorted(root.keyids("timestamp")),
    }


@root_group.command("show", epilog=example("letterlock root show --json"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def root_show(home: Home, *, as_json: bool) -> None:
    """Show the root this home trusts (as a receiver), or else the newest it made."""
    data = TrustData(home)
    snapshot = data.snapshot()
    if snapshot is not None:
        root = snapshot.root
    elif data.root_versions():
        root = TrustedRoot.pin(data.read_root(data.root_versions()[-1]))
    else:
        raise UsageError("no root pinned or made in this home")
    shown = _root_json(root)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    shown["expires"] = iso_time(root.expires)
    rows = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) else str(v))
            for k, v in shown.items()]  # fmt: skip
    print_fields(stdout_console(), rows)
