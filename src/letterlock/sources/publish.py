"""Making root and status metadata, for the publisher side (``letterlock root``, ``status``).

A root lists the root keys with their threshold, and the status keys (TUF's ``timestamp``
role) with theirs (``docs/spec/root.md``); a status document is TUF timestamp metadata with
``letterlock_status`` (:mod:`letterlock.trust.status`). Keys are letterlock public identities
(:func:`letterlock.trust.tufkeys.tuf_key`), signed with
:class:`~letterlock.trust.tufkeys.IdentitySigner`. Here rather than in ``trust/`` because
python-tuf's metadata wants its times as ``datetime`` values. Every document made here is
checked by the same code receivers run before it is handed out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Root, Timestamp

from letterlock.core.keys import PublicIdentity
from letterlock.errors import UsageError
from letterlock.trust.root import MAX_ROOT_BYTES, distinct_signers, parse_metadata
from letterlock.trust.status import FIELD, unverified_status
from letterlock.trust.tufkeys import tuf_key

__all__ = [
    "Progress",
    "is_root",
    "make_root",
    "make_status",
    "root_keyids",
    "root_progress",
    "sign_metadata",
]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def make_root(
    version: int,
    *,
    root_keys: Sequence[PublicIdentity],
    threshold: int,
    status_keys: Sequence[PublicIdentity],
    status_threshold: int,
    expires: int,
) -> bytes:
    """Unsigned root metadata (sign it with :func:`sign_metadata`). UsageError for a threshold
    the distinct keys cannot meet."""
    roots, statuses = list(dict.fromkeys(root_keys)), list(dict.fromkeys(status_keys))
    if not 1 <= threshold <= len(roots):
        raise UsageError(f"the root threshold is 1 to the number of distinct keys ({len(roots)})")
    if not 1 <= status_threshold <= len(statuses):
        raise UsageError(
            f"the status threshold is 1 to the number of distinct status keys ({len(statuses)})"
        )
    root = Root(version=version, expires=_at(expires), consistent_snapshot=True)
    for key in roots:
        root.add_key(tuf_key(key), Root.type)
    for key in statuses:
        root.add_key(tuf_key(key), Timestamp.type)
    root.roles[Root.type].threshold = threshold
    root.roles[Timestamp.type].threshold = status_threshold
    return Metadata(root).to_bytes()


def make_status(
    version: int,
    *,
    issued: int,
    expires: int,
    keys: Mapping[str, Mapping[str, Any]],
    principals: Mapping[str, Mapping[str, Any]],
) -> bytes:
    """Unsigned status metadata: ``keys`` by fingerprint text and ``principals`` by name, each
    ``{"reason": ..., "since": ...}`` (docs/spec/root.md section 4). Checked by the receivers'
    parser; UsageError for anything it would refuse."""
    timestamp = Timestamp(version=version, expires=_at(expires))
    timestamp.unrecognized_fields[FIELD] = {
        "issued": issued,
        "keys": {k: dict(v) for k, v in keys.items()},
        "principals": {k: dict(v) for k, v in principals.items()},
    }
    data = Metadata(timestamp).to_bytes()
    try:
        unverified_status(data)
    except ValueError as exc:
        raise UsageError(f"the status would be refused: {exc}") from None
    return data


def sign_metadata(data: bytes, signers: Iterable[Signer]) -> bytes:
    """``data`` (root or status metadata) with a signature of each of ``signers`` added."""
    metadata = Metadata[Any].from_bytes(data)
    for signer in signers:
        metadata.sign(signer, append=True)
    return metadata.to_bytes()


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """How far a root is signed: distinct keys of its own, and of the version before it."""

    version: int
    own: int
    threshold: int
    previous: int | None = None
    previous_threshold: int | None = None

    @property
    def complete(self) -> bool:
        return self.own >= self.threshold and (
            self.previous is None or self.previous >= (self.previous_threshold or 0)
        )

    def __str__(self) -> str:
        text = f"signed by {self.own} of {self.threshold} of its own root keys"
        if self.previous is not None:
            text += (
                f", {self.previous} of {self.previous_threshold} of version {self.version - 1}'s"
            )
        return text


def root_progress(data: bytes, previous: bytes | None = None) -> Progress:
    """How many distinct keys signed the root in ``data`` (and of the ``previous`` version's)."""
    new = parse_metadata(data, Root, limit=MAX_ROOT_BYTES)
    own = distinct_signers(new.signed, Root.type, new)
    if previous is None:
        return Progress(
            version=new.signed.version, own=own, threshold=new.signed.roles[Root.type].threshold
        )
    old = parse_metadata(previous, Root, limit=MAX_ROOT_BYTES).signed
    return Progress(
        version=new.signed.version,
        own=own,
        threshold=new.signed.roles[Root.type].threshold,
        previous=distinct_signers(old, Root.type, new),
        previous_threshold=old.roles[Root.type].threshold,
    )


def root_keyids(data: bytes) -> frozenset[str]:
    """The key ids of the root keys of the root in ``data``."""
    return frozenset(
        parse_metadata(data, Root, limit=MAX_ROOT_BYTES).signed.roles[Root.type].keyids
    )


def is_root(data: bytes) -> bool:
    try:
        parse_metadata(data, Root, limit=MAX_ROOT_BYTES)
    except ValueError:
        return False
    return True
