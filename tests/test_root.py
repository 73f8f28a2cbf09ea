"""The root of trust and status documents (docs/spec/root.md): each test fails without its rule."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner, Signature, Signer, SSlibKey
from tuf.api.metadata import Metadata, Root, Timestamp

from letterlock import Identity, Pins, Refusal, Suite, TrustContext, VerifiedSender
from letterlock.sources import FolderSource, SnapshotCache
from letterlock.sources.folder import Snapshot
from letterlock.trust.root import MetadataRefused, Rule, TrustedRoot
from letterlock.trust.status import (
    FIELD,
    Freshness,
    Revocation,
    RevocationReason,
    Revocations,
    Status,
    accept_status,
)
from letterlock.trust.tufkeys import DualKey, DualSigner

NOW = 1_800_000_000
HOUR = 3600
DAY = 24 * HOUR
YEAR = 365 * DAY


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture(scope="module")
def keys() -> dict[str, Signer]:
    """One signer of every supported kind, and a few more Ed25519 ones for the thresholds."""
    signers: dict[str, Signer] = {
        "p256": CryptoSigner.generate_ecdsa(),
        "p384": CryptoSigner(ec.generate_private_key(ec.SECP384R1())),
        "ed25519": CryptoSigner.generate_ed25519(),
        "mldsa87": CryptoSigner.generate_mldsa(scheme="ml-dsa-87/1"),
        "dual": DualSigner.generate(),
    }
    for n in range(6):
        signers[f"e{n}"] = CryptoSigner.generate_ed25519()
    return signers


def root_md(
    version: int,
    root_keys: Sequence[Signer],
    threshold: int,
    status_keys: Sequence[Signer] = (),
    *,
    status_threshold: int = 1,
    expires: int = NOW + YEAR,
) -> Metadata[Root]:
    root = Root(version=version, expires=at(expires), consistent_snapshot=True)
    for signer in root_keys:
        root.add_key(signer.public_key, Root.type)
    for signer in status_keys:
        root.add_key(signer.public_key, Timestamp.type)
    root.roles[Root.type].threshold = threshold
    root.roles[Timestamp.type].threshold = status_threshold
    return Metadata(root)


def signed(metadata: Metadata[Any], *signers: Signer) -> bytes:
    for signer in signers:
        metadata.sign(signer, append=True)
    return metadata.to_bytes()


def refused(rule: Rule) -> Any:
    return pytest.raises(MetadataRefused, match=f"^{rule}:")


# --------------------------------------------------------------------------- roots


def test_each_supported_key_kind_signs_a_rotation(keys: dict[str, Signer]) -> None:
    """v1 (p256, p384, ed25519; 2 of 3) hands over to v2 (ML-DSA-87, dual, ed25519; 3 of 3)."""
    old = [keys["p256"], keys["p384"], keys["ed25519"]]
    new = [keys["mldsa87"], keys["dual"], keys["ed25519"]]
    trusted = TrustedRoot.pin(signed(root_md(1, old, 2), *old[:2]))
    v2 = trusted.update(signed(root_md(2, new, 3), keys["p256"], keys["p384"], *new))
    assert (v2.version, v2.expires) == (2, NOW + YEAR)
    v2.check_current(NOW)
    assert isinstance(v2.metadata.signed.keys[keys["dual"].public_key.keyid], DualKey)


def test_root_rollback_is_refused(keys: dict[str, Signer]) -> None:
    signers = [keys["e0"]]
    v1 = signed(root_md(1, signers, 1), *signers)
    v2 = TrustedRoot.pin(v1).update(signed(root_md(2, signers, 1), *signers))
    with refused(Rule.ROLLBACK):
        v2.update(v1)
    with refused(Rule.ROLLBACK):  # the same version again is no step forward either
        v2.update(signed(root_md(2, signers, 1, expires=NOW + 2 * YEAR), *signers))


def test_skipped_root_version_is_refused(keys: dict[str, Signer]) -> None:
    signers = [keys["e0"]]
    trusted = TrustedRoot.pin(signed(root_md(1, signers, 1), *signers))
    with refused(Rule.SKIPPED_VERSION):
        trusted.update(signed(root_md(3, signers, 1), *signers))


def test_root_below_the_old_threshold_is_refused(keys: dict[str, Signer]) -> None:
    old = [keys["e0"], keys["e1"], keys["e2"]]
    trusted = TrustedRoot.pin(signed(root_md(1, old, 2), *old))
    new = [keys["e3"]]
    with refused(Rule.THRESHOLD):  # one of the old keys, all of the new ones
        trusted.update(signed(root_md(2, new, 1), keys["e0"], *new))
    assert trusted.update(signed(root_md(2, new, 1), keys["e0"], keys["e2"], *new)).version == 2


def test_root_below_its_own_threshold_is_refused(keys: dict[str, Signer]) -> None:
    old = [keys["e0"], keys["e1"]]
    trusted = TrustedRoot.pin(signed(root_md(1, old, 2), *old))
    new = [keys["e2"], keys["e3"], keys["e4"]]
    with refused(Rule.SELF_THRESHOLD):  # the old keys agree, but only one new key does
        trusted.update(signed(root_md(2, new, 2), *old, keys["e2"]))
    with refused(Rule.SELF_THRESHOLD):  # a first root must meet its own threshold
        TrustedRoot.pin(signed(root_md(1, new, 2), keys["e2"]))


def _with_alias(metadata: Metadata[Root], signer: Signer, alias: str) -> None:
    """List ``signer``'s key a second time in the root role, under the key id ``alias``."""
    key = signer.public_key
    metadata.signed.add_key(SSlibKey(alias, key.keytype, key.scheme, dict(key.keyval)), Root.type)


