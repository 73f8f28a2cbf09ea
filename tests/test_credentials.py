"""Authorities and scoped credentials: principals, scopes, chains (docs/spec/credentials.md).

Each test names the rule it guards; removing the rule from the code makes the test fail.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import letterlock
from conftest import NOW
from letterlock import (
    Identity,
    PublicIdentity,
    Reason,
    Rejected,
    ReplayWindow,
    Suite,
    TrustContext,
)
from letterlock.core.principal import Namespace, Principal
from letterlock.core.topics import Dialect, amqp_topic_matches
from letterlock.core.trust import Refusal, VerifiedSender, Via
from letterlock.errors import ParseError, UsageError
from letterlock.trust import authorities as authorities_module
from letterlock.trust.authorities import Authorities
from letterlock.trust.credentials import (
    Anchor,
    Chain,
    ChainRefusal,
    Credential,
    Kind,
    Scope,
    VerifiedSignatures,
    Why,
    issue,
    parse_credentials,
    verify_chain,
)
from letterlock.trust.scope import ANY, ONE, ScopePattern, Slot, covers

START, END = NOW - 3600, NOW + 3600


@functools.cache
def keys(count: int = 8) -> tuple[Identity, ...]:
    """Issuers and subjects, made once (Ed25519: signing is cheap and deterministic)."""
    return tuple(Identity.generate(Suite.X25519) for _ in range(count))


def patterns(*texts: str, dialect: Dialect = Dialect.AMQP) -> tuple[ScopePattern, ...]:
    return tuple(ScopePattern.parse(text, dialect) for text in texts)


def scope(
    namespace: str = "ll://acme/",
    publish: Sequence[str] = ("#",),
    roles: Sequence[str] = (),
    consume: Sequence[str] = (),
) -> Scope:
    return Scope(
        namespace=Namespace.parse(namespace),
        roles=frozenset(roles),
        publish=patterns(*publish),
        consume=patterns(*consume),
    )


def authority(
    issuer: Identity,
    subject: Identity,
    name: str,
    granted: Scope,
    *,
    depth: int = 0,
    not_before: int = START,
    not_after: int = END,
) -> Credential:
    return issue(
        issuer,
        kind=Kind.AUTHORITY,
        subject=name,
        subject_identity=subject.public,
        not_before=not_before,
        not_after=not_after,
        max_depth=depth,
        scope=granted,
    )


def leaf(
    issuer: Identity,
    subject: Identity,
    principal: str,
    granted: Scope,
    *,
    not_before: int = START,
    not_after: int = END,
) -> Credential:
    return issue(
        issuer,
        kind=Kind.PRINCIPAL,
        subject=principal,
        subject_identity=subject.public,
        not_before=not_before,
        not_after=not_after,
        scope=granted,
    )


def anchor(root: Identity, *, depth: int = 2, namespace: str = "ll://acme/") -> Anchor:
    return Anchor(
        name="acme", identity=root.public, namespace=Namespace.parse(namespace), max_depth=depth
    )


def two_deep(
    *, middle: Scope | None = None, bottom: Scope | None = None, depth: int = 0
) -> tuple[Anchor, list[Credential], Identity]:
    """acme (root) -> payments (an authority) -> ll://acme/payments/billing (the sender)."""
    root, payments, billing = keys()[:3]
    chain = [
        authority(
            root,
            payments,
            "payments",
            middle or scope("ll://acme/payments/", ["orders.#"], ["writer", "reader"]),
            depth=depth,
        ),
        leaf(
            payments,
            billing,
            "ll://acme/payments/billing",
            bottom or scope("ll://acme/payments/", ["orders.eu"], ["writer"]),
        ),
    ]
    return anchor(root), chain, billing


def why(verdict: Chain | ChainRefusal) -> Why | None:
    return verdict.why if isinstance(verdict, ChainRefusal) else None


