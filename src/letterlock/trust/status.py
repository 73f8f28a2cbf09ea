"""Signed status documents: revocation and freshness (``docs/spec/root.md`` section 4). Pure.

A status document is TUF *timestamp* metadata, signed by the keys the root delegates the
``timestamp`` role to, with one field of letterlock's own in ``signed``, ``letterlock_status``:
when it was issued, and the revoked keys (by fingerprint) and principals, each with a reason
and a revoked-since time. TUF's timestamp role is the one made for this: online keys, a short
expiry, a version that only grows. Its other field, ``meta``, is not read.

The receiver keeps the highest version it has accepted (:func:`accept_status`): a lower version
is a rollback, the same version with other content an equivocation, and both are refused.
:class:`Freshness` fails closed when the status is older than the receiver allows, or expired,
unless the receiver explicitly allows a stale status. :class:`Revocations` puts both in front of
another trust policy. Times are seconds since the epoch, and arguments: no clock is read here.

A key revoked as ``compromised`` or ``superseded`` is refused for messages dated at or after its
revoked-since time; one revoked as ``compromised-unknown-time`` for every message. The date is
the message's signed creation time, which a thief of the key can set: bound how old a message
may be (the receiver's maximum age) to bound how far such a thief can backdate.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from tuf.api.metadata import Metadata, Timestamp

from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity, format_fingerprint
from letterlock.core.times import iso_utc
from letterlock.core.trust import (
    Refusal,
    TrustContext,
    TrustPolicy,
    VerifiedSender,
    lookup_carried,
)
from letterlock.trust.root import (
    MetadataRefused,
    Rule,
    TrustedRoot,
    expires_at,
    parse_metadata,
)

__all__ = [
    "FIELD",
    "Freshness",
    "Revocation",
    "RevocationReason",
    "Revocations",
    "Status",
    "accept_status",
    "rebase_status",
    "unverified_status",
]

#: The field of ``signed`` that carries letterlock's status.
FIELD: Final = "letterlock_status"
#: Largest status document read: room for about ten thousand revocations.
MAX_STATUS_BYTES: Final = 1 << 20
_FINGERPRINT_PREFIX: Final = "SHA256:"


class RevocationReason(enum.StrEnum):
    COMPROMISED = "compromised"  #: refused from ``since`` on
    COMPROMISED_UNKNOWN_TIME = "compromised-unknown-time"  #: refused for every message
    SUPERSEDED = "superseded"  #: replaced in the ordinary course; refused from ``since`` on


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """One revoked key or principal. ``since`` is None only for an unknown compromise time."""

    reason: RevocationReason
    since: int | None

    def refuses(self, dated: int) -> bool:
        """True if a message dated ``dated`` must be refused."""
        if self.since is None or self.reason is RevocationReason.COMPROMISED_UNKNOWN_TIME:
            return True
        return dated >= self.since


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """A verified status document: an immutable snapshot.

    ``keys`` maps key fingerprints (SHA-256 of the public identity) to their revocation,
    ``principals`` principal names to theirs. ``signed`` is the canonical signed part, to tell
    a re-signed copy of the same document from an equivocation.
    """

    data: bytes
    signed: bytes
    version: int
    issued: int
    expires: int
    keys: Mapping[bytes, Revocation]
    principals: Mapping[str, Revocation]

    @classmethod
    def verify(cls, root: TrustedRoot, data: bytes) -> Status:
        """The status in ``data`` if a threshold of the root's timestamp keys signed it."""
        metadata = parse_metadata(data, Timestamp, limit=MAX_STATUS_BYTES)
        root.verify_delegate(Timestamp.type, metadata, Rule.THRESHOLD)
        return _status_of(data, metadata)

    def revocation(
        self, *, key: bytes | None = None, principal: str | None = None, dated: int
    ) -> Revocation | None:
        """The revocation that refuses a message dated ``dated`` from ``key`` or ``principal``."""
        for found in (
            self.keys.get(key) if key is not None else None,
            self.principals.get(principal) if principal is not None else None,
        ):
            if found is not None and found.refuses(dated):
                return found
        return None


