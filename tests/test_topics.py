"""Topic patterns: one normalised model, AMQP / MQTT / NATS dialects (letterlock.core.topics).

The tables are the brokers' own examples: RabbitMQ's topics tutorial, the non-normative
comments of MQTT 3.1.1 section 4.7, the NATS subject documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import SupportsIndex, overload

import pytest
from hypothesis import given
from hypothesis import strategies as st

import letterlock
from conftest import NOW, cast_of
from letterlock import Reason, Rejected, ReplayWindow, Suite, Topics, UsageError
from letterlock.core.topics import (
    MAX_PATTERN,
    Dialect,
    Segment,
    TopicPattern,
    Wildcard,
    amqp_topic_matches,
    parse_pattern,
    topic_matches,
)
from letterlock.transports import topic_matches as exported_topic_matches

ONE, ZERO_OR_MORE, ONE_OR_MORE = Wildcard.ONE, Wildcard.ZERO_OR_MORE, Wildcard.ONE_OR_MORE


# ------------------------------------------------------------------------------ AMQP

#: RabbitMQ tutorial 5 ("Topics"): Q1 is bound with *.orange.*, Q2 with *.*.rabbit and lazy.#.
RABBITMQ_TUTORIAL = [
    ("quick.orange.rabbit", {"Q1", "Q2"}),
    ("lazy.orange.elephant", {"Q1", "Q2"}),
    ("quick.orange.fox", {"Q1"}),
    ("lazy.brown.fox", {"Q2"}),
    ("lazy.pink.rabbit", {"Q2"}),
    ("quick.brown.fox", set()),
    ("orange", set()),
    ("quick.orange.male.rabbit", set()),
    ("lazy.orange.male.rabbit", {"Q2"}),
]


@pytest.mark.parametrize(("routing_key", "queues"), RABBITMQ_TUTORIAL)
def test_amqp_rabbitmq_tutorial(routing_key: str, queues: set[str]) -> None:
    bindings = {"Q1": Topics.amqp("*.orange.*"), "Q2": Topics.amqp("*.*.rabbit", "lazy.#")}
    assert {name for name, topics in bindings.items() if routing_key in topics} == queues


def test_topics_is_amqp_as_before() -> None:
    assert Topics("a.*", "b") == Topics.amqp("b", "a.*") == Topics("a.*", "b", "a.*")
    assert Topics("a.*").dialect is Dialect.AMQP
    assert repr(Topics("b", "a.#")) == "Topics('a.#', 'b')"
    assert str(Topics("b", "a.#")) == "a.#, b"
    assert Topics.of("a.#") == Topics("a.#")
    assert Topics.of(["a", "b.*"]) == Topics("a", "b.*")
    assert "lazy" in Topics("lazy.#")


def test_the_old_names_still_work() -> None:
    assert topic_matches is amqp_topic_matches
    assert exported_topic_matches is amqp_topic_matches
    assert letterlock.Topics is Topics


# ------------------------------------------------------------------------------ MQTT

#: MQTT 3.1.1 sections 4.7.1.2, 4.7.1.3 and 4.7.2, their non-normative examples.
MQTT_MATCHES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),  # '#' includes the parent level
    ("#", "sport/tennis", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),  # an empty level is a level
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("+/tennis/#", "sport/tennis", True),
    ("#", "$SYS/monitor/Clients", False),  # 4.7.2: a leading wildcard never sees $ topics
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("sport/#", "$sport", False),
    ("+/#", "a/$b", True),  # only the topic's first character counts
    ("sport/tennis", "sport/tennis", True),
    ("sport/tennis", "sport.tennis", False),
    ("Sport/tennis", "sport/tennis", False),  # case-sensitive
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MQTT_MATCHES)
def test_mqtt_matches_as_the_spec_says(pattern: str, topic: str, expected: bool) -> None:
    assert parse_pattern(pattern, Dialect.MQTT).matches(topic) is expected
    assert (topic in Topics.mqtt(pattern)) is expected


MQTT_MALFORMED = [
    ("sport/tennis#", "'#' must be a whole level (MQTT section 4.7.1.2)"),
    ("sport/tennis/#/ranking", "'#' must be the last level (MQTT section 4.7.1.2)"),
    ("a/#/b", "'#' must be the last level"),
    ("#/#", "'#' must be the last level"),
    ("+#", "'#' must be a whole level"),
    ("sport+", "'+' must be a whole level (MQTT section 4.7.1.3)"),
    ("a+", "'+' must be a whole level"),
    ("++", "'+' must be a whole level"),
    ("a/+b/c", "'+' must be a whole level"),
    ("a\x00b", "U+0000 (MQTT section 4.7.3)"),
]


@pytest.mark.parametrize(("pattern", "rule"), MQTT_MALFORMED)
def test_mqtt_refuses_malformed_filters_naming_the_rule(pattern: str, rule: str) -> None:
    with pytest.raises(UsageError) as caught:
        Topics.mqtt("fine/+", pattern)
    assert f"MQTT topic filter {pattern!r}: " in str(caught.value)
    assert rule in str(caught.value)


@pytest.mark.parametrize("pattern", ["+", "#", "+/tennis/#", "sport/+/player1", "/", "a//b"])
def test_mqtt_valid_filters(pattern: str) -> None:
    assert Topics.mqtt(pattern).patterns == (pattern,)


def test_mqtt_segments() -> None:
    parsed = parse_pattern("+/tennis/#", Dialect.MQTT)
    assert (parsed.separator, parsed.segments) == ("/", (ONE, "tennis", ZERO_OR_MORE))
    assert parsed.hidden_prefix == "$"
    assert parsed.empty_words


# ------------------------------------------------------------------------------ NATS

#: docs.nats.io "Subject-Based Messaging" and the NATS C client's wildcard page.
NATS_MATCHES = [
    ("time.*.east", "time.us.east", True),
    ("time.*.east", "time.eu.east", True),
    ("time.us.>", "time.us.east", True),
    ("time.us.>", "time.us.east.atlanta", True),
    ("time.us.>", "time.us", False),  # '>' is one or more tokens
    ("time.us.*", "time.us.east", True),
    ("time.us.*", "time.us.east.atlanta", False),
    ("*.*.east.>", "time.us.east.atlanta", True),
    ("foo.*", "foo.bar", True),
    ("foo.*", "foo.bar.baz", False),
    ("foo.>", "foo", False),
    ("foo.>", "bar.baz", False),
    (">", "a", True),
    (">", "a.b.c", True),
    ("a.*.b", "a..b", False),  # an empty token: no NATS subject
    (">", "a.", False),
    (">", ".a", False),
    ("$SYS.>", "$SYS.x", True),
    (">", "$SYS.x", True),  # no $ rule in NATS
    ("time.us", "time.us", True),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), NATS_MATCHES)
def test_nats_matches_as_documented(pattern: str, topic: str, expected: bool) -> None:
    assert parse_pattern(pattern, Dialect.NATS).matches(topic) is expected
    assert (topic in Topics.nats(pattern)) is expected


NATS_MALFORMED = [
    ("a.>.b", "'>' must be the last token"),
    (">.a", "'>' must be the last token"),
    ("a..b", "tokens must not be empty"),
    (".a", "tokens must not be empty"),
    ("a.", "tokens must not be empty"),
    (".", "tokens must not be empty"),
    ("a*", "'*' must be a whole token"),
    ("a.b>", "'>' must be a whole token"),
    ("a.*b", "'*' must be a whole token"),
]


@pytest.mark.parametrize(("pattern", "rule"), NATS_MALFORMED)
def test_nats_refuses_malformed_subjects_naming_the_rule(pattern: str, rule: str) -> None:
    with pytest.raises(UsageError) as caught:
        Topics.nats(pattern)
    assert f"NATS subject pattern {pattern!r}: {rule}" in str(caught.value)


def test_nats_segments() -> None:
    parsed = parse_pattern("orders.*.>", Dialect.NATS)
    assert (parsed.separator, parsed.segments) == (".", ("orders", ONE, ONE_OR_MORE))
    assert not parsed.empty_words
    assert parsed.hidden_prefix is None


# ------------------------------------------------------------------------------ all dialects


@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_dialect_refuses_empty_and_oversized_patterns(dialect: Dialect) -> None:
    with pytest.raises(UsageError, match="non-empty string"):
        Topics("", dialect=dialect)
    with pytest.raises(UsageError, match="at least one"):
        Topics(dialect=dialect)
    with pytest.raises(UsageError, match=f"at most {MAX_PATTERN} bytes"):
        Topics("a" * (MAX_PATTERN + 1), dialect=dialect)
    assert Topics("a" * MAX_PATTERN, dialect=dialect).patterns == ("a" * MAX_PATTERN,)


def test_a_dialect_must_be_named_by_the_enum() -> None:
    with pytest.raises(UsageError, match="Dialect"):
        Topics("a/#", dialect="mqtt")  # type: ignore[arg-type]


def test_dialects_are_part_of_the_value() -> None:
    mqtt = Topics.mqtt("payroll/#", "audit")
    assert mqtt == Topics.mqtt("audit", "payroll/#")
    assert hash(mqtt) == hash(Topics.mqtt("audit", "payroll/#"))
    assert mqtt != Topics("payroll/#", "audit")  # the same text, AMQP: '#' is no wildcard there
    assert repr(mqtt) == "Topics.mqtt('audit', 'payroll/#')"
    assert repr(Topics.nats("a.>")) == "Topics.nats('a.>')"
    assert [p.text for p in mqtt.parsed] == ["audit", "payroll/#"]
    assert [p.is_exact for p in mqtt.parsed] == [True, False]
    assert "payroll/eu" in mqtt
    assert "payroll/eu" not in Topics("payroll/#", "audit")


def test_the_model_needs_a_separator_and_a_segment() -> None:
    with pytest.raises(UsageError, match="separator"):
        TopicPattern(dialect=Dialect.AMQP, text="x", separator="", segments=("x",))
    with pytest.raises(UsageError, match="segment"):
        TopicPattern(dialect=Dialect.AMQP, text="x", separator=".", segments=())


def _opened(topics: Topics, topic: str) -> str | Reason:
    """Seal for ``topic``, open as a receiver serving ``topics``: the topic, or the refusal."""
    cast = cast_of(Suite.X25519)
    sealed = letterlock.seal(
        b"x", sender=cast.alice, recipients=[cast.bob.public], topic=topic, now=NOW
    )
    try:
        return letterlock.open(
            sealed, identity=cast.bob, trust=cast.pins(), replay=ReplayWindow(), topic=topics,
            now=NOW,
        ).topic  # fmt: skip
    except Rejected as refused:
        return refused.reason


def test_open_takes_the_receivers_patterns_in_any_dialect() -> None:
    """The envelope carries a plain topic; the receiver's patterns decide step 10."""
    assert _opened(Topics.mqtt("payroll/+"), "payroll/eu") == "payroll/eu"
    assert _opened(Topics.mqtt("payroll/+"), "payroll/eu/bonus") is Reason.WRONG_TOPIC
    assert _opened(Topics.nats("payroll.>"), "payroll.eu.bonus") == "payroll.eu.bonus"
    assert _opened(Topics.nats("payroll.>"), "payroll") is Reason.WRONG_TOPIC


