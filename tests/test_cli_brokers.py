"""``letterlock send``, ``listen`` and ``dlq``, run as a user runs them (subprocesses).

Everything runs on the spool (no server); the round trip also runs on every broker of
``test_endpoints.ENDPOINTS``, on its real server, so an adapter that lands later joins it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest

from cli_support import (
    PAYLOAD,
    Homes,
    Result,
    assert_one_line_error,
    finish,
    letterlock,
    posix_only,
    spawn,
)
from letterlock import PublicIdentity
from letterlock import inspect as letterlock_inspect
from letterlock.cli.brokers import RETRY, default_group, send_command
from letterlock.cli.messages import seal_command
from letterlock.transports import Spool
from letterlock.transports.urls import connect, redact
from services import require, unique
from test_endpoints import ENDPOINTS, IDLE, Bench

TOPIC = "orders.eu"
PATTERN = "orders.*"
SECRET = "hunter2-s3cret"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"spool://{tmp_path}/spool.db"


def send(homes: Homes, url: str, payload: bytes, *extra: str, topic: str = TOPIC) -> str:
    """alice sends ``payload`` (to bob unless ``--to`` is in ``extra``); the message id."""
    to = () if "--to" in extra else ("--to", "bob")
    result = letterlock(
        homes.alice, "send", "--broker", url, "--topic", topic, *to, *extra, stdin=payload
    )
    assert result.code == 0, result
    found = re.fullmatch(r"letterlock: sent ([0-9a-f]{32}) to \S+ \(\d+ bytes\)\n", result.stderr)
    assert found is not None, result.stderr
    return found.group(1)


def listen(
    homes: Homes, url: str, *extra: str, pattern: str = PATTERN, home: Path | None = None
) -> Result:
    return letterlock(home or homes.bob, "listen", "--broker", url, "--topic", pattern,
                      "--as", "bob", *extra)  # fmt: skip


def declare(homes: Homes, url: str, *extra: str) -> str:
    """Run a listener that finds nothing, so the group exists; its name."""
    result = listen(homes, url, "--timeout", "0.1", *extra)
    assert result.code == 0, result
    return group_of(result.stderr)


def group_of(stderr: str) -> str:
    found = re.search(r"^letterlock: listening on .* as bob, group (\S+)$", stderr, re.M)
    assert found is not None, stderr
    return found.group(1)


def dlq(homes: Homes, url: str, *args: str) -> Result:
    command, *rest = args
    return letterlock(homes.bob, "dlq", command, "--broker", url, "--topic", PATTERN,
                      "--as", "bob", *rest)  # fmt: skip


# round trip ------------------------------------------------------------------------------


def test_send_seals_with_the_options_of_seal_same_names_and_help() -> None:
    def described(command: click.Command) -> dict[str, tuple[object, ...]]:
        return {
            p.name or "": (tuple(p.opts), p.help if isinstance(p, click.Option) else None,
                           p.metavar, p.multiple, getattr(p, "is_flag", False))
            for p in command.params
        }  # fmt: skip

    sealing = ("to", "header", "content_type", "expires_in", "hide_sender", "pad", "input_path")
    seal, send = described(seal_command), described(send_command)
    for name in sealing:
        assert send[name] == seal[name], name


def test_send_then_listen_prints_who_signed_and_the_payload(homes: Homes, url: str) -> None:
    declare(homes, url)
    first = send(homes, url, PAYLOAD)
    second = send(homes, url, b"second\n")
    result = listen(homes, url, "--count", "2")
    assert result.code == 0, result
    assert result.stdout == PAYLOAD + b"second\n"  # payloads as they are, in order
    assert result.stderr.count("letterlock: verified\n  signed by: alice\n") == 2
    assert f"message id: {first}" in result.stderr
    assert f"message id: {second}" in result.stderr
    assert homes.alice_fingerprint in result.stderr
    assert result.stderr.endswith(f"handled 2 messages in group {group_of(result.stderr)}\n")


def test_send_refuses_a_topic_nobody_listens_to(homes: Homes, url: str) -> None:
    result = letterlock(homes.alice, "send", "--broker", url, "--topic", TOPIC, "--to", "bob",
                        stdin=b"lost?")  # fmt: skip
    assert_one_line_error(result, 2, "no queue is bound")


def test_send_signs_with_the_homes_only_identity_or_asks(homes: Homes, url: str) -> None:
    declare(homes, url)
    send(homes, url, b"no --from needed")  # alice's home holds alice only
    result = letterlock(homes.alice, "id", "new", "alice2")
    assert result.code == 0, result
    result = letterlock(homes.alice, "send", "--broker", url, "--topic", TOPIC, "--to", "bob",
                        stdin=b"who?")  # fmt: skip
    assert_one_line_error(result, 2, "several identities (alice, alice2); choose with --from")
    send(homes, url, b"from alice2", "--from", "alice2", "--to", "bob")


def test_send_seals_as_seal_does(homes: Homes, url: str) -> None:
    """The sealing options of 'seal': a hidden sender, an expiry, padding, headers."""
    group = declare(homes, url)
    send(homes, url, b"quiet one\n", "--hide-sender", "--expires-in", "600", "--pad", "256",
         "--header", "kind=test", "--content-type", "text/plain")  # fmt: skip
    with Spool(url.removeprefix("spool://")) as spool:
        [queued] = list(spool.deliveries(group))
        spool.nack(queued.tag, requeue=True)
    envelope = letterlock_inspect(queued.body)  # what the broker sees
    assert envelope.header.hidden_sender
    assert envelope.header.sender_key_id is None
    assert (len(envelope.ciphertext) - 16) % 256 == 0  # padded to 256-byte blocks (+ the tag)
    result = listen(homes, url, "--count", "1")
    assert (result.code, result.stdout) == (0, b"quiet one\n"), result
    for shown in ("signed by: alice", "expires: ", "content type: text/plain", "header kind: test"):
        assert shown in result.stderr


def test_send_refuses_a_payload_listeners_would_refuse(homes: Homes, url: str) -> None:
    declare(homes, url)
    result = letterlock(homes.alice, "send", "--broker", url, "--topic", TOPIC, "--to", "bob",
                        "--hide-sender", stdin=b"x" * (1024 * 1024 + 1))  # fmt: skip
    assert_one_line_error(result, 2, "larger than 1048576 bytes", "hidden-sender")
    result = letterlock(homes.alice, "send", "--broker", url, "--topic", TOPIC, "--to", "bob",
                        "--hide-sender", stdin=b"x" * (1024 * 1024 - 10))  # fmt: skip
    assert_one_line_error(result, 2, "but listeners accept 1048576 bytes")
    with Spool(url.removeprefix("spool://")) as spool:
        assert list(spool.deliveries(declare(homes, url))) == []  # nothing was published


# --out DIR -------------------------------------------------------------------------------


@posix_only
def test_out_writes_one_complete_private_file_per_message(homes: Homes, url: str) -> None:
    declare(homes, url)
    payloads = {send(homes, url, PAYLOAD + bytes([n])): PAYLOAD + bytes([n]) for n in range(3)}
    out = homes.bob.parent / "inbox"
    result = listen(homes, url, "--out", str(out), "--count", "3")
    assert result.code == 0, result
    assert result.stdout == b""
    assert sorted(os.listdir(out)) == sorted(payloads)  # one file per message, named by its id
    for message_id, payload in payloads.items():
        assert (out / message_id).read_bytes() == payload
        assert (out / message_id).stat().st_mode & 0o777 == 0o600  # plaintext: private
        assert f"saved as: {out / message_id}" in result.stderr


def test_a_payload_that_cannot_be_written_is_never_acknowledged(homes: Homes, url: str) -> None:
    """The handler raises before it returns: the message is not acked but retried later (the
    output failed, not the message), and the listener stops with the error."""
    group = declare(homes, url)
    message_id = send(homes, url, b"keep me")
    out = homes.bob.parent / "inbox"
    (out / message_id).mkdir(parents=True)  # its file cannot be written
    result = listen(homes, url, "--out", str(out), "--count", "1")
    assert result.code == 2, result
    assert "cannot write" in result.stderr
    with Spool(url.removeprefix("spool://")) as spool:
        stats = spool.stats(group)
        assert (stats.ready, stats.leased, stats.delayed, stats.dead) == (0, 0, 1, 0)
        later = spool.get(group, now=time.time() + RETRY.backoff(1) + 1)
    assert later is not None
    assert later.attempts == 2


# --count and --timeout -------------------------------------------------------------------


def test_count_stops_after_n_messages_and_leaves_the_rest(homes: Homes, url: str) -> None:
    declare(homes, url)
    for n in range(3):
        send(homes, url, b"message %d\n" % n)
    first = listen(homes, url, "--count", "2")
    assert (first.code, first.stdout) == (0, b"message 0\nmessage 1\n"), first
    rest = listen(homes, url, "--count", "5", "--timeout", "0.3")
    assert (rest.code, rest.stdout) == (0, b"message 2\n"), rest


def test_timeout_stops_after_idle_seconds_with_status_0(homes: Homes, url: str) -> None:
    declare(homes, url)
    started = time.monotonic()
    result = listen(homes, url, "--timeout", "0.5", "-q")
    assert (result.code, result.stdout, result.stderr) == (0, b"", "")
    assert 0.5 <= time.monotonic() - started < 15  # incl. the start and the key's Argon2id


@pytest.mark.parametrize(
    ("option", "value"),
    [("--count", "0"), ("--count", "x"), ("--timeout", "0"), ("--timeout", "nan"),
     ("--timeout", "-1"), ("--workers", "0"), ("--workers", "1e3")],
)  # fmt: skip
def test_bad_numbers_are_usage_errors(homes: Homes, url: str, option: str, value: str) -> None:
    assert_one_line_error(listen(homes, url, option, value), 2, option)


# groups ----------------------------------------------------------------------------------


def _bob(homes: Homes) -> PublicIdentity:
    identity, _ = PublicIdentity.from_text((homes.bob / "identities" / "bob.pub").read_text())
    return identity


def test_the_default_group_is_derived_from_the_key_and_the_pattern(homes: Homes) -> None:
    bob = _bob(homes)
    group = default_group(bob, "bob", PATTERN)
    assert re.fullmatch(r"ll-bob-[0-9a-f]{32}", group)
    assert default_group(bob, "bob", PATTERN) == group  # stable
    assert default_group(bob, "bob", "orders.#") != group
    alice, _ = PublicIdentity.from_text((homes.alice / "identities" / "alice.pub").read_text())
    assert default_group(alice, "bob", PATTERN) != group  # another key under the same name
    assert re.fullmatch(r"ll-a_b_c-[0-9a-f]{32}", default_group(bob, "a.b@c", PATTERN))


def test_listeners_of_one_group_share_it_and_others_get_their_own(homes: Homes, url: str) -> None:
    assert declare(homes, url) == default_group(_bob(homes), "bob", PATTERN)
    declare(homes, url, "--group", "audit")
    send(homes, url, b"to both groups\n")
    assert listen(homes, url, "--count", "1").stdout == b"to both groups\n"
    assert listen(homes, url, "--timeout", "0.2").stdout == b""  # the default group: taken
    # one copy per group; the identity's replay record hands each message over once
    audit = listen(homes, url, "--group", "audit", "--timeout", "0.2")
    assert audit.code == 0, audit
    assert audit.stdout == b""
    assert "replayed" in audit.stderr


def _wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _read_until(process: subprocess.Popen[bytes], fragment: str, timeout: float = 20.0) -> str:
    """stderr of a running listener up to the line holding ``fragment``."""
    assert process.stderr is not None
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while fragment.encode() not in seen:
            left = deadline - time.monotonic()
            assert left > 0, seen.decode()
            assert selector.select(left), seen.decode()
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, seen.decode()
            seen += chunk
    return seen.decode()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def replay_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A replay store by URL, of this test's own (a file, a Redis prefix, a schema)."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/shared-replay.db"
        return
    from test_replay import drop_postgres_schema, drop_redis_prefix

    service = require(request.param)
    name = unique("ll_cli").replace("-", "_")
    if request.param == "redis":
        yield f"{service.url}?prefix={name}"
        drop_redis_prefix(name)
    else:
        yield f"{service.url}?schema={name}"
        drop_postgres_schema(name)


def test_listeners_on_two_hosts_share_a_replay_store_by_url(
    homes: Homes, url: str, replay_url: str
) -> None:
    """bob's identity in two homes (two hosts), listening in two groups: a message both groups
    get is handled once with a shared --replay store, and twice with each home's own."""
    other = homes.bob.parent / "bob-elsewhere"
    shutil.copytree(homes.bob, other)
    shared = replay_url
    for home, group in ((homes.bob, "here"), (other, "there"), (other, "own-record")):
        assert listen(homes, url, "--group", group, "--timeout", "0.1", home=home).code == 0
    send(homes, url, b"once across hosts\n")
    here = listen(homes, url, "--group", "here", "--replay", shared, "--count", "1")
    assert (here.code, here.stdout) == (0, b"once across hosts\n"), here
    there = listen(homes, url, "--group", "there", "--replay", shared, "--timeout", "0.5",
                   home=other)  # fmt: skip
    assert (there.code, there.stdout) == (0, b""), there
    assert "dead-lettered 1 (replayed 1)" in there.stderr
    own = listen(homes, url, "--group", "own-record", "--count", "1", home=other)
    assert (own.code, own.stdout) == (0, b"once across hosts\n"), own  # its home's record


