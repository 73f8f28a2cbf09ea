"""Policy rules over a source policy: who may send on which topics. Deny by default. Pure.

:class:`Rules` wraps a source policy (pins, authorities, X.509, or a
:class:`~letterlock.trust.FirstKnown` of them), which says *who* signed; the rules say what that
sender may send. The source decides first: a sender it refuses stays refused, with its reason.
A sender it admits is then judged by the rules that *govern* the signed topic (those with a
topic pattern matching it):

* no rule governs the topic: refused ``untrusted`` (deny by default: a topic nobody wrote a
  rule for accepts nobody);
* several rules govern it: **every one** must pass (a rule never widens another);
* a rule passes when the sender meets each condition the rule sets; within one condition,
  one listed value suffices (any of the principals, any of the roles, ...). To require two
  roles, write two rules over the same topics.

Conditions (an empty one is not checked): ``principals`` (the sender's principal, exact or
``ll://acme/audit/*`` for one more path segment, ``ll://acme/audit/**`` for one or more),
``roles`` (held by the sender's chain), ``authorities`` (named in the sender's chain),
``senders`` (the receiver's name for the sender: a pin name, an own identity) and ``via``
(the trust mode). The admitted :class:`~letterlock.core.trust.VerifiedSender` names the
governing rules in ``rule``.

For ``letterlock trust check`` on a listen pattern, :meth:`Rules.judge_pattern` answers for
every topic of a pattern at once, with :func:`~letterlock.trust.scope.covers` and
:func:`~letterlock.trust.scope.overlaps`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from letterlock.core.carriage import CredentialBlock
from letterlock.core.keys import PublicIdentity
from letterlock.core.principal import Namespace, Principal
from letterlock.core.trust import (
    Refusal,
    TrustContext,
    TrustPolicy,
    VerifiedSender,
    Via,
    lookup_carried,
)
from letterlock.errors import ParseError, UsageError
from letterlock.trust.pins import check_name
from letterlock.trust.scope import ScopePattern, covers, overlaps

__all__ = ["MAX_MEMO", "PrincipalPattern", "Rule", "Rules", "Verdict"]

#: The most decisions a :class:`Rules` remembers (then it starts again empty): the topic is
#: the sender's claim, so what it fills must be bounded.
MAX_MEMO: Final = 4096

_ONE: Final = "/*"
_ANY: Final = "/**"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalPattern:
    """A principal (``ll://acme/audit``), or the principals one segment (``.../*``) or one or
    more segments (``.../**``) below a namespace. Build with :meth:`parse`."""

    text: str
    exact: Principal | None
    below: Namespace | None
    deep: bool

    @classmethod
    def parse(cls, text: str) -> PrincipalPattern:
        """``text`` as a principal pattern; ParseError naming the rule it breaks."""
        if not isinstance(text, str):
            raise ParseError(f"a principal pattern is a string, not {type(text).__name__}")
        for suffix, deep in ((_ANY, True), (_ONE, False)):
            if text.endswith(suffix):
                below = Namespace.parse(text[: -len(suffix)] + "/")
                return cls(text=str(below) + suffix[1:], exact=None, below=below, deep=deep)
        exact = Principal.parse(text)
        return cls(text=str(exact), exact=exact, below=None, deep=False)

    def matches(self, principal: Principal) -> bool:
        if self.exact is not None:
            return principal == self.exact
        assert self.below is not None
        depth = len(principal.segments) - len(self.below.segments)
        return self.below.contains(principal) and (self.deep or depth == 1)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule: the topics it governs and the conditions a sender must meet on them.

    Empty conditions are not checked: a rule with none admits on its topics every sender the
    source admits. ``name`` follows the pin name rule and is what a
    :class:`~letterlock.core.trust.VerifiedSender` reports.
    """

    name: str
    topics: tuple[ScopePattern, ...]
    principals: tuple[PrincipalPattern, ...] = ()
    roles: frozenset[str] = frozenset()
    authorities: frozenset[str] = frozenset()
    senders: frozenset[str] = frozenset()
    via: frozenset[Via] = frozenset()

    def __post_init__(self) -> None:
        check_name(self.name, "rule name")
        if not self.topics:
            raise UsageError(f"rule {self.name!r} governs no topics")

    def governs(self, topic: str) -> bool:
        return any(pattern.matches(topic) for pattern in self.topics)

    def refuses(self, sender: VerifiedSender) -> str | None:
        """Why ``sender`` fails this rule (the first unmet condition), or None if it passes."""
        if self.via and sender.via not in self.via:
            return f"trust mode {sender.via} is not one of {_listed(self.via)}"
        if self.senders and sender.name not in self.senders:
            return f"sender {sender.name!r} is not one of {_listed(self.senders)}"
        if self.principals:
            principal = _principal(sender)
            if principal is None:
                return "the sender has no principal"
            if not any(pattern.matches(principal) for pattern in self.principals):
                return f"principal {principal} is not one of {_listed(self.principals)}"
        if self.authorities and self.authorities.isdisjoint(sender.authorities):
            chain = ", ".join(sender.authorities) or "no authority"
            return f"certified by {chain}, not by one of {_listed(self.authorities)}"
        if self.roles and self.roles.isdisjoint(sender.roles):
            held = ", ".join(sorted(sender.roles)) or "no role"
            return f"holds {held}, not one of {_listed(self.roles)}"
        return None


def _listed(values: Iterable[object]) -> str:
    return ", ".join(sorted(str(value) for value in values))


def _principal(sender: VerifiedSender) -> Principal | None:
    if sender.principal is None:
        return None
    try:
        return Principal.parse(sender.principal)
    except ParseError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The rules' answer for one sender on a topic or a pattern, for people and ``--json``.

    ``governing``: the rules that govern (some of) the topics, in the policy's order;
    ``refused_by``: the first of them the sender fails, with ``why``; ``uncovered``: true when
    some topic has no rule at all (deny by default).
    """

    accepted: bool
    governing: tuple[str, ...]
    refused_by: str | None = None
    why: str = ""
    uncovered: bool = False


class Rules:
    """A :class:`~letterlock.core.trust.TrustPolicy`: ``source`` says who, ``rules`` say what.

    ``Rules(source, rules)``; the rules are a snapshot, in order (order only affects which
    failing rule a refusal names). Rule names are unique. A decision is a function of the
    snapshot, the verified sender and the topic, so it is remembered (at most
    :data:`MAX_MEMO`): a sender seen before on a topic costs a dictionary look-up, not a match
    against every rule.
    """

    __slots__ = ("_decided", "_rules", "_source")

    def __init__(self, source: TrustPolicy, rules: Iterable[Rule]) -> None:
        self._source = source
        self._rules = tuple(rules)
        names = [rule.name for rule in self._rules]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise UsageError(f"two rules are named {duplicate!r}")
        self._decided: dict[tuple[VerifiedSender, str], VerifiedSender | Refusal] = {}

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def source(self) -> TrustPolicy:
        return self._source

    def judge(self, sender: VerifiedSender, topic: str) -> Verdict:
        """The rules' verdict on ``sender`` (as the source admitted it) publishing on ``topic``."""
        governing = tuple(rule for rule in self._rules if rule.governs(topic))
        return self._verdict(sender, governing, uncovered=not governing)

    def judge_pattern(self, sender: VerifiedSender, pattern: ScopePattern) -> Verdict:
        """The verdict on ``sender`` publishing on *every* topic of ``pattern``: accepted when
        the rules' topics cover the pattern (:func:`covers`) and the sender passes each rule
        that governs some of its topics (:func:`overlaps`)."""
        governing = tuple(
            rule for rule in self._rules if any(overlaps(p, pattern) for p in rule.topics)
        )
        every = [p for rule in self._rules for p in rule.topics]
        return self._verdict(sender, governing, uncovered=not covers(every, pattern))

    @staticmethod
    def _verdict(
        sender: VerifiedSender, governing: tuple[Rule, ...], *, uncovered: bool
    ) -> Verdict:
        names = tuple(rule.name for rule in governing)
        for rule in governing:
            why = rule.refuses(sender)
            if why is not None:
                return Verdict(accepted=False, governing=names, refused_by=rule.name, why=why)
        if uncovered:
            return Verdict(
                accepted=False, governing=names, uncovered=True, why="no rule covers the topic"
            )
        return Verdict(accepted=True, governing=names)

    # TrustPolicy ----------------------------------------------------------------------

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        return lookup_carried(self._source, key_id, credentials)

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        verified = self._source.admit(sender, context)
        if isinstance(verified, Refusal):
            return verified
        key = (verified, context.topic)
        decided = self._decided.get(key)
        if decided is None:
            if len(self._decided) >= MAX_MEMO:
                self._decided.clear()
            decided = self._decided[key] = self._decide(verified, context.topic)
        return decided

    def _decide(self, verified: VerifiedSender, topic: str) -> VerifiedSender | Refusal:
        verdict = self.judge(verified, topic)
        if not verdict.accepted:
            where = "" if verdict.refused_by is None else f"rule {verdict.refused_by}: "
            return Refusal(detail=f"{where}{verdict.why}")
        return dataclasses.replace(verified, rule=",".join(verdict.governing))
