"""X.509 sender chains (``letterlock.trust.x509``, ``docs/spec/x509.md``).

The certificates are made by the ``openssl`` command line (``req``, ``x509 -req``, ``ca``) from
configuration files written here, not by letterlock or pyca: what a company CA's tooling emits
is what the verifier must accept or refuse. The hypothesis property builds its chains with pyca
(thousands of openssl runs would be too slow) and checks that adding a link never widens what
is accepted.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import letterlock
from letterlock import Identity, Rejected, ReplayWindow, Suite
from letterlock.core.keys import PrivateKeys
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import ParseError, Reason
from letterlock.trust import x509
from letterlock.trust.x509 import (
    Anchor,
    AnchorSet,
    Refused,
    Scope,
    X509Refusal,
    X509Sender,
    verify_chain,
    verify_sender,
)
from letterlock.trust.x509_senders import X509Senders
from openssl_ca import (
    CA_EXT,
    DAY,
    EKU,
    PRINCIPAL,
    Openssl,
    der_octets,
    scope_ext,
    scope_sections,
    sig_private_pem,
)
from openssl_ca import (
    unix_now as _now,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate(Suite.P256)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, keys: PrivateKeys) -> Openssl:
    """Acme Root -> Acme Issuing -> billing (the accepted chain), made once."""
    ssl = Openssl(tmp_path_factory.mktemp("pki"))
    ssl.root_ca("Acme Root")
    ssl.intermediate("Acme Issuing", "Acme Root")
    ssl.leaf("billing", "Acme Issuing", keys)
    return ssl


def anchors(ssl: Openssl, name: str = "Acme Root", namespace: str = "ll://acme/") -> AnchorSet:
    return AnchorSet([Anchor(name="acme", certificate=ssl.der(name), namespace=namespace)])


def refused(result: X509Sender | Refused) -> X509Refusal:
    assert isinstance(result, Refused), result
    return result.reason


def test_openssl_chain_accepted(pki: Openssl, keys: PrivateKeys) -> None:
    sender = verify_sender(
        anchors(pki), pki.der("billing"), [pki.der("Acme Issuing")],
        at=_now(), key_id=keys.public.fingerprint, topic="orders.eu.new",
    )  # fmt: skip
    assert isinstance(sender, X509Sender), sender
    assert sender.principal == PRINCIPAL
    assert sender.anchor == "acme"
    assert sender.identity == keys.public
    assert [link.subject for link in sender.chain] == [
        "CN=billing,O=Acme", "CN=Acme Issuing,O=Acme", "CN=Acme Root,O=Acme",
    ]  # fmt: skip
    leaf = pyca_x509.load_der_x509_certificate(pki.der("billing"))
    assert sender.chain[0].fingerprint == leaf.fingerprint(hashes.SHA256()).hex()
    issuing = pyca_x509.load_der_x509_certificate(pki.der("Acme Issuing"))
    assert sender.not_after == min(  # the earliest expiry on the path
        int(cert.not_valid_after_utc.timestamp()) for cert in (leaf, issuing)
    )
    assert sender.may_consume("replies.x")
    assert not sender.may_consume("orders.x")


@pytest.mark.parametrize("suite", [Suite.P384, Suite.X25519])
def test_other_suites_bind_their_signing_key(tmp_path: Path, suite: Suite) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    other = PrivateKeys.generate(suite)
    ssl.leaf("leaf", "Root", other)
    sender = verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [], at=_now())
    assert isinstance(sender, X509Sender), sender
    assert sender.key_id == other.public.fingerprint


def test_the_envelope_key_id_must_be_the_leafs(pki: Openssl) -> None:
    stranger = PrivateKeys.generate(Suite.P256).public
    result = verify_sender(
        anchors(pki), pki.der("billing"), [pki.der("Acme Issuing")],
        at=_now(), key_id=stranger.fingerprint, topic="orders.eu.new",
    )  # fmt: skip
    assert refused(result) is X509Refusal.WRONG_KEY


def test_identity_extension_must_name_the_leafs_key(tmp_path: Path, keys: PrivateKeys) -> None:
    """A CA that certified key K cannot be made to vouch for identity J: J's signing key must be
    the leaf's SubjectPublicKeyInfo."""
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.leaf("leaf", "Root", keys, identity=PrivateKeys.generate(Suite.P256).public)
    assert refused(verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [], at=_now())) is (
        X509Refusal.WRONG_KEY
    )