@posix_only
def test_a_killed_listener_resumes_its_group_and_handles_nothing_twice(
    homes: Homes, url: str
) -> None:
    out = homes.bob.parent / "inbox"
    listener = spawn(homes.bob, "listen", "--broker", url, "--topic", PATTERN, "--as", "bob",
                     "--out", str(out))  # fmt: skip
    try:
        group = group_of(_read_until(listener, "listening on"))
        before = {send(homes, url, b"before %d" % n) for n in range(2)}
        spool = Spool(url.removeprefix("spool://"))

        def all_acked() -> bool:
            stats = spool.stats(group)
            return out.is_dir() and len(os.listdir(out)) == 2 and stats.ready + stats.leased == 0

        _wait_for(all_acked)
        listener.send_signal(signal.SIGKILL)
        listener.wait(10)
        meanwhile = {send(homes, url, b"meanwhile %d" % n) for n in range(2)}
        assert spool.stats(group).ready == 2  # they wait for the group
        spool.close()
        again = homes.bob.parent / "again"
        result = listen(homes, url, "--out", str(again), "--timeout", "0.5")  # default group
        assert result.code == 0, result
        assert group_of(result.stderr) == group
        assert sorted(os.listdir(out)) == sorted(before)
        assert sorted(os.listdir(again)) == sorted(meanwhile)  # nothing twice, nothing lost
    finally:
        if listener.poll() is None:
            listener.kill()
        finish(listener)


