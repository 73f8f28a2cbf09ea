"""Keysets: an identity key certifies its encryption and signing keys, each with a lifetime
and a status.

Pure: bytes, time and keys in, decisions and bytes out (``docs/spec/keyset.md``). A
:class:`Keyset` is what the identity key signs: its encryption keys and its delegated signing
keys (Tink-style: an id, a :class:`Purpose` and a status, :class:`Status`), their lifetimes,
and the grace period during which a retired encryption key still opens the messages queued
for it. Rotation is four steps, each a method that returns the
next keyset (nothing is changed in place): :meth:`Keyset.add`, distribute (the caller hands
the signed text to its contacts), :meth:`Keyset.promote`, :meth:`Keyset.retire`, and after the
grace period :meth:`Keyset.destroy`. :data:`TRANSITIONS` is the state machine; the code reads it.

The decisions: :func:`sealing_key` (a sender seals to the primary key, only within its
lifetime) and :meth:`Keyset.opens_with` (a receiver opens with a key that is not destroyed
until the earlier of its retirement and the end of its lifetime, plus the grace period) for
encryption keys; :meth:`Keyset.signing_key` (a sender signs with the primary signing key,
only within its lifetime) and :meth:`Keyset.signs` (a receiver accepts a signature by a
signing key in service, within its lifetime at the message's time and at its own) for signing
keys (section 9). An encryption key never signs and a signing key never opens.
"""

from __future__ import annotations

import base64
import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.times import iso_utc
from letterlock.errors import ParseError, UsageError

__all__ = [
    "KEYSET_LABEL",
    "MAX_GRACE",
    "MAX_KEYS",
    "TRANSITIONS",
    "Key",
    "Keyset",
    "Purpose",
    "SignedKeyset",
    "Status",
    "sealing_key",
    "sign_keyset",
]

KEYSET_MAGIC: Final = b"LLE\x01"  # E: encryption keys (LLK starts an envelope)
KEYSET_LABEL: Final = b"letterlock/v1 keyset\x00"
TEXT_PREFIX: Final = "letterlock-keyset"
MAX_KEYS: Final = 64  # keys in one keyset, destroyed ones included
MAX_GRACE: Final = 366 * 86400  # a year: a longer grace defeats the point of rotating
MAX_TEXT: Final = 64 * 1024 * 3  # the text of a keyset of 64 pq keys fits well within this
_U64_MAX: Final = 2**64 - 1
_HEAD: Final = struct.Struct(">4s32sQQIB")  # magic, identity, version, issued, grace, count
_ENTRY: Final = struct.Struct(">IBBQQQH")  # id, purpose, status, not_before, not_after, retired


class Purpose(enum.IntEnum):
    """What a key in a keyset is for (section 2): each key serves one purpose only."""

    SIGN = 1  #: a delegated signing key: signs messages for the identity (section 9)
    ENCRYPT = 2  #: an encryption key: senders seal to it (section 5)


class Status(enum.IntEnum):
    """A key's status, in the order a key moves through them (section 3)."""

    ACTIVE = 1  #: opens messages; not sealed to (a new key, or a former primary)
    PRIMARY = 2  #: opens messages, and senders seal to it
    RETIRED = 3  #: opens messages queued for it until its deadline; never sealed to
    DESTROYED = 4  #: its private key is gone: opens nothing

    @property
    def in_service(self) -> bool:
        return self in (Status.ACTIVE, Status.PRIMARY)


