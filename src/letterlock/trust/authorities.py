"""The :class:`Authorities` trust policy: senders certified by a chain from an anchor.

The policy holds an immutable snapshot: the anchors (root authorities the receiver trusts, each
with the scope the receiver gives it) and the credentials a source has fetched. For a sender
key it finds the candidate chains in the snapshot (the key's principal credentials, then
authority credentials up to an anchor; at most :data:`MAX_CANDIDATES` chains, each at most
:data:`~letterlock.trust.credentials.MAX_CHAIN` long, so a crafted snapshot cannot make it
search for long), verifies each at the message's ``now`` with
:func:`~letterlock.trust.credentials.verify_chain`, and admits the first whose effective
publish scope matches the signed topic. A credential's word for its own scope is never taken:
the scope is the intersection along the chain.

Cost: a chain that verified is remembered with the times between which every link is valid
(nothing else in a verification depends on time), so the next message from the same sender
costs a dictionary look-up and a comparison of ``now`` with those times; the decision on each
topic is remembered per chain too (at most :data:`MAX_TOPICS` of them, and at most
:data:`MAX_TOPIC_DECISIONS` for all chains together). Outside those times the
chain is verified again, with the signatures remembered by the credentials' bytes
(:class:`~letterlock.trust.credentials.VerifiedSignatures`). The memos are functions of the
snapshot, so they are bounded by it.

Refusals: no chain to an anchor is ``unknown_sender``, transient (its authority's credential
may arrive later); a chain that is not valid yet is ``untrusted``, transient; every other
failure (signature, expiry, depth, namespace, topic) is ``untrusted``. The detail starts with
the :class:`~letterlock.trust.credentials.Why` code; :meth:`Authorities.check` returns the
typed verdict itself.

Carried chains (``docs/spec/envelope-v1.md`` section 4.1, format 1): a message may carry its
sender's chain, the principal's credential first, then each authority's up to (not including)
one of the receiver's anchors. ``lookup(key_id, credentials)`` places an unseen key only if that
chain verifies from one of this snapshot's anchors (at the latest ``not_before`` on it: nothing
else in a verification depends on time) and its principal credential certifies exactly
``key_id``; ``admit`` re-checks every lifetime against the message's ``now`` and recomputes the
scope along the chain. Carried chains are cached by the block's ``chain_digest``, at most
:data:`MAX_CARRIED` of them (oldest out first, refusals included), and their topic decisions
at most :data:`MAX_CARRIED_TOPICS` for all of them together (forged messages reach ``admit``
before their signature is checked, each with a topic of its choice). A carried credential never
becomes an anchor, and the anchor's own scope bounds it as it bounds the snapshot's chains.

Pure: no I/O, and ``now`` comes from the message's :class:`~letterlock.core.trust.TrustContext`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import ParseError, Reason
from letterlock.trust.credentials import (
    MAX_CHAIN,
    Anchor,
    Chain,
    ChainRefusal,
    Credential,
    Kind,
    VerifiedSignatures,
    Why,
    verify_chain,
)
from letterlock.trust.scope import ScopePattern

__all__ = [
    "MAX_CANDIDATES",
    "MAX_CARRIED",
    "MAX_CARRIED_TOPICS",
    "MAX_TOPIC_DECISIONS",
    "Authorities",
]

#: The most candidate chains tried for one sender key.
MAX_CANDIDATES: Final = 16
#: The most topic decisions remembered per chain (then it starts again empty).
MAX_TOPICS: Final = 1024
#: The most topic decisions remembered for the snapshot's chains, all of them together (the
#: topic is the sender's claim, and forged messages reach ``admit`` before their signature).
MAX_TOPIC_DECISIONS: Final = 8192
#: The most carried chains (verified or refused) remembered, by their block's digest.
MAX_CARRIED: Final = 1024
#: The most topic decisions remembered for carried chains, all of them together.
MAX_CARRIED_TOPICS: Final = 8192

#: A carried chain that verified: (its chain, as open reports it, valid from, valid until)
_Carried = tuple[Chain, VerifiedSender, int, int]


class Authorities:
    """A :class:`~letterlock.core.trust.TrustPolicy` over anchors and credentials (a snapshot).

    ``Authorities(anchors, credentials)``; replacing the snapshot means building a new one.
    """

    __slots__ = (
        "_anchors",
        "_by_subject",
        "_carried",
        "_carried_topics",
        "_chains",
        "_leaves",
        "_paths",
        "_topic_count",
        "_topics",
        "_verified",
    )

    def __init__(self, anchors: Iterable[Anchor], credentials: Iterable[Credential]) -> None:
        self._anchors: dict[bytes, tuple[Anchor, ...]] = {}
        for anchor in sorted(anchors, key=lambda a: a.name):
            key = anchor.identity.fingerprint
            self._anchors[key] = (*self._anchors.get(key, ()), anchor)
        self._leaves: dict[bytes, tuple[Credential, ...]] = {}
        self._verified = VerifiedSignatures()
        # Memos of pure functions of the snapshot (so bounded by it): the candidate chains of
        # a key, and each candidate that verified with the times between which it stays valid.
        self._paths: dict[bytes, tuple[tuple[Anchor, tuple[Credential, ...]], ...]] = {}
        self._chains: dict[tuple[bytes, int], tuple[Chain, VerifiedSender, int, int]] = {}
        # ... and for each, the first link refusing a topic (None: all allow it), per topic seen
        self._topics: dict[tuple[bytes, int], dict[str, int | None]] = {}
        self._topic_count = 0  #: the decisions ``_topics`` holds, all chains together
        #: carried chain digest -> the chain verified, or why not
        self._carried: dict[bytes, _Carried | ChainRefusal] = {}
        #: (carried chain digest, topic) -> the first link refusing it (a carried chain's
        #: credentials and anchor are fixed by its bytes and the snapshot, so is the decision)
        self._carried_topics: dict[tuple[bytes, str], int | None] = {}
        self._by_subject: dict[bytes, tuple[Credential, ...]] = {}
        for credential in sorted(set(credentials), key=lambda c: c.encoded):
            index = self._leaves if credential.kind is Kind.PRINCIPAL else self._by_subject
            key = credential.subject_identity.fingerprint
            index[key] = (*index.get(key, ()), credential)

    def candidates(self, key_id: bytes) -> Iterator[tuple[Anchor, tuple[Credential, ...]]]:
        """Chains in the snapshot from an anchor to ``key_id`` (top down), not yet verified."""
        found = 0
        stack: list[tuple[Credential, ...]] = [
            (leaf,) for leaf in reversed(self._leaves.get(bytes(key_id), ()))
        ]
        while stack and found < MAX_CANDIDATES:
            path = stack.pop()  # bottom up
            issuer = path[-1].issuer_key_id
            for anchor in self._anchors.get(issuer, ()):
                found += 1
                yield anchor, tuple(reversed(path))
                if found >= MAX_CANDIDATES:
                    return
            if len(path) < MAX_CHAIN:
                for parent in reversed(self._by_subject.get(issuer, ())):
                    if parent not in path:
                        stack.append((*path, parent))

    def check(self, sender: PublicIdentity, topic: str, *, now: int) -> Chain | ChainRefusal:
        """The first chain under which ``sender`` may publish on ``topic`` at ``now``, or
        the refusal of the first candidate (``NO_CHAIN`` if there is none)."""
        verdict = self._check(sender, topic, now)
        return verdict[0] if isinstance(verdict, tuple) else verdict

    def _verified_chain(
        self,
        sender: PublicIdentity,
        index: int,
        anchor: Anchor,
        path: tuple[Credential, ...],
        now: int,
    ) -> tuple[Chain, VerifiedSender] | ChainRefusal:
        """Candidate ``index`` of ``sender`` verified at ``now``: the memo while every
        lifetime on it still holds (nothing else in a verification depends on time)."""
        memo = self._chains.get((sender.fingerprint, index))
        if memo is not None and memo[2] <= now < memo[3]:
            return memo[0], memo[1]
        verdict = verify_chain(anchor, path, now=now, verified=self._verified)
        if not isinstance(verdict, Chain):
            return verdict
        if verdict.sender != sender:
            return ChainRefusal(why=Why.NOT_A_CHAIN, detail="another key of this id")
        verified = _reported(verdict)
        valid_from = max(c.not_before for c in path)
        self._chains[sender.fingerprint, index] = (verdict, verified, valid_from, verdict.not_after)
        return verdict, verified

    def why_not_placed(self, key_id: bytes, credentials: CredentialBlock) -> str | None:
        """Why the chain ``credentials`` carries does not place ``key_id`` (None: it does, or
        the block holds no letterlock chain): for ``letterlock trust check --message``."""
        if credentials.format is not CredentialFormat.LETTERLOCK:
            return None
        carried = self._carried_chain(credentials)
        if isinstance(carried, ChainRefusal):
            where = "" if carried.link is None else f" (link {carried.link})"
            return f"{carried.why.value}{where}: {carried.detail}"
        return None if carried[0].sender.fingerprint == key_id else "it certifies another key"

    def _carried_chain(self, block: CredentialBlock) -> _Carried | ChainRefusal:
        """The chain ``block`` carries, verified from one of the anchors (cached by digest)."""
        known = self._carried.get(block.chain_digest)
        if known is None:
            known = self._verify_carried(block)
            if len(self._carried) >= MAX_CARRIED:
                del self._carried[next(iter(self._carried))]
            self._carried[block.chain_digest] = known
        return known

    def _verify_carried(self, block: CredentialBlock) -> _Carried | ChainRefusal:
        try:  # leaf first in the block; top down for verify_chain
            path = tuple(Credential.parse(item) for item in reversed(block.items))
        except ParseError as exc:
            return ChainRefusal(why=Why.NOT_A_CHAIN, detail=f"carried credential: {exc}")
        valid_from = max(c.not_before for c in path)
        first: ChainRefusal | None = None
        for anchor in self._anchors.get(path[0].issuer_key_id, ()):
            verdict = verify_chain(anchor, path, now=valid_from, verified=self._verified)
            if isinstance(verdict, Chain):
                return verdict, _reported(verdict), valid_from, verdict.not_after
            first = first or verdict
        return first or ChainRefusal(why=Why.NO_CHAIN, detail="the carried chain names no anchor")

    def _check_carried(
        self, block: CredentialBlock, sender: PublicIdentity, topic: str, now: int
    ) -> tuple[Chain, VerifiedSender] | ChainRefusal | None:
        """The decision on a carried chain for ``sender`` (None: it does not certify it)."""
        known = self._carried_chain(block)
        if isinstance(known, ChainRefusal) or known[0].sender != sender:
            return None
        chain, verified, valid_from, not_after = known
        if not valid_from <= now < not_after:  # a lifetime on the chain does not hold now
            verdict = verify_chain(
                self._anchor_of(chain), chain.credentials, now=now, verified=self._verified
            )
            if not isinstance(verdict, Chain):
                return verdict
        key = (block.chain_digest, topic)
        if key in self._carried_topics:
            link = self._carried_topics[key]
        else:
            link = chain.first_refusing_link(topic)
            if len(self._carried_topics) >= MAX_CARRIED_TOPICS:  # the topic is the sender's claim
                self._carried_topics.clear()
            self._carried_topics[key] = link
        if link is None:
            return chain, verified
        return ChainRefusal(
            why=Why.TOPIC_OUTSIDE_SCOPE,
            link=link - 1 if link else None,
            detail=f"{topic!r} is outside {_scope_of(link)} (carried chain)",
        )

    def _carried_covering(
        self, block: CredentialBlock, sender: PublicIdentity, pattern: ScopePattern, now: int
    ) -> VerifiedSender | ChainRefusal | None:
        """:meth:`_check_carried` for every topic of ``pattern`` (no memo: not on the open
        path)."""
        known = self._carried_chain(block)
        if isinstance(known, ChainRefusal) or known[0].sender != sender:
            return None
        chain, verified, valid_from, not_after = known
        if not valid_from <= now < not_after:
            verdict = verify_chain(
                self._anchor_of(chain), chain.credentials, now=now, verified=self._verified
            )
            if not isinstance(verdict, Chain):
                return verdict
        link = chain.first_link_not_covering(pattern)
        if link is None:
            return verified
        return ChainRefusal(
            why=Why.TOPIC_OUTSIDE_SCOPE,
            link=link - 1 if link else None,
            detail=f"{str(pattern)!r} is not within {_scope_of(link)} (carried chain)",
        )

    def _anchor_of(self, chain: Chain) -> Anchor:
        issuer = chain.credentials[0].issuer_key_id
        return next(a for a in self._anchors[issuer] if a.name == chain.anchor)

    def _check(
        self, sender: PublicIdentity, topic: str, now: int
    ) -> tuple[Chain, VerifiedSender] | ChainRefusal:
        paths = self._paths.get(sender.fingerprint)
        if paths is None:
            paths = self._paths[sender.fingerprint] = tuple(self.candidates(sender.fingerprint))
        first: ChainRefusal | None = None
        for index, (anchor, path) in enumerate(paths):
            verdict = self._verified_chain(sender, index, anchor, path, now)
            if isinstance(verdict, tuple):
                chain = verdict[0]
                seen = self._topics.setdefault((sender.fingerprint, index), {})
                if topic in seen:
                    link = seen[topic]
                else:
                    link = chain.first_refusing_link(topic)
                    if len(seen) >= MAX_TOPICS:
                        self._topic_count -= len(seen)
                        seen.clear()
                    if self._topic_count >= MAX_TOPIC_DECISIONS:
                        for each in self._topics.values():
                            each.clear()
                        self._topic_count = 0
                    seen[topic] = link
                    self._topic_count += 1
                if link is None:
                    return verdict
                issuer = chain.authorities[min(link, len(chain.authorities) - 1)]
                verdict = ChainRefusal(
                    why=Why.TOPIC_OUTSIDE_SCOPE,
                    link=link - 1 if link else None,
                    detail=f"{topic!r} is outside {_scope_of(link)} (under {issuer})",
                )
            first = first or verdict
        return first or ChainRefusal(why=Why.NO_CHAIN, detail="no credential chain to an anchor")

    def admit_pattern(
        self,
        sender: PublicIdentity,
        pattern: ScopePattern,
        *,
        now: int,
        credentials: CredentialBlock | None = None,
    ) -> VerifiedSender | Refusal:
        """:meth:`admit` for every topic of ``pattern`` at once (``letterlock trust check`` on
        a listen pattern): the first chain each of whose links covers the whole pattern
        (:meth:`~letterlock.trust.credentials.Chain.first_link_not_covering`), the chain
        ``credentials`` carries first, as :meth:`admit` takes it. Not on the open path:
        covering is exponential in the worst case."""
        if credentials is not None and credentials.format is CredentialFormat.LETTERLOCK:
            carried = self._carried_covering(credentials, sender, pattern, now)
            if isinstance(carried, VerifiedSender):
                return carried
            if carried is not None and sender.fingerprint not in self._leaves:
                return self._refusal(carried)
        paths = self._paths.get(sender.fingerprint)
        if paths is None:
            paths = self._paths[sender.fingerprint] = tuple(self.candidates(sender.fingerprint))
        first: ChainRefusal | None = None
        for index, (anchor, path) in enumerate(paths):
            verdict = self._verified_chain(sender, index, anchor, path, now)
            if isinstance(verdict, tuple):
                link = verdict[0].first_link_not_covering(pattern)
                if link is None:
                    return verdict[1]
                verdict = ChainRefusal(
                    why=Why.TOPIC_OUTSIDE_SCOPE,
                    link=link - 1 if link else None,
                    detail=f"{str(pattern)!r} is not within {_scope_of(link)}",
                )
            first = first or verdict
        return self._refusal(
            first or ChainRefusal(why=Why.NO_CHAIN, detail="no credential chain to an anchor")
        )

    # TrustPolicy ----------------------------------------------------------------------

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        if credentials is not None and credentials.format is CredentialFormat.LETTERLOCK:
            carried = self._carried_chain(credentials)
            if not isinstance(carried, ChainRefusal) and carried[0].sender.fingerprint == key_id:
                return carried[0].sender
        leaves = self._leaves.get(bytes(key_id))
        return leaves[0].subject_identity if leaves else None

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        block = context.credentials
        if block is not None and block.format is CredentialFormat.LETTERLOCK:
            carried = self._check_carried(block, sender, context.topic, context.now)
            if isinstance(carried, tuple):
                return carried[1]
            if carried is not None and sender.fingerprint not in self._leaves:
                return self._refusal(carried)
        verdict = self._check(sender, context.topic, context.now)
        return verdict[1] if isinstance(verdict, tuple) else self._refusal(verdict)

    @staticmethod
    def _refusal(verdict: ChainRefusal) -> Refusal:
        reason = Reason.UNKNOWN_SENDER if verdict.why is Why.NO_CHAIN else Reason.UNTRUSTED
        where = "" if verdict.link is None else f" (link {verdict.link})"
        return Refusal(
            reason=reason,
            detail=f"{verdict.why}{where}: {verdict.detail}",
            transient=verdict.why.transient,
        )


def _reported(chain: Chain) -> VerifiedSender:
    """The verified sender ``open`` reports for a chain (the principal as its name)."""
    sender = chain.sender
    return VerifiedSender(
        name=str(chain.principal),
        fingerprint=sender.fingerprint_text,
        key_id=sender.fingerprint,
        suite=sender.suite,
        via=Via.AUTHORITY,
        principal=str(chain.principal),
        authorities=chain.authorities,
        roles=chain.roles,
        path_keys=tuple(credential.issuer_key_id for credential in chain.credentials),
    )


def _scope_of(link: int) -> str:
    """Which scope refused, for a refusal's detail: ``link`` 0 is the receiver's anchor, ``n``
    the chain's credential ``n - 1`` (the numbering of :class:`ChainRefusal`'s ``link``)."""
    return "the anchor's scope" if link == 0 else f"the scope of credential {link - 1}"
