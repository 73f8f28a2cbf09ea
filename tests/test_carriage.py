"""The credential block (envelope-v1 section 4.1) and the policies that verify carried chains.

Codec: round trips, every refusal of the block's parse order, and the builder's refusals.
Protocol: the block and the status version reach the trust policy, and are signed.
X.509 (``x509.md`` section 9, openssl-made chains) and letterlock credentials
(``credentials.md`` section 4.1): a receiver with only its anchors verifies a sender from the
envelope; wrong anchor, wrong key binding, widened scope, expiry at verify time (also for a
cached chain), revocation on every message, too many items, oversize block, mangled DER and a
block altered after signing are refused.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import letterlock
from conftest import NOW
from letterlock import (
    CredentialBlock,
    CredentialFormat,
    Identity,
    Limits,
    Rejected,
    ReplayWindow,
    Suite,
)
from letterlock.core import envelope
from letterlock.core.carriage import MAX_CREDENTIAL_ITEM, MAX_CREDENTIAL_ITEMS
from letterlock.core.keys import PrivateKeys, PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender, Via
from letterlock.errors import Reason, UsageError
from letterlock.trust import FirstKnown, Pins
from letterlock.trust.authorities import Authorities
from letterlock.trust.credentials import Anchor as CredentialAnchor
from letterlock.trust.credentials import Kind, Scope, issue
from letterlock.trust.status import Freshness, Revocation, RevocationReason, Revocations, Status
from letterlock.trust.x509 import Anchor, AnchorSet
from letterlock.trust.x509_senders import MAX_CARRIED, X509Senders
from openssl_ca import DAY, PRINCIPAL, Openssl, scope_ext
from openssl_ca import unix_now as _now

TOPIC = "orders.eu.new"
X509 = CredentialFormat.X509


def _block(
    items: Sequence[bytes] = (b"leaf", b"ca"), status_version: int = 7, kind: int = 2
) -> bytes:
    return struct.pack(">QBB", status_version, kind, len(items)) + b"".join(
        struct.pack(">H", len(item)) + item for item in items
    )


def _sealed(
    sender: Identity,
    receiver: Identity,
    *,
    topic: str = TOPIC,
    now: int = NOW,
    hide_sender: bool = False,
) -> bytes:
    return letterlock.seal(
        b"hi", sender=sender, recipients=[receiver.public], topic=topic, now=now,
        hide_sender=hide_sender,
    )  # fmt: skip


def _with_block(sealed: bytes, block: bytes) -> bytes:
    """``sealed`` (visible sender, no block) with raw ``block`` after the sender key id.

    The signature no longer matches, which is fine for parse tests: they fail before it.
    """
    parsed = envelope.parse(sealed, suites=frozenset(Suite), limits=envelope.DEFAULT_LIMITS)
    at = sealed.index(parsed.header.sender_key_id or b"") + 32
    flagged = sealed[:5] + bytes([sealed[5] | envelope.FLAG_CREDENTIALS]) + sealed[6:at]
    return flagged + block + sealed[at:]


def _pins(name: str, public: PublicIdentity) -> Pins:
    pins = Pins()
    pins.pin(name, public)
    return pins


def _reason(data: bytes, limits: Limits = envelope.DEFAULT_LIMITS) -> Reason:
    with pytest.raises(Rejected) as caught:
        envelope.parse(data, suites=frozenset(Suite), limits=limits)
    return caught.value.reason


# ----------------------------------------------------------------------------- codec


def test_block_round_trips_and_re_encodes_to_the_same_bytes() -> None:
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    sender = alice.with_credentials(X509, [b"leaf-der", b"ca-der"], status_version=42)
    sealed = _sealed(sender, bob)
    parsed = envelope.parse(sealed, suites=frozenset(Suite), limits=envelope.DEFAULT_LIMITS)
    block = parsed.header.credentials
    assert block is not None
    assert (block.status_version, block.format, block.items) == (42, X509, (b"leaf-der", b"ca-der"))
    assert block == sender.credentials
    assert envelope.encode_header(parsed.header) == parsed.header_bytes
    assert sealed[5] == envelope.FLAG_CREDENTIALS
    assert block.encoded == _block([b"leaf-der", b"ca-der"], 42)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=MAX_CREDENTIAL_ITEMS),
    version=st.integers(0, 2**64 - 1),
    kind=st.sampled_from([CredentialFormat.LETTERLOCK, CredentialFormat.X509]),
)
def test_any_block_round_trips(items: list[bytes], version: int, kind: CredentialFormat) -> None:
    kind = kind if items else CredentialFormat.NONE
    block = CredentialBlock.of(kind, items, status_version=version)
    front = envelope.encode_header_front(
        suite=Suite.X25519, message_id=bytes(16), created=1, expires=None, topic="t",
        content_type=None, headers=(), sender_key_id=bytes(32), credentials=block,
    )  # fmt: skip
    entry = envelope.RecipientEntry(key_id=bytes(16), wrapped=bytes(Suite.X25519.sizes.wrapped))
    header = front + envelope.encode_recipient_block(Suite.X25519, (entry,), bytes(32))
    data = envelope.encode_envelope(header, bytes(24), bytes(Suite.X25519.sizes.signature))
    parsed = envelope.parse(data, suites=frozenset(Suite), limits=envelope.DEFAULT_LIMITS)
    assert parsed.header.credentials == block
    assert envelope.encode_header(parsed.header) == header


def test_the_header_memo_keeps_the_block_and_tells_status_versions_apart() -> None:
    from letterlock.core.cache import LabelsCache

    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    cache = LabelsCache()
    limits = envelope.DEFAULT_LIMITS
    seen = []
    sealers = {v: letterlock.Sealer(alice.with_credentials(X509, [b"x"], status_version=v))
               for v in (1, 2)}  # fmt: skip
    for version in (1, 1, 2):
        sealed = sealers[version].seal(b"hi", recipients=[bob.public], topic=TOPIC, now=NOW)
        labels = envelope.parse_parts(sealed, suites=frozenset(Suite), limits=limits, labels=cache)[
            0
        ]
        seen.append(labels.credentials)
    assert [b.status_version for b in seen if b] == [1, 1, 2]
    assert cache.hits == 1


def test_parse_refuses_what_section_4_1_refuses() -> None:
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    plain = _sealed(alice, bob)
    assert _reason(_with_block(plain, _block(kind=3))) is Reason.UNSUPPORTED  # unknown format
    too_many = _block([b"x"] * (MAX_CREDENTIAL_ITEMS + 1))
    assert _reason(_with_block(plain, too_many)) is Reason.OVER_LIMIT
    assert _reason(_with_block(plain, _block([b"x", b""]))) is Reason.MALFORMED  # empty item
    assert _reason(_with_block(plain, _block([], kind=2))) is Reason.MALFORMED  # X.509, no items
    assert _reason(_with_block(plain, _block([b"x"], kind=0))) is Reason.MALFORMED  # NONE + item
    big = bytes(MAX_CREDENTIAL_ITEM + 1)
    assert _reason(_with_block(plain, _block([big]))) is Reason.MALFORMED  # item over the format
    oversize = _block([bytes(12000)] * 3)  # 36,000 bytes > the default 32 KiB
    assert _reason(_with_block(plain, oversize)) is Reason.OVER_LIMIT
    assert envelope.parse(  # the receiver may allow more
        _with_block(plain, oversize), suites=frozenset(Suite),
        limits=Limits(max_credentials_size=envelope.MAX_CREDENTIALS_SIZE),
    ).header.credentials is not None  # fmt: skip
    truncated = _with_block(plain, _block([b"x" * 50]))
    cut = truncated.index(b"x" * 50) + 10
    assert _reason(truncated[:cut]) is Reason.MALFORMED
    # a length that runs past the block swallows the recipient block: malformed, not misread
    lying = _with_block(plain, _block([b"x"])[:-3] + struct.pack(">H", 400) + b"x")
    assert _reason(lying) in {Reason.MALFORMED}


def test_hidden_sender_with_credentials_is_refused_both_ways() -> None:
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    with pytest.raises(UsageError):
        _sealed(alice.with_credentials(X509, [b"x"]), bob, hide_sender=True)
    hidden = _sealed(alice, bob, hide_sender=True)
    parsed = envelope.parse(hidden, suites=frozenset(Suite), limits=envelope.DEFAULT_LIMITS)
    at = len(parsed.header_bytes) - (2 + 16 + Suite.X25519.sizes.wrapped + 32)  # labels' end
    # a well-formed block where a visible sender's would be: refused for the combination
    both = hidden[:5] + bytes([hidden[5] | envelope.FLAG_CREDENTIALS]) + hidden[6:at]
    assert _reason(both + _block([], 1, kind=0) + hidden[at:]) is Reason.UNSUPPORTED


def test_a_receiver_without_the_flag_refuses_it_as_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Old receivers (KNOWN_FLAGS without 0x02) refuse at step 6: the compatible extension."""
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    sealed = _sealed(alice.with_credentials(CredentialFormat.NONE, [], status_version=3), bob)
    monkeypatch.setattr(envelope, "KNOWN_FLAGS", envelope.FLAG_HIDDEN_SENDER)
    assert _reason(sealed) is Reason.UNSUPPORTED


