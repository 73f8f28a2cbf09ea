"""Scoped credentials: an authority certifies a principal's key, or another authority's.

The format is ``docs/spec/credentials.md`` (normative; this module follows it). A credential
binds a subject's public identity to a name and a scope, signed by its issuer:

* ``kind`` AUTHORITY: the subject is an authority (a name such as ``payments``) that may
  itself issue credentials, within this scope and at most ``max_depth`` further authorities
  deep; ``kind`` PRINCIPAL: the subject is a sender, named by a principal.
* the scope: a principal ``namespace``, ``roles``, ``publish`` and ``consume`` topic patterns
  (:class:`~letterlock.trust.scope.ScopePattern`), and the lifetime
  ``not_before <= now < not_after``.

**Delegation only narrows, by intersection.** :func:`verify_chain` walks from an
:class:`Anchor` (an authority the receiver trusts, with the scope the receiver gives it) down to
the sender's key, and the scope it returns is the intersection of every link's: a topic is
allowed when it matches a pattern of *every* link, a role is held when every authority link
lists it, the principal must lie in every link's namespace, and the depth is bounded by the
smallest ``max_depth`` along the chain. A credential's own claim is never taken for its
effective scope. A child that claims more than its parent is therefore *narrowed*, not refused:
its surplus grants nothing. We chose narrowing over refusing because refusing needs a
containment test (:func:`~letterlock.trust.scope.covers`) run on hostile bytes on every chain,
and a wrong answer there would admit; intersection is one match per link and cannot widen
(X.509 name constraints intersect the same way, RFC 5280 section 4.2.1.10). A verified chain
still shows what a credential claimed beyond its issuer (:meth:`Chain.surplus`, with
:func:`~letterlock.trust.scope.covers`), for ``letterlock trust check``.

Lifetimes are checked at verification time (``now`` is an argument), not when a credential is
loaded: a chain cached while valid is refused once any link expires.

Pure: bytes and time in, decisions out.
"""

from __future__ import annotations

import base64
import binascii
import enum
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.principal import Namespace, Principal
from letterlock.core.suites import Suite
from letterlock.core.times import iso_utc
from letterlock.errors import ParseError, UsageError
from letterlock.trust.pins import valid_name
from letterlock.trust.scope import ANY, ONE, ScopePattern, Slot, covers

__all__ = [
    "MAGIC",
    "Anchor",
    "Chain",
    "ChainRefusal",
    "Credential",
    "Kind",
    "Scope",
    "VerifiedSignatures",
    "Why",
    "issue",
    "parse_credentials",
    "verify_chain",
]

MAGIC: Final = b"LLC\x01"
SIGNING_LABEL: Final = b"letterlock/v1 credential\x00"
TEXT_PREFIX: Final = "letterlock-credential"
KEY_ID_SIZE: Final = 32
MAX_ROLES: Final = 64
MAX_PATTERNS: Final = 64
MAX_DEPTH: Final = 8  #: the largest max_depth a credential may state
MAX_CHAIN: Final = MAX_DEPTH + 1  #: credentials in a chain: authorities, then the principal's
_SEGMENT_LITERAL, _SEGMENT_ONE, _SEGMENT_ANY = 0, 1, 2


