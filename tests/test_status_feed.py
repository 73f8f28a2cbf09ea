"""Status documents through the broker (letterlock.cli.status_feed) and the receiver's
updater (letterlock.sources.updater): each test fails without its rule.

A hostile broker can delay, drop, replay or inject documents: the receiver keeps the highest
version its pinned root's status keys signed, never rolls back, refuses equivocation and
forgery, persists what it accepted before it uses it, and fails closed once its status is stale.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letterlock import Identity, Suite, TrustContext
from letterlock.cli.status_feed import (
    STATUS_TOPIC,
    follow_status,
    publish_status,
    status_topic,
)
from letterlock.core.topics import Dialect
from letterlock.sources.folder import Snapshot, SnapshotCache
from letterlock.sources.publish import make_root, make_status, root_progress, sign_metadata
from letterlock.sources.updater import StatusUpdater
from letterlock.transports.base import Endpoint
from letterlock.transports.redis import RedisEndpoint
from letterlock.transports.spool import Spool
from letterlock.trust.root import MetadataRefused, TrustedRoot
from letterlock.trust.status import Freshness, Status
from letterlock.trust.tufkeys import IdentitySigner, tuf_key
from services import SERVICES, require, unique

NOW = 1_800_000_000
HOUR = 3600
KEYS = {name: Identity.generate(Suite.X25519) for name in ("r1", "r2", "ts", "mallory")}


def _root() -> TrustedRoot:
    unsigned = make_root(
        1,
        root_keys=[KEYS["r1"].public, KEYS["r2"].public],
        threshold=2,
        status_keys=[KEYS["ts"].public],
        status_threshold=1,
        expires=NOW + 365 * 24 * HOUR,
    )
    signers = [IdentitySigner(KEYS[n]) for n in ("r1", "r2")]
    return TrustedRoot.pin(sign_metadata(unsigned, signers))


ROOT = _root()


def status(version: int, *, signer: str = "ts", issued: int = NOW, **keys: Any) -> bytes:
    unsigned = make_status(
        version, issued=issued, expires=issued + 6 * HOUR, keys=keys, principals={}
    )
    return sign_metadata(unsigned, [IdentitySigner(KEYS[signer])])


@pytest.fixture
def updater(tmp_path: Path) -> StatusUpdater:
    return StatusUpdater(SnapshotCache(tmp_path / "cache"), Snapshot(root=ROOT))


# ------------------------------------------------------------------- the keys


@pytest.mark.parametrize("suite", list(Suite), ids=[s.label for s in Suite])
def test_every_suite_signs_roots_and_status_as_a_tuf_key(suite: Suite) -> None:
    """IdentitySigner's signatures verify with python-tuf under tuf_key, for every suite."""
    keys = [Identity.generate(suite) for _ in range(2)]
    unsigned = make_root(1, root_keys=[k.public for k in keys], threshold=2,
                         status_keys=[keys[0].public], status_threshold=1,
                         expires=NOW + HOUR)  # fmt: skip
    one = sign_metadata(unsigned, [IdentitySigner(keys[0])])
    assert (root_progress(one).own, root_progress(one).complete) == (1, False)
    with pytest.raises(MetadataRefused, match=r"^self_threshold:"):
        TrustedRoot.pin(one)
    both = sign_metadata(one, [IdentitySigner(keys[1])])
    assert TrustedRoot.pin(both).version == 1
    assert tuf_key(keys[0].public).keyid in TrustedRoot.pin(both).keyids("root")


def test_an_identity_signer_cannot_be_pickled_and_shows_no_secret() -> None:
    import pickle

    signer = IdentitySigner(KEYS["ts"])
    assert "IdentitySigner" in repr(signer)
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_a_root_cannot_list_fewer_distinct_keys_than_its_threshold() -> None:
    with pytest.raises(ValueError, match="distinct keys"):
        make_root(1, root_keys=[KEYS["r1"].public, KEYS["r1"].public], threshold=2,
                  status_keys=[KEYS["ts"].public], status_threshold=1, expires=NOW)  # fmt: skip


# ------------------------------------------------------------------- the updater


def test_updater_keeps_the_newest_and_persists_it_before_use(tmp_path: Path) -> None:
    seen: list[int] = []
    updater = StatusUpdater(
        SnapshotCache(tmp_path / "cache"),
        Snapshot(root=ROOT),
        on_change=lambda s: seen.append(
            SnapshotCache(tmp_path / "cache").load(ROOT).status.version  # type: ignore[union-attr]
        ),
    )
    assert updater.offer(status(1), now=NOW) is True
    assert updater.offer(status(1), now=NOW) is False  # the same document again: a copy
    assert updater.offer(status(3), now=NOW) is True  # versions may skip
    assert seen == [1, 3]  # saved before on_change saw it
    restarted = SnapshotCache(tmp_path / "cache").load(ROOT)
    assert restarted.status is not None
    assert restarted.status.version == 3