# ------------------------------------------------------------------------------ properties


def _old_topic_matches(pattern: str, topic: str) -> bool:
    """The AMQP matcher as it was before the model (letterlock.core.topics at 9379632)."""
    words = topic.split(".")
    reachable = {0}
    for part in pattern.split("."):
        if part == "#":
            reachable = set(range(min(reachable), len(words) + 1))
        else:
            reachable = {i + 1 for i in reachable if i < len(words) and part in ("*", words[i])}
        if not reachable:
            return False
    return len(words) in reachable


_amqp_word = st.sampled_from(["a", "b", "", "*", "#", "a*", "#b", "ü"])


@given(
    pattern=st.lists(_amqp_word, min_size=1, max_size=7).map(".".join),
    topic=st.lists(st.sampled_from(["a", "b", "", "*", "#", "ü"]), min_size=1, max_size=7).map(
        ".".join
    ),
)
def test_amqp_model_matches_exactly_what_the_old_matcher_did(pattern: str, topic: str) -> None:
    expected = _old_topic_matches(pattern, topic)
    assert amqp_topic_matches(pattern, topic) is expected
    if pattern:
        assert parse_pattern(pattern).matches(topic) is expected
        assert (topic in Topics(pattern)) is expected
        assert (topic in Topics.amqp(pattern, "zz")) is expected


