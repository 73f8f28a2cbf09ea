"""Root chains and status documents from a local folder laid out as a TUF repository's metadata.

``1.root.json``, ``2.root.json``, ... (every root version, TUF's consistent-snapshot names) and
``timestamp.json`` (the newest status document). :meth:`FolderSource.refresh` walks the root
chain from the receiver's trusted root as far as the folder goes, then reads the status; every
rule is :mod:`letterlock.trust.root`'s and :mod:`letterlock.trust.status`'s. :class:`SnapshotCache`
keeps what the receiver trusts in a private folder of its own, so that no version rolls back
when the receiver restarts.

Why not python-tuf's ``ngclient.Updater`` with a fetcher over this folder: it reads the clock
itself (time is an argument in letterlock, so tests and ``trust check`` can ask "at time T"),
refuses an expired timestamp without the receiver's explicit "allow stale" setting, counts
thresholds by key id, and will not finish a refresh without snapshot and targets metadata,
which letterlock has no use for. ``docs/spec/root.md`` section 5 has the details.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from letterlock._fs import write_private_file
from letterlock.errors import LetterlockError
from letterlock.trust.root import MAX_ROOT_BYTES, MetadataRefused, Rule, TrustedRoot
from letterlock.trust.status import MAX_STATUS_BYTES, Status, accept_status, rebase_status

__all__ = ["FolderSource", "Snapshot", "SourceError"]

#: Most root versions one refresh walks (python-tuf's ``max_root_rotations``).
MAX_ROOT_STEPS: Final = 256
STATUS_FILE: Final = "timestamp.json"


class SourceError(LetterlockError):
    """Trust data could not be read (the OS error is the ``__cause__``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a receiver trusts now: the newest root, and the newest status it has accepted."""

    root: TrustedRoot
    status: Status | None = None


class FolderSource:
    """Reads root versions and the status document from ``folder`` (read only)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)

    def refresh(self, held: Snapshot, *, now: int | None = None) -> Snapshot:
        """``held`` moved forward to the newest root and status the folder has.

        ``now`` (seconds since the epoch; the clock's if None) is when the root is used to
        verify the status: an expired newest root refuses it (``expired``).

        Raises :class:`~letterlock.trust.root.MetadataRefused` when a file breaks a rule (the
        snapshot held stays as it was), :class:`SourceError` when a file cannot be read.
        """
        root = held.root
        for _ in range(MAX_ROOT_STEPS):
            data = _read(self._folder, f"{root.version + 1}.root.json", MAX_ROOT_BYTES)
            if data is None:
                break
            root = root.update(data)
        status = held.status if root is held.root else rebase_status(root, held.status)
        data = _read(self._folder, STATUS_FILE, MAX_STATUS_BYTES)
        if data is not None:
            status = accept_status(root, status, data, now=int(time.time()) if now is None else now)
        return Snapshot(root=root, status=status)


class SnapshotCache:
    """The receiver's own copy of what it trusts, so no version rolls back across restarts.

    ``root.json`` (the newest root accepted) and ``timestamp.json`` (the status held) in a
    private folder, written atomically. Like TUF's trusted local metadata, what is here was
    verified before it was saved, and is trusted again as it is when loaded.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)

    def load(self, pinned: TrustedRoot) -> Snapshot:
        """The saved snapshot, or one of ``pinned`` when there is none or ``pinned`` is newer."""
        data = _read(self._folder, "root.json", MAX_ROOT_BYTES)
        if data is None:
            return Snapshot(root=pinned)
        root = TrustedRoot.pin(data)
        if root.version < pinned.version:
            return Snapshot(root=pinned)
        same_version = root.version == pinned.version
        if same_version and root.metadata.signed_bytes != pinned.metadata.signed_bytes:
            raise MetadataRefused(
                Rule.EQUIVOCATION, f"two different roots version {root.version} (saved, pinned)"
            )
        held = _read(self._folder, STATUS_FILE, MAX_STATUS_BYTES)
        try:
            status = None if held is None else Status.verify(root, held)
        except MetadataRefused:
            status = None  # saved under a root that was not saved after it (a crash between)
        return Snapshot(root=root, status=status)

    def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (status first: a crash between the two leaves a status that the
        older root may not verify, which :meth:`load` then drops rather than trusts)."""
        try:
            if snapshot.status is not None:
                write_private_file(self._folder / STATUS_FILE, snapshot.status.data, overwrite=True)
            write_private_file(self._folder / "root.json", snapshot.root.data, overwrite=True)
        except OSError as exc:
            raise SourceError(f"cannot save trust data in {self._folder}: {exc}") from exc


def _read(folder: Path, name: str, limit: int) -> bytes | None:
    try:
        with (folder / name).open("rb") as file:
            return file.read(limit + 1)  # one byte over: the parser refuses it as too big
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"cannot read {name} in {folder}: {exc.strerror}") from exc
