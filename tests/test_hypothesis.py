"""Invariants over random inputs (hypothesis): round trips, byte flips, truncations, replays.

Identities come from :func:`conftest.cast_of` (one cast per suite for the session), because
hypothesis cannot reuse function-scoped fixtures between examples. Example counts keep the whole
file well under a minute; ``deadline=None`` because pq operations vary in time.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

import letterlock
from conftest import NOW, cast_of, reencoded
from letterlock import (
    DEFAULT_LIMITS,
    MemoryReplayStore,
    Opened,
    Reason,
    Rejected,
    ReplayWindow,
    Suite,
)
from letterlock.core.envelope import encode_header, parse
from letterlock.core.protocol import Padding

ALL = frozenset(Suite)
TOPIC = "telemetry/site-7"
READING = b"reading: 21.5 C"
PADME: Final[Literal["padme"]] = "padme"
T = TypeVar("T")

suites = st.sampled_from(list(Suite))
utf8_text = st.characters(exclude_categories=["Cs", "Cc"])  # no lone surrogates, no controls
topics = st.text(utf8_text, min_size=1, max_size=300).filter(lambda t: len(t.encode()) <= 1024)
printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
content_types = st.none() | st.text(printable, max_size=255)
header_names = st.from_regex(r"\A[a-z0-9._-]{1,64}\Z")
header_values = st.text(utf8_text, max_size=40) | st.just("v" * 4096)
header_maps = st.dictionaries(header_names, header_values, max_size=6)
paddings: st.SearchStrategy[Padding] = st.none() | st.just(PADME) | st.integers(1, 4096)


def _bytes_of_size(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


payloads = (
    st.binary(max_size=300)
    | st.sampled_from([b"", _bytes_of_size(64 * 1024, 1)])
    | st.builds(_bytes_of_size, st.integers(0, 64 * 1024), st.integers(0, 2**32))
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealCase:
    """Everything a sender chooses for one message."""

    suite: Suite
    payload: bytes
    chosen: list[int]  # indices into the suite's pool of five receivers
    topic: str
    content_type: str | None
    headers: dict[str, str]
    hide_sender: bool
    pad: Padding
    expires_in: int | None


seal_cases = st.builds(
    SealCase,
    suite=suites,
    payload=payloads,
    chosen=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True),
    topic=topics,
    content_type=content_types,
    headers=header_maps,
    hide_sender=st.booleans(),
    pad=paddings,
    expires_in=st.none() | st.integers(1, 10**6),
)


def open_as(
    data: bytes, suite: Suite, receiver: int = 0, window: ReplayWindow | None = None
) -> Opened:
    """Open as member ``receiver`` of the suite's pool, trusting alice."""
    cast = cast_of(suite)
    return letterlock.open(
        data,
        identity=cast.pool[receiver],
        trust=cast.pins(),
        replay=window if window is not None else ReplayWindow(),
        now=NOW,
    )


def outcome(call: Callable[[], T]) -> T | Reason:
    """What ``call`` returns, or the reason of the Rejected it raises (anything else escapes)."""
    try:
        return call()
    except Rejected as exc:
        return exc.reason


@settings(max_examples=150, deadline=None)
@given(case=seal_cases)
def test_round_trip_to_every_chosen_recipient(case: SealCase) -> None:
    """Every chosen recipient reads exactly what was sealed; nobody else reads anything."""
    cast = cast_of(case.suite)
    sealed = letterlock.seal(
        case.payload,
        sender=cast.alice,
        recipients=[cast.pool[i].public for i in case.chosen],
        topic=case.topic,
        headers=case.headers,
        content_type=case.content_type,
        expires_in=case.expires_in,
        now=NOW,
        hide_sender=case.hide_sender,
        pad=case.pad,
    )
    envelope = parse(sealed, suites=ALL, limits=DEFAULT_LIMITS)
    assert reencoded(envelope) == sealed
    assert encode_header(envelope.header) == envelope.header_bytes
    for receiver in case.chosen:
        opened = open_as(sealed, case.suite, receiver)
        assert opened.payload == case.payload
        assert (opened.topic, opened.content_type) == (case.topic, case.content_type or None)
        assert dict(opened.headers) == case.headers
        assert (opened.sender.name, opened.created) == ("alice", NOW)
        assert opened.expires == (None if case.expires_in is None else NOW + case.expires_in)
    for outsider in set(range(5)) - set(case.chosen):
        not_mine = outcome(functools.partial(open_as, sealed, case.suite, outsider))
        assert not_mine is Reason.NOT_FOR_ME


@functools.cache
def sample(suite: Suite, hide_sender: bool) -> bytes:
    """A message using every header field, to pool members 0 and 1 (padded when hidden)."""
    cast = cast_of(suite)
    return letterlock.seal(
        READING,
        sender=cast.alice,
        recipients=[cast.pool[0].public, cast.pool[1].public],
        topic=TOPIC,
        headers={"site": "7", "unit": "celsius"},
        content_type="text/plain",
        expires_in=600,
        now=NOW,
        hide_sender=hide_sender,
        pad=PADME if hide_sender else None,
    )