def _reference(segments: Sequence[Segment], words: Sequence[str], s: int = 0, w: int = 0) -> bool:
    """The model's meaning, written as plainly (and as slowly) as possible: do
    ``segments[s:]`` match ``words[w:]``?"""
    if s == len(segments):
        return w == len(words)
    head, more = segments[s], w < len(words)
    if head is ZERO_OR_MORE:
        return _reference(segments, words, s + 1, w) or (
            more and _reference(segments, words, s, w + 1)
        )
    if head is ONE_OR_MORE:
        return more and (
            _reference(segments, words, s + 1, w + 1) or _reference(segments, words, s, w + 1)
        )
    matched = more and (head is ONE or words[w] == head)
    return matched and _reference(segments, words, s + 1, w + 1)


_segment = st.one_of(st.sampled_from(["a", "b", ""]), st.sampled_from(list(Wildcard)))


@given(
    segments=st.lists(_segment, min_size=1, max_size=6),
    words=st.lists(st.sampled_from(["a", "b", ""]), min_size=1, max_size=6),
)
def test_the_model_agrees_with_the_plain_rule(segments: list[Segment], words: list[str]) -> None:
    pattern = TopicPattern(
        dialect=Dialect.AMQP, text="(model)", separator=".", segments=tuple(segments)
    )
    assert pattern.matches_words(words) is _reference(segments, words)


