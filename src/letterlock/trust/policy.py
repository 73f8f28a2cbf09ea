"""The trust interface, re-exported: it lives in :mod:`letterlock.core.trust` (below the
protocol, which calls it); ``letterlock.trust`` holds the policies that implement it."""

from letterlock.core.trust import TrustContext, TrustPolicy, VerifiedSender

__all__ = ["TrustContext", "TrustPolicy", "VerifiedSender"]
