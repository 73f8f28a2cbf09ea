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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, VerifiedSender, Via
from letterlock.errors import Reason
from letterlock.trust.x509 import (
    AnchorSet,
    Refused,
    X509Refusal,
    X509Sender,
    verify_chain,
)

__all__ = ["X509Senders"]

Chain = tuple[bytes, ...]
_TOPICS: Final = 1024


class X509Senders:
    """Senders certified by company CAs, from chains (leaf DER first) the receiver holds.

    ``now`` is when the snapshot is made: only chains that verify then are kept, so a chain
    planted in the directory by someone without a trusted CA's signature never makes a key
    "known" (which, under :class:`~letterlock.trust.FirstKnown`, would let it shadow a pin).
    The others are listed in :attr:`refused` for the source's logs. Several chains may bind
    one identity (a renewed certificate): the first that verifies at a message's time decides.
    """

    __slots__ = ("_anchors", "_by_key", "_topics", "_verified", "refused")

    def __init__(self, anchors: AnchorSet, chains: Iterable[Sequence[bytes]], *, now: int) -> None:
        self._anchors = anchors
        self._by_key: dict[bytes, tuple[PublicIdentity, list[Chain]]] = {}
        #: chain -> (the time it verified at, the sender it certifies, as open reports it)
        self._verified: dict[Chain, tuple[int, X509Sender, VerifiedSender]] = {}
        #: chain -> topic -> allowed (the scopes do not change while the snapshot lives)
        self._topics: dict[Chain, dict[str, bool]] = {}
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

    def lookup(self, key_id: bytes) -> PublicIdentity | None:
        found = self._by_key.get(key_id)
        return None if found is None else found[0]

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
        identity = result.identity
        reported = VerifiedSender(
            name=result.principal,
            fingerprint=identity.fingerprint_text,
            key_id=identity.fingerprint,
            suite=identity.suite,
            via=Via.X509,
            principal=result.principal,
        )
        self._verified[chain] = (now, result, reported)  # one entry per chain of the snapshot
        return result, reported

    def _may_publish(self, chain: Chain, sender: X509Sender, topic: str) -> bool:
        """:meth:`X509Sender.may_publish`, remembered per chain for up to _TOPICS topics."""
        known = self._topics.setdefault(chain, {})
        allowed = known.get(topic)
        if allowed is None:
            if len(known) >= _TOPICS:  # the topic is the sender's claim: bound what it fills
                known.clear()
            allowed = known[topic] = sender.may_publish(topic)
        return allowed

    def admit(self, sender: PublicIdentity, context: TrustContext) -> VerifiedSender | Refusal:
        found = self._by_key.get(sender.fingerprint)
        if found is None or (found[0] is not sender and found[0] != sender):
            return Refusal(reason=Reason.UNKNOWN_SENDER, detail="no X.509 chain for this key")
        refusals: list[Refused] = []
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
