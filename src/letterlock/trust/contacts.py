"""Contacts: the public identities one seals messages *to*. Pure: text in, text out.

A contact is not a trusted sender. Sealing to a key needs only that it is the right key (its
fingerprint, its check); accepting a message needs the sender policy (:class:`~letterlock.trust.
pins.Pins` and the others), which a contact never enters. Keeping the two apart means giving
someone your key to write to you does not let you accept what they send, and the other way
round.

Text format, one contact a line (``#`` starts a comment)::

    bob fingerprint-verified letterlock-x25519 BASE64...:CHECK
    carol file letterlock-p256 BASE64...:CHECK

The second field is the contact's :class:`Source`. Names follow the pins' ``NAME_RULE``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from letterlock.core.keys import PublicIdentity
from letterlock.errors import ParseError, UsageError
from letterlock.trust.pins import check_name

__all__ = ["Contact", "Contacts", "Source"]


class Source(enum.StrEnum):
    """Where a contact's key came from, weakest first."""

    PIN = "pin"  #: read from a pinned sender of a home made before contacts existed
    FILE = "file"  #: read from a file
    PASTED = "pasted"  #: read from standard input
    VERIFIED = "fingerprint-verified"  #: its fingerprint matched one given over another channel


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    name: str
    identity: PublicIdentity
    source: Source

    def to_line(self) -> str:
        return f"{self.name} {self.source} {self.identity.to_text()}"


class Contacts:
    """A contact book: a name maps to one key; changing it needs :meth:`remove` first."""

    def __init__(self, contacts: Iterable[Contact] = ()) -> None:
        self._by_name: dict[str, Contact] = {}
        for contact in contacts:
            self.add(contact.name, contact.identity, contact.source)

    def add(self, name: str, identity: PublicIdentity, source: Source) -> Contact:
        """Add ``identity`` as ``name``; the same key again keeps the stronger source."""
        check_name(name, "contact name")
        existing = self._by_name.get(name)
        if existing is not None:
            if existing.identity != identity:
                raise UsageError(
                    f"contact {name!r} is {existing.identity.fingerprint_text}, refusing the "
                    f"different key {identity.fingerprint_text} (remove the contact first)"
                )
            if _STRENGTH[source] <= _STRENGTH[existing.source]:
                return existing
        contact = Contact(name=name, identity=identity, source=source)
        self._by_name[name] = contact
        return contact

    def remove(self, name: str) -> Contact:
        try:
            return self._by_name.pop(name)
        except KeyError:
            raise UsageError(f"no contact named {name!r}") from None

    def get(self, name: str) -> Contact | None:
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Contact]:
        return iter(sorted(self._by_name.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._by_name)

    @classmethod
    def parse(cls, text: str) -> Contacts:
        """Read the contacts text; raises ParseError naming the bad line."""
        contacts = cls()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, source, key = [*line.split(maxsplit=2), "", ""][:3]
            try:
                identity, _ = PublicIdentity.from_text(key)
                contacts.add(name, identity, Source(source))
            except ValueError as exc:
                raise ParseError(f"line {number}: {exc}") from None
        return contacts

    def to_text(self) -> str:
        return "".join(contact.to_line() + "\n" for contact in self)


_STRENGTH = {source: rank for rank, source in enumerate(Source)}