@posix_only
def test_listen_on_redis_goes_on_when_redis_is_out_of_reach_for_a_while(homes: Homes) -> None:
    """``listen --broker redis://...`` reaches Redis through a gate that is closed after the
    first message (every connection cut, every new one refused) for longer than redis-py's
    retries and one reconnection try of the subscription, while a second message is sent
    straight to Redis. Once the gate opens, the listener handles it and stops on --count 2."""
    require("redis")
    import redis

    from gate import Gate

    stream = unique("ll-stream")
    gate = Gate("127.0.0.1", 6379)
    direct = f"redis://127.0.0.1:6379/0?stream={stream}&lease=1"
    gated = f"redis://127.0.0.1:{gate.port}/0?stream={stream}&lease=1"
    listener = spawn(homes.bob, "listen", "--broker", gated, "--topic", PATTERN, "--as", "bob",
                     "--count", "2", "--timeout", "60")  # fmt: skip
    try:
        _read_until(listener, "listening on")
        send(homes, direct, b"before\n")
        _read_until(listener, "signed by: alice")
        gate.close()
        send(homes, direct, b"during\n")
        # the read's first connection and redis-py's 10 retries, then one whole try of ours
        _wait_for(lambda: gate.refused >= 2 * 11, timeout=60)
        assert listener.poll() is None
        gate.open()
        result = finish(listener)
    finally:
        if listener.poll() is None:
            listener.kill()
            finish(listener)
        gate.stop()
        plain = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        plain.delete(stream, *plain.keys(f"{stream}:dead:*"))
        plain.close()
    assert result.code == 0, result
    assert result.stdout == b"before\nduring\n"


