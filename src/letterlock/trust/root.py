"""The root of trust: TUF root metadata, k-of-n and versioned (``docs/spec/root.md``). Pure.

A receiver starts from a root it was given out of band (:meth:`TrustedRoot.pin`) and moves
forward one version at a time (:meth:`TrustedRoot.update`), as a TUF client does. The rules,
each a :class:`Rule` code on the :class:`MetadataRefused` that enforces it:

=====================  ===================================================================
rule                   version N+1 is refused when
=====================  ===================================================================
``malformed``          it is not TUF root metadata, or lists a key of a type letterlock
                       does not support (``tufkeys.SUPPORTED``)
``rollback``           its version is N or lower
``skipped_version``    its version is above N+1 (each step must be shown)
``threshold``          fewer than N's root threshold of N's root keys signed it
``self_threshold``     fewer than its own root threshold of its own root keys signed it
``expired``            (only when used, :meth:`TrustedRoot.check_current`) the newest
                       root has expired; an expired root may still be updated *from*
=====================  ===================================================================

Signatures are counted by *distinct key*, never by key id or signature: a key listed under two
ids, or in two encodings, or a dual key beside a plain key sharing one half, signs once
(:func:`distinct_signers`). Signatures that do not verify, or by keys the role does not list,
are ignored: they neither count nor spoil a threshold that the others meet.

Time is an argument (seconds since the epoch); this module reads no clock and no file.
python-tuf's ``Metadata`` API parses, serialises and verifies single signatures; the update
rules are here, because python-tuf's ``Updater`` reads the clock itself and counts key ids.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Signed, Timestamp
from tuf.api.serialization import DeserializationError, SerializationError

from letterlock.core.times import iso_utc
from letterlock.errors import ParseError
from letterlock.trust.tufkeys import key_identities

__all__ = [
    "MetadataRefused",
    "Rule",
    "TrustedRoot",
    "distinct_signers",
    "expires_at",
    "parse_metadata",
    "require_threshold",
]

_S = TypeVar("_S", Root, Timestamp)

#: Largest root metadata read (python-tuf's ``Updater`` default): a bigger one is refused unread.
MAX_ROOT_BYTES = 512_000


class Rule(enum.StrEnum):
    """Which rule refused a root or status document (for logs, tests and ``trust check``)."""

    MALFORMED = "malformed"
    ROLLBACK = "rollback"
    SKIPPED_VERSION = "skipped_version"
    THRESHOLD = "threshold"
    SELF_THRESHOLD = "self_threshold"
    EXPIRED = "expired"
    EQUIVOCATION = "equivocation"
    STALE = "stale"


class MetadataRefused(ParseError):
    """Root or status metadata broke a rule; ``rule`` says which, the message says how."""

    rule: Rule

    def __init__(self, rule: Rule, detail: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {detail}")


def parse_metadata(data: bytes, kind: type[_S], *, limit: int) -> Metadata[_S]:
    """TUF metadata of ``kind`` from its JSON bytes, with every listed key supported."""
    if len(data) > limit:
        raise MetadataRefused(Rule.MALFORMED, f"{len(data)} bytes, over the {limit} allowed")
    try:
        metadata = Metadata[Any].from_bytes(data)
    except DeserializationError as exc:
        raise MetadataRefused(Rule.MALFORMED, f"not TUF metadata ({exc})") from None
    try:  # what the signatures cover: JSON that canonical JSON cannot write (a float) has none
        metadata.signed_bytes  # noqa: B018 - serialises, or raises
    except SerializationError:
        raise MetadataRefused(Rule.MALFORMED, "not canonical JSON (a float?)") from None
    if not isinstance(metadata.signed, kind):
        raise MetadataRefused(Rule.MALFORMED, f"{metadata.signed.type} metadata, not {kind.type}")
    if isinstance(metadata.signed, Root):
        for key in metadata.signed.keys.values():
            try:
                key_identities(key)
            except (ValueError, TypeError) as exc:
                raise MetadataRefused(Rule.MALFORMED, str(exc)) from None
    return metadata


def expires_at(signed: Signed) -> int:
    """``signed.expires`` in seconds since the epoch (TUF writes it in UTC, to the second)."""
    return int(signed.expires.timestamp())


def distinct_signers(delegator: Root, role: str, metadata: Metadata[Any]) -> int:
    """How many distinct keys of ``delegator``'s ``role`` signed ``metadata`` validly.

    Each listed key id whose signature verifies is a signer; signers sharing any public key
    (:func:`~letterlock.trust.tufkeys.key_identities`) are one signer.
    """
    payload = metadata.signed_bytes
    signed: list[frozenset[bytes]] = []
    for keyid in delegator.roles[role].keyids:
        key: Key | None = delegator.keys.get(keyid)
        signature = metadata.signatures.get(keyid)
        if key is None or signature is None:
            continue
        try:
            key.verify_signature(signature, payload)
        except (UnverifiedSignatureError, VerificationError):
            continue
        signed.append(key_identities(key))
    return _holders(signed)


def _holders(keys: list[frozenset[bytes]]) -> int:
    """The number of groups of keys, two keys being in one group when they share a public key."""
    groups: list[frozenset[bytes]] = []
    for key in keys:
        merged = key
        for group in [g for g in groups if g & key]:
            groups.remove(group)
            merged |= group
        groups.append(merged)
    return len(groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedRoot:
    """A root the receiver trusts: an immutable snapshot, replaced by :meth:`update`.

    ``data`` is the metadata's bytes as received (what a source persists).
    """

    data: bytes
    version: int
    expires: int
    #: The parsed root, kept for verifying; never handed out (python-tuf's objects are mutable).
    _signed: Root = field(repr=False, compare=False)

    @property
    def metadata(self) -> Metadata[Root]:
        """A fresh parse of :attr:`data` (python-tuf's objects are mutable; this one is yours)."""
        return Metadata[Root].from_bytes(self.data)

    @classmethod
    def pin(cls, data: bytes) -> TrustedRoot:
        """Trust ``data`` as the first root, given out of band; it must meet its own threshold."""
        metadata = parse_metadata(data, Root, limit=MAX_ROOT_BYTES)
        require_threshold(metadata.signed, Root.type, metadata, Rule.SELF_THRESHOLD)
        signed = metadata.signed
        return cls(data=data, version=signed.version, expires=expires_at(signed), _signed=signed)

    def update(self, data: bytes) -> TrustedRoot:
        """The next root, if ``data`` is version N+1 signed by N's threshold and its own."""
        new = parse_metadata(data, Root, limit=MAX_ROOT_BYTES)
        version = new.signed.version
        if version <= self.version:
            raise MetadataRefused(Rule.ROLLBACK, f"version {version} after {self.version}")
        if version != self.version + 1:
            raise MetadataRefused(
                Rule.SKIPPED_VERSION, f"version {version} after {self.version}, not the next"
            )
        require_threshold(self._signed, Root.type, new, Rule.THRESHOLD)
        require_threshold(new.signed, Root.type, new, Rule.SELF_THRESHOLD)
        return TrustedRoot(
            data=data, version=version, expires=expires_at(new.signed), _signed=new.signed
        )

    def verify_delegate(self, role: str, metadata: Metadata[Any], rule: Rule) -> None:
        """Refuse ``metadata`` with ``rule`` unless a threshold of ``role``'s keys signed it."""
        require_threshold(self._signed, role, metadata, rule)

    def threshold(self, role: str) -> int:
        """How many distinct keys of ``role`` (``root``, ``timestamp``) must sign."""
        return self._signed.roles[role].threshold

    def keyids(self, role: str) -> tuple[str, ...]:
        """The key ids ``role`` lists."""
        return tuple(self._signed.roles[role].keyids)

    def check_current(self, now: int) -> None:
        """Refuse to use this root at ``now`` if it has expired (TUF: expired at ``expires``)."""
        if now >= self.expires:
            raise MetadataRefused(
                Rule.EXPIRED, f"root version {self.version} expired at {iso_utc(self.expires)}"
            )


def require_threshold(delegator: Root, role: str, metadata: Metadata[Any], rule: Rule) -> None:
    """Refuse ``metadata`` with ``rule`` unless a threshold of ``role``'s distinct keys signed."""
    count = distinct_signers(delegator, role, metadata)
    threshold = delegator.roles[role].threshold
    if count < threshold:
        whose = "its own" if rule is Rule.SELF_THRESHOLD else f"root version {delegator.version}'s"
        raise MetadataRefused(rule, f"signed by {count} of {threshold} of {whose} {role} keys")