# ------------------------------------------------------------------------------ principals


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("ll://acme/payments/billing", "ll://acme/payments/billing"),
        ("LL://ACME.example/Payments", "ll://acme.example/Payments"),  # domain folds, path not
        ("spiffe://example.org/ns/prod/sa/web", "spiffe://example.org/ns/prod/sa/web"),
        ("SPIFFE://Example.ORG", "spiffe://example.org"),
        ("ll://a-b_c.d/x.y-z_0", "ll://a-b_c.d/x.y-z_0"),
    ],
)
def test_principal_is_parsed_and_normalised(text: str, normal: str) -> None:
    assert str(Principal.parse(text)) == normal


@pytest.mark.parametrize(
    "text",
    [
        "http://acme/x",  # another scheme
        "ll:/acme/x",
        "ll://",  # no trust domain
        "ll:///x",
        "ll://acme/x/",  # trailing slash (empty segment)
        "ll://acme/",
        "ll://acme//x",  # empty segment
        "ll://acme/x/../y",  # dot segments
        "ll://acme/./y",
        "ll://acme/x?y=1",  # query
        "ll://acme/x#frag",  # fragment
        "ll://user@acme/x",  # user info
        "ll://acme:8080/x",  # port
        "ll://acme/x%2Fy",  # percent-encoding
        "ll://ac me/x",
        "ll://acme/x y",
        "ll://acme/\u00e9",  # non-ASCII
        "ll://\u212aelvin/x",  # KELVIN SIGN: would lowercase to k
        "ll://" + "a" * 256 + "/x",  # trust domain over 255
        "ll://acme/" + "a" * 2048,  # over 2048 bytes
    ],
)
def test_malformed_principal_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        Principal.parse(text)


@pytest.mark.parametrize(
    ("namespace", "principal", "inside"),
    [
        ("ll://acme/payments/", "ll://acme/payments/billing", True),
        ("ll://acme/payments/", "ll://acme/payments/billing/eu", True),
        ("ll://acme/payments/", "ll://acme/paymentsx", False),
        ("ll://acme/payments/", "ll://acme/paymentsx/billing", False),
        ("ll://acme/payments/", "ll://acme/payments", False),
        ("ll://acme/payments/", "ll://acme/Payments/billing", False),  # paths are case-sensitive
        ("ll://acme/", "ll://acme/anything", True),
        ("ll://acme/", "ll://acmex/anything", False),
        ("ll://acme/", "spiffe://acme/anything", False),  # another scheme, another name
        ("LL://ACME/payments/", "ll://acme/payments/billing", True),
    ],
)
def test_namespace_containment(namespace: str, principal: str, inside: bool) -> None:
    assert Namespace.parse(namespace).contains(Principal.parse(principal)) is inside


@pytest.mark.parametrize(
    "text", ["ll://acme", "ll://acme/payments", "ll://acme//", "ll://acme/../"]
)
def test_malformed_namespace_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        Namespace.parse(text)


# ------------------------------------------------------------------------------ scope patterns


@pytest.mark.parametrize(
    ("text", "dialect", "separator", "segments"),
    [
        ("orders.#", Dialect.AMQP, ".", ("orders", ANY)),
        ("orders.>", Dialect.NATS, ".", ("orders", ONE, ANY)),  # one or more = * #
        ("orders/+/#", Dialect.MQTT, "/", ("orders", ONE, ANY)),
        ("a.#.*.b", Dialect.AMQP, ".", ("a", ONE, ANY, "b")),  # ONEs first in a wildcard run
        ("#.#", Dialect.AMQP, ".", (ANY,)),
        ("a.b/c", Dialect.MQTT, "/", ("a.b", "c")),  # an MQTT level may hold a dot
    ],
)
def test_patterns_of_every_dialect_become_one_model(
    text: str, dialect: Dialect, separator: str, segments: tuple[str | Slot, ...]
) -> None:
    pattern = ScopePattern.parse(text, dialect)
    assert (pattern.separator, pattern.segments) == (separator, segments)