@posix_only
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_waits_for_the_message_in_hand_to_be_acked(
    homes: Homes, url: str, signum: int, code: int
) -> None:
    """The handler is held in the middle of its write (its file is a FIFO nobody reads yet)
    when the signal comes; the listener finishes, acks, and only then stops."""
    group = declare(homes, url)
    message_id = send(homes, url, b"in hand\n")
    out = homes.bob.parent / "inbox"
    out.mkdir()
    os.mkfifo(out / message_id)
    listener = spawn(homes.bob, "listen", "--broker", url, "--topic", PATTERN, "--as", "bob",
                     "--out", str(out))  # fmt: skip
    spool = Spool(url.removeprefix("spool://"))
    try:
        _wait_for(lambda: spool.stats(group).leased == 1)  # in its handler, writing
        time.sleep(0.2)
        listener.send_signal(signum)
        time.sleep(0.3)
        assert listener.poll() is None  # still there: the message in hand comes first
        reader = os.open(out / message_id, os.O_RDONLY)  # the write goes on
        try:
            received = b""
            while chunk := os.read(reader, 4096):
                received += chunk
        finally:
            os.close(reader)
    finally:
        result = finish(listener)
    assert received == b"in hand\n"
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    stats = spool.stats(group)
    spool.close()
    assert (stats.ready, stats.leased, stats.delayed, stats.dead) == (0, 0, 0, 0)  # acked
    if signum == signal.SIGTERM:
        assert "letterlock: handled 1 message" in result.stderr
    else:
        assert result.stderr.endswith("letterlock: interrupted\n")


