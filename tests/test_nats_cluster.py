"""Across nodes: a 3-node JetStream cluster loses a node mid-run; the application sees every
message exactly once.

Three ``nats-server`` processes on loopback ports of their own (each with its own store folder,
``--cluster``/``--routes``, ``-js``), a stream with 3 replicas. One task publishes 10,000
sealed messages through :class:`~letterlock.transports.nats.NatsBroker` (each retried through
the failover with the same sealed bytes and ``Nats-Msg-Id``, so a publish whose ack was lost is
stored once) while another consumes them through
:class:`~letterlock.transports.AsyncSealedConsumer`; in the middle, the stream's leader is
SIGKILLed. The clients reconnect to the survivors. Reported: sent / seen / duplicates / lost,
and how many redeliveries the replay window refused (copies whose ack the dead node took with
it). Needs only the ``nats-server`` binary: fails in CI without it, skips elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client

from conftest import cast_of
from letterlock import Opened, Opener, ReplayWindow, Sealer, Suite, Topics
from letterlock.errors import TransportError
from letterlock.transports import AsyncSealedConsumer, RetryPolicy
from letterlock.transports.nats import NatsBroker
from services import require_binary

SERVER = "/usr/sbin/nats-server"
MESSAGES = int(os.environ.get("LETTERLOCK_CLUSTER_MESSAGES", "10000"))
SUBJECT = "cluster.orders"
GROUP = "billing"
CAST = cast_of(Suite.P256)


def _require_binary() -> str:
    """The nats-server program: fails in CI, skipped elsewhere (``services.require_binary``)."""
    if os.access(SERVER, os.X_OK):
        return SERVER
    return require_binary("nats-server", "nats-server")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@contextlib.contextmanager
def cluster(binary: str, root: Path) -> Iterator[list[Node]]:
    """Three JetStream servers in one cluster; all three are killed on the way out."""
    ports = _free_ports(6)
    clients, routes = ports[:3], ports[3:]
    nodes: list[Node] = []
    try:
        for n in range(3):
            store = root / f"n{n}"
            store.mkdir()
            others = ",".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(routes) if i != n)
            command = [
                binary, "-a", "127.0.0.1", "-p", str(clients[n]), "-n", f"n{n}", "-js",
                "-sd", str(store), "--cluster_name", "letterlock",
                "--cluster", f"nats://127.0.0.1:{routes[n]}", "--routes", others,
                "-l", str(root / f"n{n}.log"),
            ]  # fmt: skip
            process = subprocess.Popen(command, start_new_session=True)
            nodes.append(Node(f"n{n}", clients[n], process))
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)


@dataclass
class Tally:
    sent: int = 0
    publish_retries: int = 0
    consume_errors: int = 0
    killed: str = ""
    seconds: float = 0.0


async def _ready(nc: Client, deadline: float) -> None:
    """Wait until the cluster has a JetStream meta leader (a stream can be made)."""
    js = nc.jetstream()
    while True:
        try:
            await js.account_info()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
        else:
            return


async def _run(nodes: list[Node], tally: Tally, seen: Counter[int]) -> dict[str, int]:
    servers = [node.url for node in nodes]
    options = {"reconnect_time_wait": 0.2, "max_reconnect_attempts": -1, "connect_timeout": 2}
    pub_nc = await nats.connect(servers=servers, **options)
    sub_nc = await nats.connect(servers=servers, **options)
    await _ready(pub_nc, time.monotonic() + 30)
    settings = {"replicas": 3, "lease": 5.0, "timeout": 2.0, "fetch_timeout": 0.5, "batch": 100}
    publisher = NatsBroker(pub_nc.jetstream(), **settings)  # type: ignore[arg-type]
    broker = NatsBroker(sub_nc.jetstream(), **settings)  # type: ignore[arg-type]
    topics = Topics.nats(SUBJECT)
    deadline = time.monotonic() + 30
    while True:  # the new cluster may still be electing leaders
        try:
            await broker.subscribe(topics, group=GROUP)
            break
        except TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    opener = Opener(CAST.bob, trust=CAST.pins(), replay=ReplayWindow())
    consumer = AsyncSealedConsumer(
        broker, GROUP, opener=opener, topics=topics, claim_lease=2.0,
        retry=RetryPolicy(max_attempts=100, delay=0.2, max_delay=1.0),
    )  # fmt: skip
    sealer = Sealer(CAST.alice)
    started = time.monotonic()

    def handler(opened: Opened) -> None:
        seen[int.from_bytes(opened.payload[:4], "big")] += 1

    async def publish() -> None:
        for n in range(MESSAGES):
            body = sealer.seal(
                n.to_bytes(4, "big") + b"x" * 60, recipients=[CAST.bob.public], topic=SUBJECT
            )
            while True:
                try:
                    await publisher.publish(SUBJECT, body, msg_id=f"m{n}")
                    break
                except TransportError:
                    tally.publish_retries += 1
                    await asyncio.sleep(0.2)
            tally.sent += 1
            if n == MESSAGES // 2:
                await _kill_leader(nodes, pub_nc, tally)

    async def consume() -> None:
        while len(seen) < MESSAGES and time.monotonic() - started < 150:
            try:
                await consumer.poll(handler)
            except TransportError:
                tally.consume_errors += 1
                await asyncio.sleep(0.2)

    await asyncio.gather(publish(), consume())
    tally.seconds = time.monotonic() - started
    await asyncio.sleep(1.0)  # let the last acks reach the servers
    for nc in (pub_nc, sub_nc):
        await nc.close()
    return dict(consumer.metrics)


async def _kill_leader(nodes: list[Node], nc: Client, tally: Tally) -> None:
    """SIGKILL the node that leads the stream (its replicas elect another)."""
    info = await nc.jetstream().stream_info("cluster")
    leader = info.cluster.leader if info.cluster is not None else None
    victim = next((node for node in nodes if node.name == leader), nodes[0])
    os.killpg(victim.process.pid, signal.SIGKILL)
    tally.killed = victim.name


def test_a_three_node_cluster_loses_a_node_and_the_application_sees_each_message_once(
    tmp_path: Path,
) -> None:
    binary = _require_binary()
    tally = Tally()
    seen: Counter[int] = Counter()
    with cluster(binary, tmp_path) as nodes:
        metrics = asyncio.run(_run(nodes, tally, seen))
    duplicates = sum(count - 1 for count in seen.values())
    lost = MESSAGES - len(seen)
    print(
        f"\n3-node JetStream, stream R3, {MESSAGES} messages, leader {tally.killed} SIGKILLed "
        f"at {MESSAGES // 2}: sent {tally.sent}, seen {len(seen)}, duplicates {duplicates}, "
        f"lost {lost}; publish retries {tally.publish_retries}, consume errors "
        f"{tally.consume_errors}, {tally.seconds:.1f} s; consumer {metrics}"
    )
    assert tally.killed
    assert (tally.sent, len(seen), duplicates, lost) == (MESSAGES, MESSAGES, 0, 0)
    assert metrics["acked"] >= MESSAGES