def test_builder_refuses_what_the_parser_refuses() -> None:
    for kind, items in [
        (X509, []),
        (CredentialFormat.NONE, [b"x"]),
        (X509, [b""]),
        (X509, [bytes(MAX_CREDENTIAL_ITEM + 1)]),
        (X509, [b"x"] * (MAX_CREDENTIAL_ITEMS + 1)),
        (9, [b"x"]),
    ]:
        with pytest.raises(UsageError):
            CredentialBlock.of(kind, items)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        CredentialBlock.of(X509, [b"x"], status_version=2**64)
    with pytest.raises(UsageError):
        Limits(max_credentials_size=envelope.MAX_CREDENTIALS_SIZE + 1)


# -------------------------------------------------------------------------- protocol


class Recording:
    """A policy that admits one pinned key and records what it was asked."""

    def __init__(self, known: PublicIdentity) -> None:
        self.pins = _pins("alice", known)
        self.looked_up: list[object] = []
        self.contexts: list[TrustContext] = []

    def lookup(self, key_id: bytes, *rest: object) -> PublicIdentity | None:
        self.looked_up.append(rest)
        return self.pins.lookup(key_id)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        self.contexts.append(context)
        return self.pins.admit(sender, context)


def test_policies_see_the_block_and_the_status_version() -> None:
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    policy = Recording(alice.public)
    plain = _sealed(alice, bob)
    letterlock.open(plain, identity=bob, trust=policy, replay=ReplayWindow(), now=NOW)
    carrying = alice.with_credentials(CredentialFormat.NONE, [], status_version=9)
    sealed = letterlock.Sealer(carrying).seal(b"x", recipients=[bob.public], topic=TOPIC, now=NOW)
    letterlock.open(sealed, identity=bob, trust=policy, replay=ReplayWindow(), now=NOW)
    # a policy written before carriage is called with the key id alone when there is no block
    assert policy.looked_up == [(), (carrying.credentials,)]
    assert [(c.status_version, c.credentials) for c in policy.contexts] == [
        (0, None), (9, carrying.credentials),
    ]  # fmt: skip