@pytest.mark.parametrize(("text", "dialect"), [("a/*", Dialect.MQTT), ("a.#", Dialect.NATS)])
def test_literal_that_the_amqp_model_reads_as_a_wildcard_is_refused(
    text: str, dialect: Dialect
) -> None:
    with pytest.raises(UsageError, match="cannot be written"):
        ScopePattern.parse(text, dialect)


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        (["orders.#"], "orders.eu.*", True),
        (["orders.*"], "orders.#", False),  # orders.a.b
        (["#"], "*.#", True),
        (["*.#"], "#", True),  # a topic always has a word
        (["#.x"], "*.x", True),
        (["*.x"], "#.x", False),  # x alone, or a.b.x
        (["x", "x.*.#"], "x.#", True),  # a union covers what neither pattern does alone
        (["x.*.#"], "x.#", False),
        (["a.*", "b.*"], "*.*", False),
    ],
)
def test_covers_examples(outer: list[str], inner: str, expected: bool) -> None:
    assert covers(patterns(*outer), ScopePattern.parse(inner)) is expected


# Brute force: words from a small alphabet, topics up to 5 words (longer than any pattern
# drawn, so a counterexample has room), matched by core.topics' own AMQP matcher. "aa" is a
# word no pattern names, standing for every other word.
WORDS = ("a", "b", "")
TOPIC_WORDS = (*WORDS, "aa")
TOPICS = [
    ".".join(words)
    for length in range(1, 6)
    for words in itertools.product(TOPIC_WORDS, repeat=length)
]
SEGMENTS: list[str | Slot] = [*WORDS, ONE, ANY]
segment = st.sampled_from(SEGMENTS)
pattern_strategy = st.lists(segment, min_size=1, max_size=3).map(
    lambda segments: ScopePattern.of(".", segments)
)


@functools.cache
def brute_matches(pattern: ScopePattern) -> frozenset[str]:
    return frozenset(topic for topic in TOPICS if amqp_topic_matches(str(pattern), topic))


@settings(max_examples=300, deadline=None)
@given(st.lists(pattern_strategy, min_size=1, max_size=2), pattern_strategy)
def test_covers_agrees_with_brute_force(outer: list[ScopePattern], inner: ScopePattern) -> None:
    uncovered = brute_matches(inner).difference(*map(brute_matches, outer))
    assert covers(outer, inner) is (not uncovered), sorted(uncovered)[:3]


# ------------------------------------------------------------------------------ the codec


def test_credential_round_trips_and_has_one_encoding() -> None:
    _, chain, _ = two_deep()
    for credential in chain:
        again = Credential.parse(credential.encoded)
        assert again == credential
        assert again.encoded == credential.encoded


def test_tampered_credential_is_refused() -> None:
    """Any flipped byte: the credential no longer parses, or its chain no longer verifies."""
    trusted, chain, _ = two_deep()
    assert isinstance(verify_chain(trusted, chain, now=NOW), Chain)
    for index in (1, 0):
        encoded = chain[index].encoded
        for position in range(len(encoded)):
            tampered = bytearray(encoded)
            tampered[position] ^= 0x01
            try:
                forged = Credential.parse(bytes(tampered))
            except ParseError:
                continue
            links = list(chain)
            links[index] = forged
            verdict = verify_chain(trusted, links, now=NOW)
            assert isinstance(verdict, ChainRefusal), position
            assert verdict.why in (Why.BAD_SIGNATURE, Why.WRONG_ISSUER, Why.NOT_A_CHAIN)


def test_truncated_or_extended_credential_does_not_parse() -> None:
    _, chain, _ = two_deep()
    encoded = chain[0].encoded
    for size in range(len(encoded)):
        with pytest.raises(ParseError):
            Credential.parse(encoded[:size])
    with pytest.raises(ParseError, match="trailing"):
        Credential.parse(encoded + b"\x00")


