"""letterlock: end-to-end signed and encrypted messages over brokers nobody has to trust.

Seal at the sender, open at the receiver; brokers in between see a topic and sizes::

    import letterlock
    alice = letterlock.Identity.generate(letterlock.Suite.P256)
    bob = letterlock.Identity.generate(letterlock.Suite.P256)
    sealed = letterlock.seal(b"hi", sender=alice, recipients=[bob.public], topic="orders")
    pins = letterlock.Pins(); pins.pin("alice", alice.public)
    opened = letterlock.open(sealed, identity=bob, trust=pins,
                             replay=letterlock.ReplayWindow(), topic="orders")
    opened.payload, opened.sender.name   # (b'hi', 'alice')
"""

import logging as _logging

from letterlock._api import Opener, Sealer, inspect, open, seal
from letterlock.core.envelope import DEFAULT_LIMITS, Envelope, Header, Limits, RecipientEntry
from letterlock.core.keys import Identity, PublicIdentity, format_fingerprint
from letterlock.core.protocol import Opened, Padding
from letterlock.core.replay import AddResult, MemoryReplayStore, ReplayStore, ReplayWindow
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import TrustContext, TrustPolicy, VerifiedSender
from letterlock.errors import (
    KeyStoreError,
    LetterlockError,
    Reason,
    Rejected,
    StoreError,
    TransportError,
    UsageError,
)
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.trust.pins import Pin, Pins

__version__ = "0.1.0"

_logging.getLogger("letterlock").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_LIMITS",
    "AddResult",
    "Envelope",
    "Header",
    "Identity",
    "KeyStoreError",
    "LetterlockError",
    "Limits",
    "MemoryReplayStore",
    "Opened",
    "Opener",
    "Padding",
    "Pin",
    "Pins",
    "PublicIdentity",
    "Reason",
    "RecipientEntry",
    "Rejected",
    "ReplayStore",
    "ReplayWindow",
    "SQLiteReplayStore",
    "Sealer",
    "StoreError",
    "Suite",
    "Topics",
    "TransportError",
    "TrustContext",
    "TrustPolicy",
    "UsageError",
    "VerifiedSender",
    "format_fingerprint",
    "inspect",
    "open",
    "seal",
]