def test_the_block_is_signed() -> None:
    """A relay that changes the block (here the status version) breaks the signature."""
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    sealed = bytearray(
        _sealed(alice.with_credentials(CredentialFormat.NONE, [], status_version=5), bob)
    )
    block = _block([], 5, kind=0)
    at = bytes(sealed).index(block)
    sealed[at + 7] = 6
    with pytest.raises(Rejected) as caught:
        letterlock.open(
            bytes(sealed), identity=bob, trust=_pins("alice", alice.public),
            replay=ReplayWindow(), now=NOW,
        )  # fmt: skip
    assert caught.value.reason is Reason.BAD_SIGNATURE


# ------------------------------------------------------------------------------ X.509

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate(Suite.P256)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, keys: PrivateKeys) -> Openssl:
    """Acme Root -> Acme Policy -> Acme Issuing (orders.# only) -> billing: a 3-deep chain."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    ssl = Openssl(tmp_path_factory.mktemp("carriage"))
    ssl.root_ca("Acme Root")
    ssl.intermediate("Acme Policy", "Acme Root")
    ext, sections = scope_ext("issuing", ("orders.#",), ())
    ssl.intermediate("Acme Issuing", "Acme Policy", extra=ext, sections=sections)
    ssl.leaf("billing", "Acme Issuing", keys, publish=("#",))  # claims more than its CA allows
    return ssl


def _anchors(ssl: Openssl, name: str = "Acme Root", namespace: str = "ll://acme/") -> AnchorSet:
    return AnchorSet([Anchor(name="acme", certificate=ssl.der(name), namespace=namespace)])


def _chain(ssl: Openssl) -> list[bytes]:
    return [ssl.der("billing"), ssl.der("Acme Issuing"), ssl.der("Acme Policy")]


def _open(sealed: bytes, receiver: Identity, trust: TrustPolicy, now: int) -> letterlock.Opened:
    return letterlock.open(sealed, identity=receiver, trust=trust, replay=ReplayWindow(), now=now)


def _refused(sealed: bytes, receiver: Identity, trust: TrustPolicy, now: int) -> Rejected:
    with pytest.raises(Rejected) as caught:
        _open(sealed, receiver, trust, now)
    return caught.value


@needs_openssl
def test_a_receiver_with_only_its_anchor_verifies_a_carried_chain(
    pki: Openssl, keys: PrivateKeys
) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    sender = keys.identity().with_credentials(X509, _chain(pki), status_version=3)
    opened = _open(_sealed(sender, bob, now=now), bob, trust, now)
    assert opened.payload == b"hi"
    assert (opened.sender.principal, opened.sender.via) == (PRINCIPAL, Via.X509)
    assert opened.sender.authorities == (
        "acme", "CN=Acme Policy,O=Acme", "CN=Acme Issuing,O=Acme",
    )  # fmt: skip
    # without the block, the same receiver cannot place the key
    assert _refused(_sealed(keys.identity(), bob, now=now), bob, trust, now).reason is (
        Reason.UNKNOWN_SENDER
    )


@needs_openssl
def test_a_carried_chain_to_another_ca_is_unknown(
    pki: Openssl, keys: PrivateKeys, tmp_path: Path
) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    other = Openssl(tmp_path)
    other.root_ca("Other Root")
    trust = X509Senders(_anchors(other, "Other Root"), [], now=now)
    sealed = _sealed(keys.identity().with_credentials(X509, _chain(pki)), bob, now=now)
    assert trust.lookup(keys.public.fingerprint, CredentialBlock.of(X509, _chain(pki))) is None
    assert _refused(sealed, bob, trust, now).reason is Reason.UNKNOWN_SENDER
    # a carried self-signed root is not an anchor: the chain still ends nowhere trusted
    fake = other.der("Other Root")
    carried = keys.identity().with_credentials(X509, [*_chain(pki), fake])
    assert _refused(_sealed(carried, bob, now=now), bob, trust, now).reason is (
        Reason.UNKNOWN_SENDER
    )


@needs_openssl
def test_a_chain_for_key_a_never_places_or_admits_key_b(pki: Openssl, keys: PrivateKeys) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    mallory = Identity.generate(Suite.P256)
    trust = X509Senders(_anchors(pki), [], now=now)
    block = CredentialBlock.of(X509, _chain(pki))
    assert trust.lookup(mallory.public.fingerprint, block) is None
    assert trust.lookup(keys.public.fingerprint, block) == keys.public
    sealed = _sealed(mallory.with_credentials(X509, _chain(pki)), bob, now=now)
    assert _refused(sealed, bob, trust, now).reason is Reason.UNKNOWN_SENDER
    # asked directly to admit B with A's chain (as a combinator might), it does not
    context = TrustContext(topic=TOPIC, suite=Suite.P256, content_type=None, headers={},
                           created=now, now=now, credentials=block)  # fmt: skip
    refusal = trust.admit(mallory.public, context)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is Reason.UNKNOWN_SENDER


@needs_openssl
def test_a_carried_chain_never_widens_its_cas_scope(pki: Openssl, keys: PrivateKeys) -> None:
    """The leaf claims '#'; its issuing CA allows orders.# only: payroll is refused."""
    bob, now = Identity.generate(Suite.P256), _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    sender = keys.identity().with_credentials(X509, _chain(pki))
    assert _open(_sealed(sender, bob, now=now), bob, trust, now).payload == b"hi"
    refused = _refused(_sealed(sender, bob, topic="payroll.run", now=now), bob, trust, now)
    assert refused.reason is Reason.UNTRUSTED
    assert "scope" in refused.detail