def test_non_canonical_patterns_do_not_parse() -> None:
    """A pattern in a non-canonical spelling (``# *``) has a second encoding: refused."""
    _, chain, _ = two_deep(bottom=scope("ll://acme/payments/", ["a.*.#"]))
    encoded = chain[1].encoded
    canonical = b".\x03\x00\x01a\x01\x02"  # a, ONE, ANY
    assert encoded.count(canonical) == 1
    swapped = encoded.replace(canonical, b".\x03\x00\x01a\x02\x01")  # a, ANY, ONE
    with pytest.raises(ParseError, match="canonical"):
        Credential.parse(swapped)


def test_credential_fields_are_checked_when_issued() -> None:
    root, subject = keys()[:2]
    with pytest.raises(UsageError, match="normal form"):
        leaf(root, subject, "LL://acme/x", scope())
    with pytest.raises(UsageError, match="max_depth 0"):
        issue(
            root,
            kind=Kind.PRINCIPAL,
            subject="ll://acme/x",
            subject_identity=subject.public,
            not_before=0,
            not_after=1,
            max_depth=1,
            scope=scope(),
        )
    with pytest.raises(UsageError, match="not_before"):
        leaf(root, subject, "ll://acme/x", scope(), not_before=5, not_after=5)


# ------------------------------------------------------------------------------ chains


def test_two_deep_chain_is_verified_with_the_intersection_of_roles() -> None:
    trusted, chain, billing = two_deep()
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert str(verdict.principal) == "ll://acme/payments/billing"
    assert verdict.authorities == ("acme", "payments")
    assert verdict.sender == billing.public
    assert verdict.roles == {"writer"}


def test_delegation_that_widens_scope_is_narrowed() -> None:
    """payments may publish on orders.#; billing's credential claims '#' and role 'admin'.

    The chosen behaviour: the claim is narrowed to the intersection, not refused outright (see
    letterlock.trust.credentials), so a topic outside the parent's scope is refused and a role
    the parent lacks is not held.
    """
    trusted, chain, _ = two_deep(bottom=scope("ll://acme/", ["#"], ["writer", "admin"]))
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert verdict.may_publish("orders.eu")
    assert not verdict.may_publish("payroll.us")  # the child claims it; the parent never had it
    assert verdict.roles == {"writer"}  # not admin


def test_topic_outside_scope_is_refused() -> None:
    trusted, chain, billing = two_deep()
    policy = Authorities([trusted], chain)
    assert isinstance(policy.check(billing.public, "orders.eu", now=NOW), Chain)
    verdict = policy.check(billing.public, "orders.us", now=NOW)  # leaf allows orders.eu only
    assert why(verdict) is Why.TOPIC_OUTSIDE_SCOPE


def test_anchor_scope_narrows_too() -> None:
    root = keys()[0]
    trusted = Anchor(
        name="acme",
        identity=root.public,
        namespace=Namespace.parse("ll://acme/"),
        max_depth=1,
        roles=frozenset({"reader"}),
        publish=patterns("audit.#"),
    )
    _, chain, _ = two_deep()
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert not verdict.may_publish("orders.eu")
    assert verdict.roles == frozenset()


def test_chain_longer_than_max_depth_is_refused() -> None:
    root, payments, billing, team = keys()[:4]
    # the anchor allows one authority below it: payments; a second one (team) is too deep
    chain = [
        authority(root, payments, "payments", scope(), depth=2),
        authority(payments, team, "team", scope()),
        leaf(team, billing, "ll://acme/payments/billing", scope()),
    ]
    assert why(verify_chain(anchor(root, depth=1), chain, now=NOW)) is Why.TOO_DEEP
    assert isinstance(verify_chain(anchor(root, depth=2), chain, now=NOW), Chain)
    # the minimum along the chain: payments itself allows no authority below it
    chain[0] = authority(root, payments, "payments", scope(), depth=0)
    chain[1] = authority(payments, team, "team", scope())
    assert why(verify_chain(anchor(root, depth=2), chain, now=NOW)) is Why.TOO_DEEP


