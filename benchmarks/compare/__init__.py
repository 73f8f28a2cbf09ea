"""Everything benchmarks/run.py measures: letterlock, the pyca floor, and the peers.

Each module holds one contender or one family of them (see :mod:`compare.base` for the
interface). Peers import their library only when set up, so a missing one is reported by its
``available()`` check instead of breaking the run.
"""

from __future__ import annotations

from compare import aws_encryption_sdk, floor, gpg, jwcrypto, letterlock, pynacl, tink
from compare.base import Case, Contender, OpenFailed, payload_of
from letterlock import Suite

__all__ = ["PEERS", "Case", "Contender", "OpenFailed", "contenders", "payload_of"]

PEERS = (
    gpg.CONTENDER,
    pynacl.CONTENDER,
    tink.CONTENDER,
    jwcrypto.CONTENDER,
    aws_encryption_sdk.CONTENDER,
)


def contenders(suites: list[Suite]) -> list[Contender]:
    """letterlock and its floors in each of ``suites``, then every peer."""
    return [
        *letterlock.contenders(suites),
        *floor.contenders([s.label for s in suites]),
        *PEERS,
    ]
