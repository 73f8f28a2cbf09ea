"""The Celery app of tests/test_celery.py's worker (``celery -A celery_worker_app worker``).

Configured by environment: ``LL_CELERY_BROKER`` (the RabbitMQ URL), ``LL_CELERY_QUEUE`` (the
queue it serves, whose dead-letter exchange is ``<queue>.dlx``) and ``LL_CELERY_DIR``, which
holds its key (``worker.key``, passphrase ``test``), the one sender it trusts (``alice.pub``)
and ``out/``, where each task run appends a line to a file named by its task id. Optional:
``LL_CELERY_REPLAY``, a SQLite replay store shared by the workers (default: the worker's own
memory), ``LL_CELERY_LEASE``, the claim lease in seconds, ``LL_CELERY_PREFETCH``,
``LL_CELERY_QUORUM=1`` (a quorum queue, and retries of 0.2 s, at most 3 deliveries), and
``LL_CELERY_MODE``: ``letterlock`` (the default), or, for benchmarks/broker_celery.py,
``plain`` (Celery's own JSON) and ``floor`` (JSON, and per message the least cryptography a
sealed one needs, where letterlock's gate would open it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery
from celery.worker.consumer import Consumer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kombu.entity import Exchange, Queue

from letterlock import (
    FirstKnown,
    OwnIdentities,
    Pins,
    PublicIdentity,
    ReplayWindow,
    SQLiteReplayStore,
)
from letterlock.integrations.celery import setup
from letterlock.keystore.file import load_identity
from letterlock.transports.decide import RetryPolicy

HERE = Path(os.environ["LL_CELERY_DIR"])
QUEUE = os.environ["LL_CELERY_QUEUE"]


def task_queue(name: str) -> Queue:
    """The worker's queue, with its dead-letter exchange: as the test declares it too."""
    arguments = {"x-dead-letter-exchange": f"{name}.dlx"}
    if os.environ.get("LL_CELERY_QUORUM") == "1":
        arguments["x-queue-type"] = "quorum"
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments=arguments)


app = Celery("ll_celery_worker", broker=os.environ["LL_CELERY_BROKER"])
app.conf.update(
    task_queues=[task_queue(QUEUE)],
    task_default_queue=QUEUE,
    # 2: a copy of a running task can reach the gate (acks_late tasks hold their prefetch slot)
    worker_prefetch_multiplier=int(os.environ.get("LL_CELERY_PREFETCH", "1")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
_alice, _ = PublicIdentity.from_text((HERE / "alice.pub").read_text())
_pins = Pins()
_pins.pin("alice", _alice)
_me = load_identity(HERE / "worker.key", b"test")
MODE = os.environ.get("LL_CELERY_MODE", "letterlock")
if MODE == "letterlock":
    setup(
        app,
        identity=_me,
        recipients=[_me.public],  # the tasks it sends (a chain's next step) are for itself
        trust=FirstKnown(OwnIdentities({"worker": _me.public}), _pins),
        replay=ReplayWindow(SQLiteReplayStore(os.environ["LL_CELERY_REPLAY"]))
        if os.environ.get("LL_CELERY_REPLAY")
        else None,
        claim_lease=float(os.environ.get("LL_CELERY_LEASE", "60")),
        retry=RetryPolicy(max_attempts=3, delay=0.2, max_delay=1)
        if os.environ.get("LL_CELERY_QUORUM") == "1"
        else None,
        log_interval=0,
    )


class FloorConsumer(Consumer):  # type: ignore[misc]  # celery ships no types
    """Celery's consumer, plus one ECDSA P-256 verification and one AES-256-GCM decryption of
    pre-made data per task message (``LL_CELERY_SIZE`` bytes): the crypto floor."""

    def create_task_handler(self, *args: object, **kwargs: object) -> Callable[[object], None]:
        on_task_received: Callable[[object], None] = super().create_task_handler(*args, **kwargs)
        key = ec.generate_private_key(ec.SECP256R1())
        public, data = key.public_key(), os.urandom(int(os.environ.get("LL_CELERY_SIZE", "100")))
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
        aead, nonce = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12)
        sealed = aead.encrypt(nonce, data, None)

        def on_message(message: object) -> None:
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            aead.decrypt(nonce, sealed, None)
            on_task_received(message)

        return on_message


if MODE == "floor":
    app.conf.worker_consumer = f"{__name__}:FloorConsumer"


def _ran(task_id: str, line: str) -> None:
    with open(HERE / "out" / task_id, "a") as out:
        out.write(line + "\n")


@app.task(name="t.add", bind=True, acks_late=True)
def add(self: object, x: int, y: int) -> int:
    _ran(self.request.id, f"add {x + y}")  # type: ignore[attr-defined]
    return x + y


@app.task(name="t.mul", bind=True, acks_late=True)
def mul(self: object, x: int, y: int) -> int:
    _ran(self.request.id, f"mul {x * y}")  # type: ignore[attr-defined]
    return x * y


@app.task(name="t.add_early", bind=True, acks_late=False)
def add_early(self: object, x: int, y: int) -> int:
    _ran(self.request.id, f"add_early {x + y}")  # type: ignore[attr-defined]
    return x + y


@app.task(name="t.retries", bind=True, acks_late=True)
def retries(self: object) -> None:
    _ran(self.request.id, f"retries {self.request.retries}")  # type: ignore[attr-defined]


@app.task(name="t.slow", bind=True, acks_late=True)
def slow(self: object, seconds: float) -> None:
    """Sleeps on its first run only (a test kills the worker then); 'start' and 'done' lines."""
    task_id = self.request.id  # type: ignore[attr-defined]
    first = not (HERE / "out" / task_id).exists()
    _ran(task_id, "start")
    if first:
        time.sleep(seconds)
    _ran(task_id, "done")


@app.task(name="t.noop", acks_late=True)
def noop(number: int, text: str) -> None:
    """A task that does nothing: for rates."""


@app.task(name="t.mark", bind=True, acks_late=True)
def mark(self: object) -> None:
    _ran(self.request.id, "mark")  # type: ignore[attr-defined]


@app.task(name="t.echo", bind=True, acks_late=True)
def echo(self: object, *args: object, **kwargs: object) -> None:
    """Counts its arguments (returns nothing: a task's result is not sealed)."""
    _ran(self.request.id, f"echo {len(args)} {len(kwargs)}")  # type: ignore[attr-defined]