def test_expired_credential_is_refused_at_verify_time() -> None:
    """The same policy admits before the middle link expires and refuses after: lifetimes
    are checked against each message's now, not when the credentials were loaded."""
    root, payments, billing = keys()[:3]
    chain = [
        authority(root, payments, "payments", scope(), depth=0, not_after=NOW + 10),
        leaf(payments, billing, "ll://acme/payments/billing", scope()),
    ]
    policy = Authorities([anchor(root)], chain)
    assert isinstance(policy.check(billing.public, "t", now=NOW + 9), Chain)
    verdict = policy.check(billing.public, "t", now=NOW + 10)
    assert why(verdict) is Why.EXPIRED
    refusal = policy.admit(billing.public, context("t", NOW + 10))
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.transient) == (Reason.UNTRUSTED, False)


def test_not_yet_valid_credential_is_refused_transiently() -> None:
    root, payments, billing = keys()[:3]
    chain = [
        authority(root, payments, "payments", scope(), depth=0),
        leaf(payments, billing, "ll://acme/payments/billing", scope(), not_before=NOW + 1),
    ]
    policy = Authorities([anchor(root)], chain)
    assert why(policy.check(billing.public, "t", now=NOW)) is Why.NOT_YET_VALID
    refusal = policy.admit(billing.public, context("t", NOW))
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.transient) == (Reason.UNTRUSTED, True)
    assert isinstance(policy.check(billing.public, "t", now=NOW + 1), Chain)


@pytest.mark.parametrize(
    ("anchor_ns", "middle_ns", "principal"),
    [
        ("ll://acme/", "ll://acme/payments/", "ll://acme/paymentsx/billing"),  # outside middle
        ("ll://acme/", "ll://acme/", "ll://other/payments/billing"),  # outside the anchor too
        ("ll://acme/hr/", "ll://acme/", "ll://acme/payments/billing"),  # outside the anchor
        ("ll://acme/", "ll://acme/", "spiffe://acme/payments/billing"),  # another scheme
    ],
)
def test_principal_out_of_namespace_is_refused(
    anchor_ns: str, middle_ns: str, principal: str
) -> None:
    root, payments, billing = keys()[:3]
    chain = [
        authority(root, payments, "payments", scope(middle_ns), depth=0),
        leaf(payments, billing, principal, scope("ll://acme/")),
    ]
    verdict = verify_chain(anchor(root, namespace=anchor_ns), chain, now=NOW)
    assert why(verdict) is Why.OUTSIDE_NAMESPACE


def test_link_issued_by_another_key_is_refused() -> None:
    root, payments, billing, mallory = keys()[:4]
    chain = [
        authority(root, payments, "payments", scope()),
        leaf(mallory, billing, "ll://acme/payments/billing", scope()),  # not payments' key
    ]
    assert why(verify_chain(anchor(root), chain, now=NOW)) is Why.WRONG_ISSUER


def test_chain_out_of_shape_is_refused() -> None:
    trusted, chain, _ = two_deep()
    assert why(verify_chain(trusted, [], now=NOW)) is Why.NOT_A_CHAIN
    assert why(verify_chain(trusted, chain[:1], now=NOW)) is Why.NOT_A_CHAIN  # no principal
    assert why(verify_chain(trusted, chain[::-1], now=NOW)) is Why.NOT_A_CHAIN


# A random chain: each authority link's publish patterns and roles drawn from small sets.
link_scope = st.tuples(
    st.lists(st.sampled_from(["#", "a.#", "a.*", "*.b", "a.b", "b.#", "#.b"]), max_size=3),
    st.sets(st.sampled_from(["r1", "r2", "r3"])),
)
SAMPLE_TOPICS = [
    ".".join(w) for n in (1, 2, 3) for w in itertools.product(("a", "b", "c"), repeat=n)
]


def random_chain(links: Sequence[tuple[list[str], set[str]]]) -> tuple[Anchor, list[Credential]]:
    """anchor -> one authority per link -> the sender (keys()[7]), scopes as drawn."""
    ids = keys()
    chain = [
        authority(
            ids[i],
            ids[i + 1],
            f"auth{i}",
            scope("ll://acme/", publish, sorted(roles)),
            depth=len(links),
        )
        for i, (publish, roles) in enumerate(links)
    ]
    chain.append(leaf(ids[len(links)], ids[7], "ll://acme/x/sender", scope(roles=["r1", "r2"])))
    return anchor(ids[0], depth=len(links)), chain


