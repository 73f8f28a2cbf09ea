"""Pinned senders: a known-senders list, like OpenSSH's ``known_hosts``. Pure: text in, text out.

Text format, one entry a line (``#`` starts a comment)::

    alice letterlock-p256 BASE64...:CHECK
    topics=orders.#,billing.* billing letterlock-x25519 BASE64...:CHECK
    @revoked mallory letterlock-p256 BASE64...:CHECK

Names follow :data:`NAME_RULE` (ASCII letters, digits and ``. _ @ + -``). A name maps to
exactly one key; pinning a different key under a taken name fails hard and shows both
fingerprints. A ``@revoked`` key is known but refused (reason ``untrusted``). A pin with
``topics=`` may publish only on topics one of its patterns matches (any broker's syntax,
normalised by :class:`~letterlock.trust.scope.ScopePattern`); a pin without may publish on any.

A pinned key changes only by a :class:`Rotation` the old key signed (:meth:`Pins.rotate`), and
an unknown name is pinned without the caller's say-so only when trust-on-first-use is switched
on (:meth:`Pins.first_use`; off by default). Lines written before key lines had a check are
read (this file is the receiver's own); the next write adds the check.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.topics import Dialect
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import ParseError, UsageError
from letterlock.trust.scope import ANY, ONE, ScopePattern, Slot

__all__ = [
    "NAME_RULE",
    "ROTATION_LABEL",
    "Pin",
    "PinRefusal",
    "PinWhy",
    "Pins",
    "Rotation",
    "check_name",
    "parse_topics",
    "sign_rotation",
    "valid_name",
]

_REVOKED = "@revoked"
_TOPICS = "topics="


class PinWhy(enum.Enum):
    """Why :meth:`Pins.admit` refused a sender (the ``why`` of a :class:`PinRefusal`)."""

    NOT_PINNED = "not pinned"
    REVOKED = "revoked"
    TOPIC = "topic outside the pin's patterns"


@dataclass(frozen=True, slots=True, kw_only=True)
class PinRefusal(Refusal):
    """A refusal by :class:`Pins`, with a typed ``why`` (``reason`` stays ``untrusted``)."""

    why: PinWhy = PinWhy.NOT_PINNED


def _pattern_text(pattern: ScopePattern) -> str:
    return str(pattern)


def _pattern_from_text(text: str) -> ScopePattern:
    """Read a stored pattern: AMQP ``*``/``#`` over ``/`` if it has one, else over ``.``."""
    separator = "/" if "/" in text and "." not in text else "."
    slots: dict[str, Slot] = {"*": ONE, "#": ANY}
    return ScopePattern.of(separator, [slots.get(word, word) for word in text.split(separator)])


