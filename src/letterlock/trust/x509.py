"""Company PKI: X.509 sender certificates chained to a company CA (``docs/spec/x509.md``).

Pure: certificate bytes and a time in, a decision out. Path validation is pyca/cryptography's
(through :mod:`letterlock._x509`, which overrides its EKU rules deliberately); everything else is
letterlock's own and decided here, in the order of the spec's section 7 (the code marks each
step):

1. at most :data:`MAX_INTERMEDIATES` intermediates (``too_deep``);
2. each certificate at most :data:`MAX_CERT_BYTES`, parsed by pyca, serial positive
   (``malformed``);
3. the leaf's subjectAltName is exactly one URI, a principal (``no_principal``);
4. only anchors whose namespace holds that principal may end the path (``out_of_namespace``);
5. and 6. the leaf's EKU and validity (``wrong_eku``, ``not_yet_valid``, ``expired``);
7. pyca's path validation (``unknown_ca``, ``expired``, ``invalid_chain``);
8. the leaf's letterlock-identity extension is a public identity whose signing key is the
   leaf's SubjectPublicKeyInfo (``wrong_key``);
9. the leaf's scope and every scope a CA of the path carries are well formed (``scope``,
   ``malformed``);
10. and 11. (:func:`verify_sender`) the envelope's sender key id is the identity's
    (``wrong_key``) and the topic lies within every scope (``scope``).

Work is bounded by construction, not by a timer (a Rust call cannot be interrupted): with at
most four intermediates and pyca's ``max_chain_depth`` of four, path building has at most
65 candidate orderings, and pyca itself stops after a fixed number of signature and
name-constraint checks; a single SAN keeps name-constraint work to one name per CA.
``tests/test_conformance_x509.py`` measures the pathological cases of x509-limbo.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from letterlock import _x509
from letterlock.core.keys import Identity, PublicIdentity
from letterlock.core.topics import Dialect, TopicPattern, parse_pattern
from letterlock.errors import ParseError, UsageError

__all__ = [
    "IDENTITY_OID",
    "LETTERLOCK_ARC",
    "LETTERLOCK_EKU",
    "MAX_CERT_BYTES",
    "MAX_INTERMEDIATES",
    "SCOPE_OID",
    "Anchor",
    "AnchorSet",
    "ChainLink",
    "Refused",
    "Scope",
    "X509Refusal",
    "X509Sender",
    "bound_identity",
    "ca_key_id",
    "carried_order",
    "certificate_request",
    "check_principal",
    "decode_scope",
    "encode_scope",
    "validate_path",
    "verify_carried",
    "verify_chain",
    "verify_sender",
]

#: letterlock's OID arc: 2.25 and the integer of UUID bd8e58f9-6f11-4fbd-acc3-39118cf59dc8.
LETTERLOCK_ARC: Final = "2.25.251963201971492397295826617522313338312"
#: id-kp-letterlock: the extended key usage "signs letterlock messages".
LETTERLOCK_EKU: Final = LETTERLOCK_ARC + ".1"
#: The topic scope extension (non-critical): SEQUENCE { publish, consume } of AMQP patterns.
SCOPE_OID: Final = LETTERLOCK_ARC + ".2"
#: The identity extension (non-critical): OCTET STRING, a public identity (envelope-v1 3.1).
IDENTITY_OID: Final = LETTERLOCK_ARC + ".3"
MAX_INTERMEDIATES: Final = 4
MAX_CERT_BYTES: Final = 16384  # a pq identity extension is about 4.4 KB

_SEGMENT: Final = r"[A-Za-z0-9._-]+"
_TRUST_DOMAIN: Final = r"[a-z0-9][a-z0-9._-]*"
_PRINCIPAL: Final = re.compile(rf"(?:ll|spiffe)://{_TRUST_DOMAIN}(?:/{_SEGMENT})+")
_NAMESPACE: Final = re.compile(rf"(?:ll|spiffe)://{_TRUST_DOMAIN}/(?:{_SEGMENT}/)*")


class X509Refusal(enum.Enum):
    """Why a chain, or a message under it, was refused (spec section 7)."""

    MALFORMED = "malformed"  #: not DER, oversized, or a letterlock extension is malformed
    TOO_DEEP = "too_deep"  #: more than MAX_INTERMEDIATES intermediates
    NO_PRINCIPAL = "no_principal"  #: the SAN is not exactly one URI principal
    OUT_OF_NAMESPACE = "out_of_namespace"  #: no anchor is trusted for the principal
    WRONG_EKU = "wrong_eku"  #: the leaf lacks letterlock's EKU
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    UNKNOWN_CA = "unknown_ca"  #: nothing in the chain was issued by a trusted anchor
    INVALID_CHAIN = "invalid_chain"  #: pyca found no valid path (signature, constraints, ...)
    WRONG_KEY = "wrong_key"  #: the leaf's key is not the sender's signing key
    SCOPE = "scope"  #: the topic is outside the scope of the leaf or of a CA of the path


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """A refusal: the code, and a detail for local logs only."""

    reason: X509Refusal
    detail: str = ""


def check_principal(principal: str) -> bool:
    """True if ``principal`` is ``ll://`` or ``spiffe://``, a trust domain and a path.

    The trust domain is lower case ``a-z 0-9 . _ -``, starting with a letter or digit; path
    segments are ``A-Z a-z 0-9 . _ -``,
    never empty, ``.`` or ``..``; no query, fragment, port, user or percent-encoding.
    """
    if _PRINCIPAL.fullmatch(principal) is None:
        return False
    return not any(segment in (".", "..") for segment in principal.split("/")[3:])


# ------------------------------------------------------------------------ scopes and DER

_SEQUENCE: Final = 0x30
_UTF8: Final = 0x0C
_OCTETS: Final = 0x04


def _der_read(data: bytes, at: int, tag: int) -> tuple[bytes, int]:
    """One DER TLV of ``tag`` at ``at``: (contents, end). Minimal definite lengths only."""
    if at + 2 > len(data) or data[at] != tag:
        raise ParseError(f"DER: expected tag 0x{tag:02x}")
    first = data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or at + count > len(data):
            raise ParseError("DER: bad length")
        length = int.from_bytes(data[at : at + count], "big")
        if data[at] == 0 or length < 0x80:
            raise ParseError("DER: length not minimal")
        at += count
    end = at + length
    if end > len(data):
        raise ParseError("DER: truncated")
    return data[at:end], end


def _der_write(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        return bytes([tag, n]) + contents
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + contents


def _der_strings(data: bytes) -> tuple[str, ...]:
    out: list[str] = []
    at = 0
    while at < len(data):
        raw, at = _der_read(data, at, _UTF8)
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("DER: UTF8String is not UTF-8") from None
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """The topics one certificate allows: AMQP patterns (``*`` one word, ``#`` zero or more).

    Patterns are normalised by :func:`letterlock.core.topics.parse_pattern`. An empty list
    allows nothing.
    """

    publish: tuple[TopicPattern, ...]
    consume: tuple[TopicPattern, ...]

    @classmethod
    def of(cls, *, publish: Iterable[str] = (), consume: Iterable[str] = ()) -> Scope:
        """A scope from AMQP pattern strings; UsageError if one is malformed."""
        return cls(
            publish=tuple(parse_pattern(p, Dialect.AMQP) for p in publish),
            consume=tuple(parse_pattern(p, Dialect.AMQP) for p in consume),
        )

    def allows_publish(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.publish)

    def allows_consume(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.consume)


def encode_scope(scope: Scope) -> bytes:
    """The DER of the scope extension's value (spec section 5)."""

    def strings(patterns: tuple[TopicPattern, ...]) -> bytes:
        body = b"".join(_der_write(_UTF8, p.text.encode("utf-8")) for p in patterns)
        return _der_write(_SEQUENCE, body)

    return _der_write(_SEQUENCE, strings(scope.publish) + strings(scope.consume))


def decode_scope(data: bytes) -> Scope:
    """Parse the scope extension's value; ParseError unless it is exactly the spec's DER."""
    body, end = _der_read(data, 0, _SEQUENCE)
    if end != len(data):
        raise ParseError("scope: trailing bytes")
    publish, at = _der_read(body, 0, _SEQUENCE)
    consume, at = _der_read(body, at, _SEQUENCE)
    if at != len(body):
        raise ParseError("scope: trailing bytes in the SEQUENCE")
    try:
        return Scope.of(publish=_der_strings(publish), consume=_der_strings(consume))
    except UsageError as exc:
        raise ParseError(f"scope: {exc}") from None


# ------------------------------------------------------------------------ anchors


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """A company CA certificate (DER), trusted for the principals under ``namespace``.

    ``namespace`` is ``ll://<trust-domain>/`` or ``spiffe://<trust-domain>/``, optionally with
    path segments, and always ends in ``/``, so ``ll://acme/pay/`` never covers
    ``ll://acme/payroll``.
    """

    name: str
    certificate: bytes
    namespace: str

    def covers(self, principal: str) -> bool:
        return principal.startswith(self.namespace)


class AnchorSet:
    """The receiver's company CAs. Immutable; parsed once (UsageError on a bad anchor)."""

    __slots__ = ("_anchors", "_parsed")

    def __init__(self, anchors: Iterable[Anchor]) -> None:
        self._anchors = tuple(anchors)
        parsed: list[_x509.Certificate] = []
        seen: set[bytes] = set()
        for anchor in self._anchors:
            if _NAMESPACE.fullmatch(anchor.namespace) is None:
                raise UsageError(
                    f"anchor {anchor.name}: namespace {anchor.namespace!r} must be "
                    "ll://<trust-domain>/ or spiffe://<trust-domain>/ (and path segments), "
                    "ending in /"
                )
            try:
                cert = _x509.load_der(anchor.certificate)
            except ValueError as exc:
                raise UsageError(f"anchor {anchor.name}: {exc}") from None
            if cert.der in seen:
                raise UsageError(f"anchor {anchor.name}: that certificate is already an anchor")
            seen.add(cert.der)
            parsed.append(cert)
        self._parsed = tuple(parsed)

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        return self._anchors

    def _for(self, principal: str) -> list[tuple[Anchor, _x509.Certificate]]:
        return [
            (a, c) for a, c in zip(self._anchors, self._parsed, strict=True) if a.covers(principal)
        ]


# ------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainLink:
    """One certificate of a verified path: its subject, SHA-256 fingerprint (hex), and
    ``key_id``, the SHA-256 of its SubjectPublicKeyInfo (:func:`ca_key_id`): the name a status
    document revokes its key by."""

    subject: str
    fingerprint: str
    key_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class X509Sender:
    """A sender whose chain verified: who, under which CA, allowed what, until when.

    ``chain`` runs from the leaf to the anchor. ``scopes`` holds the leaf's scope and then
    every scope a CA of the path carries: a topic is allowed only if every one allows it (the
    intersection, recomputed here for each topic; no certificate's word about its own scope
    is taken). ``not_after`` is the earliest expiry on the path.
    """

    principal: str
    identity: PublicIdentity
    anchor: str
    chain: tuple[ChainLink, ...]
    scopes: tuple[Scope, ...]
    not_after: int

    @property
    def key_id(self) -> bytes:
        """The sender key id envelopes carry (the identity's fingerprint)."""
        return self.identity.fingerprint

    def may_publish(self, topic: str) -> bool:
        return all(scope.allows_publish(topic) for scope in self.scopes)

    def may_consume(self, topic: str) -> bool:
        return all(scope.allows_consume(topic) for scope in self.scopes)


# ------------------------------------------------------------------------ verification


def _key_id(cert: _x509.Certificate) -> bytes:
    return hashlib.sha256(cert.spki).digest()


def ca_key_id(certificate: bytes) -> bytes:
    """The key id a status document names a CA's key by (``docs/spec/x509.md``): the SHA-256 of
    the SubjectPublicKeyInfo of ``certificate`` (DER, or the first PEM certificate), written
    like a key fingerprint (``SHA256:...``). It names the key, so every certificate of the same
    key is revoked with it. :class:`~letterlock.errors.ParseError` if it is no certificate."""
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            return _key_id(_x509.load_pem(certificate)[0])
        return _key_id(_x509.load_der(certificate))
    except ValueError as exc:
        raise ParseError(f"not a certificate: {exc}") from None


def _parse_all(
    leaf: bytes, intermediates: Sequence[bytes]
) -> tuple[_x509.Certificate, list[_x509.Certificate]] | Refused:
    for der in (leaf, *intermediates):
        if len(der) > MAX_CERT_BYTES:
            return Refused(reason=X509Refusal.MALFORMED, detail="certificate too large")
    try:
        return _x509.load_der(leaf), [_x509.load_der(der) for der in intermediates]
    except ValueError as exc:
        return Refused(reason=X509Refusal.MALFORMED, detail=str(exc))


def _diagnose(
    error: str,
    leaf: _x509.Certificate,
    intermediates: Sequence[_x509.Certificate],
    anchors: Sequence[_x509.Certificate],
    at: float,
) -> Refused:
    """Name pyca's refusal. pyca decided; this only picks the most useful code for it."""
    subjects = {anchor.subject for anchor in anchors}
    if not any(cert.issuer in subjects for cert in (leaf, *intermediates)):
        return Refused(reason=X509Refusal.UNKNOWN_CA, detail=error)
    if any(not cert.not_before <= at <= cert.not_after for cert in (*intermediates, *anchors)):
        return Refused(reason=X509Refusal.EXPIRED, detail=error)
    return Refused(reason=X509Refusal.INVALID_CHAIN, detail=error)


def validate_path(
    anchors: Sequence[bytes],
    leaf: bytes,
    intermediates: Sequence[bytes],
    *,
    at: float,
    eku: str = LETTERLOCK_EKU,
    max_depth: int = MAX_INTERMEDIATES,
) -> tuple[bytes, ...] | Refused:
    """Steps 2 and 7 alone: parse and validate a path with pyca, for any EKU (conformance).

    Returns the validated path's DER, leaf first. No letterlock rule beyond the EKU applies:
    :func:`verify_chain` is what a receiver calls.
    """
    parsed = _parse_all(leaf, intermediates)
    if isinstance(parsed, Refused):
        return parsed
    try:
        roots = [_x509.load_der(der) for der in anchors]
    except ValueError as exc:
        return Refused(reason=X509Refusal.MALFORMED, detail=f"anchor: {exc}")
    try:
        path = _x509.verify_chain(roots, parsed[0], parsed[1], at=at, eku=eku, max_depth=max_depth)
    except _x509.ChainError as exc:
        return _diagnose(str(exc), parsed[0], parsed[1], roots, at)
    return tuple(cert.der for cert in path)


def _signing_key(identity: PublicIdentity) -> bytes:
    """The signing public key of an identity's encoding (envelope-v1 section 3.1)."""
    encoded = identity.to_bytes()
    length = int.from_bytes(encoded[5:7], "big")
    return encoded[7 : 7 + length]


def _bind(leaf: _x509.Certificate) -> PublicIdentity | Refused:
    found = leaf.extension(IDENTITY_OID)
    if found is None:
        return Refused(reason=X509Refusal.WRONG_KEY, detail="no letterlock identity extension")
    try:
        contents, end = _der_read(found[1], 0, _OCTETS)
        identity = PublicIdentity(contents)
    except ParseError as exc:
        return Refused(reason=X509Refusal.MALFORMED, detail=f"identity extension: {exc}")
    if end != len(found[1]):
        return Refused(reason=X509Refusal.MALFORMED, detail="identity extension: trailing bytes")
    if _x509.signing_key_spki(identity.suite, _signing_key(identity)) != leaf.spki:
        return Refused(
            reason=X509Refusal.WRONG_KEY,
            detail="the leaf's public key is not the identity's signing key",
        )
    return identity


def _scopes(path: Sequence[_x509.Certificate]) -> tuple[Scope, ...] | Refused:
    scopes: list[Scope] = []
    for position, cert in enumerate(path):
        found = cert.extension(SCOPE_OID)
        if found is None:
            if position == 0:  # deny by default: a leaf without a scope may send nothing
                return Refused(reason=X509Refusal.SCOPE, detail="the leaf carries no scope")
            continue
        try:
            scopes.append(decode_scope(found[1]))
        except ParseError as exc:
            return Refused(reason=X509Refusal.MALFORMED, detail=f"{cert.subject}: {exc}")
    return tuple(scopes)


def verify_chain(
    anchors: AnchorSet, leaf: bytes, intermediates: Sequence[bytes], *, at: int
) -> X509Sender | Refused:
    """The sender a chain (leaf DER, then intermediates) certifies at Unix time ``at``.

    Every step of the module docstring; the topic is checked by :meth:`X509Sender.may_publish`
    (or :func:`verify_sender`), so a verified chain can be cached by its bytes and re-checked
    for expiry (``not_after``) without being verified again.
    """
    if len(intermediates) > MAX_INTERMEDIATES:  # step 1
        return Refused(
            reason=X509Refusal.TOO_DEEP,
            detail=f"{len(intermediates)} intermediates; at most {MAX_INTERMEDIATES}",
        )
    parsed = _parse_all(leaf, intermediates)  # step 2
    if isinstance(parsed, Refused):
        return parsed
    cert, chain = parsed
    if cert.other_names or len(cert.uris) != 1 or not check_principal(cert.uris[0]):  # step 3
        return Refused(
            reason=X509Refusal.NO_PRINCIPAL,
            detail=f"SAN must be exactly one URI principal, not {cert.uris} (+{cert.other_names})",
        )
    principal = cert.uris[0]
    trusted = anchors._for(principal)
    if not trusted:  # step 4
        return Refused(reason=X509Refusal.OUT_OF_NAMESPACE, detail=principal)
    if cert.eku is None or LETTERLOCK_EKU not in cert.eku:  # step 5
        return Refused(reason=X509Refusal.WRONG_EKU, detail=f"leaf EKU {cert.eku}")
    if at < cert.not_before:  # step 6
        return Refused(reason=X509Refusal.NOT_YET_VALID, detail=f"leaf from {cert.not_before}")
    if at > cert.not_after:
        return Refused(reason=X509Refusal.EXPIRED, detail=f"leaf until {cert.not_after}")
    roots = [root for _, root in trusted]
    try:  # step 7
        path = _x509.verify_chain(
            roots, cert, chain, at=at, eku=LETTERLOCK_EKU, max_depth=MAX_INTERMEDIATES
        )
    except _x509.ChainError as exc:
        return _diagnose(str(exc), cert, chain, roots, at)
    identity = _bind(cert)  # step 8
    if isinstance(identity, Refused):
        return identity
    scopes = _scopes(path)  # step 9
    if isinstance(scopes, Refused):
        return scopes
    anchor = next(a for a, root in trusted if root.der == path[-1].der)
    return X509Sender(
        principal=principal,
        identity=identity,
        anchor=anchor.name,
        chain=tuple(
            ChainLink(subject=c.subject, fingerprint=c.fingerprint.hex(), key_id=_key_id(c))
            for c in path
        ),
        scopes=scopes,
        not_after=min(c.not_after for c in path),
    )


def verify_carried(
    anchors: AnchorSet, leaf: bytes, intermediates: Sequence[bytes]
) -> tuple[int, X509Sender] | Refused:
    """A chain from an envelope's credential block, verified before the receiver's time is
    known (section 9): ``(t0, sender)``, where the chain verified at ``t0``: the latest
    notBefore of the certificates presented or, if the path's anchor certificate became valid
    only later (a root re-issued under the same key), that anchor's notBefore.

    Steps 1 to 9 depend on time only through the validity periods of the path, so the chain
    verifies at any ``at`` with ``t0 <= at <= sender.not_after`` (every certificate of the path
    was valid at ``t0`` and stays so until its notAfter); outside that interval, verify at
    ``at`` with :func:`verify_chain`. A chain whose certificates share no instant of validity
    is refused here. At most one more path validation per anchor certificate of the leaf's
    namespace, and only after one refused as ``expired`` (a certificate not valid then).

    Before any path is built, the certificates must come in issuer order (each one's issuer
    name the next one's subject name) with no subject name twice (section 9): pyca tries every
    combination of certificates that share a name, and a block not yet authenticated must not
    buy that search.
    """
    if len(intermediates) > MAX_INTERMEDIATES:  # step 1 before parsing anything
        return Refused(
            reason=X509Refusal.TOO_DEEP,
            detail=f"{len(intermediates)} intermediates; at most {MAX_INTERMEDIATES}",
        )
    parsed = _parse_all(leaf, intermediates)
    if isinstance(parsed, Refused):
        return parsed
    cert = parsed[0]
    disorder = _out_of_issuer_order(cert, parsed[1])
    if disorder is not None:
        return disorder
    t0 = max(c.not_before for c in (cert, *parsed[1]))
    sender = verify_chain(anchors, leaf, intermediates, at=t0)
    if not isinstance(sender, Refused) or sender.reason is not X509Refusal.EXPIRED:
        return sender if isinstance(sender, Refused) else (t0, sender)
    # The anchors that can end this leaf's path, at the first instant each is valid too.
    trusted = anchors._for(cert.uris[0]) if len(cert.uris) == 1 else []
    later = sorted({root.not_before for _, root in trusted if t0 < root.not_before})
    for at in later:
        if at > cert.not_after:
            break
        again = verify_chain(anchors, leaf, intermediates, at=at)
        if not isinstance(again, Refused):
            return at, again
    return sender


def carried_order(leaf: bytes, intermediates: Sequence[bytes]) -> Refused | None:
    """Why ``leaf`` and ``intermediates`` could not be carried (section 9: issuer order, no
    subject name twice, each certificate parsed), None if they can: what ``id attach``
    checks, so that a sender never carries a chain its receivers refuse unread."""
    parsed = _parse_all(leaf, intermediates)
    if isinstance(parsed, Refused):
        return parsed
    return _out_of_issuer_order(*parsed)


def _out_of_issuer_order(
    leaf: _x509.Certificate, intermediates: Sequence[_x509.Certificate]
) -> Refused | None:
    """Why carried certificates are not leaf first, then each one's issuer, names distinct."""
    subjects = [cert.subject for cert in intermediates]
    if len(set(subjects)) != len(subjects):
        return Refused(
            reason=X509Refusal.INVALID_CHAIN,
            detail="not in issuer order: two carried certificates share a subject",
        )
    for child, parent in zip((leaf, *intermediates), intermediates, strict=False):
        if child.issuer != parent.subject:
            return Refused(
                reason=X509Refusal.INVALID_CHAIN,
                detail=f"not in issuer order: {parent.subject!r} did not issue the one before",
            )
    return None


def verify_sender(
    anchors: AnchorSet,
    leaf: bytes,
    intermediates: Sequence[bytes],
    *,
    at: int,
    key_id: bytes,
    topic: str,
) -> X509Sender | Refused:
    """:func:`verify_chain`, then: the envelope's sender key id is the leaf's identity
    (``wrong_key``) and ``topic`` is within every scope of the path (``scope``)."""
    sender = verify_chain(anchors, leaf, intermediates, at=at)
    if isinstance(sender, Refused):
        return sender
    if sender.key_id != key_id:  # step 10
        return Refused(reason=X509Refusal.WRONG_KEY, detail="sender key id is not the leaf's")
    if not sender.may_publish(topic):  # step 11
        return Refused(reason=X509Refusal.SCOPE, detail=f"{topic!r} outside the path's scopes")
    return sender


# ------------------------------------------------------------------------ the sender's side


def certificate_request(identity: Identity, principal: str) -> bytes:
    """A PEM certificate request for ``identity``'s signing key (``letterlock id csr``): the
    principal as its URI SAN, letterlock's EKU, and the identity extension (section 6), which
    the CA copies into the certificate it issues. The CA adds the scope (section 5)."""
    if not check_principal(principal):
        raise UsageError(f"{principal[:80]!r} is not a principal (ll:// or spiffe://, section 3)")
    public = identity.public
    return _x509.certificate_request(
        public.suite, _signing_key(public), identity.sign,
        principal=principal, eku=LETTERLOCK_EKU,
        extra=[(IDENTITY_OID, _der_write(_OCTETS, public.to_bytes()))],
    )  # fmt: skip


def bound_identity(leaf: bytes) -> tuple[str, PublicIdentity] | Refused:
    """The principal a leaf certificate names and the identity it binds (steps 2, 3 and 8,
    without a path): what ``letterlock id attach`` checks before an identity presents it."""
    parsed = _parse_all(leaf, ())
    if isinstance(parsed, Refused):
        return parsed
    cert = parsed[0]
    if cert.other_names or len(cert.uris) != 1 or not check_principal(cert.uris[0]):
        return Refused(reason=X509Refusal.NO_PRINCIPAL, detail=f"SAN {cert.uris}")
    identity = _bind(cert)
    return identity if isinstance(identity, Refused) else (cert.uris[0], identity)