@needs_openssl
def test_a_namespace_the_anchor_does_not_cover_is_refused(pki: Openssl, keys: PrivateKeys) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    trust = X509Senders(_anchors(pki, namespace="ll://acme/hr/"), [], now=now)
    sender = keys.identity().with_credentials(X509, _chain(pki))
    assert _refused(_sealed(sender, bob, now=now), bob, trust, now).reason is (
        Reason.UNKNOWN_SENDER
    )


@needs_openssl
def test_expiry_is_checked_on_every_message_not_only_on_first_sight(
    tmp_path: Path, keys: PrivateKeys
) -> None:
    ssl = Openssl(tmp_path)
    ssl.root_ca("Acme Root")
    ssl.intermediate("Acme Issuing", "Acme Root")
    now = _now()
    stamp = "%Y%m%d%H%M%SZ"
    import datetime

    def at(t: int) -> str:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime(stamp)

    ssl.leaf("billing", "Acme Issuing", keys, dates=(at(now - DAY), at(now + DAY)))
    chain = [ssl.der("billing"), ssl.der("Acme Issuing")]
    bob = Identity.generate(Suite.P256)
    trust = X509Senders(_anchors(ssl), [], now=now)
    sender = keys.identity().with_credentials(X509, chain)
    assert _open(_sealed(sender, bob, now=now), bob, trust, now).payload == b"hi"
    cached = dict(trust._carried)
    later = now + 2 * DAY
    refused = _refused(_sealed(sender, bob, now=later), bob, trust, later)
    assert refused.reason is Reason.UNTRUSTED
    assert "expired" in refused.detail
    assert len(cached) == 1
    # and a first sight after expiry is refused as well
    fresh = X509Senders(_anchors(ssl), [], now=later)
    assert "expired" in _refused(_sealed(sender, bob, now=later), bob, fresh, later).detail


