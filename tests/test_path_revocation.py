"""A status document that revokes an authority's or a CA's key refuses every sender it vouches
for (``docs/spec/root.md`` section 4): credential chains and X.509 paths, carried in the
envelope and from the receiver's snapshot, with the revoked-since rules of sender keys."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

import pytest

import letterlock
from conftest import NOW
from letterlock import CredentialFormat, Identity, Rejected, ReplayWindow, Suite
from letterlock.core.keys import PrivateKeys
from letterlock.core.principal import Namespace
from letterlock.core.trust import Refusal, TrustPolicy
from letterlock.errors import ParseError, Reason
from letterlock.trust import DenyRevokedPins, FirstKnown, Pins
from letterlock.trust.authorities import Authorities
from letterlock.trust.check import admit_pattern
from letterlock.trust.credentials import Anchor as CredentialAnchor
from letterlock.trust.credentials import Credential, Kind, Scope, issue
from letterlock.trust.scope import ScopePattern
from letterlock.trust.status import Freshness, Revocation, RevocationReason, Revocations, Status
from letterlock.trust.x509 import Anchor, AnchorSet, ca_key_id
from letterlock.trust.x509_senders import X509Senders
from openssl_ca import PRINCIPAL, Openssl, scope_ext
from openssl_ca import unix_now as _now

TOPIC = "orders.eu.new"
FRESH = Freshness(max_age=3600)
SUPERSEDED, COMPROMISED = RevocationReason.SUPERSEDED, RevocationReason.COMPROMISED
UNKNOWN_TIME = RevocationReason.COMPROMISED_UNKNOWN_TIME


def _status(now: int, keys: Mapping[bytes, Revocation]) -> Status:
    return Status(
        data=b"", signed=b"", version=1, issued=now, expires=now + 3600, keys=dict(keys),
        principals={},
    )  # fmt: skip


def _revoking(
    inner: TrustPolicy, now: int, key: bytes, reason: RevocationReason, since: int | None
) -> Revocations:
    """``inner`` behind a status issued at ``now`` that revokes ``key`` only."""
    return Revocations(inner, _status(now, {key: Revocation(reason=reason, since=since)}), FRESH)


def _open(sealed: bytes, bob: Identity, trust: TrustPolicy, now: int) -> bytes:
    opened = letterlock.open(sealed, identity=bob, trust=trust, replay=ReplayWindow(), now=now)
    return opened.payload


def _refused(sealed: bytes, bob: Identity, trust: TrustPolicy, now: int) -> Rejected:
    with pytest.raises(Rejected) as caught:
        _open(sealed, bob, trust, now)
    assert caught.value.reason is Reason.UNTRUSTED
    assert "revoked" in caught.value.detail
    return caught.value


def _seal(sender: Identity, bob: Identity, now: int) -> bytes:
    return letterlock.seal(b"hi", sender=sender, recipients=[bob.public], topic=TOPIC, now=now)


# ---------------------------------------------------------------- letterlock credentials


def _scope(publish: str) -> Scope:
    return Scope(
        namespace=Namespace.parse("ll://acme/payments/"), roles=frozenset({"writer"}),
        publish=(ScopePattern.parse(publish),), consume=(),
    )  # fmt: skip


class _Credentials:
    """root (the anchor) -> payments (an authority) -> billing (the sender)."""

    def __init__(self) -> None:
        self.root, self.payments, self.billing, self.bob = (
            Identity.generate(Suite.X25519) for _ in range(4)
        )
        self.middle = issue(self.root, kind=Kind.AUTHORITY, subject="payments",
                            subject_identity=self.payments.public, not_before=NOW - 3600,
                            not_after=NOW + 7200, scope=_scope("orders.#"))  # fmt: skip
        self.bottom = issue(self.payments, kind=Kind.PRINCIPAL, subject=PRINCIPAL,
                            subject_identity=self.billing.public, not_before=NOW - 3600,
                            not_after=NOW + 7200, scope=_scope("#"))  # fmt: skip
        self.anchor = CredentialAnchor(
            name="acme", identity=self.root.public, namespace=Namespace.parse("ll://acme/"),
            max_depth=2,
        )  # fmt: skip

    def carried(self) -> tuple[TrustPolicy, Identity]:
        items = [self.bottom.encoded, self.middle.encoded]
        sender = self.billing.with_credentials(CredentialFormat.LETTERLOCK, items)
        return Authorities([self.anchor], []), sender

    def snapshot(self) -> tuple[TrustPolicy, Identity]:
        credentials: list[Credential] = [self.middle, self.bottom]
        return Authorities([self.anchor], credentials), self.billing


@pytest.mark.parametrize("where", ["carried", "snapshot"])
def test_a_revoked_authority_key_refuses_its_principals_from_its_since_time(where: str) -> None:
    pki = _Credentials()
    inner, sender = getattr(pki, where)()
    revoked_at = NOW + 100
    key = pki.payments.public.fingerprint
    assert key not in (pki.billing.public.fingerprint, pki.root.public.fingerprint)
    trust = _revoking(inner, NOW, key, SUPERSEDED, revoked_at)
    # a message dated before a superseded authority's revoked-since time still opens
    assert _open(_seal(sender, pki.bob, NOW + 99), pki.bob, trust, NOW + 200) == b"hi"
    refused = _refused(_seal(sender, pki.bob, revoked_at), pki.bob, trust, NOW + 200)
    assert pki.payments.public.fingerprint_text in refused.detail
    # not revoked: opens at the same time
    clean = Revocations(inner, _status(NOW, {}), FRESH)
    assert _open(_seal(sender, pki.bob, revoked_at), pki.bob, clean, NOW + 200) == b"hi"


@pytest.mark.parametrize("where", ["carried", "snapshot"])
def test_an_authority_compromised_at_an_unknown_time_refuses_every_message(where: str) -> None:
    pki = _Credentials()
    inner, sender = getattr(pki, where)()
    key = pki.payments.public.fingerprint
    trust = _revoking(inner, NOW, key, UNKNOWN_TIME, None)
    _refused(_seal(sender, pki.bob, NOW - 3000), pki.bob, trust, NOW)


@pytest.mark.parametrize("where", ["carried", "snapshot"])
def test_a_revoked_anchor_key_refuses_every_chain_from_it(where: str) -> None:
    pki = _Credentials()
    inner, sender = getattr(pki, where)()
    key = pki.root.public.fingerprint
    trust = _revoking(inner, NOW, key, COMPROMISED, NOW - 10)
    _refused(_seal(sender, pki.bob, NOW), pki.bob, trust, NOW)
    assert _open(_seal(sender, pki.bob, NOW - 11), pki.bob, trust, NOW) == b"hi"


# ---------------------------------------------------------------- X.509


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate(Suite.P256)


@pytest.fixture(scope="module")
def ssl(tmp_path_factory: pytest.TempPathFactory, keys: PrivateKeys) -> Openssl:
    """Acme Root -> Acme Issuing (orders.#) -> billing."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    made = Openssl(tmp_path_factory.mktemp("path-revocation"))
    made.root_ca("Acme Root")
    ext, sections = scope_ext("issuing", ("orders.#",), ())
    made.intermediate("Acme Issuing", "Acme Root", extra=ext, sections=sections)
    made.leaf("billing", "Acme Issuing", keys, publish=("#",))
    return made


def _x509(ssl: Openssl, keys: PrivateKeys, where: str, now: int) -> tuple[TrustPolicy, Identity]:
    anchors = AnchorSet(
        [Anchor(name="acme", certificate=ssl.der("Acme Root"), namespace="ll://acme/")]
    )
    chain = [ssl.der("billing"), ssl.der("Acme Issuing")]
    if where == "carried":
        return X509Senders(anchors, [], now=now), keys.identity().with_credentials(
            CredentialFormat.X509, chain
        )
    return X509Senders(anchors, [chain], now=now), keys.identity()


@needs_openssl
@pytest.mark.parametrize("where", ["carried", "snapshot"])
@pytest.mark.parametrize("ca", ["Acme Issuing", "Acme Root"])
def test_a_revoked_ca_key_refuses_the_leaves_it_certified(
    ssl: Openssl, keys: PrivateKeys, where: str, ca: str
) -> None:
    now = _now()
    bob = Identity.generate(Suite.P256)
    inner, sender = _x509(ssl, keys, where, now)
    key = ca_key_id(ssl.der(ca))
    revoked = _revoking(inner, now, key, SUPERSEDED, now - 5)
    _refused(_seal(sender, bob, now), bob, revoked, now)
    # dated before the revoked-since time: still opens
    assert _open(_seal(sender, bob, now - 6), bob, revoked, now) == b"hi"
    unknown = _revoking(inner, now, key, UNKNOWN_TIME, None)
    _refused(_seal(sender, bob, now - 6), bob, unknown, now)
    assert _open(_seal(sender, bob, now), bob, Revocations(inner, _status(now, {}), FRESH), now)


@needs_openssl
def test_the_ca_key_id_names_the_key_not_the_certificate(ssl: Openssl) -> None:
    issuing, root = ca_key_id(ssl.der("Acme Issuing")), ca_key_id(ssl.der("Acme Root"))
    assert len(issuing) == 32
    assert issuing != root
    assert ca_key_id(ssl.made["Acme Issuing"].read_bytes()) == issuing  # PEM
    with pytest.raises(ParseError):
        ca_key_id(b"not a certificate")


# ---------------------------------------------------------------- the receiver's own revocation


def _revoked_pin(identity: Identity) -> Pins:
    pins = Pins()
    pins.pin("billing", identity.public)
    pins.revoke("billing")
    return pins


@needs_openssl
def test_a_locally_revoked_key_stays_refused_when_it_carries_a_valid_certificate(
    ssl: Openssl, keys: PrivateKeys
) -> None:
    now = _now()
    bob = Identity.generate(Suite.P256)
    carried, sender = _x509(ssl, keys, "carried", now)
    pins = _revoked_pin(keys.identity())
    sealed = _seal(sender, bob, now)
    # the hole: a policy asked before the pins admits the key they revoked
    assert _open(sealed, bob, FirstKnown(carried, pins), now) == b"hi"
    for inner in (FirstKnown(carried, pins), FirstKnown(pins, carried), carried):
        with pytest.raises(Rejected) as caught:
            _open(sealed, bob, DenyRevokedPins(pins, inner), now)
        assert caught.value.reason is Reason.UNTRUSTED
        assert "pin 'billing' is revoked" in caught.value.detail
        refused = admit_pattern(
            DenyRevokedPins(pins, inner), keys.identity().public, ScopePattern.parse("orders.#"),
            now=now,
        )  # fmt: skip
        assert isinstance(refused, Refusal)
        assert "revoked" in refused.detail
    # a key the pins do not revoke is the inner policy's to decide
    assert _open(sealed, bob, DenyRevokedPins(Pins(), FirstKnown(carried, pins)), now) == b"hi"


def test_a_locally_revoked_key_stays_refused_when_an_authority_certifies_it() -> None:
    pki = _Credentials()
    inner, sender = pki.carried()
    pins = _revoked_pin(pki.billing)
    sealed = _seal(sender, pki.bob, NOW)
    assert _open(sealed, pki.bob, FirstKnown(inner, pins), NOW) == b"hi"
    with pytest.raises(Rejected) as caught:
        _open(sealed, pki.bob, DenyRevokedPins(pins, FirstKnown(inner, pins)), NOW)
    assert caught.value.reason is Reason.UNTRUSTED
    # revoked after the policy was made: refused too (the pins are read on every call)
    later = Pins()
    policy = DenyRevokedPins(later, FirstKnown(inner, later))
    later.pin("billing", pki.billing.public)
    assert _open(sealed, pki.bob, policy, NOW) == b"hi"
    later.revoke("billing")
    with pytest.raises(Rejected):
        _open(_seal(sender, pki.bob, NOW + 1), pki.bob, policy, NOW + 1)


# ------------------------------------------------ a delegated signing key (keyset.md section 9)


def test_a_signing_key_of_an_identity_an_authority_certifies_is_refused_with_its_path() -> None:
    """Billing's identity key is certified by the payments authority (in the receiver's
    snapshot); billing signs with a signing key of its keyset. Admitted as billing's principal,
    with the authority path and billing's identity key in ``path_keys``; a status revoking the
    authority, billing's identity key or the signing key refuses it."""
    from letterlock.trust import DelegatedSigners, delegated
    from letterlock.trust.keysets import Keyset, Purpose, sign_keyset

    pki = _Credentials()
    inner, billing = pki.snapshot()
    signer = Identity.generate(Suite.X25519)
    keyset = Keyset.start(billing.public, now=NOW - 60, lifetime=86400, grace=0)
    keyset = keyset.add(signer.public, now=NOW - 60, lifetime=3600, purpose=Purpose.SIGN)
    sender = delegated(signer, sign_keyset(keyset, billing), now=NOW)
    sealed = _seal(sender, pki.bob, NOW)
    clean = Revocations(DelegatedSigners(inner), _status(NOW, {}), FRESH)
    opened = letterlock.open(sealed, identity=pki.bob, trust=clean, replay=ReplayWindow(), now=NOW)
    assert opened.sender.principal == PRINCIPAL
    assert opened.sender.key_id == signer.public.fingerprint
    assert opened.sender.path_keys[-1] == billing.public.fingerprint
    for key in (pki.payments, billing, signer):
        trust = _revoking(DelegatedSigners(inner), NOW, key.public.fingerprint, COMPROMISED, NOW)
        _refused(sealed, pki.bob, trust, NOW)