#: The state machine (``docs/spec/keyset.md`` section 3): step -> {from: to}. Promoting a key
#: also moves the former primary to ACTIVE (the one move between the two in-service statuses).
TRANSITIONS: Final[dict[str, dict[Status, Status]]] = {
    "promote": {Status.ACTIVE: Status.PRIMARY},
    "retire": {Status.ACTIVE: Status.RETIRED},
    "destroy": {Status.RETIRED: Status.DESTROYED},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One key of a keyset: a v1 public identity, used for its encryption key only (purpose
    ENCRYPT) or for its signing key only (purpose SIGN)."""

    key_id: int
    purpose: Purpose
    status: Status
    public: PublicIdentity
    not_before: int
    not_after: int
    retired_at: int | None = None

    @property
    def service_end(self) -> int:
        """When senders stop sealing to it: its retirement, or the end of its lifetime."""
        if self.retired_at is None:
            return self.not_after
        return min(self.retired_at, self.not_after)

    def deadline(self, grace: int) -> int:
        """The first second at which it no longer opens anything (destroyed keys: never).

        A signing key opens nothing and has nothing queued for it: its deadline is its
        service end, without grace (it may be destroyed once retired)."""
        return self.service_end + (grace if self.purpose is Purpose.ENCRYPT else 0)

    def signs(self, *, created: int, now: int) -> bool:
        """True if this key, a signing key, vouches for a message created at ``created`` and
        verified at ``now``: in service, and within its lifetime at both times (section 9)."""
        return (
            self.purpose is Purpose.SIGN
            and self.status.in_service
            and self.not_before <= created < self.not_after
            and self.not_before <= now < self.not_after
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Keyset:
    """The keys an identity certifies; frozen: each step returns a new keyset, version + 1."""

    identity: bytes  #: the fingerprint of the identity key that signs it
    version: int
    issued: int
    grace: int
    keys: tuple[Key, ...]

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def start(cls, identity: PublicIdentity, *, now: int, lifetime: int, grace: int) -> Keyset:
        """Version 1: the identity key's own encryption key as key 0, primary.

        So a keyset begins with the key every contact already seals to (the identity's v1
        public identity), and the first rotation moves them off it.
        """
        first = Key(
            key_id=0, purpose=Purpose.ENCRYPT, status=Status.PRIMARY, public=identity,
            not_before=now, not_after=_add(now, lifetime),
        )  # fmt: skip
        return cls(identity=identity.fingerprint, version=1, issued=now, grace=grace,
                   keys=(first,))  # fmt: skip

    def key(self, key_id: int) -> Key:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise UsageError(f"the keyset has no key {key_id}")

    @property
    def primary(self) -> Key:
        """The primary encryption key (the one senders seal to)."""
        return next(
            key for key in self.keys
            if key.status is Status.PRIMARY and key.purpose is Purpose.ENCRYPT
        )  # fmt: skip

    @property
    def signing_primary(self) -> Key | None:
        """The primary signing key (the one the identity signs with), or None."""
        return next(
            (key for key in self.keys
             if key.status is Status.PRIMARY and key.purpose is Purpose.SIGN),
            None,
        )  # fmt: skip

    def signing_key(self, now: int) -> Key | None:
        """The key a sender signs with at ``now``: the primary signing key, within its
        lifetime; None if there is none (the identity key then signs itself)."""
        key = self.signing_primary
        if key is None or not key.not_before <= now < key.not_after:
            return None
        return key

    def signer(self, fingerprint: bytes) -> Key | None:
        """The signing key (purpose SIGN) whose fingerprint is ``fingerprint``, whatever its
        status; None if no signing key of this keyset has it (an encryption key never signs).
        """
        for key in self.keys:
            if key.purpose is Purpose.SIGN and key.public.fingerprint == fingerprint:
                return key
        return None

    def _next(self, keys: Iterable[Key], now: int, grace: int | None = None) -> Keyset:
        return Keyset(
            identity=self.identity, version=self.version + 1, issued=max(now, self.issued),
            grace=self.grace if grace is None else grace,
            keys=tuple(sorted(keys, key=lambda k: k.key_id)),
        )  # fmt: skip

    def add(
        self, public: PublicIdentity, *, now: int, lifetime: int, grace: int | None = None,
        purpose: Purpose = Purpose.ENCRYPT,
    ) -> Keyset:  # fmt: skip
        """Step 1: a new ACTIVE encryption key (opens at once; senders move to it when it is
        promoted), or a new signing key, PRIMARY at once (section 9: receivers learn it from
        the messages it signs); the former primary signing key becomes ACTIVE.

        ``grace`` replaces the keyset's grace period, as in :meth:`retire`.
        """
        if any(key.public == public for key in self.keys):
            raise UsageError(f"{public.fingerprint_text} is in the keyset already")
        signing = Purpose(purpose) is Purpose.SIGN
        new = Key(
            key_id=max(key.key_id for key in self.keys) + 1, purpose=Purpose(purpose),
            status=Status.PRIMARY if signing else Status.ACTIVE, public=public,
            not_before=now, not_after=_add(now, lifetime),
        )  # fmt: skip
        keys = [_demoted(k, Purpose.SIGN) for k in self.keys] if signing else list(self.keys)
        return self._next((*keys, new), now, grace)

    def promote(self, key_id: int, *, now: int) -> Keyset:
        """Step 3: ``key_id`` becomes the primary key of its purpose; the former primary of
        that purpose becomes ACTIVE."""
        key = self._moved(key_id, "promote")
        if not key.not_before <= now < key.not_after:
            raise UsageError(f"key {key_id} is outside its lifetime; add a new key instead")
        keys = [
            replace(k, status=Status.PRIMARY) if k.key_id == key_id else _demoted(k, key.purpose)
            for k in self.keys
        ]
        return self._next(keys, now)

    def retire(self, key_id: int, *, now: int, grace: int | None = None) -> Keyset:
        """Step 4: ``key_id`` stops serving now; it opens queued messages until its deadline.

        ``grace`` replaces the keyset's grace period (for every key: it is one setting). The
        primary signing key may be retired too (the identity key then signs itself again);
        the primary encryption key may not (promote another first).
        """
        key = self.key(key_id)
        if not (key.purpose is Purpose.SIGN and key.status is Status.PRIMARY):
            self._moved(key_id, "retire")
        keys = [replace(k, status=Status.RETIRED, retired_at=now) if k.key_id == key_id else k
                for k in self.keys]  # fmt: skip
        return self._next(keys, now, grace)

    def destroy(self, key_id: int, *, now: int, early: bool = False) -> Keyset:
        """Step 5: ``key_id``'s private key is to be deleted; refused before its deadline
        unless ``early`` (a compromised key: messages still queued for it are lost)."""
        key = self._moved(key_id, "destroy")
        if now < key.deadline(self.grace) and not early:
            raise UsageError(
                f"key {key_id} opens queued messages until {iso_utc(key.deadline(self.grace))} "
                "(its grace period); destroy it then, or now with the early option"
            )
        keys = [replace(k, status=Status.DESTROYED) if k.key_id == key_id else k
                for k in self.keys]  # fmt: skip
        return self._next(keys, now)

    def _moved(self, key_id: int, step: str) -> Key:
        key = self.key(key_id)
        if key.status not in TRANSITIONS[step]:
            raise UsageError(f"cannot {step} key {key_id}: it is {key.status.name.lower()}")
        return key

    def opens_with(self, now: int) -> tuple[Key, ...]:
        """The encryption keys that open messages at ``now``: not destroyed, and before their
        deadline. A signing key never opens anything."""
        return tuple(
            key for key in self.keys
            if key.purpose is Purpose.ENCRYPT and key.status is not Status.DESTROYED
            and now < key.deadline(self.grace)
        )  # fmt: skip

    def encode(self) -> bytes:
        parts = [_HEAD.pack(KEYSET_MAGIC, self.identity, self.version, self.issued, self.grace,
                            len(self.keys))]  # fmt: skip
        for key in self.keys:
            public = key.public.to_bytes()
            parts.append(_ENTRY.pack(
                key.key_id, key.purpose, key.status, key.not_before, key.not_after,
                key.retired_at or 0, len(public),
            ))  # fmt: skip
            parts.append(public)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Keyset:
        """Parse the canonical encoding (section 2); ParseError unless it is one."""
        data = bytes(data)
        if len(data) < _HEAD.size:
            raise ParseError("truncated keyset")
        magic, identity, version, issued, grace, count = _HEAD.unpack_from(data)
        if magic != KEYSET_MAGIC:
            raise ParseError("not a letterlock keyset")
        pos = _HEAD.size
        keys = []
        for _ in range(count):
            if len(data) < pos + _ENTRY.size:
                raise ParseError("truncated keyset")
            key_id, purpose, status, not_before, not_after, retired, size = _ENTRY.unpack_from(
                data, pos
            )
            pos += _ENTRY.size
            public = data[pos : pos + size]
            pos += size
            if len(public) != size:
                raise ParseError("truncated keyset")
            try:
                keys.append(Key(
                    key_id=key_id, purpose=Purpose(purpose), status=Status(status),
                    public=PublicIdentity(public), not_before=not_before, not_after=not_after,
                    retired_at=retired or None,
                ))  # fmt: skip
            except ValueError as exc:  # an unknown purpose or status, or a bad public key
                raise ParseError(f"keyset key {key_id}: {exc}") from None
        if pos != len(data):
            raise ParseError("trailing bytes after the keyset")
        try:
            keyset = cls(identity=identity, version=version, issued=issued, grace=grace,
                         keys=tuple(keys))  # fmt: skip
        except UsageError as exc:
            raise ParseError(str(exc)) from None
        return keyset


def _demoted(key: Key, purpose: Purpose) -> Key:
    """``key`` made ACTIVE if it is the primary key of ``purpose``, else ``key``."""
    if key.purpose is purpose and key.status is Status.PRIMARY:
        return replace(key, status=Status.ACTIVE)
    return key


def _add(now: int, seconds: int) -> int:
    if seconds < 1:
        raise UsageError("a key's lifetime is at least one second")
    return min(now + seconds, _U64_MAX)


def _check(keyset: Keyset) -> None:
    """The rules of section 2 (UsageError; :meth:`Keyset.decode` turns it into ParseError)."""
    if len(keyset.identity) != 32:
        raise UsageError("a keyset names its identity by its 32-byte fingerprint")
    if not 1 <= keyset.version <= _U64_MAX or not 0 <= keyset.issued <= _U64_MAX:
        raise UsageError("keyset version or time out of range")
    if not 0 <= keyset.grace <= MAX_GRACE:
        raise UsageError(f"the grace period is 0 to {MAX_GRACE} seconds")
    if not 1 <= len(keyset.keys) <= MAX_KEYS:
        raise UsageError(f"a keyset has 1 to {MAX_KEYS} keys")
    ids = [key.key_id for key in keyset.keys]
    if ids != sorted(set(ids)):
        raise UsageError("keyset keys must be in increasing order of id, each id once")
    if len({key.public for key in keyset.keys}) != len(keyset.keys):
        raise UsageError("a public key appears twice in the keyset")
    primaries = [key.purpose for key in keyset.keys if key.status is Status.PRIMARY]
    if primaries.count(Purpose.ENCRYPT) != 1:
        raise UsageError("a keyset has exactly one primary encryption key")
    if primaries.count(Purpose.SIGN) > 1:
        raise UsageError("a keyset has at most one primary signing key")
    suite = keyset.keys[0].public.suite
    for key in keyset.keys:
        if not 0 <= key.key_id < 2**32:
            raise UsageError("a key id is 0 to 2^32 - 1")
        if key.public.suite is not suite:
            raise UsageError("all keys of a keyset are of one suite")
        if not 0 <= key.not_before < key.not_after <= _U64_MAX:
            raise UsageError(f"key {key.key_id}: its lifetime ends before it begins")
        if (key.retired_at is None) != key.status.in_service:
            raise UsageError(f"key {key.key_id}: a retirement time goes with retired keys only")
        if key.retired_at is not None and not 0 < key.retired_at <= _U64_MAX:
            raise UsageError(f"key {key.key_id}: retirement time out of range")
        if key.key_id == 0 and (
            key.public.fingerprint != keyset.identity or key.purpose is not Purpose.ENCRYPT
        ):
            raise UsageError("key 0 is the identity key's own encryption key")
        if key.key_id != 0 and key.public.fingerprint == keyset.identity:
            raise UsageError("the identity key is key 0 or absent")


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedKeyset:
    """A keyset and the identity key's signature over it (section 4)."""

    keyset: Keyset
    encoded: bytes
    signature: bytes

    def to_text(self) -> str:
        return (
            f"{TEXT_PREFIX} {base64.b64encode(self.encoded).decode()} "
            f"{base64.b64encode(self.signature).decode()}"
        )

    @classmethod
    def from_text(cls, text: str, *, identity: PublicIdentity) -> SignedKeyset:
        """Parse and verify a keyset line against ``identity``; ParseError unless the line is
        canonical, names ``identity`` and carries its valid signature (section 4)."""
        if len(text) > MAX_TEXT:
            raise ParseError("keyset text too long")
        parts = text.strip().split(" ")
        if len(parts) != 3 or parts[0] != TEXT_PREFIX:
            raise ParseError("not a letterlock keyset line")
        encoded, signature = _b64(parts[1]), _b64(parts[2])
        keyset = Keyset.decode(encoded)
        if keyset.identity != identity.fingerprint:
            raise ParseError("the keyset is for a different identity")
        if not identity.verify(signature, KEYSET_LABEL + encoded):
            raise ParseError("the keyset is not signed by its identity key")
        return cls(keyset=keyset, encoded=encoded, signature=signature)


def _b64(text: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, and a ValueError for a non-ASCII character (fuzzing)
        raise ParseError("keyset line is not valid base64") from None
    if base64.b64encode(data).decode() != text:
        raise ParseError("keyset line is not canonical base64")
    return data


def sign_keyset(keyset: Keyset, identity: Identity) -> SignedKeyset:
    """``keyset`` signed by its identity key ``identity``."""
    if keyset.identity != identity.public.fingerprint:
        raise UsageError("a keyset is signed by the identity key it names")
    encoded = keyset.encode()
    return SignedKeyset(
        keyset=keyset, encoded=encoded, signature=identity.sign(KEYSET_LABEL + encoded)
    )


def sealing_key(keyset: Keyset, now: int) -> PublicIdentity:
    """The key a sender seals to at ``now``: the primary key, within its lifetime.

    A sender holding an older keyset seals to the key that was primary in it; the receiver
    opens with it until that key's deadline (retirement or end of lifetime, plus grace).
    """
    primary = keyset.primary
    if not primary.not_before <= now < primary.not_after:
        raise UsageError(
            f"the primary key ({primary.public.fingerprint_text}) of this keyset is outside "
            "its lifetime; ask its owner for their current keyset"
        )
    return primary.public
