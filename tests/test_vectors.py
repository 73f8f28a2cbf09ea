"""The committed test vectors (``vectors/``, ``docs/spec/vectors.md``) against letterlock itself.

Every vector is opened with :func:`letterlock.open` by the receiver it describes and must reach
its declared outcome. The set is also checked for coverage (every reason code in every suite),
for being what ``tools/make_vectors.py`` generates today, and for canonical re-encoding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

import letterlock
from conftest import reencoded
from letterlock import (
    AddResult,
    Identity,
    Limits,
    Opened,
    PublicIdentity,
    Reason,
    Rejected,
    ReplayWindow,
    Suite,
    TrustContext,
    VerifiedSender,
)
from letterlock.core.cache import LabelsCache, UnwrapCache
from letterlock.core.envelope import DEFAULT_LIMITS, MAX_CREDENTIALS_SIZE, Envelope, Header, parse
from letterlock.hazmat import identity_from_private_bytes, public_identity_from_bytes

ROOT = Path(__file__).parents[1]
VECTORS = ROOT / "vectors"
GENERATOR = ROOT / "tools" / "make_vectors.py"
SUITES = tuple(s.label for s in Suite)
#: The envelope vectors: one folder per suite (``credentials/`` and ``root/`` hold other formats).
FILES = sorted(path for suite in SUITES for path in (VECTORS / suite).glob("*.json"))
#: Reasons a receiver alone decides on an otherwise valid envelope: relaxing the receiver must
#: turn such a vector into a success, or it failed at more than one step.
RECEIVER_SIDE = frozenset(
    {
        Reason.OVER_LIMIT,
        Reason.SUITE_NOT_ALLOWED,
        Reason.NOT_YET_VALID,
        Reason.EXPIRED,
        Reason.WRONG_TOPIC,
        Reason.REPLAYED,
        Reason.UNTRUSTED,
    }
)

Vector = dict[str, Any]


def load(path: Path) -> Vector:
    vector: Vector = json.loads(path.read_text(encoding="utf-8"))
    return vector


def ids(paths: Iterable[Path]) -> list[str]:
    return [p.relative_to(VECTORS).as_posix() for p in paths]


LOADED = {path: load(path) for path in FILES}
IDS = ids(FILES)
SUCCESSES = [p for p in FILES if LOADED[p]["expect"] == "success"]


class VectorTrust:
    """The trust policy of ``vectors.md``: listed identities are known, admitted if allowed."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self._known: dict[bytes, tuple[str, PublicIdentity, bool]] = {}
        for entry in entries:
            identity = public_identity_from_bytes(bytes.fromhex(entry["public_identity"]))
            self._known[identity.fingerprint] = (entry["name"], identity, entry["allowed"])

    def lookup(self, key_id: bytes, credentials: object = None) -> PublicIdentity | None:
        known = self._known.get(bytes(key_id))
        return known[1] if known else None

    def admit(
        self, sender: PublicIdentity, context: TrustContext
    ) -> VerifiedSender | letterlock.Refusal:
        name, _, allowed = self._known[sender.fingerprint]
        if not allowed:
            return letterlock.Refusal(detail=f"{name} is not allowed")
        return VerifiedSender(
            name=name,
            fingerprint=sender.fingerprint_text,
            key_id=sender.fingerprint,
            suite=sender.suite,
            via=letterlock.Via.PIN,
        )


def window(receiver: Mapping[str, Any]) -> ReplayWindow:
    """The vector's window: exactly the recorded (sender, message id) pairs, floors at -1."""
    replay = ReplayWindow(max_age=receiver["max_age"], skew=receiver["skew"])
    now = receiver["now"]
    for seen in receiver["seen"]:
        sender, message_id = bytes.fromhex(seen["sender"]), bytes.fromhex(seen["message_id"])
        assert replay.store.add(sender, message_id, now, now=now) is AddResult.ADDED
    return replay


