"""The thin pyca/cryptography layer under :mod:`letterlock.trust.x509` (X.509 sender chains).

Two things only: parse a certificate into plain values (:class:`Certificate`), and run pyca's
X.509 path validation (:func:`verify_chain`) with the extension policies letterlock chose
deliberately. Everything that decides who a sender is and what it may send (the SAN rule,
namespaces, topic scopes, the binding to a letterlock identity) is policy and lives in
:mod:`letterlock.trust.x509`, which never imports cryptography (contract ``crypto``).

Why the extension policies are overridden (``docs/spec/x509.md`` section 4): pyca's client
verifier checks the leaf's EKU against clientAuth, so a leaf whose only EKU is letterlock's
would be refused, while a clientAuth certificate (a TLS client certificate, which the company CA
issues for other purposes) or one without EKU at all would pass. letterlock wants the opposite:
the leaf MUST carry the EKU it is given (``eku``) and CA certificates that restrict EKUs MUST
allow it. Every other rule is pyca's WebPKI default, unchanged.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from letterlock._suites import Suite

__all__ = [
    "ANY_EKU",
    "CLIENT_AUTH",
    "SERVER_AUTH",
    "Certificate",
    "ChainError",
    "certificate_request",
    "load_der",
    "load_pem",
    "signing_key_spki",
    "verify_chain",
]

ANY_EKU: Final = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string
CLIENT_AUTH: Final = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
SERVER_AUTH: Final = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
_PEM: Final = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_P384_POINT: Final = 97  # the EC half of the pq suite's dual signing key (uncompressed P-384)


class ChainError(ValueError):
    """pyca refused the path (its message, for local logs only)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """One parsed certificate, as plain values (what the policy above needs, nothing more)."""

    der: bytes
    fingerprint: bytes  #: SHA-256 of the DER
    subject: str  #: RFC 4514
    issuer: str  #: RFC 4514
    not_before: int  #: Unix seconds
    not_after: int  #: Unix seconds
    is_ca: bool  #: basicConstraints cA
    uris: tuple[str, ...]  #: the URI SANs, in order
    other_names: int  #: SANs of every other kind
    eku: tuple[str, ...] | None  #: dotted OIDs, or None without the extension
    spki: bytes  #: SubjectPublicKeyInfo, DER
    extensions: tuple[tuple[str, bool, bytes], ...]  #: (OID, critical, extnValue contents)
    _parsed: x509.Certificate

    def extension(self, oid: str) -> tuple[bool, bytes] | None:
        """(critical, value) of the extension ``oid``, or None when absent."""
        for dotted, critical, value in self.extensions:
            if dotted == oid:
                return critical, value
        return None


