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
from letterlock.core.trust import (
    Refusal,
    TrustContext,
    TrustPolicy,
    VerifiedSender,
    Via,
    lookup_carried,
)
from letterlock.errors import Reason, UsageError
from letterlock.trust import FirstKnown, Pins
from letterlock.trust.authorities import Authorities
from letterlock.trust.credentials import Anchor as CredentialAnchor
from letterlock.trust.credentials import Credential, Kind, Scope, issue
from letterlock.trust.status import Freshness, Revocation, RevocationReason, Revocations, Status
from letterlock.trust.x509 import Anchor, AnchorSet, Refused, X509Refusal
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
    assert _reason(_with_block(plain, _block(kind=4))) is Reason.UNSUPPORTED  # unknown format
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
def test_a_chain_older_than_its_anchor_certificate_is_verified_and_not_refused_for_good(
    tmp_path: Path, keys: PrivateKeys
) -> None:
    """The receiver's anchor certificate became valid after the carried certificates did (a
    root re-issued under the same key): the path is valid now, so the carried chain is
    admitted, not refused (and that refusal cached) for having been checked at a time before
    the anchor was valid."""
    import datetime

    def at(t: int) -> str:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y%m%d%H%M%SZ")

    now = _now()
    ssl = Openssl(tmp_path)
    ssl.root_ca("Acme Root")  # valid from now
    ssl.leaf("billing", "Acme Root", keys, dates=(at(now - 2 * DAY), at(now + 30 * DAY)))
    bob = Identity.generate(Suite.P256)
    trust = X509Senders(_anchors(ssl), [], now=now)
    sender = keys.identity().with_credentials(X509, [ssl.der("billing")])
    for t in (now, now + 1):  # first sight, then the cached chain
        assert _open(_sealed(sender, bob, now=t), bob, trust, t).payload == b"hi"


