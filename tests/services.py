"""The real servers that the broker tests talk to, and what happens when one is not there.

Broker tests never mock a broker: they talk to the servers on loopback. :func:`require` is the
one way a test asks for a server. When it does not answer:

* in CI (``CI=true``) the test **fails**, naming the server and the command that starts it: a
  broker test that cannot run is a defect there, never a silent skip;
* elsewhere it is **skipped** with the same message, so a contributor without, say, NATS still
  runs everything else.

Every test isolates itself on a shared server by names of its own (:func:`unique`): queues,
exchanges, streams, subjects, topics, consumer groups and database schemas, never the server's
defaults, and removes what it declared where the server keeps it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from typing import Final

import pytest

__all__ = ["SERVICES", "Service", "in_ci", "require", "require_binary", "unique"]


@dataclass(frozen=True)
class Service:
    """A server on this machine, as the broker tests reach it."""

    name: str
    host: str
    port: int
    url: str  #: how letterlock (``letterlock.transports.urls``) reaches it
    start: str  #: the command that starts it on this machine (Debian packages)


SERVICES: Final = {
    "rabbitmq": Service(
        "RabbitMQ", "127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672/%2F",
        "rabbitmq-server -detached",
    ),
    "mqtt": Service(
        "Mosquitto", "127.0.0.1", 1883, "mqtt://127.0.0.1:1883",
        "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
    ),
    "nats": Service(
        "NATS (JetStream)", "127.0.0.1", 4222, "nats://127.0.0.1:4222",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
        "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
    ),
    "redis": Service(
        "Redis", "127.0.0.1", 6379, "redis://127.0.0.1:6379/0",
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    ),
    "postgres": Service(
        "PostgreSQL", "127.0.0.1", 5432, "postgresql://postgres@127.0.0.1:5432/test",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
}  # fmt: skip


def in_ci() -> bool:
    """True in CI, where a missing server fails the test instead of skipping it."""
    return os.environ.get("CI") == "true"


def _answers(service: Service, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((service.host, service.port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str) -> Service:
    """The server ``name`` (a key of :data:`SERVICES`), or fail (CI) / skip (elsewhere)."""
    service = SERVICES[name]
    if _answers(service):
        return service
    message = (
        f"{service.name} does not answer on {service.host}:{service.port}; "
        f"start it with: {service.start}"
    )
    if in_ci():
        pytest.fail(f"{message} (CI=true: broker tests must run)", pytrace=False)
    pytest.skip(message)


def require_binary(path: str, package: str) -> str:
    """The program or library at ``path`` (a command name or an absolute path), or fail (CI) /
    skip (elsewhere) with the Debian package that installs it, as :func:`require` does."""
    found = shutil.which(path) if os.sep not in path else (path if os.path.exists(path) else None)
    if found is not None:
        return found
    message = f"{path} is missing; install it with: apt-get install {package}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: its tests must run)", pytrace=False)
    pytest.skip(message)


def unique(prefix: str = "ll-test") -> str:
    """A name no other test (or earlier run) uses: ``prefix`` and 8 random hex digits."""
    return f"{prefix}-{secrets.token_hex(4)}"
