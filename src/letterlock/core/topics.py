"""The topics a receiver serves: its own expectation of where a message may be bound.

A broker can put any message into any queue and report any topic for it, so the topic a receiver
checks the signed one against must come from the receiver's configuration, never from a
delivery (``docs/spec/envelope-v1.md`` section 6, step 10). :class:`Topics` is that
configuration: exact topics and AMQP-style patterns, words split on ``.``, ``*`` standing for
exactly one word and ``#`` for zero or more. A pattern without wildcard words matches itself
only, compared as a string (no case folding, no Unicode normalisation).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from letterlock.errors import UsageError

__all__ = ["Topics", "topic_matches"]

MAX_PATTERN: Final = 1024
_WILDCARDS: Final = frozenset({"*", "#"})


def topic_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more; words split on ``.``.

    Runs in O(words of pattern x words of topic), whatever the number of ``#``.
    """
    words = topic.split(".")
    reachable = {0}  # positions in ``words`` the pattern so far can end at
    for part in pattern.split("."):
        if part == "#":
            reachable = set(range(min(reachable), len(words) + 1))
        else:
            reachable = {i + 1 for i in reachable if i < len(words) and part in ("*", words[i])}
        if not reachable:
            return False
    return len(words) in reachable


class Topics:
    """A receiver's topics: ``Topics("payroll.us", "audit.#")``. Immutable and hashable.

    ``topic in topics`` is true when the topic equals one of the exact topics or matches one
    of the patterns. ``Topics("#")`` serves every topic, which a receiver must say explicitly.
    """

    __slots__ = ("_exact", "_patterns")

    def __init__(self, *patterns: str) -> None:
        if not patterns:
            raise UsageError("name at least one topic or pattern (Topics('#') serves all)")
        exact: set[str] = set()
        wild: set[str] = set()
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise UsageError(f"a topic pattern must be a non-empty string, not {pattern!r}")
            if len(pattern.encode("utf-8", "surrogatepass")) > MAX_PATTERN:
                raise UsageError(f"a topic pattern is at most {MAX_PATTERN} bytes")
            is_wild = any(word in _WILDCARDS for word in pattern.split("."))
            (wild if is_wild else exact).add(pattern)
        self._exact = frozenset(exact)
        self._patterns = tuple(sorted(wild))

    @classmethod
    def of(cls, value: str | Iterable[str] | Topics) -> Topics:
        """``value`` as Topics: a Topics, one topic or pattern, or several."""
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
        return any(topic_matches(pattern, topic) for pattern in self._patterns)

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every exact topic and pattern, sorted."""
        return tuple(sorted(self._exact | set(self._patterns)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topics):
            return NotImplemented
        return self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"Topics({', '.join(map(repr, self.patterns))})"

    def __str__(self) -> str:
        return ", ".join(self.patterns)
