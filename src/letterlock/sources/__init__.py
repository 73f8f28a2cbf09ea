"""letterlock.sources: adapters that fetch trust data for :mod:`letterlock.trust`'s policies.

A source does the I/O (files; status documents from a broker through
:class:`~letterlock.sources.updater.StatusUpdater`) and hands over immutable snapshots; every
rule about what to accept stays in :mod:`letterlock.trust`.
"""

from letterlock.sources.folder import FolderSource, Snapshot, SnapshotCache, SourceError
from letterlock.sources.updater import StatusUpdater

__all__ = ["FolderSource", "Snapshot", "SnapshotCache", "SourceError", "StatusUpdater"]