class Kind(enum.IntEnum):
    """What a credential's subject is."""

    AUTHORITY = 1  #: an authority, which may issue credentials in turn
    PRINCIPAL = 2  #: a sender, named by a principal


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What a credential grants: names, roles and topics (intersected along a chain)."""

    namespace: Namespace
    roles: frozenset[str] = frozenset()
    publish: tuple[ScopePattern, ...] = ()
    consume: tuple[ScopePattern, ...] = ()


_PARSED: Final = object()  # only the parser makes Credentials: their fields are their bytes


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Credential:
    """A signed credential. Build with :func:`issue`, read with :meth:`parse`.

    ``encoded`` is the whole credential; ``issuer_key_id`` the issuer's fingerprint. Every
    field is read from ``encoded`` by the parser (nothing else may construct one), so the
    signature over the bytes covers the fields; equality and hashing are on the bytes.
    """

    issuer_suite: Suite
    issuer_key_id: bytes
    kind: Kind
    subject: str  # an authority name (AUTHORITY) or a principal (PRINCIPAL)
    subject_identity: PublicIdentity
    not_before: int
    not_after: int
    max_depth: int
    scope: Scope
    signature: bytes
    encoded: bytes = field(repr=False)
    #: The subject as a parsed principal (kind PRINCIPAL), else None; derived from ``subject``.
    principal: Principal | None = field(default=None, repr=False, compare=False)
    _made_by: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._made_by is not _PARSED:
            raise UsageError("make a Credential with issue() or Credential.parse()")
        object.__setattr__(self, "_made_by", None)  # so that dataclasses.replace() fails too

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credential):
            return NotImplemented
        return self.encoded == other.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    @property
    def signed(self) -> bytes:
        """What the issuer signed: the label and every byte before the signature."""
        return SIGNING_LABEL + self.encoded[: -len(self.signature)]

    @classmethod
    def parse(cls, data: bytes) -> Credential:
        """Strictly parse a credential (spec section 3); ParseError for any departure."""
        return _parse(bytes(data))

    def to_text(self) -> str:
        """One line: ``letterlock-credential <standard base64>`` (spec section 3)."""
        return f"{TEXT_PREFIX} {base64.b64encode(self.encoded).decode('ascii')}"

    @classmethod
    def from_text(cls, line: str) -> Credential:
        """Parse :meth:`to_text` output (a comment after the base64 is ignored)."""
        parts = line.strip().split(maxsplit=2)
        if len(parts) < 2 or parts[0] != TEXT_PREFIX:
            raise ParseError(f"not a {TEXT_PREFIX} line")
        try:
            encoded = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise ParseError("credential is not valid base64") from None
        return cls.parse(encoded)


def parse_credentials(text: str) -> tuple[Credential, ...]:
    """Credentials in their text form, one a line (blank lines and ``#`` comments skipped);
    ParseError naming the first bad line."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(Credential.from_text(line))
        except ParseError as exc:
            raise ParseError(f"line {number}: {exc}") from None
    return tuple(found)


# ------------------------------------------------------------------------------ encoding


def _text(value: str, what: str) -> bytes:
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise UsageError(f"{what} {value!r} must not contain control characters")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} {value!r} is not valid UTF-8 text") from None


def _pattern_bytes(pattern: ScopePattern) -> bytes:
    if len(pattern.segments) > 255:
        raise UsageError(f"a credential's pattern has at most 255 segments: {pattern}")
    out = [pattern.separator.encode("ascii"), bytes([len(pattern.segments)])]
    for segment in pattern.segments:
        if segment is ONE:
            out.append(bytes([_SEGMENT_ONE]))
        elif segment is ANY:
            out.append(bytes([_SEGMENT_ANY]))
        else:
            word = _text(str(segment), "a topic word")
            if len(word) > 255:
                raise UsageError(f"a credential's topic word is at most 255 bytes: {pattern}")
            out.append(bytes([_SEGMENT_LITERAL, len(word)]) + word)
    return b"".join(out)


def _patterns_bytes(patterns: Iterable[ScopePattern]) -> bytes:
    encoded = sorted({_pattern_bytes(p) for p in patterns})
    if len(encoded) > MAX_PATTERNS:
        raise UsageError(f"at most {MAX_PATTERNS} patterns per scope")
    return bytes([len(encoded)]) + b"".join(encoded)


def _body(
    *,
    issuer: PublicIdentity,
    kind: Kind,
    subject: str,
    subject_identity: PublicIdentity,
    not_before: int,
    not_after: int,
    max_depth: int,
    scope: Scope,
) -> bytes:
    name = subject.encode("utf-8")
    key = subject_identity.to_bytes()
    namespace = str(scope.namespace).encode("ascii")
    roles = sorted(role.encode("ascii") for role in scope.roles)
    out = [
        MAGIC,
        bytes([issuer.suite.value]),
        issuer.fingerprint,
        bytes([kind.value]),
        struct.pack(">H", len(name)),
        name,
        struct.pack(">H", len(key)),
        key,
        struct.pack(">QQB", not_before, not_after, max_depth),
        struct.pack(">H", len(namespace)),
        namespace,
        bytes([len(roles)]),
        *(bytes([len(role)]) + role for role in roles),
        _patterns_bytes(scope.publish),
        _patterns_bytes(scope.consume),
    ]
    return b"".join(out)


def issue(
    issuer: Identity,
    *,
    kind: Kind,
    subject: str,
    subject_identity: PublicIdentity,
    not_before: int,
    not_after: int,
    scope: Scope,
    max_depth: int = 0,
) -> Credential:
    """A credential signed by ``issuer`` (UsageError for a field the format does not allow)."""
    _check_subject(kind, subject, max_depth, UsageError)
    if not 0 <= not_before < not_after < 2**64:
        raise UsageError("a credential needs 0 <= not_before < not_after < 2**64")
    for role in scope.roles:
        if not valid_name(role):
            raise UsageError(f"role {role[:40]!r} must be a name (letterlock.trust.pins.NAME_RULE)")
    if len(scope.roles) > MAX_ROLES:
        raise UsageError(f"at most {MAX_ROLES} roles")
    body = _body(
        issuer=issuer.public,
        kind=kind,
        subject=subject,
        subject_identity=subject_identity,
        not_before=not_before,
        not_after=not_after,
        max_depth=max_depth,
        scope=scope,
    )
    signature = issuer.sign(SIGNING_LABEL + body)
    return Credential.parse(body + signature)