@posix_only
def test_a_restarted_listener_refuses_what_it_handled_before(homes: Homes, url: str) -> None:
    """The identity's replay record lives in the home: a new run still knows the message."""
    group = declare(homes, url)
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", TOPIC,
                        stdin=b"pay once\n").stdout  # fmt: skip
    with Spool(url.removeprefix("spool://")) as spool:  # a hostile broker delivers it twice
        spool.publish(TOPIC, sealed)
        spool.publish(TOPIC, sealed)
    first = listen(homes, url, "--timeout", "0.5")
    assert (first.code, first.stdout) == (0, b"pay once\n"), first
    assert "dead-lettered 1 (replayed 1)" in first.stderr
    with Spool(url.removeprefix("spool://")) as spool:  # and again, to the next run
        spool.publish(TOPIC, sealed)
    second = listen(homes, url, "--timeout", "0.5")
    assert (second.code, second.stdout) == (0, b""), second
    assert "dead-lettered 1 (replayed 1)" in second.stderr
    record = homes.bob / "listen" / "bob.sqlite"  # one per identity
    assert record.stat().st_mode & 0o777 == 0o600
    assert group in second.stderr


def test_a_broker_url_nobody_serves_is_a_usage_error(homes: Homes) -> None:
    result = listen(homes, "gopher://127.0.0.1/", "--timeout", "0.1")
    assert_one_line_error(result, 2, "no broker adapter for 'gopher://127.0.0.1/'", "spool://")


