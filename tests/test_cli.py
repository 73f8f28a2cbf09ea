"""The ``letterlock`` command as a user runs it: a subprocess, stdin, stdout, stderr, exit codes.

Two homes are prepared once per session (alice's and bob's, each has pinned the other's
exported key; see cli_support.py); every test works on fresh copies, so replay records never
leak between tests. Each key load runs the real Argon2id (64 MiB): the tests share identities
to stay fast.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import (
    LETTERLOCK,
    PASS,
    PAYLOAD,
    Homes,
    assert_one_line_error,
    letterlock,
    posix_only,
    seal,
)
from letterlock.cli import passphrase as passphrase_source
from letterlock.errors import UsageError

# --------------------------------------------------------------------------- identities


def test_new_identity_prints_its_fingerprint_and_is_listed(homes: Homes) -> None:
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", homes.alice_fingerprint)
    listed = letterlock(homes.alice, "id", "list")
    assert listed.code == 0
    assert listed.text == f"alice\tx25519\t{homes.alice_fingerprint}\tok\n"


@posix_only
def test_key_files_are_private(homes: Homes) -> None:
    identities = homes.alice / "identities"
    assert stat.S_IMODE((identities / "alice.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(identities.stat().st_mode) == 0o700
    assert stat.S_IMODE((homes.alice / "known_senders").stat().st_mode) == 0o600


def test_new_identity_never_overwrites(homes: Homes) -> None:
    key = homes.alice / "identities" / "alice.key"
    before = key.read_bytes()
    result = letterlock(homes.alice, "id", "new", "alice")
    assert_one_line_error(result, 2, "already exists")
    assert key.read_bytes() == before


def test_export_is_the_public_key_line(homes: Homes) -> None:
    result = letterlock(homes.alice, "id", "export", "alice")
    assert result.code == 0
    assert re.fullmatch(r"letterlock-x25519 [A-Za-z0-9+/=]+:[0-9a-f]{8} alice\n", result.text)
    assert (homes.alice / "identities" / "alice.pub").read_bytes() == result.stdout


def test_pinned_senders_are_listed(homes: Homes) -> None:
    result = letterlock(homes.bob, "trust", "list")
    assert result.text == f"alice\tx25519\t{homes.alice_fingerprint}\ttrusted\t*\n"


def test_a_different_key_under_a_pinned_name_fails_hard(homes: Homes) -> None:
    impostor = letterlock(homes.bob, "id", "export", "bob").text.replace(" bob", " alice")
    result = letterlock(homes.bob, "trust", "pin", "-", stdin=impostor.encode())
    assert_one_line_error(result, 2, homes.bob_fingerprint, homes.alice_fingerprint)
    listed = letterlock(homes.bob, "trust", "list").text
    assert listed == f"alice\tx25519\t{homes.alice_fingerprint}\ttrusted\t*\n"


def test_your_own_name_cannot_be_pinned(homes: Homes) -> None:
    bobs_key = letterlock(homes.bob, "id", "export", "bob").stdout
    result = letterlock(homes.alice, "trust", "pin", "-", "--name", "alice", stdin=bobs_key)
    assert_one_line_error(result, 2, "one of your own identities")


def test_pin_checks_an_expected_fingerprint(homes: Homes, tmp_path: Path) -> None:
    key_line = tmp_path / "alice.pub"
    key_line.write_bytes(letterlock(homes.alice, "id", "export", "alice").stdout)
    wrong = letterlock(homes.bob, "trust", "pin", str(key_line), "--name", "alice2",
                       "--expect-fingerprint", homes.bob_fingerprint)  # fmt: skip
    assert_one_line_error(wrong, 2, "fingerprint mismatch")


def test_passphrase_change(homes: Homes, tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.write_text("a brand new passphrase\n")
    result = letterlock(homes.alice, "id", "passwd", "alice", "--new-passphrase-file", str(new))
    assert result.code == 0, result
    old = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t")
    assert_one_line_error(old, 2, "wrong passphrase or damaged key file")
    fresh = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                       "--passphrase-file", str(new))  # fmt: skip
    assert fresh.code == 0, fresh


# --------------------------------------------------------------------------- seal and open


def test_seal_open_round_trip_is_binary_safe(homes: Homes) -> None:
    sealed = seal(homes, "--header", "tenant=acme", "--content-type", "application/octet-stream")
    assert b"SECRET-MARKER" not in sealed
    opened = letterlock(homes.bob, "open", "--as", "bob", "--topic", "orders", stdin=sealed)
    assert opened.code == 0, opened
    assert opened.stdout == PAYLOAD
    report = opened.stderr
    assert report.startswith("letterlock: verified\n")
    assert "signed by: alice\n" in report
    assert f"fingerprint: {homes.alice_fingerprint}\n" in report
    assert "via: pin\n" in report
    assert "topic: orders\n" in report
    assert "content type: application/octet-stream\n" in report
    assert "header tenant: acme\n" in report
    assert re.search(r"^  message id: [0-9a-f]{32}$", report, re.MULTILINE)
    assert re.search(r"^  created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", report, re.MULTILINE)


def test_open_finds_the_addressee_and_writes_a_private_file(homes: Homes) -> None:
    out = homes.bob / "payload.bin"
    opened = letterlock(homes.bob, "open", "--quiet", "--out", str(out), stdin=seal(homes))
    assert (opened.code, opened.stdout, opened.stderr) == (0, b"", "")
    assert out.read_bytes() == PAYLOAD
    if os.name == "posix":
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_files_in_and_out(homes: Homes) -> None:
    source, envelope = homes.alice / "in.bin", homes.alice / "msg.ll"
    source.write_bytes(PAYLOAD)
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        "--in", str(source), "--out", str(envelope))  # fmt: skip
    assert (sealed.code, sealed.stdout) == (0, b"")
    opened = letterlock(homes.bob, "open", "--in", str(envelope))
    assert opened.stdout == PAYLOAD


def test_an_unwritable_output_does_not_spend_the_message(homes: Homes) -> None:
    sealed = seal(homes)
    nowhere = homes.bob / "missing" / "payload.bin"
    failed = letterlock(homes.bob, "open", "--out", str(nowhere), stdin=sealed)
    assert_one_line_error(failed, 2, "does not exist")
    assert letterlock(homes.bob, "open", stdin=sealed).stdout == PAYLOAD


def test_opening_twice_is_a_replay(homes: Homes) -> None:
    sealed = seal(homes)
    assert letterlock(homes.bob, "open", "--as", "bob", stdin=sealed).code == 0
    again = letterlock(homes.bob, "open", "--as", "bob", stdin=sealed)
    assert again.code == 1
    assert again.stdout == b""
    assert again.stderr == "letterlock: rejected: replayed\n"


def test_wrong_topic_is_rejected_without_spending_the_message(homes: Homes) -> None:
    sealed = seal(homes, topic="orders.eu")
    out = homes.bob / "payload.bin"
    rerouted = letterlock(homes.bob, "open", "--topic", "orders.us", "--out", str(out),
                          stdin=sealed)  # fmt: skip
    assert_one_line_error(rerouted, 1, "letterlock: rejected: wrong_topic")
    assert not out.exists()  # no plaintext is written for a rejected message
    genuine = letterlock(homes.bob, "open", "--topic", "orders.eu", stdin=sealed)
    assert (genuine.code, genuine.stdout) == (0, PAYLOAD)


@pytest.mark.parametrize("where", [10, 40, -100, -1], ids=["header", "topic", "body", "sig"])
def test_a_tampered_byte_is_rejected(homes: Homes, where: int) -> None:
    sealed = bytearray(seal(homes))
    sealed[where] ^= 0x01
    result = letterlock(homes.bob, "open", stdin=bytes(sealed))
    assert_one_line_error(result, 1, "letterlock: rejected: ")


def test_unpinned_and_revoked_senders_are_rejected(homes: Homes) -> None:
    sealed = seal(homes)
    revoked = letterlock(homes.bob, "trust", "revoke", "alice")
    assert revoked.code == 0, revoked
    assert_one_line_error(letterlock(homes.bob, "open", stdin=sealed), 1, "rejected: untrusted")
    (homes.bob / "known_senders").unlink()
    assert_one_line_error(
        letterlock(homes.bob, "open", stdin=sealed), 1, "rejected: unknown_sender"
    )


def test_revoked_pin_cannot_be_pinned_again(homes: Homes) -> None:
    assert letterlock(homes.bob, "trust", "revoke", "alice").code == 0
    exported = letterlock(homes.alice, "id", "export", "alice").stdout
    result = letterlock(homes.bob, "trust", "pin", "-", stdin=exported)
    assert_one_line_error(result, 2, "revoked")


def test_hidden_sender_is_hidden_from_brokers_not_from_the_recipient(homes: Homes) -> None:
    sealed = seal(homes, "--hide-sender", "--pad", "padme")
    shown = letterlock(homes.bob, "inspect", stdin=sealed).text
    assert "sender: hidden\n" in shown
    assert "flags: hidden-sender\n" in shown
    assert homes.alice_fingerprint not in shown
    opened = letterlock(homes.bob, "open", stdin=sealed)
    assert opened.stdout == PAYLOAD
    assert "signed by: alice\n" in opened.stderr


def test_seal_to_yourself_is_trusted_as_self(homes: Homes) -> None:
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "alice", "--topic", "me",
                        stdin=b"note to self")  # fmt: skip
    opened = letterlock(homes.alice, "open", stdin=sealed.stdout)
    assert opened.stdout == b"note to self"
    assert "via: self\n" in opened.stderr


def test_not_for_me(homes: Homes) -> None:
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "alice", "--topic", "me")
    result = letterlock(homes.bob, "open", stdin=sealed.stdout)
    assert_one_line_error(result, 1, "rejected: not_for_me")


# --------------------------------------------------------------------------- inspect


def test_inspect_shows_what_a_broker_sees_and_no_payload(homes: Homes) -> None:
    sealed = seal(homes, "--header", "tenant=acme", "--expires-in", "600")
    result = letterlock(homes.bob, "inspect", stdin=sealed, passphrase=None)
    assert result.code == 0, result
    shown = result.text
    assert "SECRET-MARKER" not in shown
    for line in ("version: 1", "suite: x25519", "flags: none", "topic: orders",
                 "header tenant: acme", f"sender: {homes.alice_fingerprint} (alice)",
                 "recipients: 1", f"total: {len(sealed)} bytes"):  # fmt: skip
        assert f"{line}\n" in shown
    assert re.search(r"^recipient: [0-9a-f]{32} \(bob, you\)$", shown, re.MULTILINE)
    assert re.search(r"^expires: \d{4}-.*Z$", shown, re.MULTILINE)
    assert re.search(r"^ciphertext: \d+ bytes$", shown, re.MULTILINE)


def test_inspect_json(homes: Homes) -> None:
    sealed = seal(homes)
    shown = json.loads(letterlock(homes.bob, "inspect", "--json", stdin=sealed).stdout)
    assert shown["topic"] == "orders"
    assert shown["sender_fingerprint"] == homes.alice_fingerprint
    assert shown["total_size"] == len(sealed)
    assert "payload" not in shown


def test_inspect_escapes_terminal_control_characters(homes: Homes) -> None:
    """The format refuses control characters in topics and header values; format characters
    that reorder a terminal's text (a right-to-left override) are escaped when shown."""
    sealed = seal(homes, "--header", "note=\u202eevil", topic="orders\u202e.eu")
    shown = letterlock(homes.bob, "inspect", stdin=sealed).text
    assert "\u202e" not in shown
    assert "topic: orders\\u202e.eu\n" in shown
    refused = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic",
                         "orders\x1b]0;pwned\x07", stdin=b"x")  # fmt: skip
    assert_one_line_error(refused, 2, "control characters")


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "malformed"), (b"LLK\x09" + bytes(60), "unsupported"), (b"hello world", "malformed")],
)
def test_inspect_refuses_malformed_input(homes: Homes, data: bytes, reason: str) -> None:
    result = letterlock(homes.bob, "inspect", stdin=data)
    assert_one_line_error(result, 1, f"letterlock: rejected: {reason} (")


