"""Pinned senders: a known-senders list, like OpenSSH's ``known_hosts``. Pure: text in, text out.

Text format, one entry a line (``#`` starts a comment)::

    alice letterlock-p256 BASE64...
    @revoked mallory letterlock-p256 BASE64...

Names follow :data:`NAME_RULE` (ASCII letters, digits and ``. _ @ + -``). A name maps to
exactly one key; pinning a different key under a taken name fails hard and shows both
fingerprints. A ``@revoked`` key is known but refused (reason ``untrusted``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import ParseError, UsageError

__all__ = ["NAME_RULE", "Pin", "Pins", "check_name", "valid_name"]

_REVOKED = "@revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    name: str
    identity: PublicIdentity
    revoked: bool = False
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

    def to_line(self) -> str:
        line = f"{self.name} {self.identity.to_text()}"
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


class Pins:
    """A :class:`~letterlock.core.trust.TrustPolicy` admitting exactly the pinned keys."""

    def __init__(self, pins: Iterable[Pin] = ()) -> None:
        self._by_name: dict[str, Pin] = {}
        self._by_key: dict[bytes, Pin] = {}
        for pin in pins:
            self._insert(pin)

    def _insert(self, pin: Pin) -> None:
        check_name(pin.name)
        existing = self._by_name.get(pin.name)
        if existing is not None and existing.identity != pin.identity:
            raise UsageError(
                f"{pin.name!r} is pinned to {existing.identity.fingerprint_text}, "
                f"refusing the different key {pin.identity.fingerprint_text}"
            )
        other = self._by_key.get(pin.identity.fingerprint)
        if other is not None and other.name != pin.name:
            raise UsageError(f"this key is already pinned as {other.name!r}")
        if other is not None and other.revoked and not pin.revoked:
            raise UsageError(f"the key of {other.name!r} is revoked and cannot be pinned again")
        self._by_name[pin.name] = pin
        self._by_key[pin.identity.fingerprint] = pin

    def pin(self, name: str, identity: PublicIdentity) -> Pin:
        """Trust ``identity`` as ``name``. Re-pinning the same key is a no-op."""
        pin = Pin(name=name, identity=identity)
        self._insert(pin)
        return pin

    def revoke(self, name: str) -> None:
        existing = self._by_name.get(name)
        if existing is None:
            raise UsageError(f"no pin named {_shown(name)}")
        revoked = Pin(name=name, identity=existing.identity, revoked=True)
        self._by_name[name] = revoked
        self._by_key[existing.identity.fingerprint] = revoked

    def __iter__(self) -> Iterator[Pin]:
        return iter(sorted(self._by_name.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, name: str) -> Pin:
        return self._by_name[name]

    # TrustPolicy ----------------------------------------------------------------------

    def lookup(self, key_id: bytes) -> PublicIdentity | None:
        pin = self._by_key.get(bytes(key_id))
        return pin.identity if pin is not None else None

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        pin = self._by_key.get(sender.fingerprint)
        if pin is None:
            return Refusal(detail="not pinned")
        if pin.revoked:
            return Refusal(detail=f"pin {pin.name!r} is revoked")
        return pin.sender

    # text form ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Pins:
        """Read the known-senders text; raises ParseError naming the bad line."""
        pins = cls()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            revoked = line.startswith(_REVOKED + " ")
            if revoked:
                line = line[len(_REVOKED) :].strip()
            name, _, key = line.partition(" ")
            try:
                identity, _comment = PublicIdentity.from_text(key)
                pins._insert(Pin(name=name, identity=identity, revoked=revoked))
            except ValueError as exc:
                raise ParseError(f"line {number}: {exc}") from None
        return pins

    def to_text(self) -> str:
        return "".join(pin.to_line() + "\n" for pin in self)
