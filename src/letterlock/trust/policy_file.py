"""The policy file: :class:`~letterlock.trust.rules.Rule` s written in TOML (``docs/policy.md``).

Text in, rules out: reading the file is the caller's (the CLI reads ``HOME/policy.toml``).
Parsing is strict, as a security configuration must be: an unknown key, a value of the wrong
type, an empty list, a duplicate rule name or a malformed pattern is an error that names the
line, never something skipped. A misspelt ``princpals`` must not silently drop a condition.

Line numbers: tomllib reports them for TOML syntax errors; for the rest this module finds the
line of the offending key (or of its ``[[rule]]`` header) by scanning the text, since tomllib
returns plain values.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from letterlock.core.topics import Dialect
from letterlock.core.trust import Via
from letterlock.errors import ParseError
from letterlock.trust.rules import PrincipalPattern, Rule
from letterlock.trust.scope import ScopePattern

__all__ = ["VERSION", "parse_policy"]

VERSION: Final = 1
_TOP_KEYS: Final = frozenset({"version", "rule"})
_RULE_KEYS: Final = frozenset(
    {"name", "topics", "dialect", "principals", "roles", "authorities", "senders", "via"}
)
_HEADER: Final = re.compile(r"\s*\[\[\s*rule\s*\]\]")
_TABLE: Final = re.compile(r"\s*\[")
_KEY: Final = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")

T = TypeVar("T")


class _Lines:
    """Where keys and ``[[rule]]`` headers are in the text (for error messages)."""

    def __init__(self, text: str) -> None:
        self.headers: list[int] = []
        self.keys: dict[tuple[int | None, str], int] = {}
        table: int | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if _HEADER.match(line):
                self.headers.append(number)
                table = len(self.headers) - 1
            elif _TABLE.match(line):
                table = -1  # some other table: its keys are reported at its header
                self.keys.setdefault((None, line.strip()), number)
            else:
                key = _KEY.match(line)
                if key is not None:
                    name = next(group for group in key.groups() if group is not None)
                    self.keys.setdefault((table, name), number)

    def of(self, rule: int | None, key: str | None = None) -> int | None:
        if key is not None and (rule, key) in self.keys:
            return self.keys[rule, key]
        if rule is not None and rule < len(self.headers):
            return self.headers[rule]
        return next(
            (n for (t, k), n in self.keys.items() if t is None and key is not None and key in k),
            None,
        )


def _fail(lines: _Lines, rule: int | None, key: str | None, message: str) -> ParseError:
    number = lines.of(rule, key)
    return ParseError(f"line {number}: {message}" if number is not None else message)


def parse_policy(text: str) -> tuple[Rule, ...]:
    """The rules of a policy file's ``text``, in order; ParseError naming the line if any
    part of it is not exactly the documented format."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParseError(f"not valid TOML: {exc}") from None
    lines = _Lines(text)
    for key in document:
        if key not in _TOP_KEYS:
            raise _fail(lines, None, key, f"unknown key {key!r} (expected version, [[rule]])")
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # not bool: True == 1
        raise _fail(lines, None, "version", f"the policy file starts with version = {VERSION}")
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _fail(lines, None, "rule", "rules are [[rule]] tables")
    rules: list[Rule] = []
    for index, table in enumerate(tables):
        rule = _rule(table, index, lines)
        if any(other.name == rule.name for other in rules):
            raise _fail(lines, index, "name", f"a second rule named {rule.name!r}")
        rules.append(rule)
    return tuple(rules)


def _rule(table: Mapping[str, object], index: int, lines: _Lines) -> Rule:
    def get(key: str, convert: Callable[[str], T], *, required: bool = False) -> tuple[T, ...]:
        value = table.get(key)
        if value is None:
            if required:
                raise _fail(lines, index, None, f"rule needs {key!r}")
            return ()
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise _fail(lines, index, key, f"{key!r} is a non-empty list of strings")
        try:
            return tuple(convert(item) for item in value)
        except ValueError as exc:
            raise _fail(lines, index, key, f"{key}: {exc}") from None

    for key in table:
        if key not in _RULE_KEYS:
            raise _fail(lines, index, key, f"unknown key {key!r} in a rule (expected {_known()})")
    name = table.get("name")
    if not isinstance(name, str):
        raise _fail(lines, index, "name", "a rule needs a name (a string)")
    dialect_text = table.get("dialect", Dialect.AMQP.value)
    dialects = {d.value: d for d in Dialect}
    if not isinstance(dialect_text, str) or dialect_text not in dialects:
        raise _fail(lines, index, "dialect", f"dialect is one of {', '.join(dialects)}")
    dialect = dialects[dialect_text]
    modes = {v.value: v for v in Via}
    try:
        return Rule(
            name=name,
            topics=get("topics", lambda t: ScopePattern.parse(t, dialect), required=True),
            principals=get("principals", PrincipalPattern.parse),
            roles=frozenset(get("roles", _word)),
            authorities=frozenset(get("authorities", _word)),
            senders=frozenset(get("senders", _word)),
            via=frozenset(get("via", lambda v: _choice(v, modes))),
        )
    except ParseError:
        raise
    except ValueError as exc:
        raise _fail(lines, index, "name", str(exc)) from None


def _known() -> str:
    return ", ".join(sorted(_RULE_KEYS))


def _word(value: str) -> str:
    if not value or value != value.strip() or not value.isprintable():
        raise ParseError(f"{value!r} is not a name (printable, no surrounding spaces)")
    return value


def _choice(value: str, choices: Mapping[str, Via]) -> Via:
    if value not in choices:
        raise ParseError(f"{value!r} is not one of {', '.join(choices)}")
    return choices[value]
