"""The safe recipe: :func:`seal` and :func:`open` with the clock and fresh randomness.

These are the calls applications use. They draw the message id and content key from the
operating system and read the clock when ``now`` is not given; everything else happens in the
pure :mod:`letterlock.core.protocol`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from letterlock import _crypto
from letterlock.core.envelope import DEFAULT_LIMITS, MESSAGE_ID_SIZE, Envelope, Limits, parse
from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.protocol import (
    CONTENT_KEY_SIZE,
    Opened,
    Padding,
    open_envelope,
    seal_envelope,
    wrap_content_key,
)
from letterlock.core.replay import ReplayWindow
from letterlock.core.suites import Suite
from letterlock.errors import UsageError
from letterlock.trust.policy import TrustPolicy

__all__ = ["inspect", "open", "seal"]


def _seconds(now: float | None) -> int:
    return int(time.time() if now is None else now)


def seal(
    payload: bytes | bytearray | memoryview,
    *,
    sender: Identity,
    recipients: Iterable[PublicIdentity],
    topic: str,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    expires_in: float | None = None,
    now: float | None = None,
    hide_sender: bool = False,
    pad: Padding = None,
) -> bytes:
    """Sign ``payload`` as ``sender`` and encrypt it to every recipient, bound to ``topic``.

    ``headers`` stay readable to brokers (for routing) but are signed; ``expires_in`` seconds
    after ``now`` the message is refused. ``hide_sender`` moves the sender's key id and signature
    inside the ciphertext; ``pad`` ("padme" or a block size) hides the exact payload size.
    """
    if not isinstance(sender, Identity):
        raise UsageError("sender must be a letterlock.Identity (a private identity)")
    created = _seconds(now)
    expires = None
    if expires_in is not None:
        if expires_in <= 0:
            raise UsageError("expires_in must be positive")
        expires = created + max(1, int(expires_in))
    wrapped = wrap_content_key(
        _crypto.random_bytes(CONTENT_KEY_SIZE), suite=sender.suite, recipients=list(recipients)
    )
    return seal_envelope(
        payload,
        sender=sender,
        wrapped=wrapped,
        topic=topic,
        message_id=_crypto.random_bytes(MESSAGE_ID_SIZE),
        created=created,
        expires=expires,
        content_type=content_type,
        headers=headers,
        hide_sender=hide_sender,
        pad=pad,
    )


def open(
    data: bytes | bytearray | memoryview,
    *,
    identity: Identity,
    trust: TrustPolicy,
    replay: ReplayWindow,
    topic: str | None = None,
    now: float | None = None,
    suites: Iterable[Suite] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Opened:
    """Verify and decrypt an envelope addressed to ``identity``; raise Rejected otherwise.

    Pass the ``topic`` the message arrived on so a re-routed message is refused. ``suites`` are
    the suites accepted (default: the identity's own). No payload byte is returned unless the
    signature, the trust policy, the replay window and the decryption all agree.
    """
    if not isinstance(identity, Identity):
        raise UsageError("identity must be a letterlock.Identity (a private identity)")
    accepted = frozenset(suites) if suites is not None else frozenset({identity.suite})
    return open_envelope(
        data,
        identity=identity,
        trust=trust,
        replay=replay,
        now=_seconds(now),
        topic=topic,
        suites=accepted,
        limits=limits,
    )


def inspect(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """What a relay sees: the parsed envelope (header, sizes), nothing decrypted or verified.

    Useful for routing and diagnostics. Nothing in the result is authenticated until
    :func:`open` succeeds; raises Rejected if the bytes are not a well-formed envelope.
    """
    return parse(data, suites=frozenset(Suite), limits=limits)