def _alias_signature(metadata: Metadata[Any], signer: Signer, alias: str) -> None:
    signature = signer.sign(metadata.signed_bytes)
    metadata.signatures[alias] = Signature(alias, signature.signature)


def test_one_key_under_two_ids_counts_once(keys: dict[str, Signer]) -> None:
    e0, e1 = keys["e0"], keys["e1"]
    trusted = TrustedRoot.pin(signed(root_md(1, [e0, e1], 1), e0))
    v2 = root_md(2, [e0, e1], 2)
    _with_alias(v2, e0, "alias-of-e0")
    v2.sign(e0)
    _alias_signature(v2, e0, "alias-of-e0")
    with refused(Rule.SELF_THRESHOLD):
        trusted.update(v2.to_bytes())
    v2.sign(e1, append=True)  # a second, distinct key makes it
    assert trusted.update(v2.to_bytes()).version == 2


def test_one_key_in_two_encodings_counts_once(keys: dict[str, Signer]) -> None:
    """The same P-256 key as a compressed-point PEM under a second id is still one key."""
    from cryptography.hazmat.primitives import serialization

    p256 = keys["p256"]
    point = p256.public_key.keyval["public"]
    loaded = serialization.load_pem_public_key(point.encode())
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    der = loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    algorithm = der[2:23]  # SEQUENCE { id-ecPublicKey, prime256v1 }
    compressed = loaded.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    bits = b"\x03\x22\x00" + compressed
    spki = b"\x30" + bytes([len(algorithm) + len(bits)]) + algorithm + bits
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode()
    pem += "\n-----END PUBLIC KEY-----\n"
    assert pem != point
    v1 = root_md(1, [p256], 2)
    key = p256.public_key
    v1.signed.add_key(SSlibKey("second", key.keytype, key.scheme, {"public": pem}), Root.type)
    v1.sign(p256)
    _alias_signature(v1, p256, "second")
    with refused(Rule.SELF_THRESHOLD):
        TrustedRoot.pin(v1.to_bytes())


def test_a_dual_key_and_its_own_ecdsa_half_count_once(keys: dict[str, Signer]) -> None:
    from letterlock import _crypto

    sig_private = _crypto.generate_private(Suite.PQ)[0]
    dual = DualSigner(sig_private)
    scalar = int.from_bytes(sig_private[32:], "big")
    half = CryptoSigner(ec.derive_private_key(scalar, ec.SECP384R1()))
    with refused(Rule.SELF_THRESHOLD):
        TrustedRoot.pin(signed(root_md(1, [dual, half], 2), dual, half))
    assert TrustedRoot.pin(signed(root_md(1, [dual, keys["p384"]], 2), dual, keys["p384"]))