@needs_openssl
def test_a_seen_chain_is_not_verified_again(
    pki: Openssl, keys: PrivateKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    sender = keys.identity().with_credentials(X509, _chain(pki))
    _open(_sealed(sender, bob, now=now), bob, trust, now)
    from letterlock.trust import x509_senders

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("verified again")

    monkeypatch.setattr(x509_senders, "verify_carried", fail)
    monkeypatch.setattr(x509_senders, "verify_chain", fail)
    for i in range(3):
        assert _open(_sealed(sender, bob, now=now + i), bob, trust, now + i).payload == b"hi"


@needs_openssl
def test_revocation_is_checked_on_every_message(pki: Openssl, keys: PrivateKeys) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    carried = X509Senders(_anchors(pki), [], now=now)
    fresh = Freshness(max_age=3600)

    def status(revoked: bool) -> Status:
        principals = {PRINCIPAL: Revocation(reason=RevocationReason.SUPERSEDED, since=now - 10)}
        return Status(
            data=b"", signed=b"", version=2 if revoked else 1, issued=now, expires=now + 3600,
            keys={}, principals=principals if revoked else {},
        )  # fmt: skip

    sender = keys.identity().with_credentials(X509, _chain(pki), status_version=2)
    sealed = _sealed(sender, bob, now=now)
    assert _open(sealed, bob, Revocations(carried, status(False), fresh), now).payload == b"hi"
    refused = _refused(sealed, bob, Revocations(carried, status(True), fresh), now)
    assert refused.reason is Reason.UNTRUSTED
    assert "revoked" in refused.detail


@needs_openssl
def test_mangled_der_and_too_many_certificates_are_refused(pki: Openssl, keys: PrivateKeys) -> None:
    bob, now = Identity.generate(Suite.P256), _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    leaf = bytearray(pki.der("billing"))
    leaf[len(leaf) // 2] ^= 0x01
    mangled = keys.identity().with_credentials(X509, [bytes(leaf), *_chain(pki)[1:]])
    assert _refused(_sealed(mangled, bob, now=now), bob, trust, now).reason is (
        Reason.UNKNOWN_SENDER
    )
    assert len(trust._carried) == 1  # remembered as refused: a resend costs a hash
    six = [*_chain(pki), *[pki.der("Acme Policy")] * 3]
    with pytest.raises(UsageError):
        keys.identity().with_credentials(X509, six)
    plain = _sealed(keys.identity(), bob, now=now)
    assert _reason(_with_block(plain, _block(six))) is Reason.OVER_LIMIT


@needs_openssl
def test_the_carried_cache_is_bounded(pki: Openssl, keys: PrivateKeys) -> None:
    trust = X509Senders(_anchors(pki), [], now=_now())
    for i in range(MAX_CARRIED + 5):
        trust.lookup(keys.public.fingerprint, CredentialBlock.of(X509, [i.to_bytes(4, "big")]))
    assert len(trust._carried) == MAX_CARRIED


@needs_openssl
def test_a_carried_chain_does_not_shadow_a_pin_it_cannot_verify(
    pki: Openssl, keys: PrivateKeys, tmp_path: Path
) -> None:
    """FirstKnown(X509Senders, Pins): a pinned sender's key is not taken over by a chain the
    X.509 policy cannot verify (it places nothing), so the pin still decides."""
    bob, now = Identity.generate(Suite.P256), _now()
    other = Openssl(tmp_path)
    other.root_ca("Other Root")
    trust = FirstKnown(
        X509Senders(_anchors(other, "Other Root"), [], now=now), _pins("billing", keys.public)
    )
    sender = keys.identity().with_credentials(X509, _chain(pki))
    opened = _open(_sealed(sender, bob, now=now), bob, trust, now)
    assert opened.sender.via is Via.PIN


# ---------------------------------------------------------------- letterlock credentials


def _credential_scope(namespace: str, publish: Sequence[str]) -> Scope:
    from letterlock.core.principal import Namespace
    from letterlock.trust.scope import ScopePattern

    return Scope(
        namespace=Namespace.parse(namespace),
        roles=frozenset({"writer"}),
        publish=tuple(ScopePattern.parse(p) for p in publish),
        consume=(),
    )


def _credential_chain(
    root: Identity, payments: Identity, billing: Identity, *, not_after: int = NOW + 3600
) -> list[bytes]:
    """billing's principal credential, then payments' authority credential (leaf first)."""
    middle = issue(root, kind=Kind.AUTHORITY, subject="payments",
                   subject_identity=payments.public, not_before=NOW - 3600, not_after=NOW + 3600,
                   scope=_credential_scope("ll://acme/payments/", ["orders.#"]))  # fmt: skip
    bottom = issue(payments, kind=Kind.PRINCIPAL, subject=PRINCIPAL,
                   subject_identity=billing.public, not_before=NOW - 3600, not_after=not_after,
                   scope=_credential_scope("ll://acme/payments/", ["#"]))  # fmt: skip
    return [bottom.encoded, middle.encoded]


def _credential_anchor(root: Identity) -> CredentialAnchor:
    from letterlock.core.principal import Namespace

    return CredentialAnchor(
        name="acme", identity=root.public, namespace=Namespace.parse("ll://acme/"), max_depth=2
    )


def test_authorities_verify_a_carried_credential_chain() -> None:
    root, payments, billing, bob, mallory = (Identity.generate(Suite.X25519) for _ in range(5))
    policy = Authorities([_credential_anchor(root)], [])
    items = _credential_chain(root, payments, billing)
    sender = billing.with_credentials(CredentialFormat.LETTERLOCK, items)
    opened = _open(_sealed(sender, bob), bob, policy, NOW)
    assert opened.sender.principal == PRINCIPAL
    assert opened.sender.authorities == ("acme", "payments")
    assert opened.sender.via is Via.AUTHORITY
    # the authority allows orders.# only; the principal credential's '#' does not widen it
    assert _refused(_sealed(sender, bob, topic="payroll"), bob, policy, NOW).reason is (
        Reason.UNTRUSTED
    )
    # billing's chain never places mallory's key
    stolen = mallory.with_credentials(CredentialFormat.LETTERLOCK, items)
    assert policy.lookup(mallory.public.fingerprint, stolen.credentials) is None
    assert _refused(_sealed(stolen, bob), bob, policy, NOW).reason is Reason.UNKNOWN_SENDER
    # another root's receiver cannot place billing from this chain
    other = Authorities([_credential_anchor(mallory)], [])
    assert _refused(_sealed(sender, bob), bob, other, NOW).reason is Reason.UNKNOWN_SENDER
    # a damaged credential places nothing
    damaged = bytearray(items[0])
    damaged[-1] ^= 1
    broken = billing.with_credentials(CredentialFormat.LETTERLOCK, [bytes(damaged), items[1]])
    assert _refused(_sealed(broken, bob), bob, policy, NOW).reason is Reason.UNKNOWN_SENDER


def test_authorities_check_a_carried_chains_lifetime_on_every_message() -> None:
    root, payments, billing, bob = (Identity.generate(Suite.X25519) for _ in range(4))
    policy = Authorities([_credential_anchor(root)], [])
    items = _credential_chain(root, payments, billing, not_after=NOW + 60)
    sender = billing.with_credentials(CredentialFormat.LETTERLOCK, items)
    assert _open(_sealed(sender, bob), bob, policy, NOW).payload == b"hi"
    later = NOW + 120
    refused = _refused(_sealed(sender, bob, now=later), bob, policy, later)
    assert refused.reason is Reason.UNTRUSTED
    assert "expired" in refused.detail


def test_status_only_block_is_ignored_by_chain_policies() -> None:
    alice, bob = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    sender = alice.with_credentials(CredentialFormat.NONE, [], status_version=4)
    trust = FirstKnown(Authorities([], []), _pins("alice", alice.public))
    assert _open(_sealed(sender, bob), bob, trust, NOW).sender.name == "alice"


def test_trust_context_defaults() -> None:
    context = TrustContext(topic="t", suite=Suite.X25519, content_type=None, headers={},
                           created=1, now=1)  # fmt: skip
    assert (context.status_version, context.credentials) == (0, None)
    assert replace(context, status_version=3).status_version == 3


_ALICE, _BOB = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
_CARRIED = _sealed(
    _ALICE.with_credentials(X509, [b"leaf" * 20, b"ca" * 30], status_version=9), _BOB
)
_BLOCK_AT = _CARRIED.index(
    CredentialBlock.of(X509, [b"leaf" * 20, b"ca" * 30], status_version=9).encoded
)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(0, 10 + 2 + 80 + 2 + 60 - 1), mask=st.integers(1, 255))
def test_any_change_to_the_block_is_refused(offset: int, mask: int) -> None:
    """Every byte of the block is signed (and parsed strictly): a flipped one never opens."""
    damaged = bytearray(_CARRIED)
    damaged[_BLOCK_AT + offset] ^= mask
    with pytest.raises(Rejected):
        letterlock.open(bytes(damaged), identity=_BOB, trust=_pins("alice", _ALICE.public),
                        replay=ReplayWindow(), now=NOW)  # fmt: skip


@needs_openssl
@pytest.mark.parametrize("suite", list(Suite), ids=[s.label for s in Suite])
def test_certificate_requests_verify_with_openssl_for_every_suite(suite: Suite) -> None:
    """``id csr``'s request: signed by the identity's signer (pq: the ECDSA half), and what
    openssl reads back is the principal, letterlock's EKU and the identity extension."""
    import subprocess

    from letterlock.trust import x509 as x509_module

    identity = Identity.generate(suite)
    pem = x509_module.certificate_request(identity, PRINCIPAL)
    shown = subprocess.run(["openssl", "req", "-verify", "-noout", "-text"], input=pem,
                           capture_output=True, check=True)  # fmt: skip
    assert b"verify OK" in shown.stdout + shown.stderr
    assert f"URI:{PRINCIPAL}".encode() in shown.stdout
    assert x509_module.LETTERLOCK_EKU.encode() in shown.stdout
    assert x509_module.IDENTITY_OID.encode() in shown.stdout
    with pytest.raises(UsageError):
        x509_module.certificate_request(identity, "https://acme/billing")
