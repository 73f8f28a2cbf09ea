"""letterlock.trust: the receiver's trust policies (the interface is :mod:`letterlock.core.trust`).

Pins (a known-senders file) and :class:`Authorities` (scoped credentials chained to an
:class:`Anchor`, ``docs/spec/credentials.md``); a threshold-signed root, revocation snapshots and
X.509 will be further policies here, combined with :class:`FirstKnown`.
"""

from letterlock.trust.authorities import Authorities
from letterlock.trust.combine import FirstKnown, OwnIdentities
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
from letterlock.trust.pins import Pin, Pins
from letterlock.trust.scope import ScopePattern, covers

__all__ = [
    "Anchor",
    "Authorities",
    "Chain",
    "ChainRefusal",
    "Credential",
    "FirstKnown",
    "Kind",
    "OwnIdentities",
    "Pin",
    "Pins",
    "Scope",
    "ScopePattern",
    "Why",
    "covers",
    "issue",
    "parse_credentials",
    "verify_chain",
]