@needs_openssl
def test_a_carried_chain_not_in_issuer_order_is_refused_before_path_building(
    pki: Openssl, keys: PrivateKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Path building over carried certificates that share a subject name tries their
    combinations (about 20 ms of signature checks for 4 P-256 intermediates under one name and
    key, before the envelope's signature is checked): a block out of issuer order, or repeating
    a subject name, is refused before any path is built."""
    from letterlock import _x509

    now = _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    leaf, issuing, policy = _chain(pki)
    built = _x509.verify_chain

    def refuse_to_build(*args: object, **kwargs: object) -> object:
        raise AssertionError("a path was built")

    monkeypatch.setattr(_x509, "verify_chain", refuse_to_build)
    for items in ([leaf, policy, issuing], [leaf, issuing, policy, issuing], [leaf, policy]):
        block = CredentialBlock.of(X509, items)
        assert trust.lookup(keys.public.fingerprint, block) is None
        refused = trust._carried[block.chain_digest]
        assert isinstance(refused, Refused)
        assert refused.reason is X509Refusal.INVALID_CHAIN
    monkeypatch.setattr(_x509, "verify_chain", built)
    # in order, with or without the anchor at the end
    for items in ([leaf, issuing, policy], [leaf, issuing, policy, pki.der("Acme Root")]):
        assert trust.lookup(keys.public.fingerprint, CredentialBlock.of(X509, items)) is not None


@needs_openssl
def test_a_chain_verified_again_onto_another_path_is_decided_by_that_path(
    tmp_path: Path, keys: PrivateKeys
) -> None:
    """A root re-issued under the same key with a narrower scope: the chain first verified
    through the old root certificate (scope '#'), which then expired; verified again through
    the new one (scope orders.eu.#), a topic the old path allowed is refused, not admitted
    from the topic decisions remembered for the old path."""
    import datetime

    from cryptography import x509 as pyca_x509
    from cryptography.hazmat.primitives import hashes, serialization

    from letterlock.trust.x509 import SCOPE_OID, encode_scope
    from letterlock.trust.x509 import Scope as X509Scope

    def at(t: int) -> str:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y%m%d%H%M%SZ")

    now = _now()
    ssl = Openssl(tmp_path)
    ext, sections = scope_ext("root", ("orders.eu.#",), ())
    ssl.root_ca("Acme Root", extra=ext, sections=sections)  # the new certificate, from now
    ssl.leaf("billing", "Acme Root", keys, dates=(at(now - 2 * DAY), at(now + 30 * DAY)))
    new = pyca_x509.load_der_x509_certificate(ssl.der("Acme Root"))
    key = serialization.load_pem_private_key(
        (tmp_path / "Acme Root.key").read_bytes(), password=None
    )
    start = datetime.datetime.fromtimestamp(now - 10 * DAY, datetime.UTC)
    builder = (
        pyca_x509.CertificateBuilder().subject_name(new.subject).issuer_name(new.subject)
        .public_key(new.public_key()).serial_number(99).not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=11))
    )  # fmt: skip
    for extension in new.extensions:
        if extension.oid.dotted_string != SCOPE_OID:
            builder = builder.add_extension(extension.value, critical=extension.critical)
    everything = encode_scope(X509Scope.of(publish=["#"]))
    builder = builder.add_extension(
        pyca_x509.UnrecognizedExtension(pyca_x509.ObjectIdentifier(SCOPE_OID), everything),
        critical=False,
    )
    old = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    anchors = AnchorSet([
        Anchor(name="old", certificate=old.public_bytes(serialization.Encoding.DER),
               namespace="ll://acme/"),
        Anchor(name="new", certificate=ssl.der("Acme Root"), namespace="ll://acme/"),
    ])  # fmt: skip
    bob = Identity.generate(Suite.P256)
    carried = keys.identity().with_credentials(X509, [ssl.der("billing")])
    earlier, later = now - DAY, now + 2 * DAY  # the new certificate not valid yet; the old expired
    # carried in the envelope, or from the snapshot's chain directory (verified at `earlier`)
    for sender, trust in (
        (carried, X509Senders(anchors, [], now=now)),
        (keys.identity(), X509Senders(anchors, [[ssl.der("billing")]], now=earlier)),
    ):
        opened = _open(_sealed(sender, bob, topic="orders.us.x", now=earlier), bob, trust, earlier)
        assert opened.sender.authorities == ("old",)
        again = _open(_sealed(sender, bob, now=later), bob, trust, later)
        assert again.sender.authorities == ("new",)
        refused = _refused(_sealed(sender, bob, topic="orders.us.x", now=later), bob, trust, later)
        assert refused.reason is Reason.UNTRUSTED


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


def _junk_certificate(serial: int, pki: Openssl) -> bytes:
    """A self-signed certificate anyone can make, named as the root: carried at the end of a
    chain in issuer order, path building tries it and goes on to the receiver's anchor."""
    import datetime

    from cryptography import x509 as pyca_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = pyca_x509.load_der_x509_certificate(pki.der("Acme Root")).subject
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        pyca_x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(serial + 1).not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


def _remembered_bytes(
    policy: TrustPolicy,
    blocks: Sequence[CredentialBlock | None],
    key_ids: Sequence[bytes],
    suite: Suite,
    now: int,
) -> int:
    """What ``policy`` keeps after messages on 1024 long topics for each sender (with its
    carried block, or None: a chain the policy holds), as forged messages can make it do
    (admit is step 14, before the signature)."""
    import tracemalloc

    senders = [lookup_carried(policy, k, b) for k, b in zip(key_ids, blocks, strict=True)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n, (block, sender) in enumerate(zip(blocks, senders, strict=True)):
        assert sender is not None
        for i in range(1024):
            topic = f"orders.{n}.{i}." + "x" * 1000
            context = TrustContext(topic=topic, suite=suite, content_type=None, headers={},
                                   created=now, now=now, credentials=block)  # fmt: skip
            assert isinstance(policy.admit(sender, context), VerifiedSender)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown


@needs_openssl
def test_topic_decisions_on_carried_chains_are_bounded_across_chains(
    pki: Openssl, keys: PrivateKeys
) -> None:
    """One real chain and an unused certificate appended make as many distinct blocks that
    verify as anyone likes; the topic decisions remembered for them are bounded in total, not
    per chain (1024 topics of 1 KB for each of up to 1024 chains would be about a gigabyte)."""
    now = _now()
    trust = X509Senders(_anchors(pki), [], now=now)
    chain = _chain(pki)
    blocks = [CredentialBlock.of(X509, [*chain, _junk_certificate(n, pki)]) for n in range(24)]
    assert len({block.chain_digest for block in blocks}) == 24
    key_ids = [keys.public.fingerprint] * 24
    remembered = _remembered_bytes(trust, blocks, key_ids, Suite.P256, now)
    assert remembered < 16 * 2**20  # 24 chains: about 27 MB when bounded per chain only


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


def test_authorities_bound_topic_decisions_on_carried_chains_across_chains() -> None:
    """Each carried chain's topic decisions were bounded (1024), not all of them together: 1024
    chains seen on a relay and forged messages on 1 KB topics would hold about a gigabyte."""
    root, payments = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    policy = Authorities([_credential_anchor(root)], [])
    middle = _credential_chain(root, payments, payments)[1]
    senders = [Identity.generate(Suite.X25519) for _ in range(24)]
    blocks = [
        CredentialBlock.of(CredentialFormat.LETTERLOCK, [
            issue(payments, kind=Kind.PRINCIPAL, subject=PRINCIPAL,
                  subject_identity=sender.public, not_before=NOW - 3600, not_after=NOW + 3600,
                  scope=_credential_scope("ll://acme/payments/", ["#"])).encoded,
            middle,
        ])
        for sender in senders
    ]  # fmt: skip
    key_ids = [sender.public.fingerprint for sender in senders]
    remembered = _remembered_bytes(policy, blocks, key_ids, Suite.X25519, NOW)
    assert remembered < 16 * 2**20  # 24 chains: about 27 MB when bounded per chain only


def test_topic_decisions_on_the_snapshots_chains_are_bounded_across_chains(
    tmp_path: Path,
) -> None:
    """The same for chains the receiver holds (a directory of many senders): each chain's
    topic decisions were bounded, not all of them together, and forged messages naming any of
    those senders fill them before their signature is checked."""
    root, payments = Identity.generate(Suite.X25519), Identity.generate(Suite.X25519)
    middle = Credential.parse(_credential_chain(root, payments, payments)[1])
    senders = [Identity.generate(Suite.X25519) for _ in range(24)]
    leaves = [
        issue(payments, kind=Kind.PRINCIPAL, subject=PRINCIPAL, subject_identity=sender.public,
              not_before=NOW - 3600, not_after=NOW + 3600,
              scope=_credential_scope("ll://acme/payments/", ["#"]))
        for sender in senders
    ]  # fmt: skip
    policy = Authorities([_credential_anchor(root)], [middle, *leaves])
    key_ids = [sender.public.fingerprint for sender in senders]
    remembered = _remembered_bytes(policy, [None] * 24, key_ids, Suite.X25519, NOW)
    assert remembered < 16 * 2**20  # 24 chains: about 27 MB when bounded per chain only
    if shutil.which("openssl") is None:
        return
    ssl = Openssl(tmp_path)
    ssl.root_ca("Acme Root")
    keys = [PrivateKeys.generate(Suite.P256) for _ in range(24)]
    for n, each in enumerate(keys):
        ssl.leaf(f"s{n}", "Acme Root", each, publish=("#",))
    now = _now()
    trust = X509Senders(_anchors(ssl), [[ssl.der(f"s{n}")] for n in range(24)], now=now)
    key_ids = [each.public.fingerprint for each in keys]
    remembered = _remembered_bytes(trust, [None] * 24, key_ids, Suite.P256, now)
    assert remembered < 16 * 2**20


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