def test_updater_refuses_rollback(updater: StatusUpdater) -> None:
    updater.offer(status(2), now=NOW)
    with pytest.raises(MetadataRefused, match=r"^rollback:"):
        updater.offer(status(1), now=NOW)
    assert updater.snapshot.status is not None
    assert updater.snapshot.status.version == 2


def test_updater_refuses_equivocation(updater: StatusUpdater) -> None:
    updater.offer(status(2), now=NOW)
    other = status(2, issued=NOW + 1)
    with pytest.raises(MetadataRefused, match=r"^equivocation:"):
        updater.offer(other, now=NOW)


def test_updater_refuses_a_status_other_keys_signed(updater: StatusUpdater) -> None:
    with pytest.raises(MetadataRefused, match=r"^threshold:"):
        updater.offer(status(1, signer="mallory"), now=NOW)
    assert updater.snapshot.status is None


# ------------------------------------------------------------------- through brokers


@pytest.fixture(params=["spool", "redis"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    if request.param == "spool":
        with Spool(tmp_path / "spool.sqlite") as spool:
            yield spool
        return
    require("redis")
    stream = unique("ll-status")
    endpoint = RedisEndpoint.from_url(f"{SERVICES['redis'].url}?stream={stream}&lease=1.0")
    try:
        yield endpoint
    finally:
        endpoint.close()
        plain = redis.Redis.from_url(SERVICES["redis"].url)
        plain.delete(stream, *plain.keys(f"{stream}:dead:*"))
        plain.close()


def test_status_reaches_the_receiver_through_the_broker(
    endpoint: Endpoint, updater: StatusUpdater
) -> None:
    """Published on the well-known topic, followed by the receiver's own group."""
    group = unique("receiver")
    assert follow_status(endpoint, updater, group=group, idle_timeout=0.2).accepted == 0
    publish_status(endpoint, status(1))
    publish_status(endpoint, status(2))
    followed = follow_status(endpoint, updater, group=group, idle_timeout=0.5)
    assert (followed.accepted, followed.refused) == (2, 0)
    held = updater.snapshot.status
    assert held is not None
    assert held.version == 2
    Freshness(max_age=HOUR).check(held, NOW + 60)  # fresh: no exception


def test_a_hostile_broker_cannot_roll_back_or_forge(
    endpoint: Endpoint, updater: StatusUpdater
) -> None:
    """Replayed old versions, equivocations and forgeries are dead-lettered; the newest stays."""
    group = unique("receiver")
    follow_status(endpoint, updater, group=group, idle_timeout=0.2)
    for document in (status(2), status(1), status(2, issued=NOW + 5), status(3, signer="mallory")):
        publish_status(endpoint, document)
    followed = follow_status(endpoint, updater, group=group, idle_timeout=0.5)
    assert (followed.accepted, followed.refused) == (1, 3)
    assert followed.last_refusal is not None
    assert followed.last_refusal.startswith("threshold:")
    held = updater.snapshot.status
    assert held is not None
    assert held.version == 2
    assert len(endpoint.dead_letters(group)) == 3


def test_a_broker_that_drops_status_makes_the_receiver_fail_closed(
    endpoint: Endpoint, updater: StatusUpdater
) -> None:
    group = unique("receiver")
    follow_status(endpoint, updater, group=group, idle_timeout=0.2)
    publish_status(endpoint, status(1))
    follow_status(endpoint, updater, group=group, idle_timeout=0.5)
    held = updater.snapshot.status
    later = NOW + 2 * HOUR  # nothing newer arrived (dropped): the status is now stale
    with pytest.raises(MetadataRefused, match=r"^stale:"):
        Freshness(max_age=HOUR).check(held, later)


def test_mqtt_spells_the_status_topic_with_slashes() -> None:
    assert status_topic(Dialect.MQTT) == "letterlock/status"
    assert status_topic(Dialect.AMQP) == STATUS_TOPIC == "letterlock.status"


def test_status_verifies_only_under_the_pinned_root() -> None:
    assert Status.verify(ROOT, status(1)).version == 1


# ------------------------------------------------------------------- what the receiver reports


def _admitting() -> Any:
    from letterlock import VerifiedSender, Via

    class Everyone:
        def lookup(self, key_id: bytes) -> None:
            return None

        def admit(self, sender: Any, context: Any) -> VerifiedSender:
            return VerifiedSender(
                name="dave",
                fingerprint=sender.fingerprint_text,
                key_id=sender.fingerprint,
                suite=sender.suite,
                via=Via.PIN,
            )

    return Everyone()


def _context(now: int, status_version: int = 0) -> TrustContext:
    return TrustContext(topic="t", suite=Suite.X25519, content_type=None, headers={},
                        created=now, now=now, status_version=status_version)  # fmt: skip


def test_an_admitted_sender_carries_the_status_version_and_age() -> None:
    from letterlock.trust.status import Revocations

    held = Status.verify(ROOT, status(4))
    policy = Revocations(_admitting(), held, Freshness(max_age=HOUR))
    verdict = policy.admit(KEYS["r1"].public, _context(NOW + 90))
    assert (verdict.status_version, verdict.status_age) == (4, 90)  # type: ignore[union-attr]


def test_a_stale_receiver_says_when_the_sender_is_ahead() -> None:
    from letterlock import Refusal
    from letterlock.trust.status import Revocations

    held = Status.verify(ROOT, status(4))
    policy = Revocations(_admitting(), held, Freshness(max_age=HOUR))
    behind = policy.admit(KEYS["r1"].public, _context(NOW + 2 * HOUR, status_version=6))
    assert isinstance(behind, Refusal)
    assert behind.transient
    assert behind.detail.endswith("; the sender has status version 6")
    fresh = policy.admit(KEYS["r1"].public, _context(NOW + 60, status_version=6))
    assert not isinstance(fresh, Refusal)  # fresh enough: being behind alone refuses nothing


@given(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_saved_status_is_the_highest_version_offered(versions: list[int]) -> None:
    """Whatever order a broker delivers versions in, the receiver ends (and restarts) with the
    highest one, and each refusal left the saved status unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = SnapshotCache(Path(tmp))
        updater = StatusUpdater(cache, Snapshot(root=ROOT))
        for seen, version in enumerate(versions, start=1):
            with contextlib.suppress(MetadataRefused):  # a lower version: a rollback
                updater.offer(DOCUMENTS[version], now=NOW)
            saved = cache.load(ROOT).status
            assert saved is not None
            assert saved.version == max(versions[:seen])
        assert cache.load(ROOT).status.version == max(versions)  # type: ignore[union-attr]


DOCUMENTS = {version: status(version) for version in range(1, 7)}


def test_two_updaters_of_one_home_never_save_an_older_status(tmp_path: Path) -> None:
    """``status update`` beside a listener following the status topic: each holds its own
    snapshot; the one that saves last must not put an older status back on disk."""
    from letterlock.cli.home import Home
    from letterlock.cli.trustdata import TrustData

    home = Home(tmp_path / "home")
    data = TrustData(home)
    data.pin_root(ROOT.data)
    snapshot = data.snapshot()
    assert snapshot is not None
    listener = StatusUpdater(data.cache(), snapshot)
    command = StatusUpdater(data.cache(), snapshot)
    command.offer(status(3), now=NOW)
    listener.offer(status(2), now=NOW)  # newer than what this one held, older than the saved
    saved = data.status()
    assert saved is not None
    assert saved.version == 3


def test_a_pool_worker_uses_each_status_its_pool_saved_in_the_home(tmp_path: Path) -> None:
    """``listen --follow-status --workers N``: the pool's follower saves each status it accepts
    in the home; a worker's :class:`SavedStatusTrust` uses it from its next question on, a
    revocation included, and never goes back to an older status put there."""
    from letterlock import Refusal
    from letterlock.cli.home import Home
    from letterlock.cli.livetrust import RECHECK_EVERY, SavedStatusTrust
    from letterlock.cli.trustdata import TrustData

    home = Home(tmp_path / "home")
    data = TrustData(home)
    data.pin_root(ROOT.data)
    snapshot = data.snapshot()
    assert snapshot is not None
    clock = [0.0]
    worker = SavedStatusTrust(data, _admitting(), every=RECHECK_EVERY, clock=lambda: clock[0])
    sender = KEYS["mallory"].public
    stale = worker.admit(sender, _context(NOW))
    assert isinstance(stale, Refusal)
    assert stale.transient  # no status yet: fail closed, retry later
    follower = StatusUpdater(data.cache(), snapshot)  # the pool's, in another process
    follower.offer(status(3), now=NOW)
    clock[0] += RECHECK_EVERY / 2
    assert isinstance(worker.admit(sender, _context(NOW)), Refusal)  # not looked again yet
    clock[0] += RECHECK_EVERY / 2
    admitted = worker.admit(sender, _context(NOW))
    assert not isinstance(admitted, Refusal)
    assert admitted.status_version == 3
    revoking: dict[str, Any] = {sender.fingerprint_text: {"reason": "compromised-unknown-time"}}
    follower.offer(status(4, **revoking), now=NOW)
    clock[0] += RECHECK_EVERY
    revoked = worker.admit(sender, _context(NOW))
    assert isinstance(revoked, Refusal)
    assert not revoked.transient
    # a worker started now (a replacement) loads the newest at its start
    assert isinstance(SavedStatusTrust(data, _admitting()).admit(sender, _context(NOW)), Refusal)
    # an older status written over it (not by a HomeCache): the worker keeps version 4
    SnapshotCache(data.trust_dir).save(Snapshot(root=ROOT, status=Status.verify(ROOT, status(3))))
    clock[0] += RECHECK_EVERY
    assert isinstance(worker.admit(sender, _context(NOW)), Refusal)
