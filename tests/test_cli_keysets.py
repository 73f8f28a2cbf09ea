"""``letterlock id rotate / id show / id keyset`` and ``contact keyset``, run as a user runs them.

Bob rotates his encryption keys; alice seals to him with the keyset she took. The clock here is
the real one, so the grace period's end is tested in tests/test_keysets.py (a fake clock);
these tests use ``--grace 0`` where a deadline must pass.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cli_support import Homes, assert_one_line_error, letterlock, posix_only, seal


def _ok(home: Path, *args: str, stdin: bytes = b"") -> str:
    result = letterlock(home, *args, stdin=stdin)
    assert result.code == 0, result
    return result.text


def _show(home: Path, name: str = "bob") -> dict[str, object]:
    shown: dict[str, object] = json.loads(_ok(home, "id", "show", name, "--json"))
    return shown


def _keys(home: Path) -> dict[int, dict[str, str]]:
    keys = _show(home)["keys"]
    assert isinstance(keys, list)
    return {key["id"]: key for key in keys}


def _distribute(homes: Homes) -> None:
    line = _ok(homes.bob, "id", "keyset", "bob")
    _ok(homes.alice, "contact", "keyset", "bob", "-", stdin=line.encode())


def test_a_whole_rotation_moves_senders_to_the_new_key_and_old_messages_still_open(
    homes: Homes,
) -> None:
    queued = seal(homes)  # to bob's identity key, before any keyset
    _ok(homes.bob, "id", "rotate", "bob")  # 1. add: key 0 (the identity key) and key 1
    keys = _keys(homes.bob)
    assert [keys[0]["status"], keys[1]["status"]] == ["primary", "active"]
    assert keys[0]["fingerprint"] == homes.bob_fingerprint
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")  # 3. promote
    _distribute(homes)  # 2. distribute (after promoting: alice seals to key 1 at once)
    after = seal(homes)
    _ok(homes.bob, "id", "rotate", "bob", "--retire", "0")  # 4. retire, default grace 7 days
    keys = _keys(homes.bob)
    assert [keys[0]["status"], keys[1]["status"]] == ["retired", "primary"]
    assert keys[0]["destroy_after"] == keys[0]["opens_until"]
    table = letterlock(homes.bob, "id", "show", "bob")
    assert table.code == 0, table
    assert [line.split("\t")[:3] for line in table.text.splitlines()[-2:]] == [
        ["0", "encrypt", "retired"],
        ["1", "encrypt", "primary"],
    ]
    for message in (queued, after):  # within the grace period both open
        assert letterlock(homes.bob, "open", stdin=message).code == 0
    inspected = json.loads(_ok(homes.bob, "inspect", "--json", stdin=after))
    assert inspected["recipients"] == [_recipient_id(keys[1]["fingerprint"])]


def _recipient_id(fingerprint: str) -> str:
    raw = base64.b64decode(fingerprint.removeprefix("SHA256:") + "=")
    return raw[:16].hex()


def test_a_destroyed_key_file_is_gone_and_its_messages_are_refused(homes: Homes) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    to_key_1 = seal(homes)
    _ok(homes.bob, "id", "rotate", "bob")  # key 2
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "2")
    refused = letterlock(homes.bob, "id", "rotate", "bob", "--destroy", "1")
    assert_one_line_error(refused, 2, "cannot destroy key 1: it is active")
    _ok(homes.bob, "id", "rotate", "bob", "--retire", "1")
    refused = letterlock(homes.bob, "id", "rotate", "bob", "--destroy", "1")
    assert_one_line_error(refused, 2, "grace period")
    key_file = homes.bob / "identities" / "bob.keys" / "1.key"
    assert key_file.exists()
    result = letterlock(homes.bob, "id", "rotate", "bob", "--destroy", "1", "--early")
    assert result.code == 0, result
    assert not key_file.exists()
    keys = _keys(homes.bob)
    assert keys[1]["status"] == "destroyed"
    assert keys[1]["private_key"] == "gone"
    opened = letterlock(homes.bob, "open", stdin=to_key_1)
    assert_one_line_error(opened, 1, "rejected: not_for_me", "destroyed")


def test_a_retired_key_past_a_zero_grace_period_no_longer_opens(homes: Homes) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    queued = seal(homes)  # alice still seals to key 0: she has no keyset of bob's
    _ok(homes.bob, "id", "rotate", "bob", "--retire", "0", "--grace", "0")
    opened = letterlock(homes.bob, "open", stdin=queued)
    assert_one_line_error(opened, 1, "rejected: not_for_me", "past its deadline")


def test_a_tampered_keyset_file_is_refused(homes: Homes) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    path = homes.bob / "identities" / "bob.keyset"
    text = path.read_text()
    prefix, encoded, signature = text.split(" ")
    flipped = encoded[:40] + ("A" if encoded[40] != "A" else "B") + encoded[41:]
    path.write_text(f"{prefix} {flipped} {signature}")
    assert_one_line_error(letterlock(homes.bob, "id", "show", "bob"), 2, "bob.keyset: refused")
    sealed = seal(homes)
    assert_one_line_error(letterlock(homes.bob, "open", stdin=sealed), 2, "bob.keyset: refused")


def test_a_contact_keyset_signed_by_another_key_or_rolled_back_is_refused(homes: Homes) -> None:
    _ok(homes.alice, "id", "rotate", "alice")  # alice's own keyset: not bob's
    alices = _ok(homes.alice, "id", "keyset", "alice")
    refused = letterlock(homes.alice, "contact", "keyset", "bob", "-", stdin=alices.encode())
    assert_one_line_error(refused, 2, "different identity")
    _ok(homes.bob, "id", "rotate", "bob")
    first = _ok(homes.bob, "id", "keyset", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    refused = letterlock(homes.alice, "contact", "keyset", "bob", "-", stdin=first.encode())
    assert_one_line_error(refused, 2, "refusing a rollback")


def test_id_show_without_a_keyset_shows_the_identity_key(homes: Homes) -> None:
    shown = _show(homes.bob)
    assert shown["fingerprint"] == homes.bob_fingerprint
    assert (shown["keyset_version"], shown["keys"]) == (None, [])
    result = letterlock(homes.bob, "id", "show", "bob")
    assert result.code == 0, result
    assert homes.bob_fingerprint in result.text


def test_id_rotate_takes_one_step_at_a_time(homes: Homes) -> None:
    result = letterlock(homes.bob, "id", "rotate", "bob", "--promote", "1", "--retire", "0")
    assert_one_line_error(result, 2, "one step at a time")
    result = letterlock(homes.bob, "id", "rotate", "bob", "--promote", "1")
    assert_one_line_error(result, 2, "no keyset yet")


def test_id_passwd_re_encrypts_the_keys_of_the_keyset(homes: Homes, tmp_path: Path) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    sealed = seal(homes)  # to key 1
    new = tmp_path / "new"
    new.write_text("a new pass phrase for bob\n")
    changed = letterlock(homes.bob, "id", "passwd", "bob", "--new-passphrase-file", str(new))
    assert changed.code == 0, changed
    assert "and of its 1 keyset keys" in changed.stderr
    opened = letterlock(homes.bob, "open", "--passphrase-file", str(new), stdin=sealed)
    assert opened.code == 0, opened


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_listener_opens_with_the_keys_of_its_keyset(
    homes: Homes, tmp_path: Path, workers: str
) -> None:
    url = f"spool://{tmp_path}/spool.db"
    listen = ("listen", "--broker", url, "--topic", "orders.*", "--as", "bob", "--workers", workers)
    assert letterlock(homes.bob, *listen, "--timeout", "0.1").code == 0  # the group exists
    _ok(homes.bob, "id", "rotate", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    sent = letterlock(homes.alice, "send", "--broker", url, "--topic", "orders.eu", "--to", "bob",
                      stdin=b"to key 1")  # fmt: skip
    assert sent.code == 0, sent
    result = letterlock(homes.bob, *listen, "--count", "1", "--timeout", "20")
    assert result.code == 0, result
    assert result.stdout == b"to key 1"


@posix_only
def test_keyset_files_others_can_write_or_read_are_refused(homes: Homes) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    keyset = homes.bob / "identities" / "bob.keyset"
    keyset.chmod(0o666)
    assert_one_line_error(letterlock(homes.bob, "id", "show", "bob"), 2, "bob.keyset")
    keyset.chmod(0o644)
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    sealed = seal(homes)
    key_file = homes.bob / "identities" / "bob.keys" / "1.key"
    key_file.chmod(0o644)  # a private key others can read
    assert_one_line_error(letterlock(homes.bob, "open", stdin=sealed), 2, "1.key")


def test_removing_a_contact_forgets_its_keyset(homes: Homes) -> None:
    _ok(homes.bob, "id", "rotate", "bob")
    _ok(homes.bob, "id", "rotate", "bob", "--promote", "1")
    _distribute(homes)
    held = homes.alice / "keysets" / "bob.keyset"
    assert held.exists()
    _ok(homes.alice, "contact", "remove", "bob")
    assert not held.exists()


# ------------------------------------------------------------------ signing keys (section 9)


def test_a_signing_key_signs_and_a_receiver_pinning_the_identity_opens(homes: Homes) -> None:
    """Alice adds a signing key; her messages name it and carry her keyset; bob, who pins only
    alice's identity key and has never seen her keyset, opens them as alice."""
    before = seal(homes)
    _ok(homes.alice, "id", "rotate", "alice", "--signing")
    shown = _show(homes.alice, "alice")
    keys = {key["id"]: key for key in shown["keys"]}  # type: ignore[attr-defined]
    assert shown["signing_key"] == 1
    assert (keys[1]["purpose"], keys[1]["status"], keys[1]["signs"]) == ("sign", "primary", True)
    assert (keys[0]["purpose"], keys[0]["opens_until"] is not None) == ("encrypt", True)
    assert keys[1]["opens_until"] is None
    sealed = seal(homes)
    signer = json.loads(_ok(homes.bob, "inspect", "--json", stdin=sealed))["sender_fingerprint"]
    assert signer == keys[1]["fingerprint"]
    assert _sender(homes, before) == homes.alice_fingerprint
    opened = letterlock(homes.bob, "open", stdin=sealed)
    assert opened.code == 0, opened
    assert "signed by\talice" in opened.stderr or "alice" in opened.stderr.split("\n")[1]
    assert homes.alice_fingerprint in opened.stderr
    assert keys[1]["fingerprint"] in opened.stderr  # the signing key, reported beside it
    table = _ok(homes.alice, "id", "show", "alice")
    assert "messages are signed by signing key 1" in table