def test_truncated_envelope_is_rejected_before_any_passphrase(homes: Homes) -> None:
    sealed = seal(homes)
    result = letterlock(homes.bob, "open", stdin=sealed[:-10], passphrase=None)
    assert_one_line_error(result, 1, "rejected: malformed")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args",
    [
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--bogus"),
        ("seal", "--from", "alice", "--to", "bob"),
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--pad", "0"),
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--header", "noequals"),
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--header", "Upper=1"),
        ("open", "--in", "/nonexistent/envelope"),
        ("frobnicate",),
    ],
    ids=[
        "unknown-option",
        "missing-topic",
        "bad-pad",
        "bad-header",
        "bad-header-name",
        "missing-file",
        "unknown-command",
    ],
)
def test_usage_errors_are_one_line_and_exit_2(homes: Homes, args: tuple[str, ...]) -> None:
    assert_one_line_error(letterlock(homes.alice, *args), 2, "letterlock: error: ")


@pytest.mark.parametrize(
    ("home", "args", "fragment"),
    [
        ("alice", ("seal", "--from", "zed", "--to", "bob", "--topic", "t"), "no identity named"),
        ("alice", ("seal", "--from", "alice", "--to", "zed", "--topic", "t"), "unknown recipient"),
        ("bob", ("open", "--as", "zed"), "no identity named 'zed'"),
        ("alice", ("id", "export", "zed"), "no identity named 'zed'"),
        ("alice", ("id", "new", "../escape"), "identity name"),
    ],
    ids=["sender", "recipient", "open-as", "export", "bad-name"],
)
def test_unknown_identity_is_a_usage_error(
    homes: Homes, home: str, args: tuple[str, ...], fragment: str
) -> None:
    assert_one_line_error(letterlock(getattr(homes, home), *args), 2, fragment)


