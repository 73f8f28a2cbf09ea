"""The CLI's home as an attacker on the same machine meets it: permissions, owners, links.

Another local user who can write the home, or who owns a file in it, could plant a pin so that
mallory's message opens as "signed by: alice". The home is refused, as OpenSSH's StrictModes
refuses ~/.ssh, with one line naming the path. The tests run as root here, so a file "of another
user" is made with chown (tests that need chown are skipped without it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import (
    PASS,
    PAYLOAD,
    Homes,
    assert_one_line_error,
    letterlock,
    posix_only,
    seal,
)

pytestmark = posix_only

ANOTHER_USER = 4242
can_chown = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="chown to another user needs root"
)
HOME_PATHS = [".", "identities", "known_senders", "identities/bob.key", "identities/bob.pub",
              "replay.sqlite"]  # fmt: skip


def _mallory_seals_for_bob(homes: Homes, tmp_path: Path) -> tuple[bytes, str]:
    """Mallory's own identity, a message from her to bob, and her key line named 'alice'."""
    mallory = tmp_path / "mallory"
    assert letterlock(mallory, "id", "new", "mallory").code == 0
    bobs_key = letterlock(homes.bob, "id", "export", "bob").stdout
    assert letterlock(mallory, "trust", "pin", "-", stdin=bobs_key).code == 0
    sealed = letterlock(mallory, "seal", "--from", "mallory", "--to", "bob", "--topic", "orders",
                        stdin=b"pay mallory")  # fmt: skip
    assert sealed.code == 0, sealed
    exported = letterlock(mallory, "id", "export", "mallory").text
    return sealed.stdout, exported.replace(" mallory\n", "\n")


def _touch_replay_record(home: Path) -> None:
    record = home / "replay.sqlite"
    record.touch(mode=0o600)  # an empty file is a new SQLite database


@can_chown
def test_a_pin_planted_by_another_user_is_refused(homes: Homes, tmp_path: Path) -> None:
    """The attack: another user replaces bob's known_senders, pinning mallory's key as alice."""
    sealed, mallory_line = _mallory_seals_for_bob(homes, tmp_path)
    known = homes.bob / "known_senders"
    known.unlink()
    known.write_text(f"alice {mallory_line}")
    os.chown(known, ANOTHER_USER, ANOTHER_USER)
    known.chmod(0o644)
    result = letterlock(homes.bob, "open", stdin=sealed)
    assert_one_line_error(result, 2, f"unsafe home: {known} belongs to uid {ANOTHER_USER}")
    assert "signed by" not in result.stderr


def test_a_pin_planted_through_a_world_writable_home_is_refused(
    homes: Homes, tmp_path: Path
) -> None:
    sealed, mallory_line = _mallory_seals_for_bob(homes, tmp_path)
    (homes.bob / "known_senders").write_text(f"alice {mallory_line}")
    homes.bob.chmod(0o777)
    result = letterlock(homes.bob, "open", stdin=sealed)
    assert_one_line_error(result, 2, f"unsafe home: {homes.bob} is writable by group and others")


@pytest.mark.parametrize("bits", [0o020, 0o002], ids=["g+w", "o+w"])
@pytest.mark.parametrize("where", HOME_PATHS)
def test_a_home_writable_by_group_or_others_is_refused(homes: Homes, where: str, bits: int) -> None:
    sealed = seal(homes)
    _touch_replay_record(homes.bob)
    path = homes.bob / where
    path.chmod(path.stat().st_mode & 0o7777 | bits)
    result = letterlock(homes.bob, "open", stdin=sealed)
    fix = "chmod 600" if where.endswith(".key") else "chmod go-w"
    assert_one_line_error(result, 2, "unsafe home: ", str(path.resolve()), fix)


@can_chown
@pytest.mark.parametrize("where", HOME_PATHS)
def test_a_home_file_of_another_user_is_refused(homes: Homes, where: str) -> None:
    sealed = seal(homes)
    _touch_replay_record(homes.bob)
    path = homes.bob / where
    os.chown(path, ANOTHER_USER, -1)
    result = letterlock(homes.bob, "open", stdin=sealed)
    assert_one_line_error(result, 2, f"unsafe home: {path.resolve()} belongs to uid {ANOTHER_USER}")