def test_duplicate_signatures_and_key_ids_are_refused(keys: dict[str, Signer]) -> None:
    e0 = keys["e0"]
    document = json.loads(signed(root_md(1, [e0], 1), e0))
    twice = {**document, "signatures": document["signatures"] * 2}
    with refused(Rule.MALFORMED):  # "same key, signed twice"
        TrustedRoot.pin(json.dumps(twice).encode())
    listed_twice = json.loads(json.dumps(document))
    listed_twice["signed"]["roles"]["root"]["keyids"] *= 2
    listed_twice["signed"]["roles"]["root"]["threshold"] = 2
    with refused(Rule.MALFORMED):  # "same key id listed twice in a role"
        TrustedRoot.pin(json.dumps(listed_twice).encode())


def test_extra_invalid_signatures_beside_a_threshold_do_not_spoil_it(
    keys: dict[str, Signer],
) -> None:
    e0, e1, e2, e3 = (keys[f"e{n}"] for n in range(4))
    trusted = TrustedRoot.pin(signed(root_md(1, [e0, e1, e2], 2), e0, e1))
    v2 = root_md(2, [e0, e1, e2, e3], 2)
    v2.sign(e0)
    v2.sign(e1, append=True)
    forged = bytearray(e2.sign(v2.signed_bytes).signature, "ascii")
    forged[:2] = b"00" if forged[:2] != b"00" else b"11"
    v2.signatures[e2.public_key.keyid] = Signature(e2.public_key.keyid, forged.decode())
    v2.signatures[e3.public_key.keyid] = Signature(e3.public_key.keyid, "not hex at all")
    v2.signatures["unlisted"] = Signature("unlisted", e3.sign(v2.signed_bytes).signature)
    assert trusted.update(v2.to_bytes()).version == 2
    # and the invalid ones alone do not count
    del v2.signatures[e1.public_key.keyid]
    with refused(Rule.THRESHOLD):
        trusted.update(v2.to_bytes())


def test_expired_intermediate_root_is_updated_from_but_never_used(
    keys: dict[str, Signer],
) -> None:
    signers = [keys["e0"]]
    trusted = TrustedRoot.pin(signed(root_md(1, signers, 1, expires=NOW - YEAR), *signers))
    v2 = trusted.update(signed(root_md(2, signers, 1, expires=NOW - DAY), *signers))
    with refused(Rule.EXPIRED):
        v2.check_current(NOW)
    v3 = v2.update(signed(root_md(3, signers, 1, expires=NOW + DAY), *signers))
    v3.check_current(NOW)
    with refused(Rule.EXPIRED):  # expired at its expiry time, as TUF has it
        v3.check_current(NOW + DAY)


def test_root_with_an_unsupported_key_type_is_refused(keys: dict[str, Signer]) -> None:
    document = json.loads(signed(root_md(1, [keys["e0"]], 1), keys["e0"]))
    key = next(iter(document["signed"]["keys"].values()))
    key["scheme"] = key["keytype"] = "ecdsa-sha2-nistp256"  # TUF's deprecated legacy type
    with refused(Rule.MALFORMED):
        TrustedRoot.pin(json.dumps(document).encode())
    with refused(Rule.MALFORMED):
        TrustedRoot.pin(b"\x00not json")


N_KEYS = 5


