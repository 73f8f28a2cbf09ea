"""Brokers by URL: :func:`connect` returns the :class:`~letterlock.transports.base.Endpoint` of
the adapter that serves the URL's scheme.

=============================  ==========================================  ===============
URL                            adapter                                     extra
=============================  ==========================================  ===============
``spool:///path/to/file.db``   :class:`~letterlock.transports.Spool`       (none)
``amqp://``, ``amqps://``      ``letterlock.transports.amqp``              ``rabbitmq``
``mqtt://``, ``mqtts://``      ``letterlock.transports.mqtt``              ``mqtt``
``nats://``, ``tls://``        ``letterlock.transports.nats``              ``nats``
``redis://``, ``rediss://``    ``letterlock.transports.redis``             ``redis``
``zmq+tcp://``, ``zmq+ipc://`` ``letterlock.transports.zmq``               ``zmq``
=============================  ==========================================  ===============

An adapter's module is imported only when its scheme is used, so its client library is needed
only then; a missing one is a :class:`~letterlock.errors.UsageError` that names the extra to
install. Each adapter parses its own URLs (``from_url``). :func:`redact` is how a URL appears in
logs and messages: without its password.
"""

from __future__ import annotations

import importlib
from typing import Final, NamedTuple, cast
from urllib.parse import urlsplit, urlunsplit

from letterlock.errors import UsageError
from letterlock.transports.base import Endpoint

__all__ = ["SCHEMES", "Adapter", "connect", "redact"]


class Adapter(NamedTuple):
    """Where the adapter for a scheme lives, and the extra that installs its client library."""

    module: str
    name: str  #: the Endpoint class, with a ``from_url(url)`` class method
    extra: str | None


_AMQP: Final = Adapter("letterlock.transports.amqp", "AmqpEndpoint", "rabbitmq")
_MQTT: Final = Adapter("letterlock.transports.mqtt", "MqttEndpoint", "mqtt")
_NATS: Final = Adapter("letterlock.transports.nats", "NatsEndpoint", "nats")
_REDIS: Final = Adapter("letterlock.transports.redis", "RedisEndpoint", "redis")
_ZMQ: Final = Adapter("letterlock.transports.zmq", "ZmqEndpoint", "zmq")

#: scheme -> adapter.
SCHEMES: Final = {
    "spool": Adapter("letterlock.transports.spool", "Spool", None),
    "amqp": _AMQP,
    "amqps": _AMQP,
    "mqtt": _MQTT,
    "mqtts": _MQTT,
    "nats": _NATS,
    "tls": _NATS,
    "redis": _REDIS,
    "rediss": _REDIS,
    "zmq+tcp": _ZMQ,
    "zmq+ipc": _ZMQ,
}


def connect(url: str) -> Endpoint:
    """Connect to the broker at ``url``; its adapter's :class:`~.base.Endpoint`."""
    if not isinstance(url, str):
        raise UsageError("a broker URL is a string")
    scheme = urlsplit(url).scheme.lower()
    adapter = SCHEMES.get(scheme)
    if adapter is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise UsageError(f"no broker adapter for {redact(url)!r}: letterlock knows {known}")
    try:
        module = importlib.import_module(adapter.module)
    except ImportError as exc:
        if exc.name == adapter.module or adapter.extra is None:
            raise  # our own module is part of the package: a broken install, not a usage error
        raise UsageError(
            f"{scheme}:// needs {exc.name}: pip install 'letterlock[{adapter.extra}]'"
        ) from exc
    endpoint_class = getattr(module, adapter.name)
    return cast(Endpoint, endpoint_class.from_url(url))


def redact(url: str) -> str:
    """``url`` without its password (``amqp://guest:***@host/``), for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