_SEPARATOR = {Dialect.AMQP: ".", Dialect.MQTT: "/", Dialect.NATS: "."}
_literal = st.text(alphabet="ab$ü.", min_size=0, max_size=3)


@given(
    dialect=st.sampled_from(list(Dialect)),
    words=st.lists(_literal, min_size=1, max_size=4),
    topic=st.text(alphabet="ab$ü./", min_size=1, max_size=8),
)
def test_a_pattern_without_wildcards_matches_only_itself(
    dialect: Dialect, words: list[str], topic: str
) -> None:
    separator = _SEPARATOR[dialect]
    text = separator.join(word.replace(separator, "") for word in words)
    try:
        pattern = parse_pattern(text, dialect)
    except UsageError:  # an empty pattern, or an empty NATS token
        return
    assert pattern.is_exact
    for candidate in (text, topic):
        assert pattern.matches(candidate) is (candidate == text)
        assert (candidate in Topics(text, dialect=dialect)) is (candidate == text)


# ------------------------------------------------------------------------------ cost


class CountedWords(list[str]):
    """A topic's words that count how often the matcher reads one."""

    reads = 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> str | list[str]:
        self.reads += 1
        return super().__getitem__(index)


@pytest.mark.parametrize(
    "segments",
    [
        (ZERO_OR_MORE, "a") * 30 + ("b",),  # a backtracking matcher tries ~C(200, 30) splits
        (ONE_OR_MORE, "a") * 30 + ("b",),
        (ZERO_OR_MORE, ONE, ZERO_OR_MORE, "a") * 15 + ("b",),
    ],
    ids=["amqp-hashes", "one-or-more", "mixed"],
)
def test_matching_reads_each_word_at_most_once_per_segment(segments: tuple[Segment, ...]) -> None:
    """No exponential blow-up: a count of the matcher's steps, not a timing."""
    words = CountedWords(["a"] * 200)
    pattern = TopicPattern(dialect=Dialect.AMQP, text="(model)", separator=".", segments=segments)
    assert not pattern.matches_words(words)
    assert 0 < words.reads <= len(segments) * (len(words) + 1)


def test_the_plain_rule_would_blow_up_where_the_matcher_does_not() -> None:
    """The step count above means something: the plain recursive rule reads far more."""
    segments = (ZERO_OR_MORE, "a") * 4 + ("b",)
    plain, model = CountedWords(["a"] * 30), CountedWords(["a"] * 30)
    assert not _reference(segments, plain)
    pattern = TopicPattern(dialect=Dialect.AMQP, text="(model)", separator=".", segments=segments)
    assert not pattern.matches_words(model)
    assert model.reads <= len(segments) * 31 < plain.reads
