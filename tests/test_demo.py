"""`letterlock demo`: it runs in seconds with no server, shows every refusal, checks itself."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from letterlock import TransportError
from letterlock.cli import demo
from letterlock.transports import Spool

REASONS = ("unknown_sender", "bad_signature", "wrong_topic", "replayed", "expired")


def _play() -> tuple[int, str]:
    out = io.StringIO()
    code = demo.run(Console(file=out, width=100))
    return code, out.getvalue()


def test_demo_succeeds_quickly_and_shows_every_refusal() -> None:
    started = time.perf_counter()
    code, output = _play()
    assert time.perf_counter() - started < 10
    assert code == 0, output
    for reason in REASONS:
        assert reason in output
    assert "7 delivered · 11 refused and dead-lettered · 0 plaintext leaked" in output
    assert "✓ every outcome was the expected one" in output


def test_demo_consumers_serve_their_own_topics() -> None:
    """Bob's US consumer refuses the EU payslip mallory moves into its queue (issue 6.2)."""
    assert demo.BINDINGS["bob-us"] == "payroll.us"
    rerouted = next(m for m in demo.MOVES if m.name == "re-routed")
    assert (rerouted.bob, rerouted.carol) == ("wrong_topic", None)
    _, output = _play()
    assert "bob-us ← payroll.us" in output
    assert "│ bob-us │" in output  # its dead letter


def test_demo_dead_letters_show_only_what_the_broker_sees() -> None:
    """Issue 6.5: the spool's dead letters say 'rejected'; the real reasons are the consumers'."""
    _, output = _play()
    attacks, dead_letters = output.split("3. Dead letters")
    for reason in REASONS:
        assert reason in attacks
        assert reason not in dead_letters.split("delivered ·")[0]
    tries = [line.split("│")[4].strip() for line in dead_letters.splitlines() if "rejected" in line]
    assert sorted(tries) == ["1"] * 7 + ["3"] * 4  # forged and tampered alike, for bob and carol


def test_demo_shows_what_recipients_open_and_the_relay_does_not() -> None:
    _, output = _play()
    for letter in demo.LETTERS:
        assert letter.payload.decode() in output  # the recipients' column
    assert "from hidden" in output  # the relay's view of the hide_sender message
    assert "signed by alice" in output


def test_demo_never_shows_mallorys_plaintext() -> None:
    _, output = _play()
    assert b"99,999" in demo.FORGERY
    assert "99,999" not in output
    assert "MALLORY" not in output
    assert demo.APPROVAL.payload.decode() not in output  # held back until it expired


@pytest.mark.parametrize("width", [100, 80])
def test_demo_output_fits_the_terminal_without_escape_codes(width: int) -> None:
    out = io.StringIO()
    assert demo.run(Console(file=out, width=width, soft_wrap=True)) == 0  # as the CLI's console
    output = out.getvalue()
    assert "\x1b[" not in output
    assert max(len(line) for line in output.splitlines()) <= width


def test_demo_fails_when_an_outcome_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    moves = list(demo.MOVES)
    index = next(i for i, m in enumerate(moves) if m.name == "replayed")
    moves[index] = dataclasses.replace(moves[index], bob=demo.DELIVERED)
    monkeypatch.setattr(demo, "MOVES", tuple(moves))
    code, output = _play()
    assert code == 1
    assert "replayed: bob got ['replayed'], expected ['delivered']" in output
    assert "every outcome was the expected one" not in output


def test_demo_fails_when_plaintext_reaches_the_spool(monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky_send(self: demo.World, letter: demo.Letter) -> None:
        self.spool.publish(letter.topic, self.seal(letter) + letter.payload, now=self.now)

    monkeypatch.setattr(demo.World, "send", leaky_send)
    code, output = _play()
    assert code == 1
    assert "found in the spool file" in output


def test_demo_leaves_no_files_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, _ = _play()
    assert code == 0
    assert list(tmp_path.iterdir()) == []


def test_demo_reports_a_broken_spool(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_publish(*args: object, **kwargs: object) -> int:
        raise TransportError("disk full")

    monkeypatch.setattr(Spool, "publish", broken_publish)
    code, output = _play()
    assert code == 1
    assert "the demo stopped: disk full" in output


def test_demo_shows_an_authority_chain_a_revocation_and_a_stale_status() -> None:
    """Issue 9, done when: a certified sender accepted with its chain printed, a revoked one
    refused, a stale status failing closed (and, once a fresh one arrives, opening again)."""
    _, output = _play()
    scene = output.split("4. Authorities")[1]
    assert "✓ ll://acme/ledger/eu/dave" in scene
    assert "chain payments > ledger-eu, status v1" in scene
    assert "revoked (compromised) since" in scene
    assert "stale: status version 2 is" in scene
    assert "chain payments > ledger-eu, status v3" in scene
    assert "erin: move" not in output  # the revoked sender's payload never shows
