"""A trust policy over X.509 sender chains the receiver already holds. Pure.

:class:`X509Senders` is a :class:`~letterlock.core.trust.TrustPolicy` over an immutable snapshot:
company CAs (an :class:`~letterlock.trust.x509.AnchorSet`) and sender chains fetched out of band
by a source (a chain directory beside the status documents: ``docs/spec/x509.md`` section 9,
the way that needs no change to the envelope). ``lookup`` places a key id by the identity its
leaf binds; ``admit`` verifies the chain at the message's ``now`` and checks the topic against
the path's scopes, answering as ``Via.X509`` with the principal as the sender's name.

The snapshot keeps only chains that verified when it was made. Verified chains are cached: a
chain verified at time ``t0`` stays valid for every ``now`` from ``t0`` to the earliest
notAfter of its path (each certificate was valid at ``t0`` and stays so until its notAfter),
so later messages cost a comparison, not a path validation. A clock that moves backwards
before ``t0`` verifies again.

Chains carried in the envelope (``docs/spec/envelope-v1.md`` section 4.1, ``x509.md``
section 9): ``lookup(key_id, credentials)`` places an unseen key only if the carried chain
verifies against this policy's own anchors and its leaf binds exactly ``key_id``; the
verified chain is cached by the block's ``chain_digest`` (at most :data:`MAX_CARRIED` chains,
oldest first out, refusals included so that a repeated bad chain costs a hash), and every
message re-checks that its ``now`` lies within the path's validity before ``admit`` answers.
Topic decisions on carried chains are remembered with the chain's path, at most
:data:`MAX_CARRIED_TOPICS` for all carried chains together: anyone can make endless distinct
blocks that verify from one real chain (an unused certificate appended), and forged messages
reach ``admit`` before their signature is checked.
A carried chain ends at one of the receiver's anchors, for a principal in that anchor's
namespace, with the scopes of the path: it can narrow, never widen, and never makes an anchor.
Revocation is a status policy's business (:class:`~letterlock.trust.Revocations`, which asks
on every message).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import Reason
from letterlock.trust.x509 import (
    AnchorSet,
    Refused,
    X509Refusal,
    X509Sender,
    verify_carried,
    verify_chain,
)

__all__ = ["MAX_CARRIED", "MAX_CARRIED_TOPICS", "MAX_TOPIC_DECISIONS", "X509Senders"]

Chain = tuple[bytes, ...]
_TOPICS: Final = 1024
#: The most carried chains (verified or refused) remembered, by their block's digest.
MAX_CARRIED: Final = 1024
#: The most topic decisions remembered for carried chains, all of them together.
MAX_CARRIED_TOPICS: Final = 8192
#: The most topic decisions remembered for the snapshot's chains, all of them together.
MAX_TOPIC_DECISIONS: Final = 8192
#: A carried chain that verified: (from when, the sender, as open reports it, topic decisions
#: on its path)
_Verified = tuple[int, X509Sender, VerifiedSender, dict[str, bool]]


class X509Senders:
    """Senders certified by company CAs, from chains (leaf DER first) the receiver holds.

    ``now`` is when the snapshot is made: only chains that verify then are kept, so a chain
    planted in the directory by someone without a trusted CA's signature never makes a key
    "known" (which, under :class:`~letterlock.trust.FirstKnown`, would let it shadow a pin).
    The others are listed in :attr:`refused` for the source's logs. Several chains may bind
    one identity (a renewed certificate): the first that verifies at a message's time decides.
    """

    __slots__ = (
        "_anchors",
        "_by_key",
        "_carried",
        "_carried_topics",
        "_topic_count",
        "_topics",
        "_verified",
        "refused",
    )

    def __init__(self, anchors: AnchorSet, chains: Iterable[Sequence[bytes]], *, now: int) -> None:
        self._anchors = anchors
        self._by_key: dict[bytes, tuple[PublicIdentity, list[Chain]]] = {}
        #: chain -> (the time it verified at, the sender it certifies, as open reports it)
        self._verified: dict[Chain, tuple[int, X509Sender, VerifiedSender]] = {}
        #: chain -> topic -> allowed (scopes never change)
        self._topics: dict[Chain, dict[str, bool]] = {}
        self._topic_count = 0  #: the decisions ``_topics`` holds, all chains together
        #: carried chain digest -> (as _verified, and its topic decisions) or why it was refused
        self._carried: dict[bytes, _Verified | Refused] = {}
        #: how many topic decisions the carried chains hold together
        self._carried_topics = 0
        #: the chains left out, each with why
        self.refused: list[tuple[Chain, Refused]] = []
        for given in chains:
            chain = tuple(bytes(der) for der in given)
            result = (
                self._verify(chain, now)
                if chain
                else Refused(reason=X509Refusal.MALFORMED, detail="empty chain")
            )
            if isinstance(result, Refused):
                self.refused.append((chain, result))
                continue
            identity = result[0].identity
            self._by_key.setdefault(identity.fingerprint, (identity, []))[1].append(chain)

    def lookup(
        self, key_id: bytes, credentials: CredentialBlock | None = None
    ) -> PublicIdentity | None:
        if credentials is not None and credentials.format is CredentialFormat.X509:
            carried = self._carried_chain(credentials)
            if not isinstance(carried, Refused) and carried[1].key_id == key_id:
                return carried[1].identity
        found = self._by_key.get(key_id)
        return None if found is None else found[0]

    def why_not_placed(self, key_id: bytes, credentials: CredentialBlock) -> str | None:
        """Why the X.509 chain ``credentials`` carries does not place ``key_id`` (None: it
        does, or the block holds no X.509 chain): for ``letterlock trust check --message``."""
        if credentials.format is not CredentialFormat.X509:
            return None
        carried = self._carried_chain(credentials)
        if isinstance(carried, Refused):
            return f"x509 {carried.reason.value}: {carried.detail}"
        return None if carried[1].key_id == key_id else "it certifies another key"

    def _carried_chain(self, block: CredentialBlock) -> _Verified | Refused:
        """The carried chain of ``block`` verified at its ``t0`` (cached by its digest)."""
        digest = block.chain_digest
        known = self._carried.get(digest)
        if known is None:
            result = verify_carried(self._anchors, block.items[0], block.items[1:])
            if isinstance(result, Refused):
                known = result
            else:
                t0, sender = result
                known = (t0, sender, _reported(sender), {})
            if len(self._carried) >= MAX_CARRIED:
                oldest = self._carried.pop(next(iter(self._carried)))
                if not isinstance(oldest, Refused):
                    self._carried_topics -= len(oldest[3])
            self._carried[digest] = known
        return known

    def _admit_carried(
        self, block: CredentialBlock, sender: PublicIdentity, context: TrustContext
    ) -> VerifiedSender | Refused | None:
        """The decision on a carried chain for ``sender`` (None: it does not certify it)."""
        known = self._carried_chain(block)
        if isinstance(known, Refused) or (
            known[1].identity is not sender and known[1].identity != sender
        ):
            return None
        t0, result, reported, topics = known
        now = context.now
        if not t0 <= now <= result.not_after:  # outside the interval it verified for
            again = verify_chain(self._anchors, block.items[0], block.items[1:], at=now)
            if isinstance(again, Refused):
                return again
            if (again.chain, again.scopes) != (result.chain, result.scopes):  # another path
                self._carried_topics -= len(topics)
                reported, topics = _reported(again), {}
            self._carried[block.chain_digest] = (now, again, reported, topics)
            result = again
        allowed = topics.get(context.topic)
        if allowed is None:
            if self._carried_topics >= MAX_CARRIED_TOPICS:  # the topic is the sender's claim
                for entry in self._carried.values():
                    if not isinstance(entry, Refused):
                        entry[3].clear()
                self._carried_topics = 0
            allowed = topics[context.topic] = result.may_publish(context.topic)
            self._carried_topics += 1
        if not allowed:
            return Refused(reason=X509Refusal.SCOPE, detail=context.topic)
        return reported

    def verified(self, chain: Chain, now: int) -> X509Sender | Refused:
        """The verified sender of one chain at ``now`` (cached; see the module docstring)."""
        found = self._verify(chain, now)
        return found if isinstance(found, Refused) else found[0]

    def _verify(self, chain: Chain, now: int) -> tuple[X509Sender, VerifiedSender] | Refused:
        cached = self._verified.get(chain)
        if cached is not None and cached[0] <= now <= cached[1].not_after:
            return cached[1], cached[2]
        result = verify_chain(self._anchors, chain[0], chain[1:], at=now)
        if isinstance(result, Refused):
            return result
        if cached is not None and (cached[1].chain, cached[1].scopes) != (
            result.chain,
            result.scopes,
        ):  # another path (a re-issued anchor certificate): the old one's topics do not hold
            self._topic_count -= len(self._topics.pop(chain, {}))
        reported = _reported(result)
        self._verified[chain] = (now, result, reported)  # one entry per chain of the snapshot
        return result, reported

    def _may_publish(self, chain: Chain, sender: X509Sender, topic: str) -> bool:
        """:meth:`X509Sender.may_publish`, remembered per chain for up to _TOPICS topics."""
        known = self._topics.setdefault(chain, {})
        allowed = known.get(topic)
        if allowed is None:
            if len(known) >= _TOPICS:  # the topic is the sender's claim: bound what it fills
                self._topic_count -= len(known)
                known.clear()
            if self._topic_count >= MAX_TOPIC_DECISIONS:  # and across chains
                for each in self._topics.values():
                    each.clear()
                self._topic_count = 0
            allowed = known[topic] = sender.may_publish(topic)
            self._topic_count += 1
        return allowed

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        refusals: list[Refused] = []
        block = context.credentials
        if block is not None and block.format is CredentialFormat.X509:
            carried = self._admit_carried(block, sender, context)
            if isinstance(carried, VerifiedSender):
                return carried
            if carried is not None:
                refusals.append(carried)
        found = self._by_key.get(sender.fingerprint)
        if not refusals and (found is None or (found[0] is not sender and found[0] != sender)):
            return Refusal(reason=Reason.UNKNOWN_SENDER, detail="no X.509 chain for this key")
        if found is None or (found[0] is not sender and found[0] != sender):
            found = (sender, [])
        for chain in found[1]:
            result = self._verify(chain, context.now)
            if isinstance(result, Refused):
                refusals.append(result)
            elif not self._may_publish(chain, result[0], context.topic):
                refusals.append(Refused(reason=X509Refusal.SCOPE, detail=context.topic))
            else:
                return result[1]
        detail = "; ".join(f"x509 {r.reason.value}: {r.detail}" for r in refusals)
        # a certificate not yet valid becomes valid: retry, do not dead-letter
        transient = all(r.reason is X509Refusal.NOT_YET_VALID for r in refusals)
        return Refusal(reason=Reason.UNTRUSTED, detail=detail, transient=transient)


def _reported(result: X509Sender) -> VerifiedSender:
    """The verified sender ``open`` reports for a chain: the principal as its name, and as its
    authorities the receiver's anchor name, then the subjects of the path's intermediates from
    the anchor down; as its path keys the key ids of the anchor and each intermediate, from the
    anchor down."""
    identity = result.identity
    return VerifiedSender(
        name=result.principal,
        fingerprint=identity.fingerprint_text,
        key_id=identity.fingerprint,
        suite=identity.suite,
        via=Via.X509,
        principal=result.principal,
        authorities=(result.anchor, *(link.subject for link in reversed(result.chain[1:-1]))),
        path_keys=tuple(link.key_id for link in reversed(result.chain[1:])),
    )
