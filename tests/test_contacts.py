"""Contacts are not trusted senders; key lines carry a check; the CLI's contact book.

A contact is a key one seals to; a pin is a sender one accepts. The tests show each without the
other: sealing to a contact that is not pinned works, and adding a contact never makes its
messages acceptable. Key lines fail on any one-character change (hypothesis over every suite).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_support import Homes, assert_one_line_error, letterlock
from conftest import cast_of
from letterlock import Identity, ParseError, PublicIdentity, Suite, UsageError
from letterlock.cli.main import cli
from letterlock.core.keys import is_checked, key_line_check
from letterlock.trust import Contacts, Source

# ------------------------------------------------------------------ checked key lines


def test_a_key_line_carries_the_check_of_its_suite_and_key() -> None:
    public = cast_of(Suite.X25519).alice.public
    line = public.to_text("alice")
    body, _, rest = line.partition(":")
    check, _, name = rest.partition(" ")
    assert (check, name) == (key_line_check(body), "alice")
    assert re.fullmatch(r"[0-9a-f]{8}", check)
    assert PublicIdentity.from_text(line) == (public, "alice")


def _lines() -> st.SearchStrategy[str]:
    return st.sampled_from([cast_of(suite).alice.public.to_text() for suite in Suite])


@settings(max_examples=600, deadline=None)
@given(line=_lines(), data=st.data())
def test_any_one_character_change_of_a_key_line_is_refused(line: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(line) - 1), label="position")
    replacement = data.draw(
        st.characters(codec="ascii").filter(lambda c: c != line[position]), label="replacement"
    )
    changed = line[:position] + replacement + line[position + 1 :]
    with pytest.raises(ValueError):
        PublicIdentity.from_text(changed)


def test_every_position_of_a_key_line_is_guarded() -> None:
    """Each position with the characters a typo or a mangled paste most likely puts there."""
    line = cast_of(Suite.X25519).alice.public.to_text()
    for position in range(len(line)):
        for replacement in " \t\rAa0+/=:-.":
            if replacement == line[position]:
                continue
            changed = line[:position] + replacement + line[position + 1 :]
            with pytest.raises(ValueError):
                PublicIdentity.from_text(changed)


def test_a_line_without_check_is_refused_unless_allowed() -> None:
    public = cast_of(Suite.X25519).alice.public
    old = public.to_text().rpartition(":")[0] + " alice"
    assert not is_checked(old)
    with pytest.raises(ParseError, match="no check"):
        PublicIdentity.from_text(old)
    assert PublicIdentity.from_text(old, allow_unchecked=True) == (public, "alice")


def test_a_non_canonical_base64_key_is_refused_even_with_a_matching_check() -> None:
    public = cast_of(Suite.X25519).alice.public  # 73 bytes: base64 ends in one unused-bit char
    prefix, _, key = public.to_text().rpartition(":")[0].partition(" ")
    assert key.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = key.rstrip("=")[-1]
    twin = alphabet[alphabet.index(last) ^ 1]  # flips a padding bit: the same bytes decoded
    other = key.rstrip("=")[:-1] + twin + "=" * (len(key) - len(key.rstrip("=")))
    body = f"{prefix} {other}"
    with pytest.raises(ParseError, match="canonical"):
        PublicIdentity.from_text(f"{body}:{key_line_check(body)}")


# ------------------------------------------------------------------ the contact book


def test_contacts_round_trip_with_their_sources() -> None:
    cast = cast_of(Suite.X25519)
    contacts = Contacts()
    contacts.add("bob", cast.bob.public, Source.VERIFIED)
    contacts.add("dave", cast.dave.public, Source.FILE)
    again = Contacts.parse("# contacts\n\n" + contacts.to_text())
    assert again.to_text() == contacts.to_text()
    assert [(c.name, c.source) for c in again] == [("bob", Source.VERIFIED), ("dave", Source.FILE)]


def test_a_contact_keeps_its_key_and_its_strongest_source() -> None:
    cast = cast_of(Suite.X25519)
    contacts = Contacts()
    contacts.add("bob", cast.bob.public, Source.FILE)
    assert contacts.add("bob", cast.bob.public, Source.VERIFIED).source is Source.VERIFIED
    assert contacts.add("bob", cast.bob.public, Source.PASTED).source is Source.VERIFIED
    with pytest.raises(UsageError, match="remove the contact first"):
        contacts.add("bob", cast.mallory.public, Source.VERIFIED)
    contacts.remove("bob")
    assert contacts.add("bob", cast.mallory.public, Source.FILE).identity == cast.mallory.public


# ------------------------------------------------------------------ the CLI


def _export(home: Path, name: str) -> bytes:
    exported = letterlock(home, "id", "export", name)
    assert exported.code == 0, exported
    return exported.stdout


def _contacts(home: Path) -> list[dict[str, str]]:
    listed = letterlock(home, "contact", "list", "--json")
    assert listed.code == 0, listed
    result: list[dict[str, str]] = json.loads(listed.stdout)
    return result


def test_sealing_to_a_contact_needs_no_pin(homes: Homes) -> None:
    (homes.alice / "known_senders").unlink()  # alice trusts nobody; bob is only a contact
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        stdin=b"hi")  # fmt: skip
    assert (sealed.code, sealed.stderr) == (0, ""), sealed
    opened = letterlock(homes.bob, "open", "--topic", "t", stdin=sealed.stdout)
    assert opened.stdout == b"hi", opened


def test_a_contact_is_not_a_trusted_sender(homes: Homes) -> None:
    (homes.bob / "known_senders").unlink()  # bob has alice as a contact only
    assert [c["name"] for c in _contacts(homes.bob)] == ["alice"]
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        stdin=b"hi")  # fmt: skip
    opened = letterlock(homes.bob, "open", "--topic", "t", stdin=sealed.stdout)
    assert_one_line_error(opened, 1, "rejected: unknown_sender")


def test_a_home_whose_pins_served_as_recipients_keeps_working_with_a_warning(
    homes: Homes,
) -> None:
    (homes.alice / "contacts").unlink()  # a home made before contacts: bob is pinned only
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        stdin=b"hi")  # fmt: skip
    assert sealed.code == 0, sealed
    assert "warning: sealing to pinned sender 'bob', which is not a contact" in sealed.stderr
    assert "letterlock contact add" in sealed.stderr
    assert not (homes.alice / "contacts").exists()  # reading never writes
    assert letterlock(homes.bob, "open", "--topic", "t", stdin=sealed.stdout).stdout == b"hi"
    assert letterlock(homes.alice, "trust", "revoke", "bob").code == 0
    refused = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                         stdin=b"hi")  # fmt: skip
    assert_one_line_error(refused, 2, "revoked")


def test_an_unknown_recipient_says_how_to_add_a_contact(homes: Homes) -> None:
    result = letterlock(homes.alice, "seal", "--from", "alice", "--to", "zed", "--topic", "t")
    assert_one_line_error(result, 2, "unknown recipient 'zed'", "letterlock contact add")


def test_contact_add_records_where_the_key_came_from(homes: Homes, tmp_path: Path) -> None:
    key = _export(homes.bob, "bob")
    key_file = tmp_path / "bob.pub"
    key_file.write_bytes(key)
    fingerprint = letterlock(homes.bob, "id", "list").text.split("\t")[2]
    assert letterlock(homes.alice, "contact", "add", str(key_file), "--name", "b1").code == 0
    assert letterlock(homes.alice, "contact", "add", "-", "--name", "b2", stdin=key).code == 0
    verified = letterlock(homes.alice, "contact", "add", "-", "--name", "b3",
                          "--expect-fingerprint", fingerprint, stdin=key)  # fmt: skip
    assert verified.code == 0, verified
    sources = {c["name"]: c["source"] for c in _contacts(homes.alice)}
    assert sources == {"bob": "pasted", "b1": "file", "b2": "pasted", "b3": "fingerprint-verified"}
    listed = letterlock(homes.alice, "contact", "list").text.splitlines()
    assert f"b3\tx25519\t{fingerprint}\tfingerprint-verified" in listed


def test_a_mistyped_key_line_is_refused_not_added(homes: Homes) -> None:
    key = _export(homes.bob, "bob").decode()
    at = key.index(" ") + 10
    typo = key[:at] + ("A" if key[at] != "A" else "B") + key[at + 1 :]
    result = letterlock(homes.alice, "contact", "add", "-", "--name", "bob2", stdin=typo.encode())
    assert_one_line_error(result, 2, "fails its check")
    pinned = letterlock(homes.alice, "trust", "pin", "-", "--name", "bob2", stdin=typo.encode())
    assert_one_line_error(pinned, 2, "fails its check")
    assert "bob2" not in {c["name"] for c in _contacts(homes.alice)}


def test_an_old_line_without_check_needs_the_fingerprint(homes: Homes) -> None:
    old = _export(homes.bob, "bob").decode().replace(":", " ", 1).split()
    old_line = f"{old[0]} {old[1]} bob\n".encode()  # as exported before checks existed
    refused = letterlock(homes.alice, "contact", "add", "-", "--name", "old", stdin=old_line)
    assert_one_line_error(refused, 2, "no check", "--expect-fingerprint")
    confirmed = letterlock(homes.alice, "contact", "add", "-", "--name", "old",
                           "--expect-fingerprint", homes.bob_fingerprint,
                           stdin=old_line)  # fmt: skip
    assert confirmed.code == 0, confirmed
    assert {c["name"]: c["source"] for c in _contacts(homes.alice)}["old"] == (
        "fingerprint-verified"
    )


def test_a_contact_name_keeps_its_key_and_can_be_removed(homes: Homes) -> None:
    mallory = Identity.generate(Suite.X25519).public.to_text().encode()
    changed = letterlock(homes.alice, "contact", "add", "-", "--name", "bob", stdin=mallory)
    assert_one_line_error(changed, 2, "refusing the different key", homes.bob_fingerprint)
    removed = letterlock(homes.alice, "contact", "remove", "bob")
    assert removed.code == 0, removed
    assert _contacts(homes.alice) == []
    assert_one_line_error(letterlock(homes.alice, "contact", "remove", "bob"), 2, "no contact")
    own = letterlock(homes.alice, "contact", "add", "-", "--name", "alice", stdin=mallory)
    assert_one_line_error(own, 2, "one of your own identities")


def test_an_empty_contact_list_says_how_to_add_one(tmp_path: Path) -> None:
    listed = letterlock(tmp_path / "nobody", "contact", "list")
    assert (listed.code, listed.stdout) == (0, b"")
    assert "letterlock contact add FILE --name N" in listed.stderr
    assert letterlock(tmp_path / "nobody", "contact", "list", "--json").stdout == b"[]\n"


# ------------------------------------------------------------------ pins from the CLI


def test_a_pin_with_topics_is_refused_elsewhere(homes: Homes) -> None:
    key = _export(homes.alice, "alice")
    assert letterlock(homes.bob, "trust", "revoke", "alice").code == 0
    (homes.bob / "known_senders").unlink()
    pinned = letterlock(homes.bob, "trust", "pin", "-", "--topic", "orders.#",
                        "--topic", "sensors/+/temp", stdin=key)  # fmt: skip
    assert pinned.code == 0, pinned
    [listed] = json.loads(letterlock(homes.bob, "trust", "list", "--json").stdout)
    assert listed["topics"] == ["orders.#", "sensors/*/temp"]
    for topic, code in (("orders.eu", 0), ("sensors/k1/temp", 0), ("payroll", 1)):
        sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob",
                            "--topic", topic, stdin=b"x")  # fmt: skip
        opened = letterlock(homes.bob, "open", "--topic", topic, stdin=sealed.stdout)
        assert opened.code == code, (topic, opened)
    assert "rejected: untrusted" in opened.stderr


def test_trust_rotate_accepts_a_statement_signed_by_the_old_key(homes: Homes) -> None:
    assert letterlock(homes.alice, "id", "new", "alice2").code == 0
    statement = letterlock(homes.alice, "id", "sign-rotation", "alice", "alice2")
    assert statement.code == 0, statement
    assert statement.text.startswith("letterlock-rotation ")
    rotated = letterlock(homes.bob, "trust", "rotate", "alice", "-", stdin=statement.stdout)
    assert rotated.code == 0, rotated
    new_fingerprint = letterlock(homes.alice, "id", "list").text.splitlines()[1].split("\t")[2]
    [pin] = json.loads(letterlock(homes.bob, "trust", "list", "--json").stdout)
    assert (pin["name"], pin["fingerprint"]) == ("alice", new_fingerprint)
    sealed = letterlock(homes.alice, "seal", "--from", "alice2", "--to", "bob", "--topic", "t",
                        stdin=b"new key")  # fmt: skip
    opened = letterlock(homes.bob, "open", "--topic", "t", stdin=sealed.stdout)
    assert (opened.code, opened.stdout) == (0, b"new key"), opened
    assert "signed by: alice\n" in opened.stderr


def test_trust_rotate_refuses_a_statement_signed_by_another_key(homes: Homes) -> None:
    # bob signs that his own key replaces... itself, and offers it for alice's pin
    forged = letterlock(homes.bob, "id", "sign-rotation", "bob", "bob")
    assert forged.code == 0, forged
    result = letterlock(homes.bob, "trust", "rotate", "alice", "-", stdin=forged.stdout)
    assert_one_line_error(result, 2, "not signed by its pinned key")
    [pin] = json.loads(letterlock(homes.bob, "trust", "list", "--json").stdout)
    assert pin["fingerprint"] == homes.alice_fingerprint


# ------------------------------------------------------------------ help


def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for group in ("contact", "trust", "id"):
        command = cli.commands[group]
        assert isinstance(command, click.Group)
        found.append((group,))
        found += [(group, name) for name in command.commands]
    return found


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_every_help_ends_with_an_example(path: tuple[str, ...], tmp_path: Path) -> None:
    helped = letterlock(tmp_path, *path, "--help")
    assert helped.code == 0, helped
    tail = helped.text.rstrip().split("\n\n")[-1]
    assert tail.lstrip().startswith("Example:"), helped.text
    assert "letterlock " in tail


# ------------------------------------------------------------------ the spec's examples


def test_the_spec_examples_are_what_the_code_writes() -> None:
    from letterlock import hazmat
    from letterlock.core.keys import PRIVATE_MAGIC, _join_identity
    from letterlock.trust import sign_rotation

    def keys(sig: int, kem: int) -> Identity:
        encoded = _join_identity(PRIVATE_MAGIC, Suite.X25519, bytes([sig]) * 32, bytes([kem]) * 32)
        return hazmat.identity_from_private_bytes(encoded)

    old, new = keys(1, 2), keys(3, 4)
    spec = (Path(__file__).parent.parent / "docs" / "spec" / "envelope-v1.md").read_text()
    assert f"\n{old.public.to_text('alice')}\n" in spec
    assert f"fingerprint `{old.public.fingerprint_text}`" in spec
    assert f"\n{sign_rotation(old, new.public, at=1_700_000_000).to_text()}\n" in spec


def test_inspect_names_a_recipient_that_is_only_a_contact(homes: Homes) -> None:
    sealed = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob,alice", "--topic",
                        "t", stdin=b"x")  # fmt: skip
    (homes.alice / "known_senders").unlink()  # bob is only alice's contact now
    shown = letterlock(homes.alice, "inspect", stdin=sealed.stdout).text
    assert "(bob, contact)\n" in shown
    assert "(alice, you)\n" in shown
