"""Topic scopes of credentials: patterns in the AMQP model, and containment between them.

A credential's publish and consume patterns may be written in any broker's syntax (AMQP
``*``/``#``, MQTT ``+``/``#``, NATS ``*``/``>``, read by :func:`letterlock.core.topics.
parse_pattern`); a :class:`ScopePattern` holds them in one model: a separator and segments,
each a literal word, ``ONE`` (exactly one word, AMQP ``*``) or ``ANY`` (zero or more words,
AMQP ``#``). NATS ``>`` (one or more) becomes ``* #``. Within a run of wildcards the ``ONE``
segments come first and at most one ``ANY`` follows (``# *`` and ``* #`` match the same
topics, as do ``# #`` and ``#``), so equal patterns have equal segments and one encoding.

What normalisation keeps and drops, on purpose: a scope grants a right over topics, so it keeps
each dialect's words and wildcards, and drops the two *delivery* rules of subscriptions: MQTT's
"a filter starting with a wildcard does not deliver ``$`` topics" and NATS's "no subject has an
empty token". A scope ``#`` written for MQTT grants ``$SYS/x`` too, and ``a.*`` written for
NATS grants ``a.`` (which no NATS client can publish). A literal level that the AMQP model
reads as a wildcard (an MQTT level ``*``, a NATS token ``#``) cannot be expressed and is refused.

:func:`covers` answers "is every topic that ``inner`` matches also matched by ``outer``?", for
``letterlock trust check`` on a listen pattern. It is exact for patterns of one separator: the
patterns only tell words apart by the literals they name, so a word named by neither stands
for all the others, and the question becomes inclusion of two finite automata over those
literals and one fresh word (subset construction, explored from the start). Its worst case is
exponential in the number of segments; scopes have a few, patterns are the receiver's own
configuration, and it is never run on the open path (chain verification checks concrete
topics, one match per link).

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from letterlock.core.topics import Dialect, TopicPattern, Wildcard, parse_pattern
from letterlock.errors import UsageError

__all__ = ["ANY", "ONE", "ScopePattern", "Slot", "covers", "overlaps"]


class Slot(enum.Enum):
    """A wildcard segment of a scope pattern."""

    ONE = 1  # exactly one word (AMQP ``*``)
    ANY = 2  # zero or more words (AMQP ``#``)


ONE: Final = Slot.ONE
ANY: Final = Slot.ANY

#: Separators a scope pattern may use: AMQP and NATS split on ``.``, MQTT on ``/``.
SEPARATORS: Final = (".", "/")
MAX_SCOPE_PATTERN: Final = 1024  # bytes of the written form, as a topic pattern
_TEXT: Final = {ONE: "*", ANY: "#"}
_WILDCARD: Final[dict[Slot, Wildcard]] = {ONE: Wildcard.ONE, ANY: Wildcard.ZERO_OR_MORE}


def _canonical(segments: Iterable[str | Slot]) -> tuple[str | Slot, ...]:
    """Runs of wildcards as ONEs, then at most one ANY (the same topics, one spelling)."""
    out: list[str | Slot] = []
    ones, any_ = 0, False

    def flush() -> None:
        out.extend([ONE] * ones)
        if any_:
            out.append(ANY)

    for segment in segments:
        if segment is ONE:
            ones += 1
        elif segment is ANY:
            any_ = True
        else:
            flush()
            ones, any_ = 0, False
            out.append(segment)
    flush()
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopePattern:
    """A topic pattern of a scope, in the AMQP model (module documentation). Immutable.

    Build with :meth:`parse` (from any dialect) or :meth:`of` (checked segments). ``str()``
    writes it in AMQP syntax over its separator (a literal ``*`` or ``#`` cannot occur).
    """

    separator: str
    segments: tuple[str | Slot, ...]
    #: The same pattern in :mod:`letterlock.core.topics`' model, whose matcher is the fast one.
    _topic: TopicPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        topic = TopicPattern(
            dialect=Dialect.AMQP,
            text=str(self),
            separator=self.separator,
            segments=tuple(s if isinstance(s, str) else _WILDCARD[s] for s in self.segments),
        )
        object.__setattr__(self, "_topic", topic)

    @classmethod
    def of(cls, separator: str, segments: Sequence[str | Slot]) -> ScopePattern:
        """A pattern from its parts, canonicalised; UsageError if a part is not allowed."""
        if separator not in SEPARATORS:
            raise UsageError(f"a scope pattern's separator is '.' or '/', not {separator!r}")
        if not segments:
            raise UsageError("a scope pattern has at least one segment")
        for segment in segments:
            if isinstance(segment, Slot):
                continue
            if not isinstance(segment, str) or separator in segment or segment in _TEXT.values():
                raise UsageError(
                    f"a scope pattern's literal word {segment!r} must be a string without "
                    f"{separator!r} and not '*' or '#'"
                )
        pattern = cls(separator=separator, segments=_canonical(segments))
        if len(str(pattern).encode("utf-8", "surrogatepass")) > MAX_SCOPE_PATTERN:
            raise UsageError(f"a scope pattern is at most {MAX_SCOPE_PATTERN} bytes")
        return pattern

    @classmethod
    def parse(cls, text: str, dialect: Dialect = Dialect.AMQP) -> ScopePattern:
        """``text`` written in ``dialect``, normalised; UsageError if malformed or inexpressible."""
        parsed = parse_pattern(text, dialect)
        segments: list[str | Slot] = []
        for segment in parsed.segments:
            if segment is Wildcard.ONE:
                segments.append(ONE)
            elif segment is Wildcard.ZERO_OR_MORE:
                segments.append(ANY)
            elif segment is Wildcard.ONE_OR_MORE:
                segments.extend((ONE, ANY))
            elif isinstance(segment, str):
                if segment in _TEXT.values():
                    raise UsageError(
                        f"{text!r}: the literal {parsed.separator}{segment} cannot be written "
                        "in a scope (the AMQP model reads it as a wildcard)"
                    )
                segments.append(segment)
        return cls.of(parsed.separator, segments)

    @property
    def is_exact(self) -> bool:
        return all(isinstance(segment, str) for segment in self.segments)

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` (split on the separator into words) is in this pattern."""
        return self._topic.matches(topic)

    def __str__(self) -> str:
        return self.separator.join(
            segment if isinstance(segment, str) else _TEXT[segment] for segment in self.segments
        )


def _closure(segments: Sequence[str | Slot], states: Iterable[int]) -> frozenset[int]:
    """States reachable without reading a word (an ANY may match no word)."""
    out = set()
    for start in states:
        state = start
        out.add(state)
        while state < len(segments) and segments[state] is ANY:
            state += 1
            out.add(state)
    return frozenset(out)


def _step(segments: Sequence[str | Slot], states: frozenset[int], word: object) -> frozenset[int]:
    """States after reading ``word`` (a literal, or ``None``: a word no pattern names)."""
    after = set()
    for state in states:
        if state == len(segments):
            continue
        segment = segments[state]
        if segment is ANY:
            after.add(state)
        elif segment is ONE or segment == word:
            after.add(state + 1)
    return _closure(segments, after)


#: Where the inclusion search stands: inner's states, and each outer pattern's.
_Node: TypeAlias = tuple[frozenset[int], tuple[frozenset[int], ...]]


def covers(outer: ScopePattern | Iterable[ScopePattern], inner: ScopePattern) -> bool:
    """True if every topic ``inner`` matches, one of ``outer`` matches too.

    Exact for patterns of ``inner``'s separator (module documentation). An ``outer`` pattern
    of another separator is taken to cover nothing unless ``inner`` is an exact topic it
    matches: a conservative "no" where the two split topics differently.
    """
    outers = (outer,) if isinstance(outer, ScopePattern) else tuple(outer)
    if inner.is_exact:
        return any(pattern.matches(str(inner)) for pattern in outers)
    machines = tuple(p.segments for p in outers if p.separator == inner.separator)
    literals = {s for m in (*machines, inner.segments) for s in m if isinstance(s, str)}
    alphabet: tuple[object, ...] = (*sorted(literals), None)  # None: a word nobody names

    start: _Node = (
        _closure(inner.segments, (0,)),
        tuple(_closure(m, (0,)) for m in machines),
    )
    seen: set[_Node] = set()
    todo = [start]
    while todo:  # words of one or more topic words: a topic always has at least one word
        node = todo.pop()
        for word in alphabet:
            mine = _step(inner.segments, node[0], word)
            if not mine:
                continue
            theirs = tuple(
                _step(m, states, word) for m, states in zip(machines, node[1], strict=True)
            )
            if len(inner.segments) in mine and not any(
                len(m) in states for m, states in zip(machines, theirs, strict=True)
            ):
                return False  # a topic inner matches and no outer pattern does
            nxt = (mine, theirs)
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return True


def overlaps(first: ScopePattern, second: ScopePattern) -> bool:
    """True if some topic matches both patterns (for a policy rule that governs part of a
    listen pattern). Exact for one separator, by the same automata as :func:`covers`; patterns
    of different separators are taken to overlap unless one is an exact topic the other does
    not match: a conservative "yes"."""
    if first.is_exact or second.is_exact:
        exact, other = (first, second) if first.is_exact else (second, first)
        return other.matches(str(exact))
    if first.separator != second.separator:
        return True
    literals = {s for s in (*first.segments, *second.segments) if isinstance(s, str)}
    alphabet: tuple[object, ...] = (*sorted(literals), None)
    start = (_closure(first.segments, (0,)), _closure(second.segments, (0,)))
    seen = {start}
    todo = [start]
    while todo:
        mine, theirs = todo.pop()
        for word in alphabet:
            nxt = (_step(first.segments, mine, word), _step(second.segments, theirs, word))
            if not nxt[0] or not nxt[1]:
                continue
            if len(first.segments) in nxt[0] and len(second.segments) in nxt[1]:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False