def _check_subject(kind: Kind, subject: str, max_depth: int, error: type[ValueError]) -> None:
    if kind is Kind.PRINCIPAL:
        if max_depth != 0:
            raise error("a principal's credential has max_depth 0")
        try:
            canonical = str(Principal.parse(subject))
        except ParseError as exc:
            raise error(str(exc)) from None
        if canonical != subject:
            raise error(f"principal {subject!r} is not in its normal form {canonical!r}")
    elif not valid_name(subject):
        raise error(f"authority name {subject[:40]!r} must follow letterlock's NAME_RULE")
    if not 0 <= max_depth <= MAX_DEPTH:
        raise error(f"max_depth is 0 to {MAX_DEPTH}")


# ------------------------------------------------------------------------------ parsing


class _Reader:
    """Big-endian fields; running out of bytes, or a rule broken, is a ParseError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise ParseError("credential is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def text(self, n: int, what: str) -> str:
        raw = self.take(n)
        try:
            value = raw.decode("utf-8")  # strict: no surrogates, no overlong forms
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not well-formed UTF-8") from None
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ParseError(f"{what} contains a control character")
        return value


def _parse_pattern(reader: _Reader) -> ScopePattern:
    separator = reader.take(1)
    count = reader.uint(1)
    segments: list[str | Slot] = []
    for _ in range(count):
        tag = reader.uint(1)
        if tag == _SEGMENT_ONE:
            segments.append(ONE)
        elif tag == _SEGMENT_ANY:
            segments.append(ANY)
        elif tag == _SEGMENT_LITERAL:
            segments.append(reader.text(reader.uint(1), "a topic word"))
        else:
            raise ParseError(f"unknown pattern segment tag {tag}")
    try:
        pattern = ScopePattern.of(separator.decode("latin-1"), segments)
    except UsageError as exc:
        raise ParseError(f"bad topic pattern: {exc}") from None
    if pattern.segments != tuple(segments):
        raise ParseError(f"topic pattern {pattern} is not in canonical form")
    return pattern


def _parse_patterns(reader: _Reader) -> tuple[ScopePattern, ...]:
    count = reader.uint(1)
    if count > MAX_PATTERNS:
        raise ParseError(f"more than {MAX_PATTERNS} patterns")
    patterns, previous = [], b""
    for _ in range(count):
        start = reader.pos
        patterns.append(_parse_pattern(reader))
        encoded = reader.data[start : reader.pos]
        if encoded <= previous:
            raise ParseError("patterns are not in strictly ascending order")
        previous = encoded
    return tuple(patterns)


def _parse(data: bytes) -> Credential:
    reader = _Reader(data)
    if reader.take(4) != MAGIC:
        raise ParseError("not a letterlock credential (version 1)")
    try:
        issuer_suite = Suite(reader.uint(1))
    except ValueError:
        raise ParseError("credential of an unknown issuer suite") from None
    issuer_key_id = reader.take(KEY_ID_SIZE)
    try:
        kind = Kind(reader.uint(1))
    except ValueError:
        raise ParseError("unknown credential kind") from None
    subject = reader.text(reader.uint(2), "the subject")
    subject_identity = PublicIdentity(reader.take(reader.uint(2)))  # ParseError if not one
    not_before, not_after, max_depth = reader.uint(8), reader.uint(8), reader.uint(1)
    _check_subject(kind, subject, max_depth, ParseError)
    if not not_before < not_after:
        raise ParseError("not_before must be before not_after")
    namespace_text = reader.text(reader.uint(2), "the namespace")
    namespace = Namespace.parse(namespace_text)
    if str(namespace) != namespace_text:
        raise ParseError(f"namespace {namespace_text!r} is not in its normal form")
    role_count = reader.uint(1)
    if role_count > MAX_ROLES:
        raise ParseError(f"more than {MAX_ROLES} roles")
    roles: list[str] = []
    for _ in range(role_count):
        role = reader.text(reader.uint(1), "a role")
        if not valid_name(role):
            raise ParseError(f"role {role[:40]!r} is not a valid name")
        if roles and role.encode() <= roles[-1].encode():
            raise ParseError("roles are not in strictly ascending order")
        roles.append(role)
    publish = _parse_patterns(reader)
    consume = _parse_patterns(reader)
    signature = reader.take(issuer_suite.sizes.signature)
    if reader.pos != len(data):
        raise ParseError("trailing bytes after the credential's signature")
    return Credential(
        issuer_suite=issuer_suite,
        issuer_key_id=issuer_key_id,
        kind=kind,
        subject=subject,
        subject_identity=subject_identity,
        not_before=not_before,
        not_after=not_after,
        max_depth=max_depth,
        scope=Scope(namespace=namespace, roles=frozenset(roles), publish=publish, consume=consume),
        signature=signature,
        encoded=data,
        principal=Principal.parse(subject) if kind is Kind.PRINCIPAL else None,
        _made_by=_PARSED,
    )


# ------------------------------------------------------------------------------ chains


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """A root authority the receiver trusts, and the scope the receiver gives it.

    ``roles`` None: the anchor does not restrict roles (its credentials' roles stand).
    The default publish and consume patterns (``#``) grant every topic.
    """

    name: str
    identity: PublicIdentity
    namespace: Namespace
    max_depth: int = 0
    roles: frozenset[str] | None = None
    publish: tuple[ScopePattern, ...] = (ScopePattern.of(".", [ANY]),)
    consume: tuple[ScopePattern, ...] = (ScopePattern.of(".", [ANY]),)

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise UsageError(f"anchor name {self.name[:40]!r} must follow NAME_RULE")
        if not 0 <= self.max_depth <= MAX_DEPTH:
            raise UsageError(f"an anchor's max_depth is 0 to {MAX_DEPTH}")


class Why(enum.StrEnum):
    """Why a chain is refused: a code for logs (the message fails as ``untrusted``)."""

    NOT_A_CHAIN = "not_a_chain"  # no credentials, or kinds out of order
    WRONG_ISSUER = "wrong_issuer"  # a link not issued by the key above it
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    TOO_DEEP = "too_deep"  # more authorities than a max_depth along the chain allows
    OUTSIDE_NAMESPACE = "outside_namespace"
    TOPIC_OUTSIDE_SCOPE = "topic_outside_scope"
    NO_CHAIN = "no_chain"  # no credentials lead from the key to an anchor (yet)

    @property
    def transient(self) -> bool:
        """True when the same chain may pass later: not valid yet, or a link not yet known."""
        return self in (Why.NOT_YET_VALID, Why.NO_CHAIN)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainRefusal:
    why: Why
    detail: str = ""
    link: int | None = None  # index in the chain (0: the credential the anchor issued)


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    """A verified chain: who the sender is and the scope it *effectively* holds.

    ``publish`` and ``consume`` hold one tuple of patterns per link (the anchor's first): a topic
    is allowed when every link has a pattern matching it (:meth:`may_publish`).
    """

    anchor: str
    principal: Principal
    sender: PublicIdentity
    authorities: tuple[str, ...]  # the anchor, then each delegated authority, top down
    roles: frozenset[str]
    publish: tuple[tuple[ScopePattern, ...], ...]
    consume: tuple[tuple[ScopePattern, ...], ...]
    not_after: int  # the earliest expiry along the chain
    credentials: tuple[Credential, ...] = field(repr=False)

    def may_publish(self, topic: str) -> bool:
        return all(any(p.matches(topic) for p in link) for link in self.publish)

    def may_consume(self, topic: str) -> bool:
        return all(any(p.matches(topic) for p in link) for link in self.consume)

    def first_refusing_link(self, topic: str) -> int | None:
        """The first link (0: the anchor) whose publish patterns do not match ``topic``."""
        for index, link in enumerate(self.publish):
            if not any(p.matches(topic) for p in link):
                return index
        return None

    def first_link_not_covering(
        self, pattern: ScopePattern, *, consume: bool = False
    ) -> int | None:
        """The first link (0: the anchor) whose publish (or consume) patterns do not cover
        every topic of ``pattern`` (:func:`~letterlock.trust.scope.covers`), else None: for
        "may this sender publish on everything a listener of ``pattern`` receives?"."""
        for index, link in enumerate(self.consume if consume else self.publish):
            if not covers(link, pattern):
                return index
        return None

    def surplus(self) -> tuple[tuple[int, ScopePattern], ...]:
        """Each (link, publish pattern) a credential claims beyond its issuer's patterns
        (link 1 is the first credential; its issuer is the anchor): what narrowing removed."""
        return tuple(
            (index, pattern)
            for index in range(1, len(self.publish))
            for pattern in self.publish[index]
            if not covers(self.publish[index - 1], pattern)
        )


class VerifiedSignatures:
    """Credentials whose signature has verified, by their bytes: a chain seen before costs no
    signature check, while everything that depends on time or on the chain (the issuer,
    lifetimes, depth, namespace, scope) is checked again on every verification.

    Sound because a credential names its issuer's fingerprint and suite, which
    :func:`verify_chain` compares with the issuer key before it looks here: the same bytes
    under the same key verify the same way every time. Holds at most ``limit`` credentials
    (then starts again empty); only :func:`verify_chain` adds to it.
    """

    __slots__ = ("_good", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._good: set[bytes] = set()
        self._limit = limit

    def __contains__(self, credential: Credential) -> bool:
        return credential.encoded in self._good

    def __len__(self) -> int:
        return len(self._good)

    def _add(self, credential: Credential) -> None:
        if len(self._good) >= self._limit:
            self._good = set()
        self._good.add(credential.encoded)


def verify_chain(
    anchor: Anchor,
    credentials: Sequence[Credential],
    *,
    now: int,
    verified: VerifiedSignatures | None = None,
) -> Chain | ChainRefusal:
    """Verify ``credentials`` (top down: the anchor's first, the sender's last) at ``now``.

    Checks, in this order (spec section 4): the shape (authorities, then one principal, at
    most :data:`MAX_CHAIN`); per link, top down, that the key above issued it, its signature
    (skipped for a credential in ``verified``, added there once it verifies), and its lifetime
    at ``now``; then the depth, the namespace and the effective roles.
    """
    n = len(credentials)
    if not 1 <= n <= MAX_CHAIN:
        return ChainRefusal(why=Why.NOT_A_CHAIN, detail=f"{n} credentials")
    kinds = [c.kind for c in credentials]
    if kinds != [Kind.AUTHORITY] * (n - 1) + [Kind.PRINCIPAL]:
        return ChainRefusal(why=Why.NOT_A_CHAIN, detail="authorities, then one principal")
    issuer = anchor.identity
    for index, credential in enumerate(credentials):
        if (credential.issuer_suite, credential.issuer_key_id) != (
            issuer.suite,
            issuer.fingerprint,
        ):
            return ChainRefusal(why=Why.WRONG_ISSUER, link=index)
        if verified is None or credential not in verified:
            if not issuer.verify(credential.signature, credential.signed):
                return ChainRefusal(why=Why.BAD_SIGNATURE, link=index)
            if verified is not None:
                verified._add(credential)
        if now < credential.not_before:
            return ChainRefusal(
                why=Why.NOT_YET_VALID, link=index, detail=f"from {credential.not_before}"
            )
        if now >= credential.not_after:
            return ChainRefusal(
                why=Why.EXPIRED, link=index, detail=f"since {iso_utc(credential.not_after)}"
            )
        issuer = credential.subject_identity
    # Depth: the authority at position j (0: the anchor) allows max_depth_j authorities below.
    depths = [anchor.max_depth] + [c.max_depth for c in credentials[:-1]]
    for position, allowed in enumerate(depths):
        below = (n - 1) - position
        if below > allowed:
            return ChainRefusal(
                why=Why.TOO_DEEP,
                link=position - 1 if position else None,
                detail=f"{below} authorities below one that allows {allowed}",
            )
    leaf = credentials[-1]
    principal = leaf.principal
    assert principal is not None  # a PRINCIPAL credential always has one (parsed with it)
    namespaces = [anchor.namespace] + [c.scope.namespace for c in credentials]
    for position, namespace in enumerate(namespaces):
        if not namespace.contains(principal):
            return ChainRefusal(
                why=Why.OUTSIDE_NAMESPACE,
                link=position - 1 if position else None,
                detail=f"{principal} is not in {namespace}",
            )
    roles = set(leaf.scope.roles)
    for credential in credentials[:-1]:
        roles &= credential.scope.roles
    if anchor.roles is not None:
        roles &= anchor.roles
    return Chain(
        anchor=anchor.name,
        principal=principal,
        sender=leaf.subject_identity,
        authorities=(anchor.name, *(c.subject for c in credentials[:-1])),
        roles=frozenset(roles),
        publish=(anchor.publish, *(c.scope.publish for c in credentials)),
        consume=(anchor.consume, *(c.scope.consume for c in credentials)),
        not_after=min(c.not_after for c in credentials),
        credentials=tuple(credentials),
    )