def limits(receiver: Mapping[str, Any]) -> Limits:
    return Limits(
        max_size=receiver["max_size"],
        max_recipients=receiver["max_recipients"],
        max_headers=receiver["max_headers"],
        hidden_sender=receiver["hidden_sender"],
        max_hidden_size=receiver["max_hidden_size"],
        max_credentials_size=receiver.get(
            "max_credentials_size", DEFAULT_LIMITS.max_credentials_size
        ),
    )


def open_as(
    receiver: Mapping[str, Any], envelope: bytes, replay: ReplayWindow | None = None
) -> Opened:
    """Open ``envelope`` exactly as the vector's receiver would."""
    identity: Identity = identity_from_private_bytes(bytes.fromhex(receiver["private_identity"]))
    return letterlock.open(
        envelope,
        identity=identity,
        trust=VectorTrust(receiver["trusted"]),
        replay=replay if replay is not None else window(receiver),
        topic=receiver["topic"],
        now=receiver["now"],
        suites=[Suite.from_label(s) for s in receiver["suites"]],
        limits=limits(receiver),
    )


def assert_outcome(vector: Vector) -> None:
    envelope = bytes.fromhex(vector["envelope"])
    if vector["expect"] == "reject":
        with pytest.raises(Rejected) as caught:
            open_as(vector["receiver"], envelope)
        assert caught.value.reason == Reason(vector["reason"]), caught.value
        return
    assert vector["expect"] == "success"
    opened = open_as(vector["receiver"], envelope)
    assert opened.payload == bytes.fromhex(vector["payload"])
    assert opened.sender.name == vector["signer"]["name"]
    assert opened.sender.fingerprint == vector["signer"]["fingerprint"]
    assert opened.topic == vector["topic"]
    assert opened.message_id.hex() == vector["message_id"]
    assert opened.created == vector["created"]
    assert (opened.expires or 0) == vector["expires"]
    assert (opened.content_type or "") == vector["content_type"]
    assert dict(opened.headers) == vector["headers"]
    carried = parse(envelope, suites=frozenset(Suite), limits=Limits()).header.credentials
    expected = vector.get("credentials")
    if expected is None:
        assert carried is None
    else:
        assert carried is not None
        assert carried.status_version == expected["status_version"]
        assert carried.format == expected["format"]
        assert [item.hex() for item in carried.items] == expected["items"]


def test_vectors_exist() -> None:
    assert len(FILES) >= 4 * 50, f"only {len(FILES)} vectors in {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_vector_outcome(path: Path) -> None:
    assert_outcome(load(path))


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_vector_file_format(path: Path) -> None:
    """The fields of vectors.md, named <suite>/<name>.json, sorted keys and a final newline."""
    text = path.read_text(encoding="utf-8")
    vector = json.loads(text)
    assert text == json.dumps(vector, indent=2, sort_keys=True) + "\n"
    assert vector["format"] == "letterlock-vector-v1"
    assert path.relative_to(VECTORS).as_posix() == f"{vector['suite']}/{vector['name']}.json"
    assert set(vector["receiver"]) - {"max_credentials_size"} == {
        "private_identity", "suites", "max_size", "max_recipients", "max_headers",
        "hidden_sender", "max_hidden_size", "max_age", "skew", "now", "topic", "seen", "trusted",
    }  # fmt: skip
    outcome = {"reason"} if vector["expect"] == "reject" else {
        "payload", "signer", "topic", "message_id", "created", "expires", "content_type",
        "headers",
    }  # fmt: skip
    common = {"format", "name", "description", "suite", "receiver", "envelope", "expect"}
    assert set(vector) - {"credentials"} == common | outcome
    assert "credentials" not in vector or vector["expect"] == "success"
    assert vector["envelope"] == bytes.fromhex(vector["envelope"]).hex()  # lowercase hex


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_trust_list_has_no_duplicate_or_unparsable_entry(path: Path) -> None:
    """vectors.md: every trusted entry parses (section 3.1), and no key or name is listed twice
    (a receiver that meets one must treat the vector as broken, not guess)."""
    entries = load(path)["receiver"]["trusted"]
    keys = [public_identity_from_bytes(bytes.fromhex(e["public_identity"])) for e in entries]
    assert len({k.fingerprint for k in keys}) == len(keys)
    assert len({e["name"] for e in entries}) == len(entries)
    assert all(isinstance(e["allowed"], bool) for e in entries)