@pytest.mark.parametrize(
    ("eku", "why"),
    [
        ("clientAuth", "clientAuth only: a TLS client certificate is no sender certificate"),
        ("emailProtection", "wrong EKU"),
        ("anyExtendedKeyUsage", "anyExtendedKeyUsage is no letterlock purpose in a leaf"),
        (None, "no EKU at all"),
    ],
)
def test_leaf_without_letterlocks_eku_refused(
    tmp_path: Path, keys: PrivateKeys, eku: str | None, why: str
) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.leaf("leaf", "Root", keys, eku=eku)
    assert refused(verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [], at=_now())) is (
        X509Refusal.WRONG_EKU
    ), why
    # pyca's own path validation refuses it too, under letterlock's extension policies
    path = x509.validate_path([ssl.der("Root")], ssl.der("leaf"), [], at=_now())
    assert isinstance(path, Refused), why


def test_pyca_policy_accepts_a_letterlock_eku_only_leaf(pki: Openssl) -> None:
    """pyca's default client policy refuses a leaf whose only EKU is letterlock's: the override
    is what lets it through (and refuses clientAuth-only leaves, above)."""
    root, leaf, issuing = pki.der("Acme Root"), pki.der("billing"), pki.der("Acme Issuing")
    assert not isinstance(x509.validate_path([root], leaf, [issuing], at=_now()), Refused)
    default = x509.validate_path(
        [root],
        leaf,
        [issuing],
        at=_now(),
        eku="1.3.6.1.5.5.7.3.2",  # clientAuth
    )
    assert isinstance(default, Refused)


def test_ca_restricting_ekus_must_allow_letterlocks(tmp_path: Path, keys: PrivateKeys) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.intermediate("TLS only", "Root", extra="extendedKeyUsage = clientAuth\n")
    ssl.leaf("leaf", "TLS only", keys)
    ssl.intermediate("Ours", "Root", extra=f"extendedKeyUsage = clientAuth, {EKU}\n")
    ssl.leaf("leaf2", "Ours", keys, eku=f"clientAuth, {EKU}")  # other purposes beside ours
    ssl.intermediate("Any", "Root", extra="extendedKeyUsage = anyExtendedKeyUsage\n")
    ssl.leaf("leaf3", "Any", keys)
    roots = anchors(ssl, "Root")
    bad = verify_chain(roots, ssl.der("leaf"), [ssl.der("TLS only")], at=_now())
    assert refused(bad) is X509Refusal.INVALID_CHAIN
    good = verify_chain(roots, ssl.der("leaf2"), [ssl.der("Ours")], at=_now())
    assert isinstance(good, X509Sender), good
    any_purpose = verify_chain(roots, ssl.der("leaf3"), [ssl.der("Any")], at=_now())
    assert isinstance(any_purpose, X509Sender), any_purpose


def test_expired_and_not_yet_valid_leaves_refused(tmp_path: Path, keys: PrivateKeys) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.leaf("old", "Root", keys, dates=("20200101000000Z", "20210101000000Z"))
    ssl.leaf("future", "Root", keys, dates=("20990101000000Z", "20991231000000Z"))
    roots = anchors(ssl, "Root")
    assert refused(verify_chain(roots, ssl.der("old"), [], at=_now())) is X509Refusal.EXPIRED
    assert refused(verify_chain(roots, ssl.der("future"), [], at=_now())) is (
        X509Refusal.NOT_YET_VALID
    )
    # time is an argument: the same certificate verifies at a time inside its validity
    leaf = pyca_x509.load_der_x509_certificate(ssl.der("old"))
    root = pyca_x509.load_der_x509_certificate(ssl.der("Root"))
    assert leaf.not_valid_before_utc < root.not_valid_before_utc  # the root is younger: refused
    assert isinstance(verify_chain(roots, ssl.der("old"), [], at=1_590_000_000), Refused)


