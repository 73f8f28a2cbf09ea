"""``letterlock id new NAME --token LABEL``: an identity whose keys live on a SoftHSM2 token,
used by seal and open as a user runs them (a token made for this module in tmp)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import services
from cli_support import PAYLOAD, assert_one_line_error, letterlock

PIN = "cli-token-pin-1234"
TOKEN = "ll-cli"
SOFTHSM2 = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """SOFTHSM2_CONF (which the CLI runs inherit) names a token directory in tmp."""
    services.require_binary(SOFTHSM2, "softhsm2")
    util = services.require_binary("softhsm2-util", "softhsm2")
    if not services.in_ci():
        pytest.importorskip("pkcs11", reason="pip install 'letterlock[pkcs11]'")
    root = tmp_path_factory.mktemp("softhsm-cli")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
             "--so-pin", "so-pin-1234"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield


def test_an_identity_on_a_token_seals_and_opens(softhsm: None, tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    made = letterlock(
        alice, "id", "new", "alice", "--suite", "p256", "--token", TOKEN, passphrase=PIN
    )
    assert made.code == 0, made
    assert f"on token {TOKEN!r}" in made.stderr
    assert sorted(p.name for p in (alice / "identities").iterdir()) == [
        "alice.pub",
        "alice.token",
    ]  # fmt: skip: no key file: the keys are on the token
    assert letterlock(bob, "id", "new", "bob", "--suite", "p256").code == 0
    for home, peer_home, peer in ((alice, bob, "bob"), (bob, alice, "alice")):
        exported = letterlock(peer_home, "id", "export", peer)
        assert exported.code == 0, exported
        assert letterlock(home, "trust", "pin", "-", stdin=exported.stdout).code == 0
        added = letterlock(home, "contact", "add", "-", "--name", peer, stdin=exported.stdout)
        assert added.code == 0, added

    listed = letterlock(alice, "id", "list")
    assert listed.text.split("\t")[:2] == ["alice", "p256"], listed

    to_bob = letterlock(
        alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t", stdin=PAYLOAD,
        passphrase=PIN,
    )  # fmt: skip
    assert to_bob.code == 0, to_bob
    opened = letterlock(bob, "open", "--topic", "t", stdin=to_bob.stdout)
    assert (opened.code, opened.stdout) == (0, PAYLOAD), opened

    to_alice = letterlock(
        bob, "seal", "--from", "bob", "--to", "alice", "--topic", "t", stdin=PAYLOAD
    )
    assert to_alice.code == 0, to_alice
    opened = letterlock(alice, "open", "--topic", "t", stdin=to_alice.stdout, passphrase=PIN)
    assert (opened.code, opened.stdout) == (0, PAYLOAD), opened

    wrong = letterlock(
        alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t", stdin=PAYLOAD,
        passphrase="not-the-pin",
    )  # fmt: skip
    assert_one_line_error(wrong, 2, f"wrong PIN for token {TOKEN!r}")
    assert "not-the-pin" not in wrong.stderr

    passwd = letterlock(alice, "id", "passwd", "alice", passphrase=PIN)
    assert_one_line_error(passwd, passwd.code, "is on a PKCS#11 token")
    again = letterlock(alice, "id", "new", "alice", "--suite", "p256", "--token", TOKEN)
    assert_one_line_error(again, again.code, "already exists")


def test_a_token_takes_p256_and_p384_only(softhsm: None, tmp_path: Path) -> None:
    made = letterlock(tmp_path, "id", "new", "x", "--token", TOKEN, passphrase=PIN)
    assert_one_line_error(made, made.code, "p256 and p384")
    assert not (tmp_path / "identities" / "x.token").exists()


def test_listen_with_workers_opens_on_the_token_in_each_worker(
    softhsm: None, tmp_path: Path
) -> None:
    """``listen --workers 2 --as carol`` where carol's keys are on the token: each worker logs
    in to the token itself (a session does not survive into another process), with the PIN
    that never crosses to the workers pickled, and never appears in any output."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    made = letterlock(alice, "id", "new", "carol", "--suite", "p256", "--token", TOKEN,
                      passphrase=PIN)  # fmt: skip
    assert made.code == 0, made
    assert letterlock(bob, "id", "new", "bob", "--suite", "p256").code == 0
    for home, peer_home, peer in ((alice, bob, "bob"), (bob, alice, "carol")):
        exported = letterlock(peer_home, "id", "export", peer)
        assert letterlock(home, "trust", "pin", "-", stdin=exported.stdout).code == 0
        added = letterlock(home, "contact", "add", "-", "--name", peer, stdin=exported.stdout)
        assert added.code == 0, added
    url = f"spool://{tmp_path}/spool.db"
    listen = ("listen", "--broker", url, "--topic", "jobs.*", "--as", "carol")
    declared = letterlock(alice, *listen, "--timeout", "0.1", passphrase=PIN)
    assert declared.code == 0, declared
    sent = {}
    for n in range(6):
        payload = b"job %d" % n
        result = letterlock(bob, "send", "--broker", url, "--topic", "jobs.eu", "--to", "carol",
                            stdin=payload)  # fmt: skip
        assert result.code == 0, result
        sent[result.stderr.split()[2]] = payload
    out = tmp_path / "inbox"
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    listened = letterlock(
        alice, *listen, "--workers", "2", "--out", str(out), "--timeout", "2",
        "--passphrase-file", str(pin_file), passphrase=None,
    )  # fmt: skip
    assert listened.code == 0, listened
    assert {path.name: path.read_bytes() for path in out.iterdir()} == sent
    assert "handled 6 messages" in listened.stderr
    assert PIN not in listened.stderr
