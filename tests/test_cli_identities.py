"""Own identities that are damaged or half-made: each one breaks only itself.

A ``.key`` without its ``.pub`` (an ``id new`` killed midway) or a garbage ``.pub`` used to make
every ``open``, ``inspect`` and ``id list`` fail, for every identity of the home.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_support import PASS, PAYLOAD, Homes, assert_one_line_error, letterlock, seal
from letterlock.cli.main import run

DAMAGE = {
    "missing-pub": lambda pub: pub.unlink(),
    "garbage-pub": lambda pub: pub.write_bytes(b"\xffnot a key line\n"),
}


@pytest.fixture
def dave(homes: Homes) -> Path:
    """A second identity in bob's home; returns its .pub path."""
    assert letterlock(homes.bob, "id", "new", "dave").code == 0
    return homes.bob / "identities" / "dave.pub"


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_identity_does_not_break_the_others(
    homes: Homes, dave: Path, damage: str
) -> None:
    DAMAGE[damage](dave)
    warning = "letterlock: warning: skipping identity 'dave': "
    sealed = seal(homes)

    opened = letterlock(homes.bob, "open", stdin=sealed)
    assert (opened.code, opened.stdout) == (0, PAYLOAD), opened
    first, *rest = opened.stderr.splitlines()
    assert first.startswith(warning), opened.stderr
    assert "letterlock id export dave" in first
    assert rest[0] == "letterlock: verified"

    shown = letterlock(homes.bob, "inspect", stdin=sealed)
    assert shown.code == 0, shown
    assert shown.stderr.startswith(warning)
    assert len(shown.stderr.splitlines()) == 1

    listed = letterlock(homes.bob, "id", "list")
    assert listed.code == 0, listed
    rows = [line.split("\t") for line in listed.text.splitlines()]
    assert rows[0] == ["bob", "x25519", homes.bob_fingerprint, "ok"]
    assert rows[1][:3] == ["dave", "-", "-"]
    assert rows[1][3].startswith("damaged: "), rows
    assert ("dave.pub is missing" if damage == "missing-pub" else "dave.pub") in rows[1][3]


@pytest.mark.parametrize("damage", DAMAGE)
def test_the_damaged_identity_itself_is_a_clear_error(
    homes: Homes, dave: Path, damage: str
) -> None:
    DAMAGE[damage](dave)
    for args in (("open", "--as", "dave"), ("seal", "--from", "dave", "--to", "bob",
                                            "--topic", "t")):  # fmt: skip
        result = letterlock(homes.bob, *args, stdin=b"x")
        assert_one_line_error(result, 2, "identity 'dave' is damaged", "id export dave")


@pytest.mark.parametrize("damage", DAMAGE)
def test_id_export_rebuilds_a_missing_or_damaged_pub(homes: Homes, dave: Path, damage: str) -> None:
    before = letterlock(homes.bob, "id", "export", "dave").stdout
    DAMAGE[damage](dave)
    wrong = letterlock(homes.bob, "id", "export", "dave", passphrase="not it")
    assert_one_line_error(wrong, 2, "wrong passphrase")
    rebuilt = letterlock(homes.bob, "id", "export", "dave")
    assert rebuilt.code == 0, rebuilt
    assert rebuilt.stdout == before
    assert rebuilt.stderr == f"letterlock: rebuilt {dave} from dave.key\n"
    assert dave.read_bytes() == before
    assert os.stat(dave).st_mode & 0o777 == 0o644
    opened = letterlock(homes.bob, "open", stdin=seal(homes))
    assert opened.stderr.startswith("letterlock: verified\n")


def test_an_id_new_killed_midway_leaves_nothing_and_can_be_redone(
    homes: Homes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second file of the pair never gets its name (as if the run were killed there)."""
    monkeypatch.setenv("LETTERLOCK_PASSPHRASE", PASS)
    real_link = os.link
    links: list[object] = []

    def killed_at_the_second_name(*args: object, **kwargs: object) -> None:
        links.append(args)
        if len(links) == 2:
            raise KeyboardInterrupt  # like a kill: no error handling gets to clean up
        real_link(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", killed_at_the_second_name)
    assert run(["--home", str(homes.bob), "id", "new", "carol"]) == 130
    monkeypatch.undo()

    listed = letterlock(homes.bob, "id", "list")
    assert listed.code == 0, listed
    assert "carol" not in listed.text
    assert letterlock(homes.bob, "open", stdin=seal(homes)).code == 0
    again = letterlock(homes.bob, "id", "new", "carol")
    assert again.code == 0, again
    exported = letterlock(homes.bob, "id", "export", "carol")
    assert exported.text.endswith(" carol\n")
    assert exported.stderr == ""