@pytest.mark.parametrize(
    "command",
    [("id", "list"), ("trust", "list"), ("inspect",), ("id", "export", "bob"),
     ("trust", "pin", "-"), ("id", "new", "carol"), ("open",),
     ("seal", "--from", "bob", "--to", "alice", "--topic", "t")],
    ids=lambda c: "-".join(c[:2]),
)  # fmt: skip
def test_every_command_refuses_an_unsafe_home(homes: Homes, command: tuple[str, ...]) -> None:
    stdin = seal(homes) if command[0] in {"inspect", "open"} else b"payload"
    if command[0] == "trust":
        stdin = letterlock(homes.alice, "id", "export", "alice").stdout
    homes.bob.chmod(0o770)
    result = letterlock(homes.bob, *command, stdin=stdin)
    assert_one_line_error(result, 2, f"unsafe home: {homes.bob} is writable by group (")


def test_a_directory_above_the_home_writable_by_others_is_refused(
    homes: Homes, tmp_path: Path
) -> None:
    """Whoever can rename entries of a parent can swap the whole home (sticky bit excepted)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    home = shared / "bob"
    homes.bob.rename(home)
    sealed = seal(homes)
    shared.chmod(0o777)
    assert_one_line_error(letterlock(home, "open", stdin=sealed), 2, f"unsafe home: {shared}")
    shared.chmod(0o1777)  # like /tmp: others cannot rename what they do not own
    assert letterlock(home, "open", stdin=sealed).stdout == PAYLOAD


@pytest.mark.parametrize("where", ["known_senders", "identities/bob.key", "identities/bob.pub",
                                   "identities", "replay.sqlite"])  # fmt: skip
def test_a_link_inside_the_home_is_refused(homes: Homes, tmp_path: Path, where: str) -> None:
    sealed = seal(homes)
    _touch_replay_record(homes.bob)
    path = homes.bob / where
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    result = letterlock(homes.bob, "open", stdin=sealed)
    assert_one_line_error(result, 2, f"unsafe home: {path} is a symbolic link")


def test_a_home_that_is_itself_a_link_is_followed_and_checked(homes: Homes, tmp_path: Path) -> None:
    link = tmp_path / "link-to-bob"
    link.symlink_to(homes.bob)
    assert letterlock(link, "open", stdin=seal(homes)).stdout == PAYLOAD


def test_a_safe_home_still_works(homes: Homes) -> None:
    _touch_replay_record(homes.bob)
    opened = letterlock(homes.bob, "open", stdin=seal(homes))
    assert (opened.code, opened.stdout) == (0, PAYLOAD), opened


def test_key_files_are_checked_on_the_open_descriptor(
    homes: Homes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stat by name before the open: what is checked is the file that is read."""
    from letterlock.cli.home import Home

    home = Home(homes.bob)
    watched = {home.key_path("bob"), home.pub_path("bob"), home.known_senders}
    real_stat, real_lstat = os.stat, os.lstat

    def refuse(real: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def by_name(path: object, *args: object, **kwargs: object) -> os.stat_result:
            assert Path(str(path)) not in watched, f"{path} checked by name, not by descriptor"
            return real(path, *args, **kwargs)

        return by_name

    monkeypatch.setattr(os, "stat", refuse(real_stat))
    monkeypatch.setattr(os, "lstat", refuse(real_lstat))
    home.check()
    assert home.pins()
    assert home.load("bob", PASS.encode).public == home.public("bob")


def test_a_link_to_the_home_in_a_directory_writable_by_others_is_refused(
    homes: Homes, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    link = shared / "bob"
    link.symlink_to(homes.bob)
    shared.chmod(0o777)
    assert_one_line_error(letterlock(link, "id", "list"), 2, f"unsafe home: {shared}")


def test_the_home_is_a_key_store(tmp_path: Path) -> None:
    """The CLI's home implements the KeyStore seam (a PKCS#11 store will be another)."""
    from letterlock import Suite
    from letterlock.cli.home import Home
    from letterlock.keystore import KeyStore

    store: KeyStore = Home(tmp_path / "home")
    assert store.names() == []
    made = store.create("svc", Suite.X25519, PASS.encode)
    assert store.names() == ["svc"]
    assert store.load("svc", PASS.encode).public == made.public
