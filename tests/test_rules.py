"""Policy rules (letterlock.trust.Rules) and the policy file: deny by default, every governing
rule must pass, role / authority / principal conditions, the rule reported, strict TOML.

Each test names the rule it guards; removing the rule from the code makes the test fail.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import letterlock
from conftest import NOW
from letterlock import Identity, Pins, Reason, Rejected, ReplayWindow, Suite, TrustContext
from letterlock.core.principal import Namespace, Principal
from letterlock.core.topics import Dialect
from letterlock.core.trust import Refusal, VerifiedSender, Via
from letterlock.errors import ParseError, UsageError
from letterlock.trust import (
    Anchor,
    Authorities,
    FirstKnown,
    Kind,
    PrincipalPattern,
    Rule,
    Rules,
    Scope,
    ScopePattern,
    issue,
    overlaps,
    parse_policy,
)
from letterlock.trust import rules as rules_module
from letterlock.trust.check import admit_pattern

START, END = NOW - 3600, NOW + 3600


@functools.cache
def keys() -> tuple[Identity, ...]:
    """root, payments, audit-ca, billing, auditor, a pinned peer, the receiver, a stranger."""
    return tuple(Identity.generate(Suite.X25519) for _ in range(8))


def _scope(namespace: str, publish: tuple[str, ...], roles: tuple[str, ...] = ()) -> Scope:
    return Scope(
        namespace=Namespace.parse(namespace),
        roles=frozenset(roles),
        publish=tuple(ScopePattern.parse(p) for p in publish),
    )


def _credential(issuer: Identity, subject: Identity, kind: Kind, name: str, granted: Scope):  # type: ignore[no-untyped-def]
    return issue(
        issuer,
        kind=kind,
        subject=name,
        subject_identity=subject.public,
        not_before=START,
        not_after=END,
        max_depth=1 if kind is Kind.AUTHORITY else 0,
        scope=granted,
    )


@functools.cache
def source() -> FirstKnown:
    """acme -> payments -> ll://acme/payments/billing (role order-writer);
    acme -> audit -> ll://acme/audit/log (role reader); and a pinned peer."""
    root, payments, audit, billing, auditor, peer = keys()[:6]
    acme = Anchor(
        name="acme", identity=root.public, namespace=Namespace.parse("ll://acme/"), max_depth=2
    )
    credentials = [
        _credential(
            root, payments, Kind.AUTHORITY, "payments",
            _scope("ll://acme/payments/", ("#",), ("order-writer", "reader")),
        ),
        _credential(
            payments, billing, Kind.PRINCIPAL, "ll://acme/payments/billing",
            _scope("ll://acme/payments/", ("#",), ("order-writer",)),
        ),
        _credential(
            root, audit, Kind.AUTHORITY, "audit", _scope("ll://acme/audit/", ("#",), ("reader",))
        ),
        _credential(
            audit, auditor, Kind.PRINCIPAL, "ll://acme/audit/log",
            _scope("ll://acme/audit/", ("#",), ("reader",)),
        ),
    ]  # fmt: skip
    pins = Pins()
    pins.pin("peer", peer.public)
    return FirstKnown(pins, Authorities([acme], credentials))


def billing() -> Identity:
    return keys()[3]


def auditor() -> Identity:
    return keys()[4]


def peer() -> Identity:
    return keys()[5]


def rule(name: str, *topics: str, **conditions: object) -> Rule:
    return Rule(name=name, topics=tuple(ScopePattern.parse(t) for t in topics), **conditions)  # type: ignore[arg-type]


ORDERS = rule(
    "orders",
    "orders.#",
    roles=frozenset({"order-writer"}),
    authorities=frozenset({"payments"}),
)
AUDIT = rule("audit", "audit.#", principals=(PrincipalPattern.parse("ll://acme/audit/*"),))


def admit(policy: Rules, sender: Identity, topic: str) -> VerifiedSender | Refusal:
    context = TrustContext(
        topic=topic, suite=sender.suite, content_type=None, headers={}, created=NOW, now=NOW
    )
    return policy.admit(sender.public, context)


