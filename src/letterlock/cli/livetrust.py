"""``listen --follow-status``: the listener's trust follows status documents as they arrive.

A :class:`LiveTrust` is the policy the listener's :class:`~letterlock.Opener` asks; it answers
with the snapshot policy it holds, which :class:`StatusFollower` replaces (one reference
assignment: a message is judged wholly by the old policy or wholly by the new) each time its
:class:`~letterlock.sources.updater.StatusUpdater` accepted a newer status document from the
broker's status topic. The follower has a connection of its own (endpoints are used from one
thread each) and stops with the listener.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from letterlock.cli.status_feed import follow_status
from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender
from letterlock.errors import LetterlockError
from letterlock.sources.updater import StatusUpdater
from letterlock.transports.urls import connect

__all__ = ["LiveTrust", "StatusFollower"]


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
