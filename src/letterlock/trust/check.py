"""Would a sender be admitted on a topic, or on every topic of a pattern? Pure.

:func:`admit_pattern` answers ``letterlock trust check`` without a message, or with the
credential block a message carries (its sender's chain, placed only if it verifies from the
policy's own anchors, exactly as :func:`letterlock.open` places it). An exact topic is asked
exactly as :func:`letterlock.open` asks it (:meth:`TrustPolicy.admit` with that topic).
A pattern with wildcards is answered for *every* topic it matches, policy by policy:

* :class:`~letterlock.trust.Rules`: the source for the pattern, then
  :meth:`~letterlock.trust.Rules.judge_pattern` (:func:`~letterlock.trust.scope.covers`);
* :class:`~letterlock.trust.FirstKnown`: the policy that decides for the key;
* :class:`~letterlock.trust.Authorities`: a chain whose every link covers the pattern (the
  carried chain first, as :meth:`~letterlock.trust.Authorities.admit` takes it first);
* :class:`~letterlock.trust.DelegatedSigners`: its inner policy (a question about a key,
  without a message, is one about an identity key: signing keys are admitted as theirs); with
  a message's keyset, the signing key is checked against it and the inner policy asked about
  the identity it names, as :meth:`~letterlock.trust.DelegatedSigners.admit` asks;
* :class:`~letterlock.trust.status.Revocations`: its inner policy's answer, then the status
  (revocations and freshness, for a message dated now);
* :class:`~letterlock.trust.Pins`: a pin with topic patterns must cover the pattern
  (:func:`~letterlock.trust.scope.covers`); otherwise pins, like
  :class:`~letterlock.trust.OwnIdentities`, admit a key on every topic or on none, so any
  topic answers;
* any other policy (X.509 senders, one of your own) has no such question: UsageError, rather
  than an answer from one sample topic that might not hold for the others.
"""

from __future__ import annotations

import dataclasses

from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.keys import PublicIdentity
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender
from letterlock.errors import Reason, UsageError
from letterlock.trust.authorities import Authorities
from letterlock.trust.combine import DenyRevokedPins, FirstKnown, OwnIdentities
from letterlock.trust.delegation import DelegatedSigners
from letterlock.trust.pins import Pins
from letterlock.trust.rules import Rules
from letterlock.trust.scope import ScopePattern, covers
from letterlock.trust.status import Revocations
from letterlock.trust.x509_senders import X509Senders

__all__ = ["admit_pattern", "why_not_placed"]


def admit_pattern(
    policy: TrustPolicy,
    sender: PublicIdentity,
    pattern: ScopePattern,
    *,
    now: int,
    credentials: CredentialBlock | None = None,
) -> VerifiedSender | Refusal:
    """What ``policy`` says to ``sender`` publishing on every topic of ``pattern`` at ``now``,
    with the ``credentials`` a message of its carries (its chain and status version), if any."""
    if not pattern.is_exact and isinstance(policy, Pins):
        pin = policy.pin_of(sender.fingerprint)
        if pin is not None and pin.topics and not covers(pin.topics, pattern):
            return Refusal(detail=f"pin {pin.name!r} may publish on some topics of {pattern} only")
    if pattern.is_exact or isinstance(policy, Pins | OwnIdentities):
        context = TrustContext(
            topic=str(pattern),
            suite=sender.suite,
            content_type=None,
            headers={},
            created=now,
            now=now,
            status_version=0 if credentials is None else credentials.status_version,
            credentials=credentials,
        )
        return policy.admit(sender, context)
    if isinstance(policy, Rules):
        verified = admit_pattern(policy.source, sender, pattern, now=now, credentials=credentials)
        if isinstance(verified, Refusal):
            return verified
        verdict = policy.judge_pattern(verified, pattern)
        if not verdict.accepted:
            where = "" if verdict.refused_by is None else f"rule {verdict.refused_by}: "
            return Refusal(detail=where + verdict.why)
        return dataclasses.replace(verified, rule=",".join(verdict.governing))
    if isinstance(policy, DenyRevokedPins):
        denied = policy.denied(sender.fingerprint)
        if denied is not None:
            return denied
        verified = admit_pattern(policy.inner, sender, pattern, now=now, credentials=credentials)
        for key in () if isinstance(verified, Refusal) else verified.path_keys:
            denied = policy.denied(key)
            if denied is not None:
                return denied
        return verified
    if isinstance(policy, DelegatedSigners):
        if credentials is None or credentials.format is not CredentialFormat.KEYSET:
            return admit_pattern(policy.inner, sender, pattern, now=now, credentials=credentials)
        identity = policy.identity_of(sender, credentials, created=now, now=now)
        if isinstance(identity, Refusal):
            return identity
        verified = admit_pattern(policy.inner, identity, pattern, now=now)  # as open asks it
        if isinstance(verified, Refusal):
            return verified
        return policy.as_signed_by(verified, sender, identity)
    if isinstance(policy, FirstKnown):
        deciding = policy.deciding(sender.fingerprint, credentials)
        if deciding is None or policy.lookup(sender.fingerprint, credentials) != sender:
            return Refusal(reason=Reason.UNKNOWN_SENDER, detail="no policy knows this key")
        return admit_pattern(deciding, sender, pattern, now=now, credentials=credentials)
    if isinstance(policy, Authorities):
        return policy.admit_pattern(sender, pattern, now=now, credentials=credentials)
    if isinstance(policy, Revocations):
        verified = admit_pattern(policy.inner, sender, pattern, now=now, credentials=credentials)
        if isinstance(verified, Refusal):
            return verified
        return policy.judge(verified, created=now, now=now)
    raise UsageError(
        f"{type(policy).__name__} answers for single topics only: give a topic, not {pattern}"
    )


def why_not_placed(policy: TrustPolicy, key_id: bytes, credentials: CredentialBlock) -> str:
    """Why the chain ``credentials`` carries places no key ``key_id`` under ``policy``: what
    the policies that read carried chains (:class:`~letterlock.trust.Authorities`,
    :class:`~letterlock.trust.x509_senders.X509Senders`, and for a keyset
    :class:`~letterlock.trust.DelegatedSigners`) say of it, found through the
    combinators this module knows."""
    if isinstance(policy, Authorities | X509Senders):
        return policy.why_not_placed(key_id, credentials) or ""
    if isinstance(policy, DelegatedSigners) and credentials.format is CredentialFormat.KEYSET:
        return policy.why_not_placed(key_id, credentials) or ""
    inner: tuple[TrustPolicy, ...] = ()
    if isinstance(policy, Rules):
        inner = (policy.source,)
    elif isinstance(policy, DenyRevokedPins | Revocations | DelegatedSigners):
        inner = (policy.inner,)
    elif isinstance(policy, FirstKnown):
        inner = policy.policies
    for each in inner:
        why = why_not_placed(each, key_id, credentials)
        if why:
            return why
    return ""