@settings(max_examples=60, deadline=None)
@given(st.lists(link_scope, min_size=0, max_size=3), link_scope, st.integers(0, 3))
def test_narrowing_never_widens(
    links: list[tuple[list[str], set[str]]], extra: tuple[list[str], set[str]], where: int
) -> None:
    """Adding an authority link anywhere in a chain never adds a topic or a role it grants."""
    shorter = verify_chain(*random_chain(links), now=NOW)
    at = min(where, len(links))
    longer = verify_chain(*random_chain([*links[:at], extra, *links[at:]]), now=NOW)
    assert isinstance(shorter, Chain)
    assert isinstance(longer, Chain)
    assert {t for t in SAMPLE_TOPICS if longer.may_publish(t)} <= {
        t for t in SAMPLE_TOPICS if shorter.may_publish(t)
    }
    assert longer.roles <= shorter.roles


# ------------------------------------------------------------------------------ the policy


def context(topic: str, now: int = NOW) -> TrustContext:
    return TrustContext(
        topic=topic, suite=Suite.X25519, content_type=None, headers={}, created=now, now=now
    )


def test_certified_sender_opens_with_principal_chain_and_roles() -> None:
    trusted, chain, billing = two_deep()
    receiver = keys()[5]
    policy = Authorities([trusted], chain)
    sealed = letterlock.seal(
        b"hi", sender=billing, recipients=[receiver.public], topic="orders.eu", now=NOW
    )
    opened = letterlock.open(
        sealed, identity=receiver, trust=policy, replay=ReplayWindow(), now=NOW
    )
    assert opened.sender == VerifiedSender(
        name="ll://acme/payments/billing",
        fingerprint=billing.public.fingerprint_text,
        key_id=billing.public.fingerprint,
        suite=Suite.X25519,
        via=Via.AUTHORITY,
        principal="ll://acme/payments/billing",
        authorities=("acme", "payments"),
        roles=frozenset({"writer"}),
        path_keys=(keys()[0].public.fingerprint, keys()[1].public.fingerprint),  # root, payments
    )


def test_certified_sender_outside_its_scope_is_rejected_untrusted() -> None:
    trusted, chain, billing = two_deep()
    receiver = keys()[5]
    sealed = letterlock.seal(
        b"hi", sender=billing, recipients=[receiver.public], topic="payroll", now=NOW
    )
    with pytest.raises(Rejected) as caught:
        letterlock.open(
            sealed,
            identity=receiver,
            trust=Authorities([trusted], chain),
            replay=ReplayWindow(),
            now=NOW,
        )
    assert caught.value.reason is Reason.UNTRUSTED
    assert "topic_outside_scope" in caught.value.detail


def test_sender_without_a_chain_to_an_anchor_is_unknown_and_transient() -> None:
    root, payments, billing, stranger = keys()[:4]
    # payments' own credential has not arrived: billing's leaf leads nowhere yet
    policy = Authorities([anchor(root)], [leaf(payments, billing, "ll://acme/x/y", scope())])
    assert policy.lookup(billing.public.fingerprint) == billing.public
    assert policy.lookup(stranger.public.fingerprint) is None
    refusal = policy.admit(billing.public, context("t"))
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.transient) == (Reason.UNKNOWN_SENDER, True)


def test_authorities_certifying_each_other_do_not_loop() -> None:
    root, first, second, billing = keys()[:4]
    policy = Authorities(
        [anchor(root)],
        [
            authority(first, second, "second", scope(), depth=8),
            authority(second, first, "first", scope(), depth=8),
            leaf(first, billing, "ll://acme/x/y", scope()),
        ],
    )
    assert why(policy.check(billing.public, "t", now=NOW)) is Why.NO_CHAIN