def test_expired_intermediate_refused(tmp_path: Path, keys: PrivateKeys) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.issue("Issuing", "Root", extensions=CA_EXT, days=1)
    ssl.leaf("leaf", "Issuing", keys)
    result = verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [ssl.der("Issuing")],
                          at=_now() + 3 * DAY)  # fmt: skip
    assert refused(result) is X509Refusal.EXPIRED


def test_unknown_ca_refused(pki: Openssl, tmp_path: Path, keys: PrivateKeys) -> None:
    other = Openssl(tmp_path)
    other.root_ca("Acme Root")  # same name, another key: the name is no credential
    assert (
        refused(
            verify_chain(anchors(other), pki.der("billing"), [pki.der("Acme Issuing")], at=_now())
        )
        is X509Refusal.INVALID_CHAIN
    )
    stranger = Openssl(tmp_path / "s")
    stranger.root.mkdir()
    stranger.root_ca("Evil Root")
    assert refused(
        verify_chain(anchors(stranger, "Evil Root"), pki.der("billing"), [pki.der("Acme Issuing")],
                     at=_now())
    ) is X509Refusal.UNKNOWN_CA  # fmt: skip


@pytest.mark.parametrize(
    ("namespace", "principal", "expected"),
    [
        ("ll://acme/payments/", "ll://acme/payments/billing", None),
        ("ll://acme/hr/", "ll://acme/payments/billing", X509Refusal.OUT_OF_NAMESPACE),
        ("ll://acme/pay/", "ll://acme/payroll/x", X509Refusal.OUT_OF_NAMESPACE),
        ("ll://other/", "ll://acme/payments/billing", X509Refusal.OUT_OF_NAMESPACE),
        ("ll://acme/", "spiffe://acme/payments/billing", X509Refusal.OUT_OF_NAMESPACE),
        ("spiffe://acme.example/", "spiffe://acme.example/ns/prod/sa/billing", None),
        ("ll://acme/", "ll://acme/payments/../hr/x", X509Refusal.NO_PRINCIPAL),
        ("ll://acme/", "ll://ACME/payments", X509Refusal.NO_PRINCIPAL),
        ("ll://acme/", "https://acme/payments", X509Refusal.NO_PRINCIPAL),
    ],
)
def test_principal_must_lie_in_the_anchors_namespace(
    tmp_path: Path, keys: PrivateKeys, namespace: str, principal: str,
    expected: X509Refusal | None,
) -> None:  # fmt: skip
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.leaf("leaf", "Root", keys, san=f"URI:{principal}")
    result = verify_chain(anchors(ssl, "Root", namespace), ssl.der("leaf"), [], at=_now())
    if expected is None:
        assert isinstance(result, X509Sender), result
        assert result.principal == principal
    else:
        assert refused(result) is expected


@pytest.mark.parametrize(
    "san",
    [
        f"URI:{PRINCIPAL}, URI:ll://acme/payments/other",
        f"URI:{PRINCIPAL}, DNS:billing.acme.example",
        "DNS:billing.acme.example",
    ],
)
def test_san_must_be_exactly_one_uri(tmp_path: Path, keys: PrivateKeys, san: str) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ssl.leaf("leaf", "Root", keys, san=san)
    assert refused(verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [], at=_now())) is (
        X509Refusal.NO_PRINCIPAL
    )


def test_anchors_are_checked(pki: Openssl) -> None:
    root = pki.der("Acme Root")
    for namespace in ("ll://acme", "ll://acme/payments", "https://acme/", "ll://Acme/", "ll:///"):
        with pytest.raises(ValueError, match="namespace"):
            AnchorSet([Anchor(name="a", certificate=root, namespace=namespace)])
    with pytest.raises(ValueError, match="already an anchor"):
        AnchorSet([Anchor(name=n, certificate=root, namespace="ll://acme/") for n in "ab"])
    with pytest.raises(ValueError, match="not a DER certificate"):
        AnchorSet([Anchor(name="a", certificate=root[:-1], namespace="ll://acme/")])


def _ladder(ssl: Openssl, depth: int) -> list[bytes]:
    issuer = "Root"
    for i in range(depth):
        ssl.intermediate(f"I{i}", issuer)
        issuer = f"I{i}"
    return [ssl.der(f"I{i}") for i in reversed(range(depth))]


