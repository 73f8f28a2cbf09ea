"""letterlock.trust: the receiver's trust policies (the interface is :mod:`letterlock.core.trust`).

Pins (a known-senders file) today; certificates and authorities, a threshold-signed root,
revocation snapshots and X.509 will be further policies here, combined with
:class:`FirstKnown`.
"""

from letterlock.trust.combine import FirstKnown, OwnIdentities
from letterlock.trust.pins import Pin, Pins

__all__ = ["FirstKnown", "OwnIdentities", "Pin", "Pins"]
