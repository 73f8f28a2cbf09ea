"""The topics a receiver serves: its own expectation of where a message may be bound.

A broker can put any message into any queue and report any topic for it, so the topic a receiver
checks the signed one against must come from the receiver's configuration, never from a
delivery (``docs/spec/envelope-v1.md`` section 6, step 10). :class:`Topics` is that
configuration: exact topics and patterns. An exact topic (a pattern without wildcards) matches
itself only, compared as a string (no case folding, no Unicode normalisation). Patterns are the
receiver's local configuration only; the envelope carries a plain topic.

One model for patterns, three dialects
--------------------------------------
A pattern (:class:`TopicPattern`) is a separator and a sequence of segments, each a literal
word or a :class:`Wildcard`: ``ONE`` (exactly one word), ``ZERO_OR_MORE`` (any number of words,
none included) or ``ONE_OR_MORE``. A topic is split on the separator into words; two separators
in a row, or one at either end, make an empty word. Each broker's syntax is one row of a table
(``_SYNTAX``) that :func:`parse_pattern` reads to build the model; a malformed pattern is
refused with a UsageError naming the rule::

    dialect  separator  ONE  several words
    AMQP     .          *    # ZERO_OR_MORE, anywhere (a word such as a* is a literal)
    MQTT     /          +    # ZERO_OR_MORE, the last level only; wildcards are whole levels
    NATS     .          *    > ONE_OR_MORE, the last token only; tokens are never empty

* AMQP 0-9-1 topic exchange, as RabbitMQ routes it (RabbitMQ tutorial 5, "Topics"): a routing
  key is words delimited by dots; in a binding key ``*`` substitutes for exactly one word and
  ``#`` for zero or more words. ``lazy.#`` matches ``lazy.orange.male.rabbit`` and ``lazy``.
  This is what ``Topics(...)`` has always meant, and :func:`amqp_topic_matches`.
* MQTT 3.1.1 (OASIS Standard, section 4.7) and 5.0 (section 4.7, the same rules): ``/``
  separates levels and adjacent separators make a zero-length level (4.7.1.1); ``#`` matches
  the parent level and any number of child levels, so ``sport/#`` also matches ``sport``, and
  must be the whole last level (4.7.1.2, [MQTT-4.7.1-2] in 3.1.1, [MQTT-4.7.1-1] in 5.0);
  ``+`` matches exactly one level and must occupy a whole level (4.7.1.3, [MQTT-4.7.1-3] /
  [MQTT-4.7.1-2]); a filter starting with a wildcard does not match a topic beginning with
  ``$`` (4.7.2, [MQTT-4.7.2-1]: ``#`` does not receive ``$SYS/...``, ``$SYS/#`` does); no
  U+0000 (4.7.3, [MQTT-4.7.3-2]). A ``$share/...`` filter is not interpreted (it is a
  subscription option of MQTT 5, not a pattern) and matches as literal levels.
* NATS subjects (docs.nats.io, "Subject-Based Messaging"; NATS ADR-6 on naming): ``.``
  separates tokens and a subject has one or more non-empty tokens; ``*`` matches a single
  token; ``>`` matches one or more tokens and can only appear as the last token, so
  ``time.us.>`` matches ``time.us.east`` and ``time.us.east.atlanta`` but not ``time.us``;
  wildcards are whole tokens. A topic with an empty token is no NATS subject, and no NATS
  pattern matches it.

Matching takes at most (words of the topic + 1) x (segments of the pattern) steps, whatever the
wildcards: it tracks the set of word positions the pattern so far can end at, never backtracks.

Pure: no I/O.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from letterlock.errors import UsageError

__all__ = [
    "MAX_PATTERN",
    "Dialect",
    "Segment",
    "TopicPattern",
    "Topics",
    "Wildcard",
    "amqp_topic_matches",
    "parse_pattern",
    "topic_matches",
]

MAX_PATTERN: Final = 1024


class Wildcard(enum.Enum):
    """A pattern segment that stands for words rather than naming one."""

    ONE = "one"  # exactly one word
    ZERO_OR_MORE = "zero or more"  # any number of words, none included
    ONE_OR_MORE = "one or more"


#: A literal word, or a wildcard.
Segment = str | Wildcard


class Dialect(enum.Enum):
    """Whose pattern syntax a pattern is written in."""

    AMQP = "amqp"
    MQTT = "mqtt"
    NATS = "nats"


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicPattern:
    """A pattern in the normalised model (see the module's documentation).

    ``empty_words`` false: a topic with an empty word matches nothing (NATS). ``hidden_prefix``:
    a topic beginning with it is not matched by a pattern whose first segment is a wildcard
    (MQTT's ``$``). ``text`` is the pattern as written in its ``dialect``.
    """

    dialect: Dialect
    text: str
    separator: str
    segments: tuple[Segment, ...]
    empty_words: bool = True
    hidden_prefix: str | None = None

    def __post_init__(self) -> None:
        if not self.separator or not self.segments:
            raise UsageError("a topic pattern needs a separator and at least one segment")

    @property
    def is_exact(self) -> bool:
        """True if the pattern has no wildcard: it then matches its own text only."""
        return all(type(segment) is str for segment in self.segments)

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` matches this pattern."""
        return self.matches_words(topic.split(self.separator))

    def matches_words(self, words: Sequence[str]) -> bool:
        """Whether a topic already split into ``words`` matches this pattern."""
        if not self.empty_words and "" in words:
            return False
        if (
            self.hidden_prefix is not None
            and type(self.segments[0]) is Wildcard
            and words[0].startswith(self.hidden_prefix)
        ):
            return False
        return _match_words(self.segments, words)


def _match_words(segments: Iterable[Segment], words: Sequence[str]) -> bool:
    """O(len(segments) x len(words)), whatever the wildcards: a set of reachable positions."""
    count = len(words)
    reachable = {0}  # positions in ``words`` the segments so far can end at
    for segment in segments:
        if type(segment) is str:
            reachable = {i + 1 for i in reachable if i < count and words[i] == segment}
        elif segment is Wildcard.ONE:
            reachable = {i + 1 for i in reachable if i < count}
        else:  # ZERO_OR_MORE, or ONE_OR_MORE: every position from the first one reached on
            start = min(reachable) + (segment is Wildcard.ONE_OR_MORE)
            reachable = set(range(start, count + 1))
        if not reachable:
            return False
    return count in reachable


# ---------------------------------------------------------------------------- dialects

_AMQP_WORDS: Final[dict[str, Segment]] = {"*": Wildcard.ONE, "#": Wildcard.ZERO_OR_MORE}


def _amqp_segments(pattern: str) -> Iterator[Segment]:
    """The AMQP row of :data:`_SYNTAX`, quickly: AMQP refuses nothing."""
    words = pattern.split(".")
    return map(_AMQP_WORDS.get, words, words)  # each word, or the wildcard it spells


def amqp_topic_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more; words split on ``.``.

    Runs in O(words of pattern x words of topic), whatever the number of ``#``. The pattern is
    not checked (any string is an AMQP binding key): :func:`parse_pattern` checks it.
    """
    return _match_words(_amqp_segments(pattern), topic.split("."))


#: The name :func:`amqp_topic_matches` had before patterns had dialects (still exported by
#: :mod:`letterlock.transports`).
topic_matches: Final = amqp_topic_matches


@dataclass(frozen=True, slots=True, kw_only=True)
class _Syntax:
    """How a dialect writes patterns: one row of the module's table, read by :func:`_parse`."""

    name: str  # what the broker calls a pattern, for error messages
    separator: str
    unit: str  # what the broker calls a word
    one: str  # the wildcard for Wildcard.ONE
    many: str  # the wildcard for several words
    many_means: Wildcard
    many_last_only: bool  # the several-words wildcard may only be the last word
    whole_only: bool  # a wildcard character inside a word is refused (else it is literal)
    empty_words: bool
    hidden_prefix: str | None = None
    forbidden: tuple[tuple[str, str], ...] = ()  # (character, rule)
    cite: tuple[tuple[str, str], ...] = ()  # (wildcard, where its rule is written)


_SYNTAX: Final = {
    Dialect.AMQP: _Syntax(
        name="AMQP binding key", separator=".", unit="word", one="*", many="#",
        many_means=Wildcard.ZERO_OR_MORE, many_last_only=False, whole_only=False,
        empty_words=True,
    ),
    Dialect.MQTT: _Syntax(
        name="MQTT topic filter", separator="/", unit="level", one="+", many="#",
        many_means=Wildcard.ZERO_OR_MORE, many_last_only=True, whole_only=True,
        empty_words=True, hidden_prefix="$",
        forbidden=(("\x00", "it must not contain U+0000 (MQTT section 4.7.3)"),),
        cite=(("#", " (MQTT section 4.7.1.2)"), ("+", " (MQTT section 4.7.1.3)")),
    ),
    Dialect.NATS: _Syntax(
        name="NATS subject pattern", separator=".", unit="token", one="*", many=">",
        many_means=Wildcard.ONE_OR_MORE, many_last_only=True, whole_only=True,
        empty_words=False,
    ),
}  # fmt: skip


def _parse(dialect: Dialect, syntax: _Syntax, pattern: str) -> TopicPattern:
    def refuse(rule: str) -> UsageError:
        return UsageError(f"{syntax.name} {pattern!r}: {rule}")

    for character, rule in syntax.forbidden:
        if character in pattern:
            raise refuse(rule)
    cite = dict(syntax.cite)
    words = pattern.split(syntax.separator)
    segments: list[Segment] = []
    for position, word in enumerate(words):
        if not word and not syntax.empty_words:
            raise refuse(
                f"{syntax.unit}s must not be empty "
                f"(no leading, trailing or double {syntax.separator!r})"
            )
        if word == syntax.one:
            segments.append(Wildcard.ONE)
        elif word == syntax.many:
            if syntax.many_last_only and position != len(words) - 1:
                raise refuse(f"{word!r} must be the last {syntax.unit}{cite.get(word, '')}")
            segments.append(syntax.many_means)
        else:
            inside = [c for c in (syntax.many, syntax.one) if c in word]
            if syntax.whole_only and inside:
                wildcard = inside[0]
                raise refuse(f"{wildcard!r} must be a whole {syntax.unit}{cite.get(wildcard, '')}")
            segments.append(word)
    return TopicPattern(
        dialect=dialect,
        text=pattern,
        separator=syntax.separator,
        segments=tuple(segments),
        empty_words=syntax.empty_words,
        hidden_prefix=syntax.hidden_prefix,
    )


def parse_pattern(pattern: str, dialect: Dialect = Dialect.AMQP) -> TopicPattern:
    """``pattern``, written in ``dialect``, in the normalised model; UsageError if malformed."""
    syntax = _SYNTAX.get(dialect)
    if syntax is None:
        raise UsageError(f"dialect must be a letterlock.core.topics.Dialect, not {dialect!r}")
    if not isinstance(pattern, str) or not pattern:
        raise UsageError(f"a topic pattern must be a non-empty string, not {pattern!r}")
    if len(pattern.encode("utf-8", "surrogatepass")) > MAX_PATTERN:
        raise UsageError(f"a topic pattern is at most {MAX_PATTERN} bytes")
    return _parse(dialect, syntax, pattern)


# ---------------------------------------------------------------------------- Topics


class Topics:
    """A receiver's topics: ``Topics("payroll.us", "audit.#")``. Immutable and hashable.

    ``topic in topics`` is true when the topic equals one of the exact topics or matches one
    of the patterns. ``Topics(...)`` takes AMQP patterns (``*``/``#``, as :meth:`amqp`);
    :meth:`mqtt` and :meth:`nats` take those brokers' syntax. ``Topics("#")`` serves every
    topic, which a receiver must say explicitly.
    """

    __slots__ = ("_dialect", "_exact", "_parsed", "_patterns")

    def __init__(self, *patterns: str, dialect: Dialect = Dialect.AMQP) -> None:
        if not patterns:
            raise UsageError("name at least one topic or pattern (Topics('#') serves all)")
        parsed = {parse_pattern(pattern, dialect): None for pattern in patterns}
        self._dialect = dialect
        self._parsed = tuple(sorted(parsed, key=operator.attrgetter("text")))
        self._exact = frozenset(p.text for p in self._parsed if p.is_exact)
        self._patterns = tuple(p for p in self._parsed if not p.is_exact)

    @classmethod
    def amqp(cls, *patterns: str) -> Topics:
        """AMQP topic-exchange patterns (RabbitMQ): ``.``, ``*`` one word, ``#`` zero or more."""
        return cls(*patterns, dialect=Dialect.AMQP)

    @classmethod
    def mqtt(cls, *patterns: str) -> Topics:
        """MQTT topic filters: ``/``, ``+`` one level, ``#`` zero or more levels, last only."""
        return cls(*patterns, dialect=Dialect.MQTT)

    @classmethod
    def nats(cls, *patterns: str) -> Topics:
        """NATS subjects: ``.``, ``*`` one token, ``>`` one or more tokens, last only."""
        return cls(*patterns, dialect=Dialect.NATS)

    @classmethod
    def of(cls, value: str | Iterable[str] | Topics) -> Topics:
        """``value`` as Topics: a Topics, one topic or AMQP pattern, or several."""
        if isinstance(value, Topics):
            return value
        if isinstance(value, str):
            return cls(value)
        return cls(*value)

    def __contains__(self, topic: object) -> bool:
        if not isinstance(topic, str):
            return False
        if topic in self._exact:
            return True
        return any(pattern.matches(topic) for pattern in self._patterns)

    @property
    def dialect(self) -> Dialect:
        """The syntax the patterns are written in."""
        return self._dialect

    @property
    def parsed(self) -> tuple[TopicPattern, ...]:
        """Every exact topic and pattern in the normalised model, sorted by its text."""
        return self._parsed

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every exact topic and pattern, sorted."""
        return tuple(p.text for p in self._parsed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topics):
            return NotImplemented
        return (self._dialect, self.patterns) == (other._dialect, other.patterns)

    def __hash__(self) -> int:
        return hash((self._dialect, self.patterns))

    def __repr__(self) -> str:
        name = "Topics" if self._dialect is Dialect.AMQP else f"Topics.{self._dialect.value}"
        return f"{name}({', '.join(map(repr, self.patterns))})"

    def __str__(self) -> str:
        return ", ".join(self.patterns)