@posix_only
def test_on_a_terminal_a_status_line_counts_while_it_listens(homes: Homes, url: str) -> None:
    """Progress for long work, as elsewhere in the CLI: only on a terminal, and only when the
    payloads do not go to that same terminal."""
    import pty

    from cli_support import LETTERLOCK, cli_env

    declare(homes, url)
    send(homes, url, b"one")
    send(homes, url, b"not for bob", "--to", "alice")
    primary, secondary = pty.openpty()
    env = {**cli_env(homes.bob), "TERM": "xterm", "COLUMNS": "100"}
    listener = subprocess.Popen(
        [*LETTERLOCK, "listen", "--broker", url, "--topic", PATTERN, "--as", "bob",
         "--out", str(homes.bob.parent / "inbox"), "--timeout", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, env=env,
        start_new_session=True,
    )  # fmt: skip
    os.close(secondary)
    shown = b""
    try:
        while chunk := _read_some(primary):
            shown += chunk
    finally:
        os.close(primary)
        code = listener.wait(30)
        assert listener.stdout is not None
        listener.stdout.close()
    assert code == 0, shown
    assert b"listening: 1 handled, 1 dead-lettered" in shown
    assert b"letterlock: handled 1 message in group" in shown


def _read_some(fd: int) -> bytes:
    """What a terminal shows next; b"" once the other side is closed."""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the listener has exited and closed the terminal
        return b""


# dead letters ----------------------------------------------------------------------------


def test_refused_messages_are_dead_lettered_and_dlq_lists_shows_and_redrives(
    homes: Homes, url: str
) -> None:
    group = declare(homes, url)
    send(homes, url, b"fine\n")
    send(homes, url, PAYLOAD, "--to", "alice")  # not for bob: not_for_me
    elsewhere = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob",
                           "--topic", "payroll.eu", stdin=PAYLOAD)  # fmt: skip
    with Spool(url.removeprefix("spool://")) as spool:  # a hostile broker re-routes it
        spool.publish(TOPIC, elsewhere.stdout)
    result = listen(homes, url, "--timeout", "0.5")
    assert result.code == 0, result
    assert result.stdout == b"fine\n"
    assert "dead-lettered as 'rejected': not_for_me" in result.stderr
    assert "dead-lettered as 'rejected': wrong_topic" in result.stderr
    assert "dead-lettered 2 (not_for_me 1, wrong_topic 1)" in result.stderr

    listed = dlq(homes, url, "list", "--json")
    assert listed.code == 0, listed
    records = json.loads(listed.stdout)
    assert [(r["group"], r["topic"], r["reason"], r["attempts"]) for r in records] == [
        (group, TOPIC, "rejected", 1), (group, TOPIC, "rejected", 1)
    ]  # fmt: skip
    assert {r["size"] for r in records} >= {len(elsewhere.stdout)}
    table = dlq(homes, url, "list")
    assert table.code == 0, table
    assert len(table.text.splitlines()) == 2
    assert all("\trejected\t1\t" in line for line in table.text.splitlines())

    shown = dlq(homes, url, "show", str(records[1]["id"]))
    assert shown.code == 0, shown
    assert "reason: rejected\n" in shown.text
    assert "attempts: 1\n" in shown.text
    assert f"size: {len(elsewhere.stdout)} bytes\n" in shown.text
    assert "topic (signed): payroll.eu\n" in shown.text
    assert f"sender: {homes.alice_fingerprint}\n" in shown.text
    assert b"SECRET-MARKER" not in shown.stdout  # never plaintext
    assert "wrong_topic" not in shown.text  # the exact reason stayed with the listener
    missing = dlq(homes, url, "show", "999999")
    assert_one_line_error(missing, 2, "no dead letter 999999")

    redriven = letterlock(homes.bob, "dlq", "redrive", "--broker", url, "--group", group)
    assert redriven.code == 0, redriven
    assert redriven.stderr == f"letterlock: redrove 2 dead letters of group {group}\n"
    assert json.loads(dlq(homes, url, "list", "--json").stdout) == []
    again = listen(homes, url, "--timeout", "0.5")  # delivered again, and refused again
    assert (again.code, again.stdout) == (0, b""), again
    assert "dead-lettered 2" in again.stderr


def test_dlq_needs_a_group_or_the_listeners_topic_and_identity(homes: Homes, url: str) -> None:
    lone = letterlock(homes.bob, "dlq", "list", "--broker", url, "--as", "bob")
    assert_one_line_error(lone, 2, "--group NAME, or the listener's --topic and --as")
    both = letterlock(homes.bob, "dlq", "list", "--broker", url, "--group", "g",
                      "--topic", PATTERN, "--as", "bob")  # fmt: skip
    assert_one_line_error(both, 2, "not both")


# help, passwords, workers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["send"], ["listen"], ["dlq"], ["dlq", "list"], ["dlq", "show"], ["dlq", "redrive"]],
    ids=" ".join,
)
def test_every_help_ends_with_an_example(homes: Homes, command: list[str]) -> None:
    result = letterlock(homes.bob, *command, "--help")
    assert result.code == 0, result
    lines = result.text.rstrip("\n").splitlines()
    examples = lines[lines.index("  Example:") + 1 :]
    assert examples, result.text
    assert all(line.startswith(f"    letterlock {' '.join(command[:1])}") for line in examples)