@pytest.mark.parametrize("path", SUCCESSES, ids=ids(SUCCESSES))
def test_success_vector_is_recorded(path: Path) -> None:
    """Step 21: the same window refuses the same envelope a second time."""
    vector = load(path)
    replay = window(vector["receiver"])
    envelope = bytes.fromhex(vector["envelope"])
    open_as(vector["receiver"], envelope, replay)
    with pytest.raises(Rejected) as caught:
        open_as(vector["receiver"], envelope, replay)
    assert caught.value.reason is Reason.REPLAYED


@pytest.mark.parametrize("suite", SUITES)
def test_every_reason_and_a_success_per_suite(suite: str) -> None:
    outcomes = [v for p, v in LOADED.items() if p.parent.name == suite]
    reasons = {v["reason"] for v in outcomes if v["expect"] == "reject"}
    assert {r.value for r in Reason} <= reasons, sorted({r.value for r in Reason} - reasons)
    assert any(v["expect"] == "success" for v in outcomes)


def _header(envelope: bytes) -> Header:
    return parse(envelope, suites=frozenset(Suite), limits=Limits()).header


def _relaxed(receiver: Mapping[str, Any], envelope: bytes) -> dict[str, Any]:
    """The receiver with every receiver-side check loosened, clock set to the creation time."""
    created = _header(envelope).created
    return {
        **receiver,
        "suites": list(SUITES),
        "max_size": Limits().max_size,
        "max_recipients": Limits().max_recipients,
        "max_headers": Limits().max_headers,
        "hidden_sender": True,
        "max_hidden_size": Limits().max_size,
        "max_credentials_size": MAX_CREDENTIALS_SIZE,
        "now": created,
        "topic": None,
        "seen": [],
        "trusted": [{**t, "allowed": True} for t in receiver["trusted"]],
    }


#: Rejections no receiver can be relaxed out of: 65 headers exceed the format's hard cap, a
#: sender key of another suite than its envelope is refused whatever the trust list says, and
#: a header count above the cap hides headers that are malformed too (section 6, step 7).
NOT_RELAXABLE = frozenset(
    {
        "reject-over-limit-header-count-65",
        "reject-untrusted-sender-of-other-suite",
        "reject-over-limit-headers-unsorted",
        "reject-credentials-too-many-items",  # over the format's cap of 5 items
    }
)
RELAXABLE = [
    p
    for p, v in LOADED.items()
    if v["expect"] == "reject"
    and Reason(v["reason"]) in RECEIVER_SIDE
    and v["name"] not in NOT_RELAXABLE
]


@pytest.mark.parametrize("path", RELAXABLE, ids=ids(RELAXABLE))
def test_receiver_side_rejection_is_the_only_failure(path: Path) -> None:
    """A receiver-side rejection is the only thing wrong: a lenient receiver accepts it."""
    vector = load(path)
    envelope = bytes.fromhex(vector["envelope"])
    opened = open_as(_relaxed(vector["receiver"], envelope), envelope)
    assert opened.message_id.hex() == _header(envelope).message_id.hex()