def test_with_a_signing_key_the_identity_key_file_can_be_kept_elsewhere(homes: Homes) -> None:
    """Seal does not read NAME.key then (the home still names identities by that file: a
    placeholder stays)."""
    _ok(homes.alice, "id", "rotate", "alice", "--signing")
    key_file = homes.alice / "identities" / "alice.key"
    key_file.rename(homes.alice / "alice.key.offline")
    key_file.write_bytes(b"kept offline\n")
    key_file.chmod(0o600)
    sealed = seal(homes)  # signed by the signing key: NAME.key is not read
    assert letterlock(homes.bob, "open", stdin=sealed).code == 0
    refused = letterlock(homes.alice, "id", "rotate", "alice", "--signing")
    assert refused.code != 0  # changing the keyset needs the identity key


def test_a_retired_signing_key_stops_signing_and_the_identity_key_signs_again(
    homes: Homes,
) -> None:
    _ok(homes.alice, "id", "rotate", "alice", "--signing")
    signed_by_key = seal(homes)
    _ok(homes.alice, "id", "rotate", "alice", "--retire", "1")
    assert _show(homes.alice, "alice")["signing_key"] is None
    by_identity = seal(homes)
    assert _sender(homes, by_identity) == homes.alice_fingerprint
    assert _sender(homes, signed_by_key) != homes.alice_fingerprint
    assert letterlock(homes.bob, "open", stdin=by_identity).code == 0
    # bob, holding alice's newer keyset, refuses what the retired key signed before
    _ok(homes.bob, "contact", "keyset", "alice", "-",
        stdin=_ok(homes.alice, "id", "keyset", "alice").encode())  # fmt: skip
    refused = letterlock(homes.bob, "open", stdin=signed_by_key)
    assert refused.code != 0
    assert "retired" in refused.stderr
    _ok(homes.alice, "id", "rotate", "alice", "--destroy", "1")  # no grace for a signing key
    assert _show(homes.alice, "alice")["keys"][1]["private_key"] == "gone"  # type: ignore[index]


def _sender(homes: Homes, sealed: bytes) -> str:
    inspected = json.loads(_ok(homes.bob, "inspect", "--json", stdin=sealed))
    fingerprint: str = inspected["sender_fingerprint"]
    return fingerprint


def test_signing_goes_with_no_other_step(homes: Homes) -> None:
    refused = letterlock(homes.alice, "id", "rotate", "alice", "--signing", "--promote", "0")
    assert_one_line_error(refused, 2, "one step at a time")
