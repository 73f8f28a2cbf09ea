"""The X.509 flow as a user runs it: ``id csr`` -> the openssl CA signs -> ``id attach`` ->
``seal`` -> a receiver with nothing but ``trust anchor`` opens it and sees the chain.

Expired and out-of-namespace certificates are refused, and ``id attach`` refuses a certificate
that does not bind the identity's key. (Revocation of a carried chain is the status policy's,
tested in ``test_carriage.py``; the CLI gains status documents with the status commands.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_support import Homes, Result, letterlock
from letterlock.core.keys import format_fingerprint
from letterlock.trust import x509
from openssl_ca import Openssl, scope_sections

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")

PRINCIPAL = "ll://acme/payments/billing"
LEAF_EXT = (
    "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    f"{x509.SCOPE_OID} = ASN1:SEQUENCE:leaf_scope\n"
)


def _ca(tmp_path: Path) -> Openssl:
    ssl = Openssl(tmp_path / "ca")
    ssl.root.mkdir()
    ssl.root_ca("Acme Root")
    ssl.intermediate("Acme Issuing", "Acme Root")
    return ssl


def _sign(ssl: Openssl, csr: bytes, name: str, dates: tuple[str, str] | None = None) -> Path:
    """What the company CA does with a request: copies its extensions, adds the scope."""
    request = ssl.root / f"{name}.csr"
    request.write_bytes(csr)
    config = ssl.root / f"{name}.cnf"
    config.write_text(f"[ext]\n{LEAF_EXT}\n" + scope_sections("leaf", ("orders.#",), ()),
                      encoding="utf-8")  # fmt: skip
    out = ssl.root / f"{name}.pem"
    issuer, key = ssl.made["Acme Issuing"], ssl.root / "Acme Issuing.key"
    if dates is None:
        ssl.run("x509", "-req", "-in", str(request), "-CA", str(issuer), "-CAkey", str(key),
                "-set_serial", "77", "-days", "30", "-sha256", "-copy_extensions", "copyall",
                "-extfile", str(config), "-extensions", "ext", "-out", str(out))  # fmt: skip
        return out
    db = ssl.root / f"{name}.db"
    db.mkdir()
    (db / "index.txt").write_text("", encoding="utf-8")
    (db / "serial").write_text("4D\n", encoding="utf-8")
    ca_config = ssl.root / f"{name}.ca.cnf"
    ca_config.write_text(
        config.read_text(encoding="utf-8")
        + f"[ca]\ndefault_ca = x\n[x]\ndatabase = {db}/index.txt\nserial = {db}/serial\n"
        f"new_certs_dir = {db}\ndefault_md = sha256\npolicy = any\ncopy_extensions = copyall\n"
        "unique_subject = no\n[any]\nCN = supplied\n",
        encoding="utf-8",
    )
    ssl.run("ca", "-batch", "-config", str(ca_config), "-extensions", "ext", "-cert",
            str(issuer), "-keyfile", str(key), "-in", str(request), "-startdate", dates[0],
            "-enddate", dates[1], "-notext", "-out", str(out))  # fmt: skip
    return out


def _ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def _sealed(homes: Homes, topic: str = "orders.eu") -> bytes:
    return _ok(letterlock(homes.alice, "seal", "--from", "billing", "--to", "bob",
                          "--topic", topic, stdin=b"certified hello")).stdout  # fmt: skip


def test_csr_attach_seal_and_open_with_only_an_anchor(homes: Homes, tmp_path: Path) -> None:
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    assert csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    subprocess.run(["openssl", "req", "-verify", "-noout"], input=csr, check=True,
                   capture_output=True)  # fmt: skip
    leaf = _sign(ssl, csr, "billing")
    attached = _ok(letterlock(homes.alice, "id", "attach", "billing", str(leaf),
                              str(ssl.made["Acme Issuing"])))  # fmt: skip
    assert PRINCIPAL in attached.stderr
    # bob has not pinned billing: only the CA, for ll://acme/
    _ok(letterlock(homes.bob, "trust", "anchor", str(ssl.made["Acme Root"]), "--name", "acme",
                   "--namespace", "ll://acme/"))  # fmt: skip
    listed = json.loads(_ok(letterlock(homes.bob, "trust", "anchors", "--json")).stdout)
    assert listed == [{"name": "acme", "namespace": "ll://acme/", "subject": "CN=Acme Root,O=Acme"}]
    sealed = _sealed(homes)
    opened = _ok(letterlock(homes.bob, "open", stdin=sealed))
    assert opened.stdout == b"certified hello"
    assert PRINCIPAL in opened.stderr
    assert "acme > CN=Acme Issuing,O=Acme" in opened.stderr
    assert "x509" in opened.stderr
    # the CAs' key ids, the anchor's first, as 'revoke --ca-cert' names them
    root, issuing = (format_fingerprint(x509.ca_key_id(ssl.made[ca].read_bytes()))
                     for ca in ("Acme Root", "Acme Issuing"))  # fmt: skip
    assert f"path keys: {root} > {issuing}\n" in opened.stderr
    # trust check reads the chain the message carries, on its topic, without importing it
    message = tmp_path / "billing.ll"
    message.write_bytes(sealed)
    checked = json.loads(_ok(letterlock(homes.bob, "trust", "check", "--as", "bob",
                                        "--message", str(message), "--json")).stdout)  # fmt: skip
    assert (checked["topic"], checked["sender"]["via"]) == ("orders.eu", "x509")
    assert checked["sender"]["path_keys"] == [root, issuing]
    elsewhere = letterlock(homes.bob, "trust", "check", "--as", "bob", "--message", str(message),
                           "--topic", "payroll.run")  # fmt: skip
    assert elsewhere.code == 1, elsewhere
    assert "x509 scope" in elsewhere.text
    carol = tmp_path / "carol"  # no anchor at all
    _ok(letterlock(carol, "id", "new", "carol"))
    strange = letterlock(carol, "trust", "check", "--as", "carol", "--message", str(message))
    assert strange.code == 1, strange
    assert "nor the chain the message carries (no anchor of yours reads its format)" in strange.text
    # the CA's scope: orders.# only
    outside = letterlock(homes.bob, "open", stdin=_sealed(homes, "payroll.run"))
    assert outside.code != 0
    assert outside.stdout == b""
    assert "untrusted" in outside.stderr


def test_expired_and_out_of_namespace_chains_are_refused(homes: Homes, tmp_path: Path) -> None:
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    _ok(letterlock(homes.bob, "trust", "anchor", str(ssl.made["Acme Root"]), "--name", "acme",
                   "--namespace", "ll://acme/payments/"))  # fmt: skip
    issuing = str(ssl.made["Acme Issuing"])
    elsewhere = _ok(letterlock(homes.alice, "id", "csr", "billing",
                               "--principal", "ll://acme/hr/billing")).stdout  # fmt: skip
    _ok(letterlock(homes.alice, "id", "attach", "billing", str(_sign(ssl, elsewhere, "hr")),
                   issuing))  # fmt: skip
    refused = letterlock(homes.bob, "open", stdin=_sealed(homes))
    assert (refused.code != 0, refused.stdout) == (True, b"")
    assert "unknown_sender" in refused.stderr
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    old = _sign(ssl, csr, "old", dates=("20200101000000Z", "20210101000000Z"))
    _ok(letterlock(homes.alice, "id", "attach", "billing", str(old), issuing))
    expired = letterlock(homes.bob, "open", stdin=_sealed(homes))
    assert (expired.code != 0, expired.stdout) == (True, b"")
    # expired before its CA began: valid at no time, so the carried chain places no key (a
    # leaf that expires while the chain is cached is refused as untrusted: test_carriage)
    assert "unknown_sender" in expired.stderr


def test_attach_refuses_a_certificate_for_another_key(homes: Homes, tmp_path: Path) -> None:
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    leaf = _sign(ssl, csr, "billing")
    refused = letterlock(homes.alice, "id", "attach", "alice", str(leaf))
    assert refused.code != 0
    assert "not identity 'alice'" in refused.stderr
    assert not (homes.alice / "identities" / "alice.chain.pem").exists()
    # and a CA certificate (no identity extension) binds nothing
    refused = letterlock(homes.alice, "id", "attach", "billing", str(ssl.made["Acme Issuing"]))
    assert refused.code != 0


def test_attach_refuses_a_chain_its_receivers_would_refuse_as_out_of_order(
    homes: Homes, tmp_path: Path
) -> None:
    """Receivers refuse a carried chain not in issuer order (x509.md section 9) before
    building a path, so the sender does not attach one."""
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    leaf = str(_sign(ssl, csr, "billing"))
    root, issuing = str(ssl.made["Acme Root"]), str(ssl.made["Acme Issuing"])
    refused = letterlock(homes.alice, "id", "attach", "billing", leaf, root, issuing)
    assert refused.code != 0
    assert "order" in refused.stderr
    assert not (homes.alice / "identities" / "billing.chain.pem").exists()
    _ok(letterlock(homes.alice, "id", "attach", "billing", leaf, issuing, root))


def test_anchor_needs_a_namespace(homes: Homes, tmp_path: Path) -> None:
    ssl = _ca(tmp_path)
    refused = letterlock(homes.bob, "trust", "anchor", str(ssl.made["Acme Root"]), "--name", "x")
    assert refused.code != 0
    assert "--namespace" in refused.stderr
    bad = letterlock(homes.bob, "trust", "anchor", str(ssl.made["Acme Root"]), "--name", "x",
                     "--namespace", "ll://acme")  # fmt: skip
    assert bad.code != 0
    assert "namespace" in bad.stderr


def test_help_ends_with_an_example() -> None:
    for args in (("id", "csr"), ("id", "attach"), ("trust", "anchor"), ("trust", "anchors")):
        shown = letterlock(Path("/nonexistent"), *args, "--help")
        assert shown.code == 0, shown
        assert shown.text.rstrip().splitlines()[-1].strip().startswith("letterlock "), shown


def test_inspect_shows_the_credential_block(homes: Homes, tmp_path: Path) -> None:
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    _ok(letterlock(homes.alice, "id", "attach", "billing", str(_sign(ssl, csr, "billing")),
                   str(ssl.made["Acme Issuing"])))  # fmt: skip
    shown = _ok(letterlock(homes.bob, "inspect", stdin=_sealed(homes))).text
    assert "x509, 2 item(s)" in shown
    assert "status version 0" in shown


def test_revoke_names_a_ca_by_its_certificates_key(homes: Homes, tmp_path: Path) -> None:
    """``revoke --ca-cert`` records the CA's key id (SHA-256 of its SubjectPublicKeyInfo), the
    name the receivers' path check looks up (tested in ``test_path_revocation.py``)."""
    ssl = _ca(tmp_path)
    issuing = ssl.made["Acme Issuing"]
    expected = format_fingerprint(x509.ca_key_id(issuing.read_bytes()))
    done = _ok(letterlock(homes.alice, "revoke", "--ca-cert", str(issuing),
                          "--reason", "compromised", "--since", "unknown"))  # fmt: skip
    assert f"revoked {expected} (compromised-unknown-time)" in done.stderr
    both = letterlock(homes.alice, "revoke", "--ca-cert", str(issuing), "--key", expected,
                      "--reason", "superseded")  # fmt: skip
    assert both.code != 0
    assert "exactly one of" in both.stderr
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    assert "not a certificate" in letterlock(homes.alice, "revoke", "--ca-cert", str(junk),
                                             "--reason", "superseded").stderr  # fmt: skip