def _seconds(moment: datetime.datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


#: What pyca raises on certificates it cannot read, beyond ValueError (none is a ValueError).
_UNREADABLE: Final = (
    ValueError,
    TypeError,
    NotImplementedError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


def _from_pyca(cert: x509.Certificate, der: bytes) -> Certificate:
    """The plain values of ``cert`` (parsed from ``der``). ValueError for anything pyca cannot
    read: pyca parses extensions lazily, and raises other types for some inputs."""
    try:
        return _values(cert, der)
    except _UNREADABLE as exc:
        raise ValueError(f"malformed certificate: {exc}") from None


def _values(cert: x509.Certificate, der: bytes) -> Certificate:
    uris: list[str] = []
    others = 0
    eku: tuple[str, ...] | None = None
    is_ca = False
    raw: list[tuple[str, bool, bytes]] = []
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.UnrecognizedExtension):  # letterlock's own are unknown to pyca
            raw.append((ext.oid.dotted_string, ext.critical, value.value))
        elif isinstance(value, x509.SubjectAlternativeName):
            for name in value:
                if isinstance(name, x509.UniformResourceIdentifier):
                    uris.append(name.value)
                else:
                    others += 1
        elif isinstance(value, x509.ExtendedKeyUsage):
            eku = tuple(oid.dotted_string for oid in value)
        elif isinstance(value, x509.BasicConstraints):
            is_ca = value.ca
    return Certificate(
        der=der,
        fingerprint=hashlib.sha256(der).digest(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=_seconds(cert.not_valid_before_utc),
        not_after=_seconds(cert.not_valid_after_utc),
        is_ca=is_ca,
        uris=tuple(uris),
        other_names=others,
        eku=eku,
        spki=_spki(der),
        extensions=tuple(raw),
        _parsed=cert,
    )


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER element at ``at``; ValueError if truncated."""
    if at + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[at], data[at + 1]
    at += 2
    if first >= 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or at + count > len(data):
            raise ValueError("bad DER length")
        length, at = int.from_bytes(data[at : at + count], "big"), at + count
    else:
        length = first
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _check_serial(data: bytes) -> None:
    """Refuse a serial number that is not positive (RFC 5280 4.1.2.2).

    pyca still parses one with a deprecation warning (and will refuse it later); letterlock
    refuses it now, before pyca sees it, so no warning filter (process-global state) is needed.
    """
    _, tbs_at, _ = _tlv(data, 0)  # Certificate
    _, at, _ = _tlv(data, tbs_at)  # TBSCertificate
    tag, start, end = _tlv(data, at)
    if tag == 0xA0:  # [0] version
        tag, start, end = _tlv(data, end)
    if tag != 0x02 or start == end:
        raise ValueError("no serial number")
    if data[start] & 0x80 or not any(data[start:end]):
        raise ValueError("serial number is not positive")


def _spki(data: bytes) -> bytes:
    """The SubjectPublicKeyInfo exactly as the certificate encodes it (RFC 5280 4.1)."""
    _, tbs_at, _ = _tlv(data, 0)
    _, at, _ = _tlv(data, tbs_at)
    tag, _, end = _tlv(data, at)
    if tag == 0xA0:  # [0] version
        _, _, end = _tlv(data, end)  # serialNumber
    for _field in ("signature", "issuer", "validity", "subject"):
        _, _, end = _tlv(data, end)
    tag, _, spki_end = _tlv(data, end)
    if tag != 0x30:
        raise ValueError("no SubjectPublicKeyInfo")
    return data[end:spki_end]


def load_der(data: bytes) -> Certificate:
    """Parse one DER certificate. Raises ValueError when it is not one pyca accepts."""
    der = bytes(data)
    try:
        _check_serial(der)
        cert = x509.load_der_x509_certificate(der)
    except _UNREADABLE as exc:
        raise ValueError(f"not a DER certificate: {exc}") from None
    return _from_pyca(cert, der)


def load_pem(data: bytes) -> list[Certificate]:
    """Every certificate in PEM text, in order. ValueError when there is none or one is bad."""
    blocks = _PEM.findall(bytes(data))
    if not blocks:
        raise ValueError("no PEM certificate")
    try:
        ders = [base64.b64decode(b"".join(block.split()), validate=True) for block in blocks]
    except binascii.Error:
        raise ValueError("PEM certificate is not valid base64") from None
    return [load_der(der) for der in ders]


def signing_key_spki(suite: Suite, sig_public: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo an X.509 leaf carries for this signing key (spec section 6).

    p256/p384: the ECDSA key; x25519: the Ed25519 key; pq: the P-384 half of the dual key.
    None when the bytes are no valid key of the suite.
    """
    try:
        if suite is Suite.X25519:
            key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey = (
                ed25519.Ed25519PublicKey.from_public_bytes(sig_public)
            )
        elif suite is Suite.PQ:
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP384R1(), sig_public[-_P384_POINT:]
            )
        else:
            curve = ec.SECP256R1() if suite is Suite.P256 else ec.SECP384R1()
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, sig_public)
    except ValueError:
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ------------------------------------------------------------------------ path validation


def _ee_eku(
    eku: str,
) -> Callable[[verification.Policy, x509.Certificate, x509.ExtendedKeyUsage], None]:
    def check(_policy: verification.Policy, _cert: x509.Certificate,
              value: x509.ExtendedKeyUsage) -> None:  # fmt: skip
        if eku not in {oid.dotted_string for oid in value}:
            raise ValueError(f"leaf EKU lacks {eku}")

    return check


def _ca_eku(
    eku: str,
) -> Callable[[verification.Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    def check(_policy: verification.Policy, _cert: x509.Certificate,
              value: x509.ExtendedKeyUsage | None) -> None:  # fmt: skip
        if value is not None and not {eku, ANY_EKU} & {oid.dotted_string for oid in value}:
            raise ValueError(f"CA EKU allows neither {eku} nor anyExtendedKeyUsage")

    return check


_POLICIES: dict[str, tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]] = {}


def _policies(eku: str) -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    """(CA policy, EE policy): WebPKI defaults with the EKU rules of the module docstring."""
    policies = _POLICIES.get(eku)
    if policies is None:
        any_criticality = verification.Criticality.AGNOSTIC
        ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, any_criticality, _ca_eku(eku)
        )
        ee = verification.ExtensionPolicy.webpki_defaults_ee().require_present(
            x509.ExtendedKeyUsage, any_criticality, _ee_eku(eku)
        )
        policies = _POLICIES.setdefault(eku, (ca, ee))
    return policies


