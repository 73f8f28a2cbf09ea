"""letterlock.transports: move sealed bytes through brokers; consumers open, then ack.

=================  ============================================================================
module             what it holds
=================  ============================================================================
``decide``         the consumer core, pure: the decision table from (outcome, attempts, retry
                   policy) to :class:`Ack`, :class:`Retry` or :class:`DeadLetter`
``base``           the broker seam: :class:`Delivery`, the :class:`Broker` and
                   :class:`PullBroker` protocols, :class:`LeaseLost`, :class:`Unroutable`, and
                   how each broker (RabbitMQ, MQTT, NATS, Redis, ZeroMQ, kombu) maps onto them
``consumer``       :class:`SealedConsumer`: opens with an :class:`~letterlock.Opener`, hands
                   over, settles as ``decide`` says; push (``handle``) or pull (``poll``);
                   :class:`AsyncSealedConsumer` for asyncio brokers
``spool``          :class:`Spool`, the local broker in one SQLite file (no server) and the
                   first adapter on the seam
``memory``         :class:`MemoryBroker`, the seam's test double: in memory, push or pull, with
                   or without attempt counts and nack; :class:`AsyncMemoryBroker` shows it
                   through the asyncio seam
``redis``          :class:`~letterlock.transports.redis.RedisEndpoint`: Redis Streams consumer
                   groups, pending entries reclaimed, a dead-letter stream per group (imported
                   on its own: it needs the ``redis`` extra)
``zmq``            :class:`~letterlock.transports.zmq.ZmqEndpoint`: ZeroMQ PUB/SUB and PUSH/PULL,
                   at most once (imported on its own: it needs the ``zmq`` extra)
``pool``           :class:`ConsumerPool`: one group consumed by several worker processes (open
                   and handler across the cores), sharing a replay store; :class:`WorkerSecret`
                   hands the workers a passphrase or PIN without pickling it
=================  ============================================================================

A consumer acks only what opened and was handled, and dead-letters what was refused (the broker
reads one word, ``rejected``; the exact reason stays in the consumer's log and metrics).
"""

from letterlock.transports.base import (
    AsyncBroker,
    AsyncPullBroker,
    Broker,
    DeadLetterRecord,
    Delivery,
    Endpoint,
    LeaseLost,
    PullBroker,
    QueueStats,
    Subscription,
    Unroutable,
)
from letterlock.transports.consumer import (
    AsyncHandler,
    AsyncSealedConsumer,
    Handler,
    SealedConsumer,
)
from letterlock.transports.decide import (
    SETTLEMENT,
    Ack,
    DeadLetter,
    DeadLetterReason,
    OnHandlerError,
    OnRefusal,
    Outcome,
    Retry,
    RetryPolicy,
    Settlement,
    decide,
)
from letterlock.transports.memory import AsyncMemoryBroker, MemoryBroker
from letterlock.transports.pool import ConsumerPool, PoolFailed, WorkerSecret
from letterlock.transports.spool import (
    Binding,
    Spool,
    SpoolDelivery,
    topic_matches,
)

__all__ = [
    "SETTLEMENT",
    "Ack",
    "AsyncBroker",
    "AsyncHandler",
    "AsyncMemoryBroker",
    "AsyncPullBroker",
    "AsyncSealedConsumer",
    "Binding",
    "Broker",
    "ConsumerPool",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterRecord",
    "Delivery",
    "Endpoint",
    "Handler",
    "LeaseLost",
    "MemoryBroker",
    "OnHandlerError",
    "OnRefusal",
    "Outcome",
    "PoolFailed",
    "PullBroker",
    "QueueStats",
    "Retry",
    "RetryPolicy",
    "SealedConsumer",
    "Settlement",
    "Spool",
    "SpoolDelivery",
    "Subscription",
    "Unroutable",
    "WorkerSecret",
    "decide",
    "topic_matches",
]