def unverified_status(data: bytes) -> Status:
    """The status in ``data``, parsed but NOT verified: for a publisher checking a document
    before it signs it. Receivers use :meth:`Status.verify` or :func:`accept_status`."""
    return _status_of(data, parse_metadata(data, Timestamp, limit=MAX_STATUS_BYTES))


def accept_status(root: TrustedRoot, held: Status | None, data: bytes, *, now: int) -> Status:
    """The status to keep after receiving ``data`` at ``now``: never a lower version than ``held``.

    ``root`` must not be expired at ``now``: an expired root vouches for no status keys.

    The same version with the same signed content returns ``held`` (a re-sent copy); with
    other content it is an equivocation by the timestamp keys, refused like a rollback.
    """
    root.check_current(now)
    new = Status.verify(root, data)
    if held is None or new.version > held.version:
        return new
    if new.version < held.version:
        raise MetadataRefused(Rule.ROLLBACK, f"status version {new.version} after {held.version}")
    if new.signed != held.signed:
        raise MetadataRefused(Rule.EQUIVOCATION, f"two different status versions {new.version}")
    return held


def rebase_status(root: TrustedRoot, held: Status | None) -> Status | None:
    """``held`` if it still verifies under a newly accepted ``root``, else None.

    A root that rotates the timestamp keys also resets the version floor (TUF's recovery from
    a fast-forward attack: stolen timestamp keys may have pushed the version beyond reach).
    """
    if held is None:
        return None
    try:
        return Status.verify(root, held.data)
    except MetadataRefused:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Freshness:
    """How old a status may be: ``max_age`` seconds after it was issued, and never expired.

    ``allow_stale`` is the explicit opt-out: any status, or none, is then used as it is.
    """

    max_age: int
    allow_stale: bool = False

    def check(self, status: Status | None, now: int) -> None:
        """Raise :class:`MetadataRefused` (``stale``) unless ``status`` may be used at ``now``."""
        if self.allow_stale:
            return
        if status is None:
            raise MetadataRefused(Rule.STALE, "no status document yet")
        if now >= status.expires:
            raise MetadataRefused(
                Rule.STALE, f"status version {status.version} expired at {iso_utc(status.expires)}"
            )
        if now - status.issued > self.max_age:
            raise MetadataRefused(
                Rule.STALE,
                f"status version {status.version} is {now - status.issued} s old, "
                f"over the {self.max_age} s allowed",
            )


class Revocations:
    """A :class:`~letterlock.core.trust.TrustPolicy`: another policy's answer, then the status.

    A sender the inner policy admits is refused when the status held revokes its key, its
    principal (:attr:`VerifiedSender.principal`, else its ``name``) or any key on the path that
    vouched for it (:attr:`VerifiedSender.path_keys`: authorities and CAs, the anchor's
    included) for the message's date,
    even if that status is stale (revocations are never taken back); otherwise when the status
    is stale, as a transient refusal (a fresher status may arrive). The refusal says when the
    message carries a newer status version than the receiver holds
    (:attr:`~letterlock.core.trust.TrustContext.status_version`): the receiver is behind.
    An admitted sender carries the held status's version and age
    (:attr:`VerifiedSender.status_version`, :attr:`VerifiedSender.status_age`).
    """

    def __init__(self, inner: TrustPolicy, status: Status | None, freshness: Freshness) -> None:
        self._inner = inner
        self._status = status
        self._freshness = freshness

    @property
    def inner(self) -> TrustPolicy:
        return self._inner

    @property
    def status(self) -> Status | None:
        return self._status

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        return lookup_carried(self._inner, key_id, credentials)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        verdict = self._inner.admit(sender, context)
        if isinstance(verdict, Refusal):
            return verdict
        return self.judge(
            verdict, created=context.created, now=context.now, carried=context.status_version
        )

    def judge(
        self, verdict: VerifiedSender, *, created: int, now: int, carried: int = 0
    ) -> VerifiedSender | Refusal:
        """The status's word on a sender the inner policy admitted, for a message dated
        ``created`` received at ``now`` that carries the sender's status version ``carried``."""
        status = self._status
        if status is not None:
            found = status.revocation(
                key=verdict.key_id,
                principal=verdict.principal if verdict.principal is not None else verdict.name,
                dated=created,
            )
            if found is not None:
                return Refusal(detail=f"revoked ({found.reason}) since {_since(found)}")
            for key in verdict.path_keys:
                found = status.revocation(key=key, dated=created)
                if found is not None:
                    return Refusal(
                        detail=f"authority key {format_fingerprint(key)} on its path revoked "
                        f"({found.reason}) since {_since(found)}"
                    )
        try:
            self._freshness.check(status, now)
        except MetadataRefused as exc:
            held = 0 if status is None else status.version
            behind = f"; the sender has status version {carried}" if carried > held else ""
            return Refusal(detail=f"{exc}{behind}", transient=True)
        if status is None:
            return verdict
        return dataclasses.replace(
            verdict, status_version=status.version, status_age=max(0, now - status.issued)
        )


