"""The CA key ids of an X.509 sender path, from ``docs/spec/x509.md`` alone.

Nothing from ``letterlock`` or ``cryptography`` is imported: a few lines of DER (X.690) read
each certificate's issuer, subject and SubjectPublicKeyInfo (RFC 5280 section 4.1), and the
rest is the spec's text:

- section 7, "Key id and revocation": a certificate's key id is the SHA-256 of its
  SubjectPublicKeyInfo DER, written ``SHA256:`` and unpadded base64;
- section 9, carriage order: each certificate's issuer name is the next one's subject name
  (leaf first), and the path ends at the receiver's anchor whose subject is the last issuer.

:func:`path_key_ids` gives the key ids of the anchor and of each intermediate, the anchor's
first: the keys a status document can revoke the sender by (section 7).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_SEQUENCE, _INTEGER, _VERSION = 0x30, 0x02, 0xA0


class MalformedError(ValueError):
    """Not the DER of an X.509 certificate."""


def der_of(pem: str) -> bytes:
    """The DER of the one certificate in ``pem``."""
    (body,) = _PEM.findall(pem)
    return base64.b64decode("".join(body.split()), validate=True)


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """The element at ``at``: (tag, start of its contents, end of it). DER: one-byte tags,
    definite minimal lengths."""
    if at + 2 > len(data):
        raise MalformedError("truncated element")
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise MalformedError("multi-byte tag")
    start = at + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > len(data) or data[start] == 0:
            raise MalformedError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80:
            raise MalformedError("non-minimal length")
        start += count
    end = start + length
    if end > len(data):
        raise MalformedError("truncated contents")
    return tag, start, end


def _expect(data: bytes, at: int, tag: int) -> tuple[int, int]:
    found, start, end = _element(data, at)
    if found != tag:
        raise MalformedError(f"tag {found:#x} where {tag:#x} belongs")
    return start, end


@dataclass(frozen=True, slots=True)
class Certificate:
    issuer: bytes  #: the issuer Name, its whole DER element
    subject: bytes  #: the subject Name, its whole DER element
    spki: bytes  #: the SubjectPublicKeyInfo, its whole DER element


def parse(der: bytes) -> Certificate:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue };
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    validity, subject, subjectPublicKeyInfo, ... } (RFC 5280 section 4.1)."""
    start, end = _expect(der, 0, _SEQUENCE)
    if end != len(der):
        raise MalformedError("bytes after the certificate")
    at, _ = _expect(der, start, _SEQUENCE)  # tbsCertificate's contents
    fields: list[bytes] = []
    if der[at] == _VERSION:
        at = _element(der, at)[2]
    at = _expect(der, at, _INTEGER)[1]  # serialNumber
    for _name in ("signature", "issuer", "validity", "subject", "subjectPublicKeyInfo"):
        _, end = _expect(der, at, _SEQUENCE)
        fields.append(der[at:end])
        at = end
    _signature, issuer, _validity, subject, spki = fields
    return Certificate(issuer=issuer, subject=subject, spki=spki)


def key_id(der: bytes) -> str:
    """Section 7: ``SHA256:`` and the unpadded base64 of SHA-256(SubjectPublicKeyInfo DER)."""
    digest = hashlib.sha256(parse(der).spki).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def path_key_ids(anchors: Sequence[bytes], chain: Sequence[bytes]) -> list[str] | None:
    """The key ids of the path's anchor and intermediates, the anchor's first; None when the
    chain (leaf first, in carriage order) does not lead to one of ``anchors``."""
    parsed = [parse(der) for der in chain]
    for lower, upper in itertools.pairwise(parsed):
        if lower.issuer != upper.subject:
            return None  # out of carriage order
    intermediates = list(chain[1:])
    if intermediates and intermediates[-1] in anchors:  # the anchor, carried last
        intermediates.pop()
    last = parse(intermediates[-1]) if intermediates else parsed[0]
    found = [der for der in anchors if parse(der).subject == last.issuer]
    if len(found) != 1:
        return None
    return [key_id(der) for der in (found[0], *reversed(intermediates))]