def _parse_leniently(envelope: bytes) -> Envelope | Reason:
    try:
        return parse(envelope, suites=frozenset(Suite), limits=Limits())
    except Rejected as rejected:
        return rejected.reason


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_parsed_envelope_reencodes_to_the_same_bytes(path: Path) -> None:
    vector = load(path)
    envelope = bytes.fromhex(vector["envelope"])
    parsed = _parse_leniently(envelope)
    if isinstance(parsed, Reason):
        # Only a vector refused while parsing may be refused by the most lenient parser too.
        assert parsed in {Reason.MALFORMED, Reason.UNSUPPORTED, Reason.OVER_LIMIT}
        assert vector["expect"] == "reject"
        # Without the receiver's header cap, the malformed headers behind it show.
        hidden = vector["name"] == "reject-over-limit-headers-unsorted"
        assert (Reason.MALFORMED if hidden else Reason(vector["reason"])) is parsed
        return
    assert reencoded(parsed) == envelope


def _without_envelope(vector: Vector) -> tuple[Vector, int]:
    rest = {k: v for k, v in vector.items() if k != "envelope"}
    return rest, len(vector["envelope"])


def test_generator_reproduces_the_committed_vectors(tmp_path: Path) -> None:
    """Same file names and same outcomes (every field but the envelope bytes, which HPKE and
    the signatures randomise; their lengths are fixed), and the new envelopes behave the same."""
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], check=True)
    fresh = sorted(tmp_path.glob("*/*.json"))
    assert [p.relative_to(tmp_path).as_posix() for p in fresh] == IDS
    for path in fresh:
        vector = load(path)
        committed = load(VECTORS / path.relative_to(tmp_path))
        assert _without_envelope(vector) == _without_envelope(committed), path.name
        assert_outcome(vector)


_INTERNED: dict[Limits, Limits] = {}


def _outcome(
    vector: Vector, cache: UnwrapCache | None, labels: LabelsCache | None = None
) -> tuple[str, bytes]:
    """(reason or "success", payload) of a vector opened through an Opener sharing ``cache``
    and ``labels`` (equal limits are one object, so labels parsed for one vector serve all)."""
    receiver = vector["receiver"]
    opener = letterlock.Opener(
        identity_from_private_bytes(bytes.fromhex(receiver["private_identity"])),
        trust=VectorTrust(receiver["trusted"]),
        replay=window(receiver),
        suites=[Suite.from_label(s) for s in receiver["suites"]],
        limits=_INTERNED.setdefault(limits(receiver), limits(receiver)),
    )
    if cache is not None:
        opener.cache = cache
    if labels is not None:
        opener.labels = labels
    try:
        opened = opener.open(
            bytes.fromhex(vector["envelope"]), topic=receiver["topic"], now=receiver["now"]
        )
    except Rejected as rejected:
        return rejected.reason.value, b""
    return "success", opened.payload


@pytest.mark.parametrize("suite", SUITES)
def test_unwrap_cache_never_changes_an_outcome(suite: str) -> None:
    """Issue 3: the receiver's decapsulation cache gives every vector the outcome it has without.

    All vectors of a suite (hostile ones included) go through one shared cache per receiver
    key, forwards and then backwards, so each hostile vector meets a cache warmed by the
    genuine envelopes whose recipient entries it reuses. One labels cache is shared by all of
    them too: every vector's header meets labels parsed from the others'.
    """
    vectors = [v for p, v in LOADED.items() if p.parent.name == suite]
    expected = [_outcome(v, None) for v in vectors]
    caches: dict[str, UnwrapCache] = {}
    labels = LabelsCache()

    def shared(vector: Vector) -> UnwrapCache:
        return caches.setdefault(vector["receiver"]["private_identity"], UnwrapCache())

    forwards = [_outcome(v, shared(v), labels) for v in vectors]
    backwards = [_outcome(v, shared(v), labels) for v in reversed(vectors)][::-1]
    assert forwards == expected
    assert backwards == expected
    assert sum(c.hits for c in caches.values()) > 0, "the cache was never exercised"
    assert labels.hits > len(vectors) // 2, "the labels cache was never exercised"