def _since(found: Revocation) -> str:
    return "an unknown time" if found.since is None else iso_utc(found.since)


# --------------------------------------------------------------------------- parsing


def _status_of(data: bytes, metadata: Metadata[Timestamp]) -> Status:
    body = metadata.signed.unrecognized_fields.get(FIELD)
    if not isinstance(body, dict) or set(body) != {"issued", "keys", "principals"}:
        raise MetadataRefused(Rule.MALFORMED, f"{FIELD} needs exactly issued, keys, principals")
    issued = _integer(body["issued"], "issued")
    expires = expires_at(metadata.signed)
    if issued >= expires:
        raise MetadataRefused(Rule.MALFORMED, "status expires before it was issued")
    keys = {_fingerprint(name): _revocation(entry) for name, entry in _mapping(body, "keys")}
    principals = {name: _revocation(entry) for name, entry in _mapping(body, "principals")}
    return Status(
        data=data,
        signed=metadata.signed_bytes,
        version=metadata.signed.version,
        issued=issued,
        expires=expires,
        keys=MappingProxyType(keys),
        principals=MappingProxyType(principals),
    )


def _mapping(body: dict[str, Any], field: str) -> list[tuple[str, Any]]:
    value = body[field]
    if not isinstance(value, dict):
        raise MetadataRefused(Rule.MALFORMED, f"{field} must be an object")
    return list(value.items())


def _integer(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MetadataRefused(Rule.MALFORMED, f"{what} must be a non-negative integer")
    return value


def _fingerprint(text: str) -> bytes:
    """The 32 bytes of ``SHA256:<unpadded base64>``, in exactly the form letterlock writes."""
    encoded = text.removeprefix(_FINGERPRINT_PREFIX)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32 or format_fingerprint(raw) != text:
        raise MetadataRefused(Rule.MALFORMED, f"{text[:60]!r} is not a key fingerprint")
    return raw


def _revocation(entry: object) -> Revocation:
    if not isinstance(entry, dict) or not {"reason"} <= set(entry) <= {"reason", "since"}:
        raise MetadataRefused(Rule.MALFORMED, "a revocation has a reason and a since time")
    try:
        reason = RevocationReason(entry["reason"])
    except ValueError:
        detail = f"unknown revocation reason {entry['reason']!r}"
        raise MetadataRefused(Rule.MALFORMED, detail) from None
    since = _integer(entry["since"], "since") if "since" in entry else None
    if since is None and reason is not RevocationReason.COMPROMISED_UNKNOWN_TIME:
        raise MetadataRefused(Rule.MALFORMED, f"a {reason} revocation needs its since time")
    return Revocation(reason=reason, since=since)
