"""``listen --follow-status``: the listener's trust follows status documents as they arrive.

A :class:`LiveTrust` is the policy the listener's :class:`~letterlock.Opener` asks; it answers
with the snapshot policy it holds, which :class:`StatusFollower` replaces (one reference
assignment: a message is judged wholly by the old policy or wholly by the new) each time its
:class:`~letterlock.sources.updater.StatusUpdater` accepted a newer status document from the
broker's status topic. The follower has a connection of its own (endpoints are used from one
thread each) and stops with the listener.

With ``--workers N`` the follower runs once, in the pool's process, and its updater saves
each status it accepts in the home (``HOME/trust``, before it is used, as it always does). The
workers are other processes: each asks a :class:`SavedStatusTrust`, which looks at the saved
files (two ``stat`` calls) before a question at most every :data:`RECHECK_EVERY` seconds and,
when they changed, loads the snapshot again (verified under the pinned root, as every ``open``
loads it) and puts its status in front of the worker's senders. A worker started later (a
replacement) loads the newest at start. So every worker uses a newer status from its first
message that comes :data:`RECHECK_EVERY` seconds after the follower saved it, and a worker
never goes back to an older one. (Looking before every question cost about 0.2 ms a message
on a loaded 2-core machine, a quarter of a 1 KiB open; the monotonic clock costs nothing.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from letterlock.cli.status_feed import follow_status
from letterlock.cli.trustdata import TrustData
from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender
from letterlock.errors import LetterlockError
from letterlock.sources.folder import STATUS_FILE
from letterlock.sources.updater import StatusUpdater
from letterlock.transports.urls import connect

__all__ = ["RECHECK_EVERY", "LiveTrust", "SavedStatusTrust", "StatusFollower"]

#: Seconds a pool worker uses the status it read before it looks at the saved files again.
RECHECK_EVERY: Final = 0.05

_log = logging.getLogger(__name__)


class LiveTrust:
    """A :class:`~letterlock.core.trust.TrustPolicy` whose snapshot policy can be replaced."""

    def __init__(self, policy: TrustPolicy) -> None:
        self._policy = policy

    def swap(self, policy: TrustPolicy) -> None:
        self._policy = policy

    @property
    def policy(self) -> TrustPolicy:
        return self._policy

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        return self._policy.lookup(key_id, credentials)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        return self._policy.admit(sender, context)


#: What identifies one version of a saved file: (device, inode, mtime in ns, size), or None.
_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1, -1)  # unreadable now: look again next time
    return found.st_dev, found.st_ino, found.st_mtime_ns, found.st_size


class SavedStatusTrust:
    """A :class:`~letterlock.core.trust.TrustPolicy`: ``senders`` behind the status document
    the home holds, read again whenever the saved files change (a pool worker's trust under
    ``listen --follow-status``; the pool's process follows and saves).

    A snapshot that cannot be loaded, or whose status is older than the one held, is ignored:
    the policy keeps what it holds, which fails closed once that status is stale. The files are
    looked at before a question at most every ``every`` seconds of ``clock``.
    """

    def __init__(
        self,
        data: TrustData,
        senders: TrustPolicy,
        *,
        every: float = RECHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._data = data
        self._senders = senders
        self._paths = (data.trust_dir / STATUS_FILE, data.trust_dir / "root.json")
        self._every = every
        self._clock = clock
        self._checked = clock()
        self._stamps: tuple[_Stamp, ...] = ()
        self._version = -1  #: the status version held (0: none)
        self._policy: TrustPolicy = senders
        self._reload()

    @property
    def policy(self) -> TrustPolicy:
        return self._policy

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < self._every:
            return
        self._checked = now
        self._reload()

    def _reload(self) -> None:
        """Load the saved snapshot again if its files changed since the last look."""
        stamps = tuple(_stamp(path) for path in self._paths)  # before reading: never missed
        if stamps == self._stamps:
            return
        self._stamps = stamps
        try:
            snapshot = self._data.snapshot()
        except LetterlockError as exc:
            _log.warning("keeping status version %d: cannot load the saved one: %s",
                         self._version, exc)  # fmt: skip
            return
        version = 0 if snapshot is None or snapshot.status is None else snapshot.status.version
        if version < self._version:
            return
        self._version = version
        self._policy = self._data.revocations_in_front(self._senders, snapshot)

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        self._refresh()
        return self._policy.lookup(key_id, credentials)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        self._refresh()
        return self._policy.admit(sender, context)


class StatusFollower:
    """Follows the status topic at ``url`` in ``group`` on a thread, until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        updater: StatusUpdater,
        *,
        group: str,
        on_error: Callable[[str], None],
        poll: float = 1.0,
    ) -> None:
        self._url = url
        self._updater = updater
        self._group = group
        self._on_error = on_error
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="letterlock-status", daemon=True)

    def start(self) -> StatusFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            endpoint = connect(self._url)
        except LetterlockError as exc:
            self._on_error(f"cannot follow status documents: {exc}")
            return
        try:
            while not self._stop.is_set():
                try:
                    followed = follow_status(
                        endpoint, self._updater, group=self._group, idle_timeout=self._poll
                    )
                except LetterlockError as exc:
                    self._on_error(f"following status documents: {exc}")
                    self._stop.wait(self._poll)
                    continue
                if followed.last_refusal is not None:
                    self._on_error(f"refused a status document: {followed.last_refusal}")
        finally:
            with contextlib.suppress(LetterlockError):
                endpoint.close()