@pytest.mark.parametrize(
    "broker",
    [f"spool://bob:{SECRET}@localhost/x.db", f"amqp://bob:{SECRET}@127.0.0.1:1/%2F",
     f"spool://bob:{SECRET.replace('-', '%2D')}@host/x.db", f"mqtt://:{SECRET}@[::1"],
)  # fmt: skip
def test_a_password_in_a_url_is_never_printed(homes: Homes, broker: str) -> None:
    for args in (
        ["listen", "--broker", broker, "--topic", PATTERN, "--as", "bob", "--timeout", "0.1"],
        ["dlq", "list", "--broker", broker, "--group", "g"],
    ):
        result = letterlock(homes.bob, *args)
        assert result.code == 2, result
        assert SECRET not in result.stderr + result.text
        assert SECRET.replace("-", "%2D") not in result.stderr
        assert "Traceback" not in result.stderr
    sent = letterlock(homes.alice, "send", "--broker", broker, "--topic", TOPIC, "--to", "bob",
                      stdin=b"x")  # fmt: skip
    assert sent.code == 2, sent
    assert SECRET not in sent.stderr


@pytest.mark.parametrize(
    "args",
    [("listen", "--broker", "spool:///" + "x" * 10000, "--topic", PATTERN),
     ("listen", "--broker", "z" * 10000, "--topic", PATTERN),
     ("listen", "--broker", "spool:///tmp/never.db", "--topic", "t" * 10000),
     ("listen", "--broker", "spool:///tmp/never.db", "--topic", PATTERN, "--group", "g" * 10000),
     ("dlq", "list", "--broker", "y" * 10000, "--group", "g")],
    ids=["spool-path", "broker", "topic", "group", "dlq-broker"],
)  # fmt: skip
def test_a_10000_character_value_is_not_echoed_back(homes: Homes, args: tuple[str, ...]) -> None:
    extra = ("--as", "bob", "--timeout", "0.1") if args[0] == "listen" else ()
    result = letterlock(homes.bob, *args, *extra)
    assert_one_line_error(result, 2)
    assert len(result.stderr) < 300, result.stderr


def test_workers_share_the_group_and_handle_each_message_once(homes: Homes, url: str) -> None:
    declare(homes, url)
    sent = {send(homes, url, b"job %d" % n): b"job %d" % n for n in range(6)}
    send(homes, url, b"not for bob", "--to", "alice")
    out = homes.bob.parent / "inbox"
    result = listen(homes, url, "--workers", "2", "--out", str(out), "--timeout", "1")
    assert result.code == 0, result
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == sent
    assert result.stderr.count("letterlock: verified\n") == 6
    assert "handled 6 messages" in result.stderr
    assert "dead-lettered 1 (not_for_me 1)" in result.stderr


# every broker ----------------------------------------------------------------------------


@pytest.fixture(params=sorted(ENDPOINTS))
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Bench]]:
    """A broker of test_endpoints (its real server) and a bench naming this test's group."""
    kind = ENDPOINTS[request.param]
    if kind.service is not None:
        require(kind.service)
    url = kind.url(tmp_path)  # once: a URL may name a stream of its own, made up here
    endpoint = connect(url)
    # a Bench as test_endpoints makes it (its fields grow with the adapters' needs)
    fields = {f.name for f in dataclasses.fields(Bench)}
    extra: dict[str, Any] = {"kind": kind} if "kind" in fields else {}
    bench = Bench(endpoint, url=url, **extra)
    try:
        yield url, bench
    finally:
        try:
            for close in bench.closing:
                close()
            kind.cleanup(bench)
        finally:
            endpoint.close()


@posix_only
def test_a_round_trip_through_every_broker(homes: Homes, broker: tuple[str, Bench]) -> None:
    url, bench = broker
    topic = bench.topic("orders")
    listener = spawn(
        homes.bob, "listen", "--broker", url, "--topic", topic, "--as", "bob",
        "--group", bench.group, "--count", "1", "--timeout", str(10 * IDLE),
    )  # fmt: skip
    try:
        started = _read_until(listener, "listening on")
        send(homes, url, PAYLOAD, topic=topic)
    finally:
        result = finish(listener)
    assert result.code == 0, result
    assert result.stdout == PAYLOAD
    everything = started + result.stderr
    assert "signed by: alice" in everything
    assert f"listening on {redact(url)} as bob, group {bench.group}" in everything
    password = urlsplit(url).password
    if password:  # (a user may be called as the password is: look for it where it stood)
        assert f":{password}@" not in everything