def test_one_failing_chain_does_not_hide_a_valid_one() -> None:
    root, payments, billing = keys()[:3]
    expired = authority(root, payments, "payments", scope(), not_after=NOW - 1)
    current = authority(root, payments, "payments", scope())
    policy = Authorities(
        [anchor(root)], [expired, current, leaf(payments, billing, "ll://acme/x/y", scope())]
    )
    assert isinstance(policy.check(billing.public, "t", now=NOW), Chain)


def test_a_remembered_chain_is_checked_again_outside_its_lifetimes() -> None:
    """The policy remembers a verified chain only between its latest not_before and its
    earliest not_after: before or after, it is verified again and refused."""
    root, payments, billing = keys()[:3]
    chain = [
        authority(root, payments, "payments", scope(), not_before=NOW - 5, not_after=NOW + 5),
        leaf(payments, billing, "ll://acme/x/y", scope(), not_before=NOW - 2),
    ]
    policy = Authorities([anchor(root)], chain)
    assert isinstance(policy.check(billing.public, "t", now=NOW), Chain)
    assert why(policy.check(billing.public, "t", now=NOW - 3)) is Why.NOT_YET_VALID
    assert isinstance(policy.check(billing.public, "t", now=NOW + 4), Chain)
    assert why(policy.check(billing.public, "t", now=NOW + 5)) is Why.EXPIRED


def test_verified_signatures_are_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    trusted, chain, _ = two_deep()
    calls = []
    real = PublicIdentity.verify

    def counting(self: PublicIdentity, signature: bytes, message: bytes) -> bool:
        calls.append(signature)
        return real(self, signature, message)

    monkeypatch.setattr(PublicIdentity, "verify", counting)
    seen = VerifiedSignatures()
    for _ in range(3):
        assert isinstance(verify_chain(trusted, chain, now=NOW, verified=seen), Chain)
    assert len(calls) == 2  # once per credential
    assert len(seen) == 2
    small = VerifiedSignatures(limit=1)  # full: starts again empty
    verify_chain(trusted, chain, now=NOW, verified=small)
    assert len(small) == 1


def test_topic_decisions_are_remembered_per_chain_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authorities_module, "MAX_TOPICS", 4)
    trusted, chain, billing = two_deep(bottom=scope("ll://acme/payments/", ["orders.*"]))
    policy = Authorities([trusted], chain)
    for round_ in range(2):  # the second round answers from the memo
        for n in range(10):
            verdict = policy.check(billing.public, f"orders.{n}", now=NOW)
            assert isinstance(verdict, Chain), (round_, n)
            assert why(policy.check(billing.public, f"orders.{n}.x", now=NOW)) is (
                Why.TOPIC_OUTSIDE_SCOPE
            )
    assert all(len(seen) <= 4 for seen in policy._topics.values())


def test_surplus_shows_what_narrowing_removed() -> None:
    trusted, chain, _ = two_deep(bottom=scope("ll://acme/", ["#", "orders.eu"], ["writer"]))
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    # link 1 (payments, orders.#) is within the anchor's '#'; the leaf's '#' is not in orders.#
    assert verdict.surplus() == ((2, ScopePattern.parse("#")),)


@pytest.mark.parametrize(
    ("listen", "dialect", "refusing"),
    [  # links: 0 the anchor ('#'), 1 payments ('orders.#'), 2 the leaf ('orders.eu')
        ("orders.eu", Dialect.AMQP, None),
        ("orders.*", Dialect.AMQP, 2),
        ("orders.#", Dialect.AMQP, 2),
        ("orders.>", Dialect.NATS, 2),
        ("#", Dialect.AMQP, 1),
        ("payroll.*", Dialect.AMQP, 1),
        ("orders/eu", Dialect.MQTT, 1),  # another separator: one word, which orders.# lacks
    ],
)
def test_a_listen_pattern_is_checked_against_every_link(
    listen: str, dialect: Dialect, refusing: int | None
) -> None:
    trusted, chain, _ = two_deep(
        middle=scope("ll://acme/payments/", ["orders.#"]),
        bottom=scope("ll://acme/payments/", ["orders.eu"]),
    )
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert verdict.first_link_not_covering(ScopePattern.parse(listen, dialect)) == refusing


