"""An independent verifier of letterlock credential chains, from ``docs/spec/credentials.md``.

The same rules as ``verifier.py``: nothing from ``letterlock`` is imported; only the standard
library, ``cryptography`` and this folder's envelope verifier (for the signature rules and the
public identity layout of ``envelope-v1.md``, which the credential spec refers to). Each check
names its section. :func:`verify_vector` returns the outcome fields of a vector (section 6).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .verifier import (
    SUITES,
    _check_25519_keys,
    _Cursor,
    _identity_fields,
    _RejectError,
    _Suite,
    fingerprint_text,
)
from .verifier import _verify_signature as verify_signature

LABEL = b"letterlock/v1 credential\x00"
ONE, ANY = "ONE", "ANY"

# Section 2.
_PRINCIPAL = re.compile(r"(ll|spiffe)://([a-z0-9._-]{1,255})((?:/[A-Za-z0-9._-]+)*)")
_NAMESPACE = re.compile(r"(ll|spiffe)://([a-z0-9._-]{1,255})/((?:[A-Za-z0-9._-]+/)*)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def _malformed() -> _RejectError:
    return _RejectError("malformed")


def principal_parts(text: str) -> tuple[str, str, list[str]] | None:
    m = _PRINCIPAL.fullmatch(text)
    if m is None or len(text.encode()) > 2048:
        return None
    segments = m.group(3).split("/")[1:]
    if any(s in (".", "..") for s in segments):
        return None
    return m.group(1), m.group(2), segments


def namespace_parts(text: str) -> tuple[str, str, list[str]] | None:
    m = _NAMESPACE.fullmatch(text)
    if m is None or len(text.encode()) > 2048:
        return None
    segments = m.group(3).split("/")[:-1]
    if any(s in (".", "..") for s in segments):
        return None
    return m.group(1), m.group(2), segments


def contains(namespace: tuple[str, str, list[str]], principal: tuple[str, str, list[str]]) -> bool:
    """Section 2: same scheme and domain, more segments, the namespace's first."""
    k = len(namespace[2])
    return (
        namespace[:2] == principal[:2]
        and len(principal[2]) > k
        and principal[2][:k] == namespace[2]
    )


@dataclass(frozen=True)
class Pattern:
    separator: str
    segments: tuple[str, ...]  # a literal word, or ONE / ANY (the literals never equal those)

    def matches(self, topic: str) -> bool:
        """Section 2: the segments consume the words exactly (dynamic programming)."""
        words = topic.split(self.separator)
        n = len(words)
        ok = [True] + [False] * n  # ok[j]: the segments so far can consume words[:j]
        for seg in self.segments:
            if seg == ANY:
                new = [any(ok[: j + 1]) for j in range(n + 1)]
            else:
                new = [False] + [
                    ok[j - 1] and (seg == ONE or words[j - 1] == seg) for j in range(1, n + 1)
                ]
            ok = new
        return ok[n]