def refused(result: VerifiedSender | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_deny_by_default_a_topic_no_rule_covers_is_untrusted() -> None:
    policy = Rules(source(), [ORDERS, AUDIT])
    assert isinstance(admit(policy, billing(), "orders.eu"), VerifiedSender)
    refusal = refused(admit(policy, billing(), "payroll.eu"))
    assert refusal.reason is Reason.UNTRUSTED
    assert not refusal.transient
    assert "no rule covers" in refusal.detail
    # no rules at all: nobody is accepted, not even a pinned sender the source admits
    assert isinstance(source().admit(peer().public, _context("x")), VerifiedSender)
    assert refused(admit(Rules(source(), []), peer(), "x")).reason is Reason.UNTRUSTED


def _context(topic: str) -> TrustContext:
    return TrustContext(
        topic=topic, suite=Suite.X25519, content_type=None, headers={}, created=NOW, now=NOW
    )


def test_the_source_decides_first_and_its_refusal_stands() -> None:
    """A key the source does not know stays unknown_sender (transient), whatever the rules."""
    everyone = rule("everyone", "#")
    stranger = keys()[7]
    refusal = refused(admit(Rules(source(), [everyone]), stranger, "orders.eu"))
    assert refusal.reason is Reason.UNKNOWN_SENDER


def test_role_rule() -> None:
    policy = Rules(source(), [rule("orders", "orders.#", roles=frozenset({"order-writer"}))])
    assert isinstance(admit(policy, billing(), "orders.eu"), VerifiedSender)
    refusal = refused(admit(policy, auditor(), "orders.eu"))  # holds reader only
    assert refusal.reason is Reason.UNTRUSTED
    assert "rule orders" in refusal.detail
    assert "order-writer" in refusal.detail
    assert "no role" in refused(admit(policy, peer(), "orders.eu")).detail  # a pin has none


def test_authority_rule() -> None:
    by_audit = rule("audited", "#", authorities=frozenset({"audit"}))
    policy = Rules(source(), [by_audit])
    assert isinstance(admit(policy, auditor(), "orders.eu"), VerifiedSender)
    refusal = refused(admit(policy, billing(), "orders.eu"))
    assert "certified by acme, payments" in refusal.detail
    # the anchor counts as an authority of the chain too
    assert isinstance(
        admit(
            Rules(source(), [rule("acme", "#", authorities=frozenset({"acme"}))]), billing(), "a"
        ),
        VerifiedSender,
    )


def test_principal_rule() -> None:
    policy = Rules(source(), [AUDIT])
    assert isinstance(admit(policy, auditor(), "audit.login"), VerifiedSender)
    assert (
        "principal ll://acme/payments/billing"
        in refused(admit(policy, billing(), "audit.login")).detail
    )
    assert "no principal" in refused(admit(policy, peer(), "audit.login")).detail


def test_principal_patterns_one_segment_or_any_depth() -> None:
    one, deep = PrincipalPattern.parse("ll://acme/*"), PrincipalPattern.parse("ll://acme/**")
    exact = PrincipalPattern.parse("ll://ACME/audit/log")  # the domain is normalised
    top, below = Principal.parse("ll://acme/audit"), Principal.parse("ll://acme/audit/log")
    assert one.matches(top)
    assert not one.matches(below)
    assert deep.matches(top)
    assert deep.matches(below)
    assert exact.matches(below)
    assert not exact.matches(top)
    assert not deep.matches(Principal.parse("ll://acmex/audit"))
    with pytest.raises(ParseError):
        PrincipalPattern.parse("ll://acme/a*")


def test_sender_and_via_conditions() -> None:
    pinned = rule("pins", "#", via=frozenset({Via.PIN}), senders=frozenset({"peer"}))
    policy = Rules(source(), [pinned])
    assert isinstance(admit(policy, peer(), "t"), VerifiedSender)
    assert "trust mode authority" in refused(admit(policy, billing(), "t")).detail
    named = Rules(source(), [rule("named", "#", senders=frozenset({"someone"}))])
    assert "sender 'peer'" in refused(admit(named, peer(), "t")).detail


def test_overlapping_rules_must_all_pass() -> None:
    """orders.# needs role order-writer; orders.audit.# also needs the audit principal: the
    billing service may publish orders.eu, but not orders.audit.x, though it passes 'orders'."""
    policy = Rules(
        source(), [ORDERS, rule("orders-audit", "orders.audit.#", principals=AUDIT.principals)]
    )
    assert isinstance(admit(policy, billing(), "orders.eu"), VerifiedSender)
    refusal = refused(admit(policy, billing(), "orders.audit.x"))
    assert "rule orders-audit" in refusal.detail
    refusal = refused(admit(policy, auditor(), "orders.audit.x"))  # passes one, fails orders
    assert "rule orders:" in refusal.detail


def test_the_verified_sender_reports_the_rules_that_admitted_it() -> None:
    policy = Rules(source(), [ORDERS, rule("eu", "*.eu")])
    verified = admit(policy, billing(), "orders.eu")
    assert isinstance(verified, VerifiedSender)
    assert verified.rule == "orders,eu"
    assert verified.via is Via.AUTHORITY
    assert verified.principal == "ll://acme/payments/billing"
    assert dataclasses.replace(verified, rule=None) == source().admit(
        billing().public, _context("orders.eu")
    )
    only = admit(policy, billing(), "orders.us")
    assert isinstance(only, VerifiedSender)
    assert only.rule == "orders"


def test_open_rejects_a_valid_signature_the_rules_refuse_and_reports_the_rule() -> None:
    receiver = keys()[6]
    policy = Rules(source(), [ORDERS])
    for topic, sender in (("orders.eu", billing()), ("orders.eu", auditor()), ("x", billing())):
        sealed = letterlock.seal(
            b"hi", sender=sender, recipients=[receiver.public], topic=topic, now=NOW
        )
        if sender is billing() and topic == "orders.eu":
            opened = letterlock.open(
                sealed, identity=receiver, trust=policy, replay=ReplayWindow(), now=NOW
            )
            assert opened.sender.rule == "orders"
            continue
        with pytest.raises(Rejected) as caught:
            letterlock.open(sealed, identity=receiver, trust=policy, replay=ReplayWindow(), now=NOW)
        assert caught.value.reason is Reason.UNTRUSTED


def test_rule_names_are_checked_and_unique() -> None:
    with pytest.raises(UsageError, match="rule name"):
        rule("no spaces", "#")
    with pytest.raises(UsageError, match="no topics"):
        Rule(name="empty", topics=())
    with pytest.raises(UsageError, match="two rules"):
        Rules(source(), [ORDERS, ORDERS])


# --- patterns (trust check on a listen pattern) ----------------------------------------


def _verified(sender: Identity, topic: str = "orders.eu") -> VerifiedSender:
    found = source().admit(sender.public, _context(topic))
    assert isinstance(found, VerifiedSender)
    return found


def test_judge_pattern_needs_cover_and_every_overlapping_rule() -> None:
    policy = Rules(source(), [ORDERS, rule("eu", "*.eu", roles=frozenset({"reader"}))])
    p = ScopePattern.parse
    assert policy.judge_pattern(_verified(billing()), p("orders.us.#")).accepted
    covered_all = policy.judge_pattern(_verified(billing()), p("orders.#"))
    assert not covered_all.accepted
    assert covered_all.refused_by == "eu"
    uncovered = policy.judge_pattern(_verified(billing()), p("#"))
    assert not uncovered.accepted
    half = Rules(source(), [ORDERS]).judge_pattern(_verified(billing()), p("*.#"))
    assert half.uncovered
    assert not half.accepted


def _narrow() -> tuple[Authorities, Identity]:
    """acme -> payments (orders.#) -> ll://acme/payments/eu, which may publish orders.eu.# only."""
    root, payments, _, _, _, _, _, sender = keys()
    acme = Anchor(
        name="acme", identity=root.public, namespace=Namespace.parse("ll://acme/"), max_depth=2
    )
    credentials = [
        _credential(root, payments, Kind.AUTHORITY, "payments",
                    _scope("ll://acme/payments/", ("orders.#",))),
        _credential(payments, sender, Kind.PRINCIPAL, "ll://acme/payments/eu",
                    _scope("ll://acme/payments/", ("orders.eu.#",))),
    ]  # fmt: skip
    return Authorities([acme], credentials), sender


def test_admit_pattern_uses_the_chains_scope_for_every_topic() -> None:
    """A listen pattern is within a chain only if every link covers it: orders.eu.* is,
    orders.* is not (orders.us would be refused), though the pattern's text 'orders.*' is
    no topic the scope refuses as a literal."""
    authorities, sender = _narrow()
    p = ScopePattern.parse
    assert isinstance(
        admit_pattern(authorities, sender.public, p("orders.eu.*"), now=NOW), VerifiedSender
    )
    refusal = refused(admit_pattern(authorities, sender.public, p("orders.*"), now=NOW))
    assert refusal.detail.startswith("topic_outside_scope (link 1)")  # the leaf credential
    everyone = Rules(FirstKnown(authorities), [rule("all", "#")])
    assert isinstance(
        admit_pattern(everyone, sender.public, p("orders.eu.#"), now=NOW), VerifiedSender
    )
    assert isinstance(admit_pattern(everyone, sender.public, p("#"), now=NOW), Refusal)
    exact = admit_pattern(everyone, sender.public, p("orders.eu.x"), now=NOW)
    assert isinstance(exact, VerifiedSender)
    assert exact.rule == "all"


def test_admit_pattern_through_rules_and_pins() -> None:
    policy = Rules(source(), [ORDERS, AUDIT])
    p = ScopePattern.parse
    verified = admit_pattern(policy, billing().public, p("orders.*"), now=NOW)
    assert isinstance(verified, VerifiedSender)
    assert verified.rule == "orders"
    assert "rule audit" in refused(admit_pattern(policy, billing().public, p("#"), now=NOW)).detail
    pinned = Rules(source(), [rule("pins", "#", via=frozenset({Via.PIN}))])
    assert isinstance(admit_pattern(pinned, peer().public, p("a.#"), now=NOW), VerifiedSender)
    unknown = admit_pattern(pinned, keys()[7].public, p("a.#"), now=NOW)
    assert refused(unknown).reason is Reason.UNKNOWN_SENDER


def test_admit_pattern_refuses_to_guess_for_other_policies() -> None:
    class TopicByTopic:
        def lookup(self, key_id: bytes, credentials: object = None) -> None:
            return None

        def admit(self, sender: object, context: object) -> Refusal:
            return Refusal()

    with pytest.raises(UsageError, match="single topics only"):
        admit_pattern(TopicByTopic(), peer().public, ScopePattern.parse("a.#"), now=NOW)


def test_overlaps() -> None:
    p = ScopePattern.parse
    assert overlaps(p("orders.#"), p("*.eu"))
    assert not overlaps(p("orders.*"), p("audit.#"))
    assert not overlaps(p("a.*.c"), p("a.b"))
    assert overlaps(p("a.b"), p("a.*"))
    assert not overlaps(p("a.b"), p("a.c"))


# --- hypothesis: adding a rule never admits more than the rule itself allows ----------

WORDS = ("orders", "audit", "eu")
TOPIC = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(".".join)
PATTERN = st.lists(st.sampled_from((*WORDS, "*", "#")), min_size=1, max_size=3).map(".".join)
RULES = st.builds(
    lambda name, topics, roles, authorities: rule(
        name, *topics, roles=frozenset(roles), authorities=frozenset(authorities)
    ),
    st.sampled_from(("r1", "r2", "r3", "r4", "r5")),
    st.lists(PATTERN, min_size=1, max_size=2),
    st.sets(st.sampled_from(("order-writer", "reader", "admin")), max_size=2),
    st.sets(st.sampled_from(("payments", "audit", "acme")), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(RULES, max_size=4, unique_by=lambda r: r.name),
    extra=RULES,
    topic=TOPIC,
    who=st.sampled_from((3, 4, 5)),
)
def test_adding_a_rule_never_admits_more(
    rules: list[Rule], extra: Rule, topic: str, who: int
) -> None:
    """Deny by default means a first rule over a topic is what opens it; so the property is:
    with a rule added, a message on a topic the new rule governs is admitted only if the new
    rule alone admits it, and one on a topic the old rules governed only if they admitted it."""
    extra = dataclasses.replace(extra, name="extra")
    sender = keys()[who]
    before = admit(Rules(source(), rules), sender, topic)
    after = admit(Rules(source(), [*rules, extra]), sender, topic)
    alone = admit(Rules(source(), [extra]), sender, topic)
    if isinstance(after, VerifiedSender):
        if extra.governs(topic):
            assert isinstance(alone, VerifiedSender)
        if any(r.governs(topic) for r in rules):
            assert isinstance(before, VerifiedSender)


# --- the policy file ---------------------------------------------------------------------

EXAMPLE = """\
version = 1

[[rule]]
name = "orders"
topics = ["orders.#"]
roles = ["order-writer"]
authorities = ["payments"]

[[rule]]
name = "audit"
topics = ["audit/#"]
dialect = "mqtt"
principals = ["ll://acme/audit/*"]
via = ["authority", "x509"]
"""


def test_the_policy_file_builds_rules() -> None:
    orders, audit = parse_policy(EXAMPLE)
    assert orders == ORDERS
    assert audit.topics == (ScopePattern.parse("audit/#", Dialect.MQTT),)
    assert audit.via == frozenset({Via.AUTHORITY, Via.X509})
    assert [str(p) for p in audit.principals] == ["ll://acme/audit/*"]
    assert parse_policy("version = 1\n") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (EXAMPLE.replace("roles =", "role ="), "line 6: unknown key 'role' in a rule"),
        (EXAMPLE.replace("principals", "princpals"), "line 13: unknown key 'princpals'"),
        (EXAMPLE + "\n[extra]\nx = 1\n", "line 16: unknown key 'extra'"),
        (EXAMPLE.replace("version = 1", "version = 2"), "line 1: the policy file starts"),
        (EXAMPLE.replace("version = 1", ""), "version = 1"),
        (EXAMPLE.replace("version = 1", "version = true"), "line 1: the policy file starts"),
        (EXAMPLE.replace('roles = ["order-writer"]', 'roles = "order-writer"'), "line 6: 'roles'"),
        (
            EXAMPLE.replace('roles = ["order-writer"]', "roles = []"),
            "line 6: 'roles' is a non-empty",
        ),
        (EXAMPLE.replace('"orders.#"', '""'), "line 5:"),
        (EXAMPLE.replace('"audit/#"', '"audit/#/x"'), "line 11: topics"),
        (EXAMPLE.replace('name = "audit"', 'name = "orders"'), "line 10: a second rule"),
        (EXAMPLE.replace('name = "audit"', 'name = "a b"'), "line 10: rule name"),
        (EXAMPLE.replace('name = "audit"\n', ""), "line 9: a rule needs a name"),
        (EXAMPLE.replace('topics = ["orders.#"]\n', ""), "line 3: rule needs 'topics'"),
        (EXAMPLE.replace('"mqtt"', '"kafka"'), "line 12: dialect is one of"),
        (EXAMPLE.replace('"ll://acme/audit/*"', '"http://x/*"'), "line 13: principals"),
        (EXAMPLE.replace('"x509"', '"trusted"'), "line 14: via"),
        (EXAMPLE.replace("version = 1", "version = = 1"), "line 1"),  # tomllib's own
    ],
)
def test_the_policy_file_is_strict(text: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_policy(text)
    assert message in str(caught.value)


def test_the_documented_example_is_a_valid_policy() -> None:
    """docs/policy.md's example parses, and means what its comments say."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "policy.md").read_text()
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    rules = parse_policy(example)
    assert [r.name for r in rules] == ["orders", "audit", "refunds", "health"]
    policy = Rules(source(), rules)
    assert isinstance(admit(policy, billing(), "orders.eu"), VerifiedSender)
    assert "rule refunds" in refused(admit(policy, billing(), "orders.refunds.x")).detail
    assert isinstance(admit(policy, auditor(), "audit.login"), VerifiedSender)
    assert "rule health" in refused(admit(policy, peer(), "health/db")).detail  # not 'monitor'


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(RULES, max_size=4, unique_by=lambda r: r.name),
    pattern=PATTERN,
    topic=TOPIC,
    who=st.sampled_from((3, 4, 5)),
)
def test_a_pattern_accepted_accepts_each_of_its_topics(
    rules: list[Rule], pattern: str, topic: str, who: int
) -> None:
    """judge_pattern is sound: accepted for a pattern means accepted for every topic in it."""
    policy = Rules(source(), rules)
    sender = _verified(keys()[who])
    parsed = ScopePattern.parse(pattern)
    if parsed.matches(topic) and policy.judge_pattern(sender, parsed).accepted:
        assert policy.judge(sender, topic).accepted


@settings(max_examples=300, deadline=None)
@given(first=PATTERN, second=PATTERN, topic=TOPIC)
def test_patterns_that_do_not_overlap_share_no_topic(first: str, second: str, topic: str) -> None:
    a, b = ScopePattern.parse(first), ScopePattern.parse(second)
    if a.matches(topic) and b.matches(topic):
        assert overlaps(a, b)


def test_decisions_are_remembered_within_a_bound() -> None:
    policy = Rules(source(), [ORDERS])
    first = admit(policy, billing(), "orders.eu")
    assert admit(policy, billing(), "orders.eu") is first  # remembered, not decided again
    for index in range(rules_module.MAX_MEMO + 10):  # topics are the sender's claim
        admit(policy, billing(), f"orders.{index}")
    assert len(policy._decided) <= rules_module.MAX_MEMO
    assert admit(policy, billing(), "orders.eu") == first


def test_admit_pattern_holds_a_pin_to_its_topics() -> None:
    """A pin limited to some topics admits a listen pattern only if its patterns cover it."""
    from letterlock.trust.pins import parse_topics

    pins = Pins()
    pins.pin("peer", peer().public, topics=parse_topics(["orders.#"]))
    p = ScopePattern.parse
    assert isinstance(admit_pattern(pins, peer().public, p("orders.*"), now=NOW), VerifiedSender)
    wider = refused(admit_pattern(pins, peer().public, p("#"), now=NOW))
    assert "some topics of" in wider.detail
    assert isinstance(refused(admit_pattern(pins, peer().public, p("audit.*"), now=NOW)), Refusal)
