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
from letterlock._keyring import KeysetOpener
from letterlock.core.carriage import CredentialBlock, CredentialFormat
from letterlock.core.envelope import DEFAULT_LIMITS, Envelope, Header, Limits, RecipientEntry
from letterlock.core.keys import (
    Decapsulator,
    Identity,
    PrivateKeys,
    PublicIdentity,
    Signer,
    format_fingerprint,
)
from letterlock.core.protocol import Opened, Padding, Received, SealKeywords, SealOptions
from letterlock.core.replay import (
    AddResult,
    Claim,
    MemoryReplayStore,
    ReplayStore,
    ReplayWindow,
)
from letterlock.core.suites import Suite
from letterlock.core.topics import Topics
from letterlock.core.trust import Refusal, TrustContext, TrustPolicy, VerifiedSender, Via
from letterlock.errors import (
    KeyStoreError,
    LetterlockError,
    ParseError,
    Reason,
    Rejected,
    StoreError,
    TransportError,
    UsageError,
)
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.trust import FirstKnown, OwnIdentities, Pin, Pins
from letterlock.trust.keysets import Keyset, SignedKeyset, sign_keyset

__version__ = "0.1.0"

_logging.getLogger("letterlock").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_LIMITS",
    "AddResult",
    "Claim",
    "CredentialBlock",
    "CredentialFormat",
    "Decapsulator",
    "Envelope",
    "FirstKnown",
    "Header",
    "Identity",
    "KeyStoreError",
    "Keyset",
    "KeysetOpener",
    "LetterlockError",
    "Limits",
    "MemoryReplayStore",
    "Opened",
    "Opener",
    "OwnIdentities",
    "Padding",
    "ParseError",
    "Pin",
    "Pins",
    "PrivateKeys",
    "PublicIdentity",
    "Reason",
    "Received",
    "RecipientEntry",
    "Refusal",
    "Rejected",
    "ReplayStore",
    "ReplayWindow",
    "SQLiteReplayStore",
    "SealKeywords",
    "SealOptions",
    "Sealer",
    "SignedKeyset",
    "Signer",
    "StoreError",
    "Suite",
    "Topics",
    "TransportError",
    "TrustContext",
    "TrustPolicy",
    "UsageError",
    "VerifiedSender",
    "Via",
    "format_fingerprint",
    "inspect",
    "open",
    "seal",
    "sign_keyset",
]