def test_a_sender_bob_revoked_stays_refused_with_a_valid_certificate(
    homes: Homes, tmp_path: Path
) -> None:
    """bob pinned billing, then revoked it (``trust revoke``): billing's certificate from the
    CA bob anchors does not admit the key again (the home puts its revoked pins in front of
    every policy, :class:`letterlock.trust.DenyRevokedPins`)."""
    ssl = _ca(tmp_path)
    _ok(letterlock(homes.alice, "id", "new", "billing"))
    csr = _ok(letterlock(homes.alice, "id", "csr", "billing", "--principal", PRINCIPAL)).stdout
    leaf = _sign(ssl, csr, "billing")
    _ok(letterlock(homes.alice, "id", "attach", "billing", str(leaf),
                   str(ssl.made["Acme Issuing"])))  # fmt: skip
    _ok(letterlock(homes.bob, "trust", "anchor", str(ssl.made["Acme Root"]), "--name", "acme",
                   "--namespace", "ll://acme/"))  # fmt: skip
    exported = _ok(letterlock(homes.alice, "id", "export", "billing")).stdout
    _ok(letterlock(homes.bob, "trust", "pin", "-", "--name", "billing", stdin=exported))
    sealed = _sealed(homes)
    assert _ok(letterlock(homes.bob, "open", stdin=sealed)).stdout == b"certified hello"
    _ok(letterlock(homes.bob, "trust", "revoke", "billing"))
    refused = letterlock(homes.bob, "open", stdin=_sealed(homes))
    assert refused.code == 1, refused
    assert refused.stdout == b""
    assert "rejected: untrusted (pin 'billing' is revoked)" in refused.stderr


def test_the_homes_policy_refuses_its_revoked_pins_in_front(tmp_path: Path) -> None:
    from letterlock.cli.home import Home
    from letterlock.trust import DenyRevokedPins

    assert isinstance(Home(tmp_path / "home").senders({}), DenyRevokedPins)