def test_four_intermediates_accepted_five_refused(tmp_path: Path, keys: PrivateKeys) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    chain = _ladder(ssl, 5)
    ssl.leaf("deep", "I4", keys)
    ssl.leaf("ok", "I3", keys)
    roots = anchors(ssl, "Root")
    assert isinstance(verify_chain(roots, ssl.der("ok"), chain[1:], at=_now()), X509Sender)
    assert refused(verify_chain(roots, ssl.der("deep"), chain, at=_now())) is X509Refusal.TOO_DEEP
    # depth is counted on the path, not only on what was sent: pyca's max_chain_depth is 4
    sent = chain[:4]  # I4..I1, the path still needs I0
    assert isinstance(verify_chain(roots, ssl.der("deep"), sent, at=_now()), Refused)
    path = x509.validate_path([ssl.der("Root")], ssl.der("deep"), chain, at=_now(), max_depth=5)
    assert isinstance(path, tuple)
    assert len(path) == 7
    too_deep = x509.validate_path([ssl.der("Root")], ssl.der("deep"), chain, at=_now())
    assert isinstance(too_deep, Refused)
    assert too_deep.reason is X509Refusal.INVALID_CHAIN


def test_malformed_certificates_refused(pki: Openssl) -> None:
    roots = anchors(pki)
    assert refused(verify_chain(roots, b"\x30\x03junk", [], at=_now())) is X509Refusal.MALFORMED
    big = b"\x30" + bytes(x509.MAX_CERT_BYTES)
    assert refused(verify_chain(roots, pki.der("billing"), [big], at=_now())) is (
        X509Refusal.MALFORMED
    )


def test_scope_narrowing_intermediate_wins(tmp_path: Path, keys: PrivateKeys) -> None:
    """The leaf says orders.#; its issuing CA allows only orders.eu.*: the intersection holds."""
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ext, sections = scope_ext("eu", ("orders.eu.*",), ("replies.#",))
    ssl.intermediate("EU", "Root", extra=ext, sections=sections)
    ssl.leaf("leaf", "EU", keys, publish=("orders.#",))
    args = (anchors(ssl, "Root"), ssl.der("leaf"), [ssl.der("EU")])
    ok = verify_sender(*args, at=_now(), key_id=keys.public.fingerprint, topic="orders.eu.new")
    assert isinstance(ok, X509Sender), ok
    assert len(ok.scopes) == 2
    wide = verify_sender(*args, at=_now(), key_id=keys.public.fingerprint, topic="orders.us.new")
    assert refused(wide) is X509Refusal.SCOPE
    outside = verify_sender(*args, at=_now(), key_id=keys.public.fingerprint, topic="billing.x")
    assert refused(outside) is X509Refusal.SCOPE


def test_leaf_without_scope_may_send_nothing(tmp_path: Path, keys: PrivateKeys) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    key = ssl.root / "leaf.key"
    key.write_bytes(sig_private_pem(keys))
    bound = der_octets(keys.public.to_bytes()).hex()
    ssl.issue("leaf", "Root", key=key, extensions=(
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        f"subjectKeyIdentifier = hash\nsubjectAltName = URI:{PRINCIPAL}\n"
        f"extendedKeyUsage = {EKU}\n{x509.IDENTITY_OID} = DER:{bound}\n"
    ))  # fmt: skip
    assert refused(verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [], at=_now())) is (
        X509Refusal.SCOPE
    )


def test_scope_der_round_trip_and_strictness() -> None:
    scope = Scope.of(publish=["orders.#", "a.*.b"], consume=[])
    encoded = x509.encode_scope(scope)
    assert encoded.hex() == "301530110c086f72646572732e230c05612e2a2e623000"
    assert x509.decode_scope(encoded) == scope
    bad = {
        "trailing byte": encoded + b"\x00",
        "truncated": encoded[:-1],
        "length not minimal": b"\x30\x81\x04\x30\x00\x30\x00",
        "a third list": b"\x30\x06\x30\x00\x30\x00\x30\x00",
        "one list": b"\x30\x02\x30\x00",
        "PrintableString": b"\x30\x05\x30\x03\x13\x01\x61\x30\x00",
        "not UTF-8": b"\x30\x05\x30\x03\x0c\x01\xff\x30\x00",
        "empty pattern": b"\x30\x04\x30\x02\x0c\x00\x30\x00",
    }
    for why, data in bad.items():
        with pytest.raises(ParseError):
            x509.decode_scope(data)
        assert why


