"""letterlock.trust: the receiver's trust policies (the interface is :mod:`letterlock.core.trust`).

Pins (a known-senders file) and :class:`Authorities` (scoped credentials chained to an
:class:`Anchor`, ``docs/spec/credentials.md``); a threshold-signed root, revocation snapshots and
X.509 will be further policies here, combined with :class:`FirstKnown`. :class:`Rules` puts
policy rules over any of them (deny by default; ``docs/policy.md``).
"""

from letterlock.trust.authorities import Authorities
from letterlock.trust.combine import DenyRevokedPins, FirstKnown, OwnIdentities
from letterlock.trust.contacts import Contact, Contacts, Source
from letterlock.trust.credentials import (
    Anchor,
    Chain,
    ChainRefusal,
    Credential,
    Kind,
    Scope,
    Why,
    issue,
    parse_credentials,
    verify_chain,
)
from letterlock.trust.delegation import DelegatedSigners, delegated
from letterlock.trust.pins import Pin, PinRefusal, Pins, PinWhy, Rotation, sign_rotation
from letterlock.trust.policy_file import parse_policy
from letterlock.trust.rules import PrincipalPattern, Rule, Rules, Verdict
from letterlock.trust.scope import ScopePattern, covers, overlaps

__all__ = [
    "Anchor",
    "Authorities",
    "Chain",
    "ChainRefusal",
    "Contact",
    "Contacts",
    "Credential",
    "DelegatedSigners",
    "DenyRevokedPins",
    "FirstKnown",
    "Kind",
    "OwnIdentities",
    "Pin",
    "PinRefusal",
    "PinWhy",
    "Pins",
    "PrincipalPattern",
    "Rotation",
    "Rule",
    "Rules",
    "Scope",
    "ScopePattern",
    "Source",
    "Verdict",
    "Why",
    "covers",
    "delegated",
    "issue",
    "overlaps",
    "parse_credentials",
    "parse_policy",
    "sign_rotation",
    "verify_chain",
]