def verify_chain(
    anchors: Sequence[Certificate],
    leaf: Certificate,
    intermediates: Sequence[Certificate],
    *,
    at: float,
    eku: str,
    max_depth: int,
) -> list[Certificate]:
    """The path pyca validated, leaf first and anchor last, at Unix time ``at``.

    ``max_depth`` is pyca's ``max_chain_depth``: how many intermediates may stand between the
    leaf and the anchor. Raises :class:`ChainError` with pyca's reason when no path validates.
    """
    if not anchors:
        raise ChainError("no trust anchor")
    ca_policy, ee_policy = _policies(eku)
    moment = _EPOCH + datetime.timedelta(seconds=at)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([anchor._parsed for anchor in anchors]))
        .time(moment.replace(tzinfo=None))
        .max_chain_depth(max_depth)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf._parsed, [cert._parsed for cert in intermediates])
    except (verification.VerificationError, *_UNREADABLE) as exc:
        raise ChainError(str(exc)) from None  # hostile input fails in one shape
    by_der = {cert.der: cert for cert in (leaf, *intermediates, *anchors)}
    path = [(cert, cert.public_bytes(serialization.Encoding.DER)) for cert in verified.chain]
    return [by_der.get(der) or _from_pyca(cert, der) for cert, der in path]


# ------------------------------------------------------------------------ certificate requests

#: ecdsa-with-SHA256, ecdsa-with-SHA384 (RFC 5758) and Ed25519 (RFC 8410), by suite: the
#: signature of the SubjectPublicKeyInfo of ``signing_key_spki`` (pq: its P-384 half).
_CSR_ALGORITHM: Final = {
    Suite.P256: "1.2.840.10045.4.3.2",
    Suite.P384: "1.2.840.10045.4.3.3",
    Suite.PQ: "1.2.840.10045.4.3.3",
    Suite.X25519: "1.3.101.112",
}
_EXTENSION_REQUEST: Final = "1.2.840.113549.1.9.14"  # PKCS #9 extensionRequest
_SAN: Final = "2.5.29.17"
_EKU: Final = "2.5.29.37"
_SCALAR_BYTES: Final = {Suite.P256: 32, Suite.P384: 48, Suite.PQ: 48}


def _der(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        return bytes([tag, n]) + contents
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + contents


def _oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER's DER (X.690 8.19: the first two arcs as one subidentifier)."""
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    body = bytearray()
    for number in (40 * first + second, *rest):
        chunk = [number & 0x7F]
        remaining = number >> 7
        while remaining:
            chunk.append(0x80 | (remaining & 0x7F))
            remaining >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _extension(oid: str, value: bytes) -> bytes:
    return _der(0x30, _oid(oid) + _der(0x04, value))


def certificate_request(
    suite: Suite,
    sig_public: bytes,
    sign: Callable[[bytes], bytes],
    *,
    principal: str,
    eku: str,
    extra: Sequence[tuple[str, bytes]],
) -> bytes:
    """A PEM PKCS #10 request for a signing key, made with a signing callback (so a key on a
    token signs too): subject CN = ``principal``, and requested extensions subjectAltName (the
    principal as a URI), extendedKeyUsage ``eku``, and ``extra`` (OID, extnValue contents).

    ``sign`` is the identity's signer: raw ECDSA ``r || s`` with the suite's hash (for pq the
    ECDSA P-384 signature is the tail of its dual signature), or Ed25519.
    """
    spki = signing_key_spki(suite, sig_public)
    if spki is None:
        raise ValueError("not a signing key of the suite")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal)]).public_bytes()
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(principal)]).public_bytes()
    usage = x509.ExtendedKeyUsage([x509.ObjectIdentifier(eku)]).public_bytes()
    extensions = _der(
        0x30,
        _extension(_SAN, san)
        + _extension(_EKU, usage)
        + b"".join(_extension(oid, value) for oid, value in extra),
    )
    attribute = _der(0x30, _oid(_EXTENSION_REQUEST) + _der(0x31, extensions))
    info = _der(0x30, _der(0x02, b"\x00") + subject + spki + _der(0xA0, attribute))
    signature = sign(info)
    if suite is not Suite.X25519:
        size = _SCALAR_BYTES[suite]
        rs = signature[-2 * size :]
        signature = encode_dss_signature(
            int.from_bytes(rs[:size], "big"), int.from_bytes(rs[size:], "big")
        )
    algorithm = _der(0x30, _oid(_CSR_ALGORITHM[suite]))
    der = _der(0x30, info + algorithm + _der(0x03, b"\x00" + signature))
    request = x509.load_der_x509_csr(der)
    if not request.is_signature_valid:
        raise ValueError("the signer's key is not the identity's signing key")
    return request.public_bytes(serialization.Encoding.PEM)