@pytest.fixture(scope="module")
def property_keys() -> list[CryptoSigner]:
    return [CryptoSigner.generate_ed25519() for _ in range(N_KEYS)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fewer_than_threshold_distinct_keys_never_validate(
    property_keys: list[CryptoSigner], data: st.DataObject
) -> None:
    """Any signatures by fewer than ``threshold`` distinct keys, each key possibly under several
    ids, with forged and unlisted signatures beside them, never make a root valid."""
    threshold = data.draw(st.integers(1, N_KEYS), label="threshold")
    signing = data.draw(
        st.sets(st.integers(0, N_KEYS - 1), max_size=threshold - 1), label="signing keys"
    )
    aliased = data.draw(st.sets(st.integers(0, N_KEYS - 1)), label="keys with a second id")
    forged = data.draw(st.sets(st.integers(0, N_KEYS - 1)), label="forged signatures")
    metadata = root_md(1, property_keys, threshold)
    for n in aliased:
        _with_alias(metadata, property_keys[n], f"alias-{n}")
    for n in sorted(forged - signing):
        keyid = property_keys[n].public_key.keyid
        metadata.signatures[keyid] = Signature(keyid, "00" * 64)
    for n in sorted(signing):
        metadata.sign(property_keys[n], append=True)
        if n in aliased:
            _alias_signature(metadata, property_keys[n], f"alias-{n}")
    with refused(Rule.SELF_THRESHOLD):
        TrustedRoot.pin(metadata.to_bytes())


# --------------------------------------------------------------------------- status


ALICE_FP = "SHA256:" + "A" * 43
MALLORY_FP = "SHA256:" + "B" * 42 + "E"


def status_md(
    version: int,
    *,
    issued: int = NOW - HOUR,
    expires: int = NOW + DAY,
    keys: dict[str, dict[str, Any]] | None = None,
    principals: dict[str, dict[str, Any]] | None = None,
) -> Metadata[Timestamp]:
    body = {"issued": issued, "keys": keys or {}, "principals": principals or {}}
    return Metadata(
        Timestamp(version=version, expires=at(expires), unrecognized_fields={FIELD: body})
    )


@pytest.fixture(scope="module")
def status_root(keys: dict[str, Signer]) -> TrustedRoot:
    """Root keys e0, e1 (2 of 2); status keys p256, ed25519 (1 of 2)."""
    root_keys, status_keys = [keys["e0"], keys["e1"]], [keys["p256"], keys["ed25519"]]
    return TrustedRoot.pin(
        signed(root_md(1, root_keys, 2, status_keys, status_threshold=1), *root_keys)
    )


def test_status_signed_by_the_status_role_is_read(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    body = {ALICE_FP: {"reason": "compromised", "since": NOW - DAY}}
    data = signed(status_md(3, keys=body), keys["p256"])
    status = accept_status(status_root, None, data, now=NOW)
    assert (status.version, status.issued, status.expires) == (3, NOW - HOUR, NOW + DAY)
    assert list(status.keys.values()) == [
        Revocation(reason=RevocationReason.COMPROMISED, since=NOW - DAY)
    ]


def test_status_signed_by_other_keys_is_refused(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    with refused(Rule.THRESHOLD):  # root keys are not status keys
        accept_status(status_root, None, signed(status_md(1), keys["e0"], keys["e1"]), now=NOW)
    with refused(Rule.THRESHOLD):
        accept_status(status_root, None, signed(status_md(1)), now=NOW)


def test_status_rollback_is_refused(keys: dict[str, Signer], status_root: TrustedRoot) -> None:
    held = accept_status(status_root, None, signed(status_md(5), keys["p256"]), now=NOW)
    with refused(Rule.ROLLBACK):
        accept_status(status_root, held, signed(status_md(4), keys["p256"]), now=NOW)
    again = signed(status_md(5), keys["ed25519"])  # the same document, signed by another key
    assert accept_status(status_root, held, again, now=NOW) is held
    with refused(Rule.EQUIVOCATION):
        accept_status(status_root, held, signed(status_md(5, issued=NOW), keys["p256"]), now=NOW)
    assert (
        accept_status(status_root, held, signed(status_md(6), keys["p256"]), now=NOW).version == 6
    )


def test_stale_status_fails_closed_unless_allowed(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    status = accept_status(
        status_root, None, signed(status_md(1, issued=NOW - 2 * HOUR), keys["p256"]), now=NOW
    )
    Freshness(max_age=2 * HOUR).check(status, NOW)
    with refused(Rule.STALE):
        Freshness(max_age=2 * HOUR).check(status, NOW + 1)
    with refused(Rule.STALE):  # expired, however young
        Freshness(max_age=YEAR).check(status, NOW + DAY)
    with refused(Rule.STALE):
        Freshness(max_age=YEAR).check(None, NOW)
    allowed = Freshness(max_age=HOUR, allow_stale=True)
    allowed.check(status, NOW + YEAR)
    allowed.check(None, NOW)


def _status(status_root: TrustedRoot, signer: Signer, **lists: Any) -> Status:
    return accept_status(status_root, None, signed(status_md(1, **lists), signer), now=NOW)


@pytest.mark.parametrize("reason", ["compromised", "superseded"])
def test_revoked_key_is_refused_from_its_revoked_since_time(
    keys: dict[str, Signer], status_root: TrustedRoot, reason: str
) -> None:
    since = NOW - DAY
    status = _status(
        status_root,
        keys["p256"],
        keys={ALICE_FP: {"reason": reason, "since": since}},
        principals={"ll://acme/billing": {"reason": reason, "since": since}},
    )
    alice = next(iter(status.keys))
    assert status.revocation(key=alice, dated=since - 1) is None
    assert status.revocation(key=alice, dated=since) is not None
    assert status.revocation(key=alice, dated=NOW) is not None
    assert status.revocation(principal="ll://acme/billing", dated=since - 1) is None
    assert status.revocation(principal="ll://acme/billing", dated=since) is not None
    assert status.revocation(key=bytes(31) + b"\1", principal="ll://acme/other", dated=NOW) is None


def test_compromise_at_an_unknown_time_refuses_every_message(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    status = _status(
        status_root,
        keys["p256"],
        keys={
            MALLORY_FP: {"reason": "compromised-unknown-time"},
            ALICE_FP: {"reason": "compromised-unknown-time", "since": NOW},
        },
    )
    for key in status.keys:
        assert status.revocation(key=key, dated=0) is not None
        assert status.revocation(key=key, dated=NOW - YEAR) is not None


@pytest.mark.parametrize(
    ("keys_field", "principals_field"),
    [
        ({ALICE_FP: {"reason": "lost"}}, {}),  # unknown reason: refuse, never guess
        ({ALICE_FP: {"reason": "compromised"}}, {}),  # compromised needs its since time
        ({"SHA256:" + "A" * 42 + "B": {"reason": "superseded", "since": 1}}, {}),  # not canonical
        ({ALICE_FP: {"reason": "superseded", "since": True}}, {}),
        ({}, {"ll://acme/x": {"reason": "superseded", "since": 1, "note": "?"}}),
    ],
)
def test_malformed_revocations_refuse_the_whole_status(
    keys: dict[str, Signer],
    status_root: TrustedRoot,
    keys_field: dict[str, Any],
    principals_field: dict[str, Any],
) -> None:
    with refused(Rule.MALFORMED):
        _status(status_root, keys["p256"], keys=keys_field, principals=principals_field)


def test_revocations_policy_refuses_revoked_and_stale_senders(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    alice = Identity.generate(Suite.X25519)
    pins = Pins()
    pins.pin("alice", alice.public)
    since = NOW - DAY
    status = _status(
        status_root,
        keys["p256"],
        keys={alice.public.fingerprint_text: {"reason": "compromised", "since": since}},
    )
    policy = Revocations(pins, status, Freshness(max_age=2 * HOUR))

    def admit(created: int, now: int = NOW) -> VerifiedSender | Refusal:
        context = TrustContext(
            topic="t", suite=Suite.X25519, content_type=None, headers={}, created=created, now=now
        )
        return policy.admit(alice.public, context)

    assert isinstance(admit(since - 1), VerifiedSender)
    refusal = admit(since)
    assert isinstance(refusal, Refusal)
    assert not refusal.transient
    assert "compromised" in refusal.detail
    stale = admit(since - 1, now=NOW + 2 * HOUR)
    assert isinstance(stale, Refusal)
    assert stale.transient


# --------------------------------------------------------------------------- the folder source


def _publish(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)


def test_folder_source_walks_the_root_chain_and_reads_the_status(
    keys: dict[str, Signer], tmp_path: Path
) -> None:
    e0, e1, s1, s2 = keys["e0"], keys["e1"], keys["p256"], keys["ed25519"]
    v1 = signed(root_md(1, [e0], 1, [s1]), e0)
    _publish(tmp_path, "1.root.json", v1)
    _publish(tmp_path, "2.root.json", signed(root_md(2, [e1], 1, [s1]), e0, e1))
    _publish(tmp_path, "3.root.json", signed(root_md(3, [e1], 1, [s1]), e1))
    _publish(tmp_path, "timestamp.json", signed(status_md(7), s1))
    source = FolderSource(tmp_path)
    snapshot = source.refresh(Snapshot(root=TrustedRoot.pin(v1)), now=NOW)
    assert snapshot.root.version == 3
    assert snapshot.status is not None
    assert snapshot.status.version == 7

    # a status rolled back in the folder is refused; the receiver keeps what it had
    _publish(tmp_path, "timestamp.json", signed(status_md(6), s1))
    with refused(Rule.ROLLBACK):
        source.refresh(snapshot, now=NOW)

    # a root that rotates the status keys resets the status version floor (TUF 5.3.11)
    _publish(tmp_path, "4.root.json", signed(root_md(4, [e1], 1, [s2]), e1))
    _publish(tmp_path, "timestamp.json", signed(status_md(1), s2))
    rotated = source.refresh(snapshot, now=NOW)
    assert (rotated.root.version, rotated.status.version if rotated.status else None) == (4, 1)


def test_folder_source_keeps_the_status_floor_when_status_keys_stay(
    keys: dict[str, Signer], tmp_path: Path
) -> None:
    e0, s1 = keys["e0"], keys["p256"]
    v1 = signed(root_md(1, [e0], 1, [s1]), e0)
    _publish(tmp_path, "timestamp.json", signed(status_md(7), s1))
    source = FolderSource(tmp_path)
    snapshot = source.refresh(Snapshot(root=TrustedRoot.pin(v1)), now=NOW)
    _publish(tmp_path, "2.root.json", signed(root_md(2, [e0], 1, [s1]), e0))
    _publish(tmp_path, "timestamp.json", signed(status_md(6), s1))
    with refused(Rule.ROLLBACK):
        source.refresh(snapshot, now=NOW)


def test_an_expired_root_vouches_for_no_status(keys: dict[str, Signer]) -> None:
    root_keys, status_keys = [keys["e0"]], [keys["p256"]]
    data = signed(root_md(1, root_keys, 1, status_keys, expires=NOW + DAY), *root_keys)
    root = TrustedRoot.pin(data)
    status = signed(status_md(1), keys["p256"])
    assert accept_status(root, None, status, now=NOW).version == 1
    with refused(Rule.EXPIRED):
        accept_status(root, None, status, now=NOW + DAY)


def test_snapshot_cache_keeps_versions_across_restarts(
    keys: dict[str, Signer], tmp_path: Path
) -> None:
    e0, s1 = keys["e0"], keys["p256"]
    v1 = signed(root_md(1, [e0], 1, [s1]), e0)
    published, cache_dir = tmp_path / "published", tmp_path / "cache"
    published.mkdir()
    _publish(published, "2.root.json", signed(root_md(2, [e0], 1, [s1]), e0))
    _publish(published, "timestamp.json", signed(status_md(7), s1))
    pinned = TrustedRoot.pin(v1)
    cache = SnapshotCache(cache_dir)
    assert cache.load(pinned) == Snapshot(root=pinned)
    cache.save(FolderSource(published).refresh(cache.load(pinned), now=NOW))
    assert oct((cache_dir / "root.json").stat().st_mode & 0o777) == "0o600"

    # a restart: the receiver still holds root 2 and status 7, so status 6 is a rollback
    restarted = cache.load(pinned)
    assert restarted.root.version == 2
    assert restarted.status is not None
    assert restarted.status.version == 7
    _publish(published, "timestamp.json", signed(status_md(6), s1))
    with refused(Rule.ROLLBACK):
        FolderSource(published).refresh(restarted, now=NOW)

    # a newer pinned root (a reinstall) wins over an older cache; the same version must agree
    v3 = signed(root_md(3, [e0], 1, [s1]), e0)
    assert cache.load(TrustedRoot.pin(v3)).root.version == 3
    other_v2 = signed(root_md(2, [e0], 1, [s1], expires=NOW + 2 * YEAR), e0)
    with refused(Rule.EQUIVOCATION):
        cache.load(TrustedRoot.pin(other_v2))


def test_snapshot_cache_drops_a_status_its_root_does_not_vouch_for(
    keys: dict[str, Signer], tmp_path: Path
) -> None:
    """A crash between saving a status and the root it came with leaves the status unverifiable
    under the saved root: it is dropped, not trusted."""
    e0, s1, s2 = keys["e0"], keys["p256"], keys["ed25519"]
    pinned = TrustedRoot.pin(signed(root_md(1, [e0], 1, [s1]), e0))
    _publish(tmp_path, "root.json", pinned.data)
    _publish(tmp_path, "timestamp.json", signed(status_md(9), s2))
    assert SnapshotCache(tmp_path).load(pinned) == Snapshot(root=pinned)


@settings(max_examples=30, deadline=None)
@given(versions=st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_the_held_status_version_never_goes_down(versions: list[int]) -> None:
    """Whatever order status versions arrive in, the receiver holds the highest one it saw, and
    exactly the lower ones are refused as rollbacks."""
    status_key = STATUS_PROPERTY_KEY
    held: Status | None = None
    highest = 0
    for version in versions:
        data = signed(status_md(version), status_key)
        if version < highest:
            with refused(Rule.ROLLBACK):
                accept_status(STATUS_PROPERTY_ROOT, held, data, now=NOW)
            continue
        held = accept_status(STATUS_PROPERTY_ROOT, held, data, now=NOW)
        highest = version
        assert held.version == highest


STATUS_PROPERTY_KEY = CryptoSigner.generate_ed25519()
STATUS_PROPERTY_ROOT = TrustedRoot.pin(
    signed(root_md(1, [STATUS_PROPERTY_KEY], 1, [STATUS_PROPERTY_KEY]), STATUS_PROPERTY_KEY)
)


def test_dual_signatures_are_bound_to_tuf_metadata() -> None:
    """A dual key signs ``DUAL_CONTEXT || payload``: its signature is no pq envelope signature
    over the payload itself, and the signer has no secret in its repr and cannot be pickled."""
    import pickle

    from letterlock import _crypto
    from letterlock.trust.tufkeys import DUAL_CONTEXT

    signer = DualSigner.generate()
    payload = b'{"_type":"root"}'
    signature = bytes.fromhex(signer.sign(payload).signature)
    verifier = _crypto.pq_public(bytes.fromhex(signer.public_key.keyval["public"]))[0]
    assert verifier.verify(signature, DUAL_CONTEXT + payload)
    assert not verifier.verify(signature, payload)
    assert repr(signer) == "<DualSigner>"
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_oversized_metadata_is_refused_unread(keys: dict[str, Signer]) -> None:
    from letterlock.trust.root import MAX_ROOT_BYTES

    data = signed(root_md(1, [keys["e0"]], 1), keys["e0"])
    with refused(Rule.MALFORMED):
        TrustedRoot.pin(data + b" " * (MAX_ROOT_BYTES + 1 - len(data)))
    assert TrustedRoot.pin(data + b" " * (MAX_ROOT_BYTES - len(data))).version == 1


def test_folder_source_walks_a_bounded_number_of_roots_per_refresh(
    keys: dict[str, Signer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from letterlock.sources import folder

    monkeypatch.setattr(folder, "MAX_ROOT_STEPS", 2)
    e0 = keys["e0"]
    v1 = signed(root_md(1, [e0], 1), e0)
    for version in (2, 3, 4):
        _publish(tmp_path, f"{version}.root.json", signed(root_md(version, [e0], 1), e0))
    source = FolderSource(tmp_path)
    first = source.refresh(Snapshot(root=TrustedRoot.pin(v1)), now=NOW)
    assert first.root.version == 3
    assert source.refresh(first, now=NOW).root.version == 4


def test_unreadable_trust_data_is_a_source_error(keys: dict[str, Signer], tmp_path: Path) -> None:
    from letterlock.sources import SourceError

    e0 = keys["e0"]
    (tmp_path / "2.root.json").mkdir()
    with pytest.raises(SourceError, match=r"cannot read 2\.root\.json"):
        FolderSource(tmp_path).refresh(
            Snapshot(root=TrustedRoot.pin(signed(root_md(1, [e0], 1), e0)))
        )


def test_open_refuses_a_revoked_sender_and_retries_on_a_stale_status(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    """End to end through letterlock.open: Revocations in front of Pins."""
    import letterlock
    from letterlock import Reason, Rejected, ReplayWindow

    alice, bob, carol = (Identity.generate(Suite.X25519) for _ in range(3))
    pins = Pins()
    pins.pin("alice", alice.public)
    pins.pin("carol", carol.public)
    since = NOW - HOUR
    status = _status(
        status_root,
        keys["p256"],
        keys={alice.public.fingerprint_text: {"reason": "compromised", "since": since}},
    )
    trust = Revocations(pins, status, Freshness(max_age=2 * HOUR))

    def open_sealed(created: int, now: int, sender: Identity = alice) -> letterlock.Opened:
        sealed = letterlock.seal(
            b"order", sender=sender, recipients=[bob.public], topic="orders", now=created
        )
        return letterlock.open(
            sealed, identity=bob, trust=trust, replay=ReplayWindow(), topic="orders", now=now
        )

    assert open_sealed(created=since - 60, now=since - 30).payload == b"order"
    with pytest.raises(Rejected) as revoked:
        open_sealed(created=since, now=since + 30)
    assert (revoked.value.reason, revoked.value.transient) == (Reason.UNTRUSTED, False)
    assert open_sealed(created=NOW, now=NOW, sender=carol).payload == b"order"
    later = NOW + 2 * HOUR  # the status (issued an hour before NOW) is now 3 hours old: stale
    with pytest.raises(Rejected) as stale:
        open_sealed(created=later, now=later, sender=carol)
    assert (stale.value.reason, stale.value.transient) == (Reason.UNTRUSTED, True)
    with pytest.raises(Rejected) as still_revoked:  # a stale status still revokes for good
        open_sealed(created=later, now=later)
    assert still_revoked.value.transient is False


def test_revocations_policy_refuses_a_revoked_principal(
    keys: dict[str, Signer], status_root: TrustedRoot
) -> None:
    """The principal an inner policy reports (an authority-certified sender's) is checked."""
    from dataclasses import replace

    from letterlock.core.keys import PublicIdentity

    alice = Identity.generate(Suite.X25519)
    pins = Pins()
    pins.pin("alice", alice.public)

    class Certified:
        """Pins, reporting the sender as the principal ll://acme/svc/billing."""

        def lookup(self, key_id: bytes, credentials: object = None) -> PublicIdentity | None:
            return pins.lookup(key_id)

        def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
            verdict = pins.admit(sender, context)
            if isinstance(verdict, Refusal):
                return verdict
            return replace(verdict, principal="ll://acme/svc/billing")

    status = _status(
        status_root,
        keys["p256"],
        principals={"ll://acme/svc/billing": {"reason": "superseded", "since": NOW - DAY}},
    )
    context = TrustContext(
        topic="t", suite=Suite.X25519, content_type=None, headers={}, created=NOW, now=NOW
    )
    fresh = Freshness(max_age=2 * HOUR)
    assert isinstance(Revocations(pins, status, fresh).admit(alice.public, context), VerifiedSender)
    refusal = Revocations(Certified(), status, fresh).admit(alice.public, context)
    assert isinstance(refusal, Refusal)
    assert "superseded" in refusal.detail
