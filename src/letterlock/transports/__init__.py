"""letterlock.transports: move sealed bytes through brokers; consumers open, then ack.

The local spool (:class:`Spool`, one SQLite file, no server) is the default transport and the
model for the others: publish sealed bytes on a topic, consume with :class:`SealedConsumer`,
which acks only what opened and was handled, and dead-letters what was refused (the broker reads
one word, ``rejected``; the exact reason stays in the consumer's log and metrics).
"""

from letterlock.transports.consumer import (
    HANDLER_ERROR,
    MAX_ATTEMPTS,
    REJECTED,
    SETTLEMENT,
    Handler,
    Refusal,
    SealedConsumer,
)
from letterlock.transports.spool import (
    Binding,
    DeadLetter,
    Delivery,
    LeaseLost,
    QueueStats,
    Spool,
    Unroutable,
    topic_matches,
)

__all__ = [
    "HANDLER_ERROR",
    "MAX_ATTEMPTS",
    "REJECTED",
    "SETTLEMENT",
    "Binding",
    "DeadLetter",
    "Delivery",
    "Handler",
    "LeaseLost",
    "QueueStats",
    "Refusal",
    "SealedConsumer",
    "Spool",
    "Unroutable",
    "topic_matches",
]