def test_text_form_round_trips_and_refuses_other_lines() -> None:
    _, chain, _ = two_deep()
    line = chain[1].to_text()
    assert line.startswith("letterlock-credential ")
    assert Credential.from_text(line + " billing's, from payments") == chain[1]
    for bad in ("letterlock-credential", "letterlock-p256 AAAA", "letterlock-credential !!!!"):
        with pytest.raises(ParseError):
            Credential.from_text(bad)


def test_a_credential_is_only_made_from_its_bytes() -> None:
    """Fields that differ from the signed bytes cannot be put together by hand."""
    _, chain, _ = two_deep()
    with pytest.raises(UsageError, match="issue"):
        dataclasses.replace(chain[1], scope=scope("ll://acme/", ["#"]))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda scheme, domain, path: f"{scheme}://{domain}{path}",
            st.sampled_from(["ll", "LL", "spiffe", "Spiffe", "http"]),
            st.text(alphabet="aZ0.-_/:@%?#", max_size=8),
            st.text(alphabet="aZ0.-_/:@%?# \u00e9", max_size=12),
        ),
    )
)
def test_principal_parsing_is_strict_and_normalises_once(text: str) -> None:
    try:
        principal = Principal.parse(text)
    except ParseError:
        return
    written = str(principal)
    assert Principal.parse(written) == principal  # the written form is its own normal form
    assert written.lower() == text.lower()  # only letters' case changed...
    rest = written.split("://", 1)[1]
    assert rest.partition("/")[2] == text.split("://", 1)[1].partition("/")[2]  # ...not the path's
    assert not set(rest) & set("?#%@ :")
    assert "//" not in rest
    assert not rest.endswith("/")


@pytest.mark.parametrize(
    ("inner", "outer", "within"),
    [
        ("ll://acme/payments/eu/", "ll://acme/payments/", True),
        ("ll://acme/payments/", "ll://acme/payments/", True),
        ("ll://acme/", "ll://acme/payments/", False),
        ("ll://acme/paymentsx/", "ll://acme/payments/", False),
        ("spiffe://acme/payments/", "ll://acme/", False),
    ],
)
def test_namespace_within(inner: str, outer: str, within: bool) -> None:
    assert Namespace.parse(inner).within(Namespace.parse(outer)) is within


def test_consume_patterns_intersect_along_the_chain() -> None:
    trusted, chain, _ = two_deep(
        middle=scope("ll://acme/payments/", ["#"], consume=["replies.#"]),
        bottom=scope("ll://acme/payments/", ["#"], consume=["replies.billing.*", "audit"]),
    )
    verdict = verify_chain(trusted, chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert verdict.may_consume("replies.billing.eu")
    assert not verdict.may_consume("audit")  # the leaf claims it; payments never had it
    assert not verdict.may_consume("replies.other")


def test_a_credentials_file_is_read_line_by_line() -> None:
    _, chain, _ = two_deep()
    text = "# payments and billing\n\n" + "".join(c.to_text() + "\n" for c in chain)
    assert parse_credentials(text) == tuple(chain)
    with pytest.raises(ParseError, match="line 5"):
        parse_credentials(text + "letterlock-credential AAAA\n")


def test_a_chain_may_mix_suites() -> None:
    """Each link is signed in its issuer's suite (the signature length follows it)."""
    root, payments, billing = (Identity.generate(s) for s in (Suite.P384, Suite.P256, Suite.PQ))
    chain = [
        authority(root, payments, "payments", scope()),
        leaf(payments, billing, "ll://acme/payments/billing", scope()),
    ]
    assert [len(c.signature) for c in chain] == [96, 64]
    assert [Credential.parse(c.encoded) for c in chain] == chain
    verdict = verify_chain(anchor(root), chain, now=NOW)
    assert isinstance(verdict, Chain)
    assert verdict.sender == billing.public
