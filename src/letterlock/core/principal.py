"""Principals: who a sender is, named as ``ll://<trust-domain>/<path>`` or a SPIFFE ID.

A principal names a workload or a person across keys: a key is certified *as* a principal, and
rotates while the principal stays. ``spiffe://<trust-domain>/<path>`` IDs (the URI SAN of an
X.509-SVID) are principals as they are, so a workload with a SPIFFE identity needs no second
name. The rules follow the SPIFFE ID specification (section 2) for both schemes, so a name is
valid in one scheme exactly when it is valid in the other:

* the scheme is ``ll`` or ``spiffe`` (compared case-insensitively, written lowercase);
* the trust domain is 1 to 255 characters of ``a-z 0-9 . - _`` after ASCII letters are
  lowercased (it is a DNS-like name; ``ACME`` and ``acme`` are one domain);
* the path is zero or more segments, each ``/`` followed by 1 or more characters of
  ``A-Z a-z 0-9 . - _``, never ``.`` or ``..`` (no empty segments, so no ``//`` and no trailing
  ``/``); the path is case-sensitive;
* no user info, port, query, fragment or percent-encoding (none of those characters is
  allowed anywhere), and the whole name is at most :data:`MAX_PRINCIPAL` bytes.

Parsing is strict and normalises only the case of the scheme and the domain, so a name has one
written form, compared as a string. A :class:`Namespace` is a principal written with a trailing
``/``: ``ll://acme/payments/`` contains ``ll://acme/payments/billing`` and everything below it,
but not ``ll://acme/paymentsx`` and not ``ll://acme/payments`` itself; ``ll://acme/`` contains
every principal of the domain with at least one path segment.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from letterlock.errors import ParseError

__all__ = ["MAX_PRINCIPAL", "SCHEMES", "Namespace", "Principal"]

#: The longest principal, in bytes (the SPIFFE ID specification's limit for a SPIFFE ID).
MAX_PRINCIPAL: Final = 2048
MAX_TRUST_DOMAIN: Final = 255
SCHEMES: Final = ("ll", "spiffe")

_DOMAIN: Final = re.compile(r"[a-z0-9._-]+")
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._-]+")


def _split(text: object, what: str, *, namespace: bool) -> tuple[str, str, tuple[str, ...]]:
    """(scheme, domain, segments) of ``text``, normalised; ParseError naming the broken rule."""
    if not isinstance(text, str):
        raise ParseError(f"a {what} is a string, not {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PRINCIPAL:
        raise ParseError(f"a {what} is at most {MAX_PRINCIPAL} bytes")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower() if scheme.isascii() else scheme
    if not sep or scheme not in SCHEMES:
        raise ParseError(f"{what} {text[:80]!r} must start with ll:// or spiffe://")
    domain, slash, path = rest.partition("/")
    domain = domain.lower() if domain.isascii() else domain
    if not domain or len(domain) > MAX_TRUST_DOMAIN or not _DOMAIN.fullmatch(domain):
        raise ParseError(
            f"{what} {text[:80]!r}: the trust domain must be 1 to {MAX_TRUST_DOMAIN} characters "
            "of a-z 0-9 . - _ (no user info, port, query or fragment)"
        )
    if namespace:
        if not slash:
            raise ParseError(f"{what} {text[:80]!r} must end with '/'")
        if path and not path.endswith("/"):
            raise ParseError(f"{what} {text[:80]!r} must end with '/'")
        if path == "/":
            raise ParseError(f"{what} {text[:80]!r} has an empty path segment")
        path = path[:-1]
    elif slash and not path:
        raise ParseError(f"{what} {text[:80]!r} must not end with '/'")
    segments = tuple(path.split("/")) if path else ()
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ParseError(
                f"{what} {text[:80]!r}: each path segment is 1 or more of A-Z a-z 0-9 . - _, "
                "not '.' or '..' (no empty segments, query, fragment or percent-encoding)"
            )
    return scheme, domain, segments


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """A parsed principal; ``str()`` is its one written form. Build with :meth:`parse`."""

    scheme: str
    trust_domain: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Principal:
        """``text`` as a principal (module rules); ParseError if it breaks one."""
        scheme, domain, segments = _split(text, "principal", namespace=False)
        return cls(scheme=scheme, trust_domain=domain, segments=segments)

    @property
    def path(self) -> str:
        return "".join("/" + segment for segment in self.segments)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.trust_domain}{self.path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace:
    """A subtree of principals, written with a trailing ``/``. Build with :meth:`parse`."""

    scheme: str
    trust_domain: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Namespace:
        """``text`` (ending in ``/``) as a namespace; ParseError if it breaks a rule."""
        scheme, domain, segments = _split(text, "namespace", namespace=True)
        return cls(scheme=scheme, trust_domain=domain, segments=segments)

    def contains(self, principal: Principal) -> bool:
        """True if ``principal`` lies strictly below this namespace (segment by segment)."""
        n = len(self.segments)
        return (
            principal.scheme == self.scheme
            and principal.trust_domain == self.trust_domain
            and len(principal.segments) > n
            and principal.segments[:n] == self.segments
        )

    def within(self, other: Namespace) -> bool:
        """True if every principal this namespace contains, ``other`` contains too."""
        n = len(other.segments)
        return (
            self.scheme == other.scheme
            and self.trust_domain == other.trust_domain
            and self.segments[:n] == other.segments
        )

    def __str__(self) -> str:
        return f"{self.scheme}://{self.trust_domain}/" + "".join(s + "/" for s in self.segments)