def test_scope_der_matches_openssls_encoder(tmp_path: Path) -> None:
    """Our encoder and openssl's ASN1 generator (what the tests' CAs use) agree byte for byte."""
    publish, consume = ("orders.#", "a.*.b"), ("replies.#",)
    cfg = tmp_path / "scope.cnf"
    cfg.write_text(scope_sections("s", publish, consume), encoding="utf-8")
    out = tmp_path / "scope.der"
    subprocess.run(["openssl", "asn1parse", "-genconf", str(cfg), "-genstr", "SEQUENCE:s_scope",
                    "-noout", "-out", str(out)], check=True, capture_output=True)  # fmt: skip
    assert out.read_bytes() == x509.encode_scope(Scope.of(publish=publish, consume=consume))


# ------------------------------------------------------------------------ property

_PATTERNS = ["#", "orders.#", "orders.*", "orders.eu.*", "orders.eu.new", "*.eu.*", "billing.#"]
_TOPICS = ["orders", "orders.eu", "orders.eu.new", "orders.us.new", "billing.eu.x", "x.eu.y"]
_START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_AT = int((_START + datetime.timedelta(days=1)).timestamp())


class _Mint:
    """Chains built with pyca, for the property (openssl per example would take minutes)."""

    def __init__(self) -> None:
        self.keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(6)]
        self.sender = PrivateKeys.generate(Suite.P256)
        self.serial = 1

    def cert(self, i: int, issuer: int, scope: tuple[str, ...] | None, *, leaf: bool) -> bytes:
        self.serial += 1
        public = _signing_public(self.sender) if leaf else self.keys[i].public_key()
        builder = (
            pyca_x509.CertificateBuilder()
            .subject_name(_name(f"n{i}"))
            .issuer_name(_name(f"n{issuer}"))
            .public_key(public)
            .serial_number(self.serial)
            .not_valid_before(_START)
            .not_valid_after(_START + datetime.timedelta(days=10))
            .add_extension(pyca_x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                pyca_x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.keys[issuer].public_key()
                ),
                critical=False,
            )
        )
        if leaf:
            identity = der_octets(self.sender.public.to_bytes())
            builder = (
                builder.add_extension(pyca_x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(pyca_x509.ExtendedKeyUsage([pyca_x509.ObjectIdentifier(EKU)]), False)
                .add_extension(
                    pyca_x509.SubjectAlternativeName(
                        [pyca_x509.UniformResourceIdentifier(PRINCIPAL)]
                    ),
                    False,
                )
                .add_extension(_unrecognized(x509.IDENTITY_OID, identity), False)
            )
        else:
            builder = builder.add_extension(
                pyca_x509.BasicConstraints(ca=True, path_length=None), True
            ).add_extension(_CA_USAGE, True)
        if scope is not None:
            value = x509.encode_scope(Scope.of(publish=scope, consume=()))
            builder = builder.add_extension(_unrecognized(x509.SCOPE_OID, value), False)
        cert = builder.sign(self.keys[issuer], hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.DER)

    def accepted(self, scopes: list[tuple[str, ...] | None], leaf: tuple[str, ...]) -> set[str]:
        """The topics a chain root(0) -> 1 -> ... -> leaf admits, CA scopes as given."""
        root = self.cert(0, 0, scopes[0], leaf=False)
        intermediates = [self.cert(i, i - 1, scopes[i], leaf=False) for i in range(1, len(scopes))]
        leaf_der = self.cert(5, len(scopes) - 1, leaf, leaf=True)
        roots = AnchorSet([Anchor(name="r", certificate=root, namespace="ll://acme/")])
        sender = verify_chain(roots, leaf_der, intermediates[::-1], at=_AT)
        assert isinstance(sender, X509Sender), sender
        return {topic for topic in _TOPICS if sender.may_publish(topic)}


def _name(common_name: str) -> pyca_x509.Name:
    return pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _unrecognized(oid: str, value: bytes) -> pyca_x509.UnrecognizedExtension:
    return pyca_x509.UnrecognizedExtension(pyca_x509.ObjectIdentifier(oid), value)


_CA_USAGE = pyca_x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _signing_public(keys: PrivateKeys) -> ec.EllipticCurvePublicKey:
    encoded = keys.public.to_bytes()
    length = int.from_bytes(encoded[5:7], "big")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), encoded[7 : 7 + length])


