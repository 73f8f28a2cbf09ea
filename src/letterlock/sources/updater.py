"""The receiver's status updater: verify each status document offered, keep the newest, persist it.

Status documents reach a receiver through any channel (a broker topic, a folder, a file) that
nobody has to trust: :meth:`StatusUpdater.offer` accepts one only when a threshold of the
pinned root's status keys signed it and it moves forward (:func:`letterlock.trust.status.
accept_status`: a lower version is a rollback, the same version with other content an
equivocation, both refused), saves it atomically in the receiver's
:class:`~letterlock.sources.folder.SnapshotCache` *before* anyone uses it, and then hands the
new snapshot to ``on_change`` (which swaps the policy a consumer uses). A hostile channel can
therefore only delay or drop status documents: the receiver then fails closed once what it
holds is stale (:class:`letterlock.trust.status.Freshness`), and never rolls back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from letterlock.sources.folder import Snapshot, SnapshotCache
from letterlock.trust.status import accept_status

__all__ = ["StatusUpdater"]


class StatusUpdater:
    """Keeps the receiver's snapshot moving forward as status documents are offered."""

    def __init__(
        self,
        cache: SnapshotCache,
        snapshot: Snapshot,
        *,
        on_change: Callable[[Snapshot], None] = lambda _snapshot: None,
    ) -> None:
        self._cache = cache
        self._snapshot = snapshot
        self._on_change = on_change
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def offer(self, data: bytes, *, now: int) -> bool:
        """Accept the status document ``data`` at ``now``: True if it is newer than the one
        held (saved, then handed to ``on_change``), False for a copy of the one held.

        Raises :class:`~letterlock.trust.root.MetadataRefused` (``rollback``,
        ``equivocation``, ``threshold``, ``malformed``, ``expired`` for an expired root):
        the snapshot held stays as it was.
        """
        with self._lock:
            held = self._snapshot
            status = accept_status(held.root, held.status, data, now=now)
            if status is held.status:
                return False
            snapshot = Snapshot(root=held.root, status=status)
            self._cache.save(snapshot)
            self._snapshot = snapshot
        self._on_change(snapshot)
        return True