@settings(max_examples=1500, deadline=None)
@given(
    suite=suites,
    hide_sender=st.booleans(),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
)
def test_any_single_byte_flip_is_rejected_and_blocks_nothing(
    suite: Suite, hide_sender: bool, where: float, mask: int
) -> None:
    """A flipped byte anywhere raises Rejected (nothing else, never a payload), and the
    genuine message still opens on the same window afterwards."""
    sealed = sample(suite, hide_sender)
    index = int(where * len(sealed))
    damaged = bytearray(sealed)
    damaged[index] ^= mask
    window = ReplayWindow()
    result = outcome(functools.partial(open_as, bytes(damaged), suite, window=window))
    assert isinstance(result, Reason), f"flipping byte {index} with {mask:#04x} went unnoticed"
    assert open_as(sealed, suite, window=window).payload == READING


@settings(max_examples=500, deadline=None)
@given(suite=suites, hide_sender=st.booleans(), where=st.floats(0, 1, exclude_max=True))
def test_any_truncation_is_rejected_as_malformed(
    suite: Suite, hide_sender: bool, where: float
) -> None:
    sealed = sample(suite, hide_sender)
    cut = int(where * len(sealed))
    assert outcome(functools.partial(open_as, sealed[:cut], suite)) is Reason.MALFORMED


@settings(max_examples=500, deadline=None)
@given(
    preamble=st.sampled_from([b"", b"LLK\x01\x03\x00", b"LLK\x01\x01\x01", b"LLK\x01\x04\x00"]),
    body=st.binary(max_size=600),
)
def test_parse_accepts_only_canonical_bytes(preamble: bytes, body: bytes) -> None:
    """Random input either fails as Rejected or parses to a value that re-encodes identically."""
    data = preamble + body
    result = outcome(functools.partial(parse, data, suites=ALL, limits=DEFAULT_LIMITS))
    assert isinstance(result, Reason) or reencoded(result) == data


SENDERS = (b"\xa1" * 32, b"\x3a" * 32)


@settings(max_examples=400, deadline=None)
@given(
    times=st.lists(st.integers(-400, 400), min_size=8, max_size=8),
    events=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 1), st.integers(-50, 200)), max_size=40
    ),
    capacity=st.integers(1, 4),
    prune_every=st.integers(1, 4),
)
def test_replay_window_never_accepts_an_id_twice(
    times: list[int], events: list[tuple[int, int, int]], capacity: int, prune_every: int
) -> None:
    """Whatever the order, clock jumps (even backwards), evictions and prunes: an id that was
    accepted once from a sender is never accepted again from that sender."""
    store = MemoryReplayStore(capacity=capacity)
    window = ReplayWindow(store, max_age=300, skew=30, prune_every=prune_every)
    accepted: set[tuple[int, int]] = set()
    now = NOW
    for message, sender, tick in events:
        now += tick
        created = NOW + times[message]  # a replayed copy carries the same signed time
        message_id = message.to_bytes(16, "big")
        deliver = functools.partial(_deliver, window, SENDERS[sender], message_id, created, now)
        result = outcome(deliver)
        if result is not None:
            assert result in {
                Reason.NOT_YET_VALID, Reason.EXPIRED, Reason.REPLAYED, Reason.OVER_LIMIT
            }  # fmt: skip
            continue
        assert (sender, message) not in accepted, f"id {message} accepted twice"
        accepted.add((sender, message))


@settings(max_examples=300, deadline=None)
@given(
    flood=st.lists(st.tuples(st.integers(0, 40), st.integers(-400, 30)), max_size=60),
    capacity=st.integers(1, 6),
    prune_every=st.integers(1, 8),
)
def test_replay_one_sender_never_blocks_another(
    flood: list[tuple[int, int]], capacity: int, prune_every: int
) -> None:
    """Mallory sends anything the window lets her (copied ids, any time up to the skew, past
    capacity); every fresh message of alice's, interleaved, is still accepted. (Alice sends one
    message a second: her own capacity then never refuses her.)"""
    alice, mallory = SENDERS
    window = ReplayWindow(
        MemoryReplayStore(capacity=capacity), max_age=300, skew=30, prune_every=prune_every
    )
    now = NOW
    for step, (message, offset) in enumerate(flood):
        outcome(functools.partial(
            _deliver, window, mallory, message.to_bytes(16, "big"), now + offset, now
        ))  # fmt: skip
        mine = (1000 + step).to_bytes(16, "big")
        assert outcome(functools.partial(_deliver, window, alice, mine, now, now)) is None
        now += 1


def _deliver(
    window: ReplayWindow, sender: bytes, message_id: bytes, created: int, now: int
) -> None:
    """What open does with the window: the cheap check, then (all else passed) the record."""
    window.check(sender=sender, message_id=message_id, created=created, expires=None, now=now)
    window.record(sender=sender, message_id=message_id, created=created, now=now)