_MINT = _Mint()
_scope = st.one_of(st.none(), st.lists(st.sampled_from(_PATTERNS), max_size=2).map(tuple))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chain=st.lists(_scope, min_size=1, max_size=4),
    leaf=st.lists(st.sampled_from(_PATTERNS), min_size=1, max_size=2).map(tuple),
    link=_scope,
    where=st.integers(min_value=1, max_value=4),
)
def test_adding_a_link_never_widens(
    chain: list[tuple[str, ...] | None], leaf: tuple[str, ...], link: tuple[str, ...] | None,
    where: int,
) -> None:  # fmt: skip
    """Inserting a CA (with any scope, or none) anywhere below the root admits no new topic."""
    before = _MINT.accepted(chain, leaf)
    longer = [*chain[:where], link, *chain[where:]]
    after = _MINT.accepted(longer, leaf)
    assert after <= before
    if link is not None:
        assert after <= {t for t in _TOPICS if Scope.of(publish=link).allows_publish(t)}


# ------------------------------------------------------------------------ the trust policy


def test_open_admits_an_x509_sender_and_refuses_outside_its_scope(
    pki: Openssl, keys: PrivateKeys
) -> None:
    """seal/open end to end: the receiver holds the chain and the CA, nothing else."""
    bob = Identity.generate(Suite.P256)
    chain = (pki.der("billing"), pki.der("Acme Issuing"))
    now = _now()
    trust = X509Senders(anchors(pki), [chain, (b"junk",)], now=now)
    assert [refused.reason for _, refused in trust.refused] == [X509Refusal.MALFORMED]
    sealed = letterlock.seal(b"hi", sender=keys.identity(), recipients=[bob.public],
                             topic="orders.eu.new", now=now)  # fmt: skip
    opened = letterlock.open(sealed, identity=bob, trust=trust, replay=ReplayWindow(), now=now)
    assert opened.payload == b"hi"
    assert opened.sender.name == PRINCIPAL
    assert opened.sender.principal == PRINCIPAL  # for policy rules on principals
    assert opened.sender.via is Via.X509
    assert opened.sender.key_id == keys.public.fingerprint
    wide = letterlock.seal(b"hi", sender=keys.identity(), recipients=[bob.public],
                           topic="payroll.run", now=now)  # fmt: skip
    with pytest.raises(Rejected) as caught:
        letterlock.open(wide, identity=bob, trust=trust, replay=ReplayWindow(), now=now)
    assert caught.value.reason is Reason.UNTRUSTED
    assert "scope" in caught.value.detail
    stranger = Identity.generate(Suite.P256)
    unknown = letterlock.seal(b"hi", sender=stranger, recipients=[bob.public],
                              topic="orders.eu.new", now=now)  # fmt: skip
    with pytest.raises(Rejected) as caught:
        letterlock.open(unknown, identity=bob, trust=trust, replay=ReplayWindow(), now=now)
    assert caught.value.reason is Reason.UNKNOWN_SENDER


def test_policy_caches_a_verified_chain_within_its_validity(pki: Openssl) -> None:
    chain = (pki.der("billing"), pki.der("Acme Issuing"))
    now = _now()
    trust = X509Senders(anchors(pki), [chain], now=now)
    first = trust.verified(chain, now)
    assert isinstance(first, X509Sender)
    assert trust.verified(chain, now + 60) is first  # cached: no new path validation
    assert trust.verified(chain, now - 60) is not first  # the clock went back: verified again
    late = trust.verified(chain, first.not_after + 1)  # past the earliest expiry: refused
    assert isinstance(late, Refused)
    assert late.reason is X509Refusal.EXPIRED