def parse_topics(
    patterns: Iterable[str], dialect: Dialect = Dialect.AMQP
) -> tuple[ScopePattern, ...]:
    """Publish patterns for a pin, written in ``dialect``; UsageError if one cannot be stored.

    A pattern is stored as its normalised text (``*`` and ``#`` over its separator) in a
    comma-separated field, so its words may not hold ``,``, spaces or the other separator.
    """
    parsed = []
    for text in patterns:
        pattern = ScopePattern.parse(text, dialect)
        written = _pattern_text(pattern)
        if (
            "," in written
            or any(c.isspace() for c in written)
            or (_pattern_from_text(written) != pattern)
        ):
            raise UsageError(f"topic pattern {text!r} cannot be stored in a pin")
        parsed.append(pattern)
    return tuple(parsed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    name: str
    identity: PublicIdentity
    revoked: bool = False
    #: Patterns of the topics this sender may publish on; empty: any topic.
    topics: tuple[ScopePattern, ...] = ()
    #: Who this pin says signed, as :func:`letterlock.open` reports it (built once).
    sender: VerifiedSender = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        verified = VerifiedSender(
            name=self.name,
            fingerprint=self.identity.fingerprint_text,
            key_id=self.identity.fingerprint,
            suite=self.identity.suite,
            via=Via.PIN,
        )
        object.__setattr__(self, "sender", verified)

    def may_publish(self, topic: str) -> bool:
        return not self.topics or any(pattern.matches(topic) for pattern in self.topics)

    def to_line(self) -> str:
        line = f"{self.name} {self.identity.to_text()}"
        if self.topics:
            line = f"{_TOPICS}{','.join(_pattern_text(p) for p in self.topics)} {line}"
        return f"{_REVOKED} {line}" if self.revoked else line


#: What a name may be: the names of pins, and of the CLI's own identities. ASCII only, so no
#: look-alike letters, control characters, bidi overrides, spaces or commas: a name shown is
#: the name stored, fits in a comma-separated list, and is a safe file name.
NAME_RULE: Final = "1-64 characters of A-Z a-z 0-9 . _ @ + - starting with a letter or digit"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def valid_name(name: str) -> bool:
    """True if ``name`` follows :data:`NAME_RULE`."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: str, what: str = "pin name") -> str:
    """``name`` if it follows :data:`NAME_RULE`; UsageError (showing at most 40 chars) if not."""
    if not valid_name(name):
        raise UsageError(f"{what} {_shown(name)} must be {NAME_RULE}")
    return name


def _shown(name: str, limit: int = 40) -> str:
    return repr(name) if len(name) <= limit else repr(name[: limit - 3]) + "..."


# rotation statements ------------------------------------------------------------------

#: What the old key signs before the statement (docs/spec/envelope-v1.md section 3.4).
ROTATION_LABEL: Final = b"letterlock/v1 key rotation\x00"
_ROTATION_PREFIX: Final = "letterlock-rotation"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """ "The key ``old`` is replaced by ``new`` as of ``at``", signed by the old key.

    Build one with :func:`sign_rotation`; :meth:`Pins.rotate` checks the signature against the
    pinned key, never against anything the statement says about itself.
    """

    old: bytes  # fingerprint of the old public identity
    new: PublicIdentity
    at: int  # seconds since the Unix epoch
    signature: bytes = field(repr=False)

    @property
    def signed(self) -> bytes:
        return ROTATION_LABEL + self.old + struct.pack(">Q", self.at) + self.new.to_bytes()

    def to_text(self) -> str:
        """One line: ``letterlock-rotation <base64 statement> <base64 signature>``."""
        body = self.signed[len(ROTATION_LABEL) :]
        return (
            f"{_ROTATION_PREFIX} {base64.b64encode(body).decode()} "
            f"{base64.b64encode(self.signature).decode()}"
        )

    @classmethod
    def from_text(cls, line: str) -> Rotation:
        """Parse :meth:`to_text` output (the signature is not checked here); ParseError if bad."""
        parts = line.split()
        if len(parts) != 3 or parts[0] != _ROTATION_PREFIX:
            raise ParseError("not a letterlock rotation statement")
        try:
            body = base64.b64decode(parts[1], validate=True)
            signature = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise ParseError("rotation statement is not valid base64") from None
        if len(body) < 40:
            raise ParseError("rotation statement is truncated")
        (at,) = struct.unpack_from(">Q", body, 32)
        return cls(old=body[:32], new=PublicIdentity(body[40:]), at=at, signature=signature)


def sign_rotation(old: Identity, new: PublicIdentity, *, at: int) -> Rotation:
    """A statement, signed by ``old``, that ``new`` replaces it from time ``at``."""
    if not 0 <= at < 2**64:
        raise UsageError("a rotation's time is seconds since the epoch, 0 to 2^64 - 1")
    unsigned = Rotation(old=old.public.fingerprint, new=new, at=at, signature=b"")
    return Rotation(old=unsigned.old, new=new, at=at, signature=old.sign(unsigned.signed))


class Pins:
    """A :class:`~letterlock.core.trust.TrustPolicy` admitting exactly the pinned keys.

    ``tofu`` switches trust-on-first-use on for :meth:`first_use` (off by default).
    """

    def __init__(self, pins: Iterable[Pin] = (), *, tofu: bool = False) -> None:
        self._by_name: dict[str, Pin] = {}
        self._by_key: dict[bytes, Pin] = {}
        self.tofu = tofu
        for pin in pins:
            self._insert(pin)

    def _insert(self, pin: Pin) -> None:
        check_name(pin.name)
        existing = self._by_name.get(pin.name)
        if existing is not None and existing.identity != pin.identity:
            raise UsageError(
                f"{pin.name!r} is pinned to {existing.identity.fingerprint_text}, "
                f"refusing the different key {pin.identity.fingerprint_text} "
                "(a new key is accepted only with a rotation statement signed by the old one)"
            )
        other = self._by_key.get(pin.identity.fingerprint)
        if other is not None and other.name != pin.name:
            raise UsageError(f"this key is already pinned as {other.name!r}")
        if other is not None and other.revoked and not pin.revoked:
            raise UsageError(f"the key of {other.name!r} is revoked and cannot be pinned again")
        self._by_name[pin.name] = pin
        self._by_key[pin.identity.fingerprint] = pin

    def pin(
        self, name: str, identity: PublicIdentity, *, topics: Sequence[ScopePattern] = ()
    ) -> Pin:
        """Trust ``identity`` as ``name`` (on ``topics`` only, if given).

        Re-pinning the same key is a no-op, unless ``topics`` are given: they replace the old.
        """
        existing = self._by_name.get(name)
        if (
            existing is not None
            and existing.identity == identity
            and not (topics or existing.revoked)
        ):
            return existing
        pin = Pin(name=name, identity=identity, topics=tuple(topics))
        self._insert(pin)
        return pin

    def first_use(self, name: str, identity: PublicIdentity) -> Pin:
        """``name``'s pin if it holds ``identity``; else pin it, only if trust-on-first-use is on.

        A name pinned to another key is refused either way (a changed key is never first use).
        """
        existing = self._by_name.get(name)
        if existing is None and not self.tofu:
            raise UsageError(
                f"{_shown(name)} is not pinned and trust-on-first-use is off: pin its key first"
            )
        return (
            existing
            if existing is not None and existing.identity == identity
            else (self.pin(name, identity))
        )

    def rotate(self, name: str, rotation: Rotation) -> Pin:
        """Move pin ``name`` to ``rotation.new`` if the pinned key signed the rotation.

        The new pin keeps the old one's topics; the old key is no longer known.
        """
        existing = self._by_name.get(name)
        if existing is None:
            raise UsageError(f"no pin named {_shown(name)}")
        if existing.revoked:
            raise UsageError(f"pin {name!r} is revoked; a revoked key cannot rotate")
        old = existing.identity
        if rotation.old != old.fingerprint or not old.verify(rotation.signature, rotation.signed):
            raise UsageError(
                f"the rotation of {name!r} is not signed by its pinned key {old.fingerprint_text}"
            )
        if rotation.new == old:
            return existing
        if rotation.new.fingerprint in self._by_key:
            raise UsageError("the new key is already pinned")
        del self._by_key[old.fingerprint]
        del self._by_name[name]
        pin = Pin(name=name, identity=rotation.new, topics=existing.topics)
        self._insert(pin)
        return pin

    def revoke(self, name: str) -> None:
        existing = self._by_name.get(name)
        if existing is None:
            raise UsageError(f"no pin named {_shown(name)}")
        revoked = Pin(name=name, identity=existing.identity, revoked=True, topics=existing.topics)
        self._by_name[name] = revoked
        self._by_key[existing.identity.fingerprint] = revoked

    def __iter__(self) -> Iterator[Pin]:
        return iter(sorted(self._by_name.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Pin:
        return self._by_name[name]

    def pin_of(self, key_id: bytes) -> Pin | None:
        """The pin of the key ``key_id`` (a fingerprint), revoked or not; None if unpinned."""
        return self._by_key.get(bytes(key_id))

    # TrustPolicy ----------------------------------------------------------------------

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        pin = self._by_key.get(bytes(key_id))
        return pin.identity if pin is not None else None

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        pin = self._by_key.get(sender.fingerprint)
        if pin is None:
            return PinRefusal(detail="not pinned", why=PinWhy.NOT_PINNED)
        if pin.revoked:
            return PinRefusal(detail=f"pin {pin.name!r} is revoked", why=PinWhy.REVOKED)
        if not pin.may_publish(context.topic):
            return PinRefusal(
                detail=f"pin {pin.name!r} may not publish on this topic", why=PinWhy.TOPIC
            )
        return pin.sender

    # text form ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, tofu: bool = False) -> Pins:
        """Read the known-senders text; raises ParseError naming the bad line.

        Key lines without a check are accepted: this is the receiver's own file, written
        before checks existed (the check guards what people type and paste, at pin time).
        """
        pins = cls(tofu=tofu)
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            revoked = line.startswith(_REVOKED + " ")
            if revoked:
                line = line[len(_REVOKED) :].strip()
            try:
                topics: tuple[ScopePattern, ...] = ()
                if line.startswith(_TOPICS):
                    field_, _, line = line.partition(" ")
                    topics = tuple(_pattern_from_text(t) for t in field_[len(_TOPICS) :].split(","))
                name, _, key = line.strip().partition(" ")
                identity, _comment = PublicIdentity.from_text(key, allow_unchecked=True)
                pins._insert(Pin(name=name, identity=identity, revoked=revoked, topics=topics))
            except ValueError as exc:
                raise ParseError(f"line {number}: {exc}") from None
        return pins

    def to_text(self) -> str:
        return "".join(pin.to_line() + "\n" for pin in self)
