"""Status documents through any broker: publish on a well-known topic, follow it on receivers
(used by ``letterlock status`` and ``listen --follow-status``; a service can call it too).

The publisher sends the signed status document (TUF timestamp metadata, ``docs/spec/root.md``
section 4) as it is, unsealed, on :data:`STATUS_TOPIC` (``letterlock.status``; MQTT writes it
``letterlock/status``) through any :class:`~letterlock.transports.base.Endpoint`: the spool,
RabbitMQ, Redis, NATS, MQTT. Each receiver follows the topic in a durable group of its own
(every receiver sees every document) and offers each delivery to its
:class:`~letterlock.sources.updater.StatusUpdater`, which verifies it against the pinned root.
A delivery is acknowledged once it was accepted (or was a copy of the one held); one the
updater refuses (forged, rolled back, equivocating, malformed) goes to the group's dead
letters as ``rejected``. A broker that drops or delays documents makes the receiver fail
closed once its status is stale; it can never roll the receiver back or forge a document.

A group receives what is published after it was first subscribed: a publisher re-publishes
its status well within the receivers' maximum staleness (a status has a short expiry anyway),
so a receiver that subscribed late is current after the next publication.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from letterlock.core.topics import Dialect, Topics
from letterlock.sources.updater import StatusUpdater
from letterlock.transports.base import Endpoint
from letterlock.transports.decide import Ack, DeadLetter, DeadLetterReason
from letterlock.trust.root import MetadataRefused

__all__ = ["STATUS_TOPIC", "Followed", "follow_status", "publish_status", "status_topic"]

#: The well-known topic of status documents (AMQP, NATS, Redis, spool spelling).
STATUS_TOPIC: Final = "letterlock.status"


def status_topic(dialect: Dialect, topic: str = STATUS_TOPIC) -> str:
    """``topic`` as ``dialect`` writes it (MQTT separates words with ``/``)."""
    return topic.replace(".", "/") if dialect is Dialect.MQTT else topic


def publish_status(endpoint: Endpoint, data: bytes, *, topic: str = STATUS_TOPIC) -> object:
    """Put the signed status document ``data`` on ``topic`` (in the endpoint's spelling)."""
    return endpoint.publish(status_topic(endpoint.dialect, topic), data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Followed:
    """What one run of :func:`follow_status` did."""

    accepted: int  #: documents that moved the receiver forward
    copies: int  #: copies of the document held
    refused: int  #: documents the updater refused (dead-lettered)
    last_refusal: str | None = None


def follow_status(
    endpoint: Endpoint,
    updater: StatusUpdater,
    *,
    group: str,
    topic: str = STATUS_TOPIC,
    idle_timeout: float | None = 1.0,
    limit: int | None = None,
) -> Followed:
    """Offer each status document delivered to ``group`` to ``updater`` until ``idle_timeout``
    seconds pass without one (None: forever) or ``limit`` documents were handled."""
    topics = Topics(status_topic(endpoint.dialect, topic), dialect=endpoint.dialect)
    subscription = endpoint.subscribe(topics, group=group)
    accepted = copies = refused = 0
    last: str | None = None
    try:
        for delivery in subscription.deliveries(idle_timeout=idle_timeout):
            try:
                moved = updater.offer(delivery.body, now=int(time.time()))
            except MetadataRefused as exc:
                refused, last = refused + 1, str(exc)
                endpoint.settle(delivery, DeadLetter(reason=DeadLetterReason.REJECTED))
            else:
                accepted, copies = accepted + moved, copies + (not moved)
                endpoint.settle(delivery, Ack())
            if limit is not None and accepted + copies + refused >= limit:
                break
    finally:
        subscription.close()
    return Followed(accepted=accepted, copies=copies, refused=refused, last_refusal=last)