def _text(cur: _Cursor, n: int) -> str:
    raw = cur.take(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed() from None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise _malformed()
    return text


def _pattern(cur: _Cursor) -> Pattern:
    separator = cur.take(1)
    if separator not in (b".", b"/"):
        raise _malformed()
    sep = separator.decode()
    count = cur.uint(1)
    if count < 1:
        raise _malformed()
    segments: list[str] = []
    for _ in range(count):
        tag = cur.uint(1)
        if tag == 1:
            segments.append(ONE)
        elif tag == 2:
            segments.append(ANY)
        elif tag == 0:
            word = _text(cur, cur.uint(1))
            if sep in word or word in ("*", "#"):
                raise _malformed()
            segments.append(word)
        else:
            raise _malformed()
    # canonical: in a run of wildcards, ONEs and then at most one ANY
    for a, b in itertools.pairwise(segments):
        if a == ANY and b in (ONE, ANY):
            raise _malformed()
    written = sep.join("*" if s == ONE else "#" if s == ANY else s for s in segments)
    if len(written.encode()) > 1024:
        raise _malformed()
    return Pattern(sep, tuple(segments))


def _patterns(cur: _Cursor) -> list[Pattern]:
    count = cur.uint(1)
    if count > 64:
        raise _malformed()
    out, previous = [], b""
    for _ in range(count):
        start = cur.pos
        out.append(_pattern(cur))
        encoded = cur.data[start : cur.pos]
        if encoded <= previous:
            raise _malformed()
        previous = encoded
    return out


def _uncompressed_points_load(curve: ec.EllipticCurve, *points: bytes) -> None:
    for point in points:
        if point[:1] != b"\x04":
            raise _malformed()
        ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def _public_identity(data: bytes) -> tuple[_Suite, bytes]:
    """envelope-v1.md section 3.1: (suite, signature public key); malformed if invalid."""
    try:
        suite, spk, epk = _identity_fields(data, b"LLP")
    except (ValueError, _RejectError):
        raise _malformed() from None
    if len(spk) != suite.npk or len(epk) != suite.nepk:
        raise _malformed()
    try:
        if suite.name == "x25519":
            _check_25519_keys(spk, epk)
        elif suite.name == "p256":
            _uncompressed_points_load(ec.SECP256R1(), spk, epk)
        else:  # p384, and the P-384 halves of pq keys
            halves = (spk, epk) if suite.name == "p384" else (spk[2592:], epk[1568:])
            _uncompressed_points_load(ec.SECP384R1(), *halves)
    except ValueError:
        raise _malformed() from None
    return suite, spk


@dataclass(frozen=True)
class Cred:
    issuer_suite: _Suite
    issuer_key_id: bytes
    kind: int
    subject: str
    subject_identity: bytes
    not_before: int
    not_after: int
    max_depth: int
    namespace: tuple[str, str, list[str]]
    roles: frozenset[str]
    publish: list[Pattern]
    signed: bytes
    signature: bytes


def parse_credential(data: bytes) -> Cred:
    """Section 3, rules 1 to 8; raises _RejectError("malformed")."""
    cur = _Cursor(data)
    if cur.take(4) != b"LLC\x01":
        raise _malformed()
    issuer_suite = SUITES.get(cur.uint(1))
    if issuer_suite is None:
        raise _malformed()
    issuer_key_id = cur.take(32)
    kind = cur.uint(1)
    subject = _text(cur, cur.uint(2))
    subject_identity = cur.take(cur.uint(2))
    _public_identity(subject_identity)
    not_before, not_after, max_depth = cur.uint(8), cur.uint(8), cur.uint(1)
    if kind == 1:
        if not _NAME.fullmatch(subject):
            raise _malformed()
    elif kind == 2:
        if principal_parts(subject) is None or max_depth != 0:
            raise _malformed()
    else:
        raise _malformed()
    if max_depth > 8 or not not_before < not_after:
        raise _malformed()
    namespace = namespace_parts(_text(cur, cur.uint(2)))
    if namespace is None:
        raise _malformed()
    role_count = cur.uint(1)
    if role_count > 64:
        raise _malformed()
    roles: list[bytes] = []
    for _ in range(role_count):
        role = cur.take(cur.uint(1))
        if not _NAME.fullmatch(role.decode("latin-1")) or (roles and role <= roles[-1]):
            raise _malformed()
        roles.append(role)
    publish = _patterns(cur)
    _patterns(cur)  # consume: parsed, not used by the vectors
    body_end = cur.pos
    signature = cur.take(issuer_suite.s)
    if not cur.at_end():
        raise _malformed()
    return Cred(
        issuer_suite=issuer_suite,
        issuer_key_id=issuer_key_id,
        kind=kind,
        subject=subject,
        subject_identity=subject_identity,
        not_before=not_before,
        not_after=not_after,
        max_depth=max_depth,
        namespace=namespace,
        roles=frozenset(r.decode() for r in roles),
        publish=publish,
        signed=LABEL + data[:body_end],
        signature=signature,
    )


def _verify(anchor: dict[str, Any], chain: list[Cred], now: int, topic: str) -> dict[str, Any]:
    """Section 4, steps 1 to 6."""
    n = len(chain)
    if not 1 <= n <= 9 or [c.kind for c in chain] != [1] * (n - 1) + [2]:
        raise _RejectError("not_a_chain")
    issuer = bytes.fromhex(anchor["public_identity"])
    for c in chain:
        suite, spk = _public_identity(issuer)
        if c.issuer_suite is not suite or c.issuer_key_id != hashlib.sha256(issuer).digest():
            raise _RejectError("wrong_issuer")
        try:
            verify_signature(suite, spk, c.signature, c.signed)
        except Exception:
            raise _RejectError("bad_signature") from None
        if now < c.not_before:
            raise _RejectError("not_yet_valid")
        if now >= c.not_after:
            raise _RejectError("expired")
        issuer = c.subject_identity
    depths = [anchor["max_depth"]] + [c.max_depth for c in chain[:-1]]
    if any((n - 1) - j > d for j, d in enumerate(depths)):
        raise _RejectError("too_deep")
    principal = principal_parts(chain[-1].subject)
    assert principal is not None
    anchor_ns = namespace_parts(anchor["namespace"])
    assert anchor_ns is not None
    if not all(contains(ns, principal) for ns in [anchor_ns] + [c.namespace for c in chain]):
        raise _RejectError("outside_namespace")
    roles = set(chain[-1].roles)
    for c in chain[:-1]:
        roles &= c.roles
    if anchor["roles"] is not None:
        roles &= set(anchor["roles"])
    anchor_publish = [
        Pattern(".", tuple(ONE if w == "*" else ANY if w == "#" else w for w in p.split(".")))
        for p in anchor["publish"]
    ]
    links = [anchor_publish] + [c.publish for c in chain]
    if not all(any(p.matches(topic) for p in link) for link in links):
        raise _RejectError("topic_outside_scope")
    return {
        "expect": "success",
        "principal": chain[-1].subject,
        "authorities": [anchor["name"]] + [c.subject for c in chain[:-1]],
        "roles": sorted(roles),
        "sender": fingerprint_text(hashlib.sha256(chain[-1].subject_identity).digest()),
    }


def verify_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """The outcome fields of a credential vector (section 6)."""
    try:
        chain = [parse_credential(bytes.fromhex(c)) for c in vector["chain"]]
        return _verify(vector["anchor"], chain, vector["now"], vector["topic"])
    except _RejectError as exc:
        return {"expect": "reject", "reason": exc.reason}