def test_wrong_passphrase_is_exit_2(homes: Homes) -> None:
    result = letterlock(homes.bob, "open", stdin=seal(homes), passphrase="not it")
    assert_one_line_error(result, 2, "letterlock: error: ", "wrong passphrase or damaged key file")


def test_passphrase_file_wins_over_the_environment(homes: Homes, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_bytes(PASS.encode() + b"\r\nsecond line ignored\n")
    result = letterlock(homes.bob, "open", "--passphrase-file", str(secret),
                        stdin=seal(homes), passphrase="wrong from the environment")  # fmt: skip
    assert (result.code, result.stdout) == (0, PAYLOAD), result


def test_no_passphrase_source_fails_instead_of_prompting(homes: Homes) -> None:
    result = letterlock(homes.bob, "open", stdin=seal(homes), passphrase=None)
    assert_one_line_error(result, 2, "LETTERLOCK_PASSPHRASE", "--passphrase-file")


def test_empty_passphrase_is_refused(homes: Homes) -> None:
    result = letterlock(homes.alice, "id", "new", "carol", passphrase="")
    assert_one_line_error(result, 2, "empty")
    assert not (homes.alice / "identities" / "carol.key").exists()


@posix_only
def test_a_key_file_readable_by_others_is_refused(homes: Homes) -> None:
    (homes.bob / "identities" / "bob.key").chmod(0o644)
    result = letterlock(homes.bob, "open", stdin=seal(homes))
    assert_one_line_error(result, 2, "too open", "chmod 600")


@posix_only
def test_seal_refuses_to_write_binary_to_a_terminal(homes: Homes) -> None:
    import pty

    controller, terminal = pty.openpty()
    env = {**os.environ, "LETTERLOCK_HOME": str(homes.alice), "LETTERLOCK_PASSPHRASE": PASS}
    try:
        done = subprocess.run(
            [*LETTERLOCK, "seal", "--from", "alice", "--to", "bob", "--topic", "t"],
            input=b"x", stdout=terminal, stderr=subprocess.PIPE, env=env, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    assert b"refusing to write a binary envelope to the terminal" in done.stderr


def test_help_documents_the_exit_codes() -> None:
    result = subprocess.run([*LETTERLOCK, "--help"], capture_output=True, check=False)
    text = result.stdout.decode()
    assert result.returncode == 0
    assert "Exit status:" in text
    assert re.search(r"^\s+1\s+message rejected", text, re.MULTILINE)
    assert re.search(r"^\s+2\s+usage or environment error", text, re.MULTILINE)


def test_demo_command_runs_or_explains(tmp_path: Path) -> None:
    result = letterlock(tmp_path / "home", "demo")
    if result.code == 0:
        assert result.stdout
    else:
        assert_one_line_error(result, 2, "demo is not available")


def test_missing_demo_module_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from letterlock.cli.main import run

    monkeypatch.setitem(sys.modules, "letterlock.cli.demo", None)
    assert run(["demo"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "letterlock: error: the demo is not available in this installation "
        "(letterlock.cli.demo is missing)\n"
    )


# --------------------------------------------------------------------------- passphrase sources


def test_passphrase_file_takes_the_first_line_only(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"first line\r\nsecond\n")
    assert passphrase_source.from_file(str(path)) == b"first line"


def test_passphrases_are_nfc_normalised(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes("cafe\u0301".encode())  # decomposed e + combining acute
    assert passphrase_source.from_file(str(path)) == "caf\u00e9".encode()


def test_an_empty_first_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"\nthe real one is on line two\n")
    with pytest.raises(UsageError, match="empty"):
        passphrase_source.from_file(str(path))


def test_time_beyond_the_calendar_is_shown_not_crashed() -> None:
    """Envelope times are any 64-bit value; rendering one never raises (inspect, open)."""
    from letterlock.cli.render import iso_time

    assert iso_time(0) == "1970-01-01T00:00:00Z"
    assert iso_time(2**64 - 2) == f"@{2**64 - 2}"


def test_the_homes_replay_record_forgets_what_its_retention_refuses(tmp_path: Path) -> None:
    """Each CLI run prunes ids older than the home's retention, so the record stops growing."""
    import time

    from letterlock import SQLiteReplayStore
    from letterlock.cli.home import REPLAY_RETENTION, Home

    home = Home(tmp_path)
    home.replay_db.parent.mkdir(parents=True, exist_ok=True)
    sender, now = b"\xa1" * 32, int(time.time())
    old, recent = now - REPLAY_RETENTION - 10, now - 7200
    with SQLiteReplayStore(home.replay_db) as store:
        assert store.add(sender, b"\x01" * 16, old, now=now).value == "added"
        assert store.add(sender, b"\x02" * 16, recent, now=now).value == "added"
    with home.replay_window(max_age=60, now=now) as window:  # a short window prunes no more
        assert not window.store.contains(sender, b"\x01" * 16)
        assert window.store.contains(sender, b"\x02" * 16)


def _sealed_seconds_ago(homes: Homes, seconds: int) -> bytes:
    """A message from alice to bob created ``seconds`` ago (sealed with the library)."""
    import time

    import letterlock
    from letterlock.cli.home import Home

    alice = Home(homes.alice).load("alice", PASS.encode)
    bob = Home(homes.bob).public("bob")
    return letterlock.seal(
        PAYLOAD, sender=alice, recipients=[bob], topic="orders", now=time.time() - seconds
    )


def test_a_short_max_age_does_not_raise_the_homes_cutoff(homes: Homes) -> None:
    """``open --max-age 8`` narrows that run's check only; the shared record is unchanged.

    (8 s leaves a loaded machine time to load the key with Argon2id between seal and open.)
    """
    older = _sealed_seconds_ago(homes, 40)
    short = letterlock(homes.bob, "open", "--max-age", "8", stdin=_sealed_seconds_ago(homes, 0))
    assert short.code == 0, short
    narrowed = letterlock(homes.bob, "open", "--max-age", "20", stdin=older)
    assert_one_line_error(narrowed, 1, "rejected: expired")
    later = letterlock(homes.bob, "open", stdin=older)  # 40 s old, inside the default hour
    assert (later.code, later.stdout) == (0, PAYLOAD), later


def test_a_missing_home_is_a_usage_error(homes: Homes, tmp_path: Path) -> None:
    sealed = seal(homes)
    missing = tmp_path / "no-such-home"
    result = letterlock(missing, "open", stdin=sealed)
    assert_one_line_error(result, 2, f"no identities in {missing}", "--home")
    assert not missing.exists()


@pytest.mark.parametrize("value", ["1e20", "100000000000000000000", "0", "-5", "1.5"])
@pytest.mark.parametrize(
    ("command", "option", "unit"),
    [("seal", "--expires-in", "seconds"), ("open", "--max-age", "seconds"),
     ("open", "--max-size", "bytes"), ("seal", "--max-size", "bytes")],
)  # fmt: skip
def test_a_bad_number_is_one_clear_line(
    homes: Homes, value: str, command: str, option: str, unit: str
) -> None:
    extra = ("--from", "alice", "--to", "bob", "--topic", "t") if command == "seal" else ()
    result = letterlock(homes.alice, command, *extra, option, value, stdin=b"x")
    assert_one_line_error(result, 2, option, f"whole number of {unit} from 1 to")
    assert "integer range" not in result.stderr
    assert "expires must be after created" not in result.stderr


def test_a_key_file_error_names_the_file(homes: Homes) -> None:
    result = letterlock(homes.bob, "open", stdin=seal(homes), passphrase="not it")
    key = homes.bob / "identities" / "bob.key"
    assert_one_line_error(result, 2, f"{key}: wrong passphrase or damaged key file")


@pytest.mark.parametrize(
    "args",
    [
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t" * 10_000),
        ("seal", "--from", "alice", "--to", "b" * 10_000, "--topic", "t"),
        ("seal", "--from", "a" * 10_000, "--to", "bob", "--topic", "t"),
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--header", "h=" + "v" * 10_000),
        ("seal", "--from", "alice", "--to", "bob", "--topic", "t", "--content-type", "c" * 10_000),
        ("id", "new", "n" * 10_000),
        ("trust", "revoke", "r" * 10_000),
        ("open", "--topic", "t" * 10_000),
    ],
    ids=["topic", "to", "from", "header", "content-type", "id-new", "revoke", "open-topic"],
)
def test_a_10000_character_value_is_not_echoed_back(homes: Homes, args: tuple[str, ...]) -> None:
    result = letterlock(homes.alice, *args, stdin=seal(homes) if args[0] == "open" else b"x")
    assert result.code in {1, 2}, result
    assert len(result.stderr.splitlines()) == 1, result
    assert len(result.stderr) < 300, result.stderr


def _command_paths() -> list[tuple[str, ...]]:
    import click

    from letterlock.cli.main import cli

    paths: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli, ())
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_help_ends_with_an_example(path: tuple[str, ...]) -> None:
    result = subprocess.run([*LETTERLOCK, *path, "--help"], capture_output=True, check=False)
    assert result.returncode == 0
    lines = [line.strip() for line in result.stdout.decode().splitlines() if line.strip()]
    examples = lines.index("Example:") if "Example:" in lines else -1
    assert examples > 0, result.stdout.decode()
    assert lines[examples + 1 :], "an example follows the heading"
    assert all(line.startswith("letterlock ") for line in lines[examples + 1 :]), lines
    assert any(" ".join(path) in line for line in lines[examples + 1 :]), lines