def test_policy_refusals(pki: Openssl, keys: PrivateKeys, tmp_path: Path) -> None:
    chain = (pki.der("billing"), pki.der("Acme Issuing"))
    context = TrustContext(topic="orders.x", suite=Suite.P256, content_type=None, headers={},
                           created=_now(), now=_now())  # fmt: skip
    other_ca = Openssl(tmp_path)
    other_ca.root_ca("Other")
    # a chain no anchor vouches for makes its key not even known (it cannot shadow a pin)
    unanchored = X509Senders(anchors(other_ca, "Other"), [chain], now=_now())
    assert unanchored.lookup(keys.public.fingerprint) is None
    assert [r.reason for _, r in unanchored.refused] == [X509Refusal.UNKNOWN_CA]
    refusal = unanchored.admit(keys.public, context)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is Reason.UNKNOWN_SENDER
    trust = X509Senders(anchors(pki), [chain], now=_now())
    assert trust.lookup(keys.public.fingerprint) == keys.public
    assert trust.admit(keys.public, context) == trust.admit(keys.public, context)
    early = replace(context, now=_now() - 10 * DAY)  # before the certificates: retry later
    refusal = trust.admit(keys.public, early)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is Reason.UNTRUSTED
    assert refusal.transient
    late = replace(context, now=_now() + 400 * DAY)  # after them: dead-letter
    refusal = trust.admit(keys.public, late)
    assert isinstance(refusal, Refusal)
    assert not refusal.transient
    assert "expired" in refusal.detail


def test_a_scope_on_the_anchor_narrows_too() -> None:
    assert _MINT.accepted([("billing.#",)], ("#",)) == {"billing.eu.x"}
    assert _MINT.accepted([("billing.#",)], ("orders.#",)) == set()
    assert _MINT.accepted([None, None], ("orders.*",)) == {"orders.eu"}


def test_a_critical_scope_extension_is_refused(tmp_path: Path, keys: PrivateKeys) -> None:
    """The scope extension is non-critical (spec section 5): pyca refuses an unknown critical
    extension, so a CA that marks it critical issues chains nobody accepts."""
    ssl = Openssl(tmp_path)
    ssl.root_ca("Root")
    ext, sections = scope_ext("ca", ("orders.#",), ())
    ssl.intermediate("Critical", "Root", extra=ext.replace("= ASN1", "= critical, ASN1"),
                     sections=sections)  # fmt: skip
    ssl.leaf("leaf", "Critical", keys)
    result = verify_chain(anchors(ssl, "Root"), ssl.der("leaf"), [ssl.der("Critical")], at=_now())
    assert refused(result) is X509Refusal.INVALID_CHAIN


def test_policy_remembers_topic_decisions_within_a_bound(pki: Openssl, keys: PrivateKeys) -> None:
    chain = (pki.der("billing"), pki.der("Acme Issuing"))
    trust = X509Senders(anchors(pki), [chain], now=_now())
    context = TrustContext(topic="", suite=Suite.P256, content_type=None, headers={},
                           created=_now(), now=_now())  # fmt: skip
    for i in range(3000):  # topics a forger may claim before its signature is checked
        topic = f"orders.{i}" if i % 2 else f"payroll.{i}"
        decision = trust.admit(keys.public, replace(context, topic=topic))
        assert isinstance(decision, VerifiedSender) is bool(i % 2)
        assert len(trust._topics[chain]) <= 1024


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_chains_fail_in_one_shape(pki: Openssl, data: st.DataObject) -> None:
    """Flipped, cut or extended bytes anywhere in the chain: an X509Sender or a Refused (the
    one hostile-input outcome), never an exception."""
    chain = [pki.der("billing"), pki.der("Acme Issuing")]
    which = data.draw(st.integers(0, 1))
    der = bytearray(chain[which])
    how = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    at = data.draw(st.integers(0, len(der) - 1))
    if how == "flip":
        der[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del der[at:]
    else:
        der[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    chain[which] = bytes(der)
    result = verify_chain(anchors(pki), chain[0], chain[1:], at=_now())
    assert isinstance(result, X509Sender | Refused)
