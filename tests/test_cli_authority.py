"""Authorities, the root, revocation and status on the command line, run as a user runs them.

One issuer home holds the authority ``payments`` (which delegates to ``eu``), three root keys
and a status key; the sender homes ``billing`` (certified by payments) and ``clerk``
(certified by eu) seal to ``bob``, whose home anchors payments and pins the root. The homes
are made once per module; each test works on private copies.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_support import Result, finish, letterlock, spawn

NS = "ll://acme/payments/"


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    issuer: Path
    bob: Path
    billing: Path
    clerk: Path
    files: Path


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def _export(home: Path, *args: str, to: Path) -> str:
    to.write_bytes(ok(letterlock(home, *args)).stdout)
    return str(to)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("authority")
    issuer, bob, billing, clerk, files = (
        root / n for n in ("issuer", "bob", "billing", "clerk", "files")
    )
    files.mkdir()
    ok(letterlock(issuer, "authority", "create", "payments", "--namespace", NS, "--depth", "1"))
    ok(letterlock(issuer, "authority", "create", "eu", "--namespace", NS + "eu/"))
    for name in ("r1", "r2", "r3", "ts"):
        ok(letterlock(issuer, "id", "new", name))
    for home, name in ((bob, "bob"), (billing, "billing"), (clerk, "clerk")):
        ok(letterlock(home, "id", "new", name))
    bob_pub = _export(bob, "id", "export", "bob", to=files / "bob.pub")
    for home in (billing, clerk):
        ok(letterlock(home, "contact", "add", bob_pub, "--name", "bob"))
    billing_pub = _export(billing, "id", "export", "billing", to=files / "billing.pub")
    clerk_pub = _export(clerk, "id", "export", "clerk", to=files / "clerk.pub")
    certify = ("authority", "certify")
    creds = [
        ok(letterlock(issuer, *certify, "payments", "--principal", NS + "billing",
                      "--key", billing_pub, "--role", "writer", "--role", "auditor",
                      "--publish", "orders.#", "--lifetime", "30d")).stdout,
        ok(letterlock(issuer, *certify, "payments", "--sub-authority", "eu", "--identity", "eu",
                      "--namespace", NS + "eu/", "--role", "writer",
                      "--publish", "orders.eu.#")).stdout,
        ok(letterlock(issuer, *certify, "eu", "--principal", NS + "eu/clerk", "--key", clerk_pub,
                      "--role", "writer", "--publish", "orders.#")).stdout,
    ]  # fmt: skip
    (files / "all.cred").write_bytes(b"".join(creds))
    payments_pub = _export(issuer, "authority", "export", "payments", to=files / "payments.pub")
    ok(letterlock(bob, "authority", "anchor", payments_pub, "--name", "payments",
                  "--namespace", NS, "--depth", "1"))  # fmt: skip
    ok(letterlock(bob, "authority", "import", str(files / "all.cred")))
    init = ("root", "init", "--threshold", "2", "--key", "r1", "--key", "r2", "--key", "r3")
    ok(letterlock(issuer, *init, "--status-key", "ts"))
    ok(letterlock(bob, "root", "pin", str(issuer / "root" / "1.root.json")))
    return World(issuer=issuer, bob=bob, billing=billing, clerk=clerk, files=files)


@pytest.fixture
def w(world: World, tmp_path: Path) -> World:
    """Private copies of the world's homes."""
    copies = {}
    for name in ("issuer", "bob", "billing", "clerk"):
        copies[name] = tmp_path / name
        shutil.copytree(getattr(world, name), copies[name])
    return World(files=world.files, **copies)


def sealed(home: Path, name: str, topic: str = "orders.eu.fr") -> bytes:
    return ok(letterlock(home, "seal", "--from", name, "--to", "bob", "--topic", topic,
                         stdin=b"order 42")).stdout  # fmt: skip


def open_(w: World, envelope: bytes, topic: str = "orders.eu.fr") -> Result:
    return letterlock(w.bob, "open", "--topic", topic, stdin=envelope)


def publish(w: World, *extra: str) -> Path:
    out = w.files.parent / f"status-{time.monotonic_ns()}.json"
    ok(letterlock(w.issuer, "status", "publish", "--key", "ts", "--out", str(out), *extra))
    return out


def fresh(w: World, *extra: str) -> None:
    ok(letterlock(w.bob, "status", "update", str(publish(w, *extra))))


# ------------------------------------------------------------------- authorities


def test_certified_senders_are_accepted_with_their_chain_printed(w: World) -> None:
    fresh(w)
    opened = ok(open_(w, sealed(w.billing, "billing")))
    assert opened.stdout == b"order 42"
    assert "signed by: ll://acme/payments/billing" in opened.stderr
    assert "via: authority" in opened.stderr
    assert "chain: payments\n" in opened.stderr
    assert "roles: auditor, writer" in opened.stderr
    assert "status: version 1," in opened.stderr
    deep = ok(open_(w, sealed(w.clerk, "clerk")))
    assert "signed by: ll://acme/payments/eu/clerk" in deep.stderr
    assert "chain: payments > eu" in deep.stderr
    assert "roles: writer" in deep.stderr


def _fingerprint(w: World, authority: str) -> str:
    shown = ok(letterlock(w.issuer, "authority", "show", authority, "--json")).stdout
    return str(json.loads(shown)["fingerprint"])


def test_open_reports_the_keys_on_the_path_as_revoke_takes_them(w: World) -> None:
    """Every authority key that vouched for the sender, the anchor's first: the names a
    status document revokes them by (``letterlock revoke --key``)."""
    fresh(w)
    payments, eu = _fingerprint(w, "payments"), _fingerprint(w, "eu")
    opened = ok(open_(w, sealed(w.billing, "billing")))
    assert f"chain: payments\n  path keys: {payments}\n" in opened.stderr
    deep = ok(open_(w, sealed(w.clerk, "clerk")))
    assert f"chain: payments > eu\n  path keys: {payments} > {eu}\n" in deep.stderr
    revoked = ok(letterlock(w.issuer, "revoke", "--key", eu, "--reason", "compromised",
                            "--since", "unknown"))  # fmt: skip
    assert f"revoked {eu} " in revoked.stderr
    fresh(w)
    refused = open_(w, sealed(w.clerk, "clerk"))
    assert refused.code == 1, refused
    assert f"authority key {eu} on its path revoked" in refused.stderr


def test_a_delegated_sender_is_held_to_the_narrowest_scope(w: World) -> None:
    """clerk's own credential says orders.#, but eu may only publish on orders.eu.#."""
    fresh(w)
    refused = open_(w, sealed(w.clerk, "clerk", topic="orders.us"), topic="orders.us")
    assert refused.code == 1, refused
    assert "rejected: untrusted (topic_outside_scope" in refused.stderr
    assert refused.stdout == b""


def test_trust_check_answers_for_certified_senders(w: World) -> None:
    fresh(w)
    clerk_pub = str(w.files / "clerk.pub")
    yes = letterlock(w.bob, "trust", "check", "--as", "bob", "--topic", "orders.eu.#",
                     "--sender", clerk_pub, "--json")  # fmt: skip
    answer = json.loads(ok(yes).stdout)
    assert answer["accepted"] is True
    assert answer["sender"]["authorities"] == ["payments", "eu"]
    assert answer["sender"]["path_keys"] == [_fingerprint(w, "payments"), _fingerprint(w, "eu")]
    no = letterlock(w.bob, "trust", "check", "--as", "bob", "--topic", "orders.#",
                    "--sender", clerk_pub)  # fmt: skip
    assert no.code == 1, no
    assert "topic_outside_scope" in no.stdout.decode()


def test_trust_check_reads_the_chain_a_message_carries_without_importing_it(
    w: World, tmp_path: Path
) -> None:
    """carol anchors payments and imports nothing: ``--message`` asks with the chain the
    envelope carries, as open would, on its topic or on any other, and says why not."""
    carol = tmp_path / "carol"
    ok(letterlock(carol, "id", "new", "carol"))
    ok(letterlock(carol, "authority", "anchor", str(w.files / "payments.pub"), "--name",
                  "payments", "--namespace", NS, "--depth", "1"))  # fmt: skip
    for home, name in ((w.billing, "billing"), (w.clerk, "clerk")):
        ok(letterlock(home, "authority", "present", name, str(w.files / "all.cred")))
    billing, clerk = tmp_path / "billing.ll", tmp_path / "clerk.ll"
    billing.write_bytes(sealed(w.billing, "billing", topic="orders.eu.fr"))
    clerk.write_bytes(sealed(w.clerk, "clerk", topic="orders.eu.fr"))

    def check(*args: str) -> Result:
        return letterlock(carol, "trust", "check", "--as", "carol", *args)

    key = json.loads(ok(check("--message", str(billing), "--json")).stdout)["sender"]
    by_key = check("--fingerprint", key["fingerprint"], "--topic", "orders.eu.fr")
    assert by_key.code == 1, by_key
    assert "unknown_sender" in by_key.text
    assert "or with --message FILE" in by_key.text
    on_its_topic = ok(check("--message", str(billing))).text
    assert on_its_topic == (
        f"accepted: ll://acme/payments/billing ({key['fingerprint']}, authority) on "
        "'orders.eu.fr' (no policy.toml: within the scope of its chain payments)\n"
    )
    assert key["path_keys"] == [_fingerprint(w, "payments")]
    assert ok(check("--message", str(billing), "--topic", "orders.#")).code == 0
    refunds = check("--message", str(billing), "--topic", "refunds.#")
    assert refunds.code == 1, refunds
    assert (
        "topic_outside_scope (link 0): 'refunds.#' is not within the scope of credential 0 "
        "(carried chain)" in refunds.text
    )
    exact = check("--message", str(billing), "--topic", "refunds.eu")
    assert exact.code == 1, exact
    assert "'refunds.eu' is outside the scope of credential 0 (carried chain)" in exact.text
    delegated = check("--message", str(clerk), "--topic", "orders.#")  # eu: orders.eu.# only
    assert delegated.code == 1, delegated
    assert "(link 0): 'orders.#' is not within the scope of credential 0" in delegated.text
    assert ok(check("--message", str(clerk))).text.startswith(
        "accepted: ll://acme/payments/eu/clerk"
    )
    listed = json.loads(ok(letterlock(carol, "authority", "list", "--json")).stdout)
    assert listed["credentials"] == 0  # nothing was imported


def test_trust_check_says_why_a_carried_chain_places_no_key(w: World, tmp_path: Path) -> None:
    dave = tmp_path / "dave"
    ok(letterlock(dave, "id", "new", "dave"))
    ok(letterlock(w.issuer, "authority", "create", "other", "--namespace", NS))
    other = tmp_path / "other.pub"
    other.write_bytes(ok(letterlock(w.issuer, "authority", "export", "other")).stdout)
    ok(letterlock(dave, "authority", "anchor", str(other), "--name", "other", "--namespace", NS))
    ok(letterlock(w.billing, "authority", "present", "billing", str(w.files / "all.cred")))
    message = tmp_path / "billing.ll"
    message.write_bytes(sealed(w.billing, "billing"))
    refused = letterlock(dave, "trust", "check", "--as", "dave", "--message", str(message))
    assert refused.code == 1, refused
    assert refused.text.startswith("refused: SHA256:")
    assert "on 'orders.eu.fr': unknown_sender (no pin, identity or held credential places " in (
        refused.text
    )
    assert "nor the chain the message carries: no_chain" in refused.text
    bare = tmp_path / "bare.ll"
    bare.write_bytes(sealed(w.clerk, "clerk"))  # clerk presents nothing here
    plain = letterlock(dave, "trust", "check", "--as", "dave", "--message", str(bare))
    assert plain.code == 1, plain
    assert "the message carries no chain" in plain.text


def test_trust_check_of_a_message_refuses_what_it_cannot_read(w: World, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.ll"
    hidden.write_bytes(ok(letterlock(w.billing, "seal", "--from", "billing", "--to", "bob",
                                     "--topic", "orders.eu", "--hide-sender",
                                     stdin=b"x")).stdout)  # fmt: skip
    junk = tmp_path / "junk.ll"
    junk.write_bytes(b"not an envelope")
    for file, words in ((hidden, "hides its sender"), (junk, "is not an envelope")):
        refused = letterlock(w.bob, "trust", "check", "--as", "bob", "--message", str(file))
        assert refused.code == 2, refused
        assert words in refused.stderr
    both = letterlock(w.bob, "trust", "check", "--as", "bob", "--message", str(junk),
                      "--sender", str(w.files / "billing.pub"), "--topic", "t")  # fmt: skip
    assert both.code == 2, both
    assert "exactly one of" in both.stderr
    no_topic = letterlock(w.bob, "trust", "check", "--as", "bob", "--sender",
                          str(w.files / "billing.pub"))  # fmt: skip
    assert no_topic.code == 2, no_topic
    assert "give --topic" in no_topic.stderr
    help_text = ok(letterlock(w.bob, "trust", "check", "--help")).text
    assert help_text.rstrip().splitlines()[-1].strip() == (
        "letterlock trust check --as bob --message order.ll"
    )


def test_authority_show_and_list(w: World) -> None:
    shown = json.loads(ok(letterlock(w.issuer, "authority", "show", "payments", "--json")).stdout)
    assert (shown["namespace"], shown["max_depth"]) == (NS, 1)
    listed = json.loads(ok(letterlock(w.bob, "authority", "list", "--json")).stdout)
    assert [a["name"] for a in listed["anchors"]] == ["payments"]
    assert listed["credentials"] == 3
    help_text = ok(letterlock(w.bob, "authority", "certify", "--help")).text
    assert help_text.rstrip().splitlines()[-2].strip().startswith("letterlock authority certify")


def test_an_unanchored_authority_certifies_nobody(w: World) -> None:
    fresh(w)
    (w.bob / "trust" / "anchors.json").write_text("[]\n")
    refused = open_(w, sealed(w.billing, "billing"))
    assert refused.code == 1, refused
    assert "rejected: unknown_sender" in refused.stderr


# ------------------------------------------------------------------- status and revocation


def test_without_a_status_document_a_pinned_root_fails_closed(w: World) -> None:
    refused = open_(w, sealed(w.billing, "billing"))
    assert refused.code == 1, refused
    assert "rejected: untrusted (stale: no status document yet)" in refused.stderr


def test_revoked_key_is_refused_from_its_revoked_since_time(w: World) -> None:
    fresh(w)
    before = sealed(w.billing, "billing")
    time.sleep(1.1)  # envelope times are whole seconds
    since = int(time.time())
    key = json.loads(
        ok(
            letterlock(
                w.bob,
                "trust",
                "check",
                "--as",
                "bob",
                "--topic",
                "orders.eu",
                "--sender",
                str(w.files / "billing.pub"),
                "--json",
            )
        ).stdout
    )
    fingerprint = key["sender"]["fingerprint"]  # fmt: skip
    ok(letterlock(w.issuer, "revoke", "--key", fingerprint, "--reason", "compromised",
                  "--since", str(since)))  # fmt: skip
    after = sealed(w.billing, "billing")
    fresh(w)
    refused = open_(w, after)
    assert refused.code == 1, refused
    assert "rejected: untrusted (revoked (compromised) since" in refused.stderr
    assert ok(open_(w, before)).stdout == b"order 42"  # dated before: still opens
    assert ok(open_(w, sealed(w.clerk, "clerk"))).stdout == b"order 42"  # others unaffected


def test_a_revoked_sub_authority_refuses_the_principals_it_certified(w: World) -> None:
    """eu (certified by payments) is superseded: clerk, whom eu certified, is refused from the
    revoked-since time on; billing, certified by payments directly, is not."""
    fresh(w)
    before = sealed(w.clerk, "clerk")
    time.sleep(1.1)  # envelope times are whole seconds
    since = int(time.time())
    listed = json.loads(ok(letterlock(w.issuer, "authority", "list", "--json")).stdout)
    eu = next(a["fingerprint"] for a in listed["authorities"] if a["name"] == "eu")
    ok(letterlock(w.issuer, "revoke", "--key", eu, "--reason", "superseded",
                  "--since", str(since)))  # fmt: skip
    after = sealed(w.clerk, "clerk")
    fresh(w)
    refused = open_(w, after)
    assert refused.code == 1, refused
    assert f"authority key {eu} on its path revoked (superseded)" in refused.stderr
    assert ok(open_(w, before)).stdout == b"order 42"  # dated before: still opens
    assert ok(open_(w, sealed(w.billing, "billing"))).stdout == b"order 42"


def test_compromise_at_an_unknown_time_refuses_every_message(w: World) -> None:
    fresh(w)
    before = sealed(w.clerk, "clerk")
    ok(letterlock(w.issuer, "revoke", "--principal", NS + "eu/clerk", "--reason", "compromised",
                  "--since", "unknown"))  # fmt: skip
    fresh(w)
    refused = open_(w, before)
    assert refused.code == 1, refused
    assert "revoked (compromised-unknown-time)" in refused.stderr
    shown = json.loads(ok(letterlock(w.bob, "status", "show", "--json")).stdout)
    assert shown["revoked_principals"] == [NS + "eu/clerk"]


def test_stale_status_fails_closed_unless_allowed(w: World) -> None:
    fresh(w)
    ok(letterlock(w.bob, "status", "freshness", "--max-age", "1"))
    time.sleep(2.1)
    envelope = sealed(w.billing, "billing")
    stale = open_(w, envelope)
    assert stale.code == 1, stale
    assert "rejected: untrusted (stale: status version 1 is" in stale.stderr
    ok(letterlock(w.bob, "status", "freshness", "--allow-stale"))
    assert ok(open_(w, envelope)).stdout == b"order 42"
    ok(letterlock(w.bob, "status", "freshness", "--fail-closed", "--max-age", "1h"))
    assert ok(open_(w, sealed(w.billing, "billing"))).stdout == b"order 42"


def test_expired_status_fails_closed(w: World) -> None:
    fresh(w, "--expires", "1")
    time.sleep(1.1)
    stale = open_(w, sealed(w.billing, "billing"))
    assert stale.code == 1, stale
    assert "expired at" in stale.stderr


def test_status_never_rolls_back(w: World) -> None:
    first = publish(w)
    second = publish(w)
    ok(letterlock(w.bob, "status", "update", str(second)))
    refused = letterlock(w.bob, "status", "update", str(first))
    assert refused.code == 2, refused
    assert "rollback: status version 1 after 2" in refused.stderr
    shown = json.loads(ok(letterlock(w.bob, "status", "show", "--json")).stdout)
    assert shown["version"] == 2


def test_status_signed_by_another_key_is_refused(w: World) -> None:
    ok(letterlock(w.issuer, "id", "new", "mallory"))
    out = w.files.parent / "forged.json"
    forged = letterlock(w.issuer, "status", "publish", "--key", "mallory", "--out", str(out))
    assert forged.code == 2, forged  # the publisher checks it against the root first
    assert "threshold" in forged.stderr


# ------------------------------------------------------------------- the root


def test_root_rotation_needs_both_thresholds_and_never_rolls_back(w: World) -> None:
    fresh(w)
    ok(letterlock(w.issuer, "id", "new", "r4"))
    rotate = ("root", "rotate", "--threshold", "2", "--key", "r3", "--key", "r4",
              "--status-key", "ts")  # fmt: skip
    ok(letterlock(w.issuer, *rotate, "--sign", "r3", "--sign", "r4"))  # 1 of v1's 2
    v1, v2 = (str(w.issuer / "root" / f"{n}.root.json") for n in (1, 2))
    below = letterlock(w.bob, "root", "update", v2)
    assert below.code == 2, below
    assert "threshold: signed by 1 of 2 of root version 1's root keys" in below.stderr
    ok(letterlock(w.issuer, "root", "sign", v2, "--key", "r2"))
    ok(letterlock(w.bob, "root", "update", v2))
    assert json.loads(ok(letterlock(w.bob, "root", "show", "--json")).stdout)["version"] == 2
    back = letterlock(w.bob, "root", "update", v1)
    assert back.code == 2, back
    assert "rollback" in back.stderr
    assert ok(open_(w, sealed(w.billing, "billing"))).stdout == b"order 42"


def test_duplicate_keys_do_not_make_a_threshold(w: World) -> None:
    dup = letterlock(w.issuer, "root", "rotate", "--threshold", "2", "--key", "r1", "--key", "r1",
                     "--status-key", "ts")  # fmt: skip
    assert dup.code == 2, dup
    assert "threshold is 1 to the number of distinct keys (1)" in dup.stderr


# ------------------------------------------------------------------- through the broker


def test_listen_fails_closed_until_a_status_arrives_on_the_broker(w: World, tmp_path: Path) -> None:
    """Without a status, a listener leaves the message for later (a transient refusal, never
    opened); ``listen --follow-status`` takes the status published on the broker, then opens."""
    url = f"spool://{tmp_path}/spool.sqlite"
    listen = ("listen", "--broker", url, "--topic", "orders.#", "--as", "bob")
    ok(letterlock(w.bob, *listen, "--timeout", "0.1"))  # the group exists from now on
    ok(letterlock(w.bob, "status", "update", "--broker", url, "--wait", "0.1"))  # and its own
    ok(letterlock(w.billing, "send", "--broker", url, "--topic", "orders.eu.fr",
                  "--from", "billing", "--to", "bob", stdin=b"order 42"))  # fmt: skip
    stale = ok(letterlock(w.bob, *listen, "--timeout", "1"))
    assert stale.stdout == b""
    assert "handled 0 messages" in stale.stderr
    listener = spawn(w.bob, *listen, "--follow-status", "--count", "1", "--timeout", "30")
    try:
        time.sleep(1.0)
        ok(letterlock(w.issuer, "status", "publish", "--key", "ts", "--broker", url))
    finally:
        result = finish(listener)
    assert result.code == 0, result
    assert result.stdout == b"order 42"
    assert "status: version 1," in result.stderr
    shown = json.loads(ok(letterlock(w.bob, "status", "show", "--json")).stdout)
    assert shown["version"] == 1  # persisted by the listener's follower


def test_a_pool_of_listeners_follows_the_status_published_on_the_broker(
    w: World, tmp_path: Path
) -> None:
    """``--follow-status --workers 2``: the pool's process follows the status topic and saves
    what it accepts in the home; the workers (other processes, started without a status) fail
    closed, then open with the status published after they refused (each worker reads the
    saved status again when it changes)."""
    url = f"spool://{tmp_path}/spool.sqlite"
    listen = ("listen", "--broker", url, "--topic", "orders.#", "--as", "bob")
    ok(letterlock(w.bob, *listen, "--timeout", "0.1"))  # the group exists from now on
    ok(letterlock(w.bob, "status", "update", "--broker", url, "--wait", "0.1"))  # and its own
    for n in range(2):
        ok(letterlock(w.billing, "send", "--broker", url, "--topic", "orders.eu.fr",
                      "--from", "billing", "--to", "bob", stdin=b"order %d" % n))  # fmt: skip
    out = tmp_path / "out"
    pool = spawn(w.bob, *listen, "--follow-status", "--workers", "2", "--count", "2",
                 "--timeout", "60", "--out", str(out))  # fmt: skip
    try:
        assert pool.stderr is not None
        seen: list[str] = []
        while not seen or "retrying in" not in seen[-1]:  # a worker refused: no status yet
            line = pool.stderr.readline().decode()
            assert line, "".join(seen)
            seen.append(line)
        ok(letterlock(w.issuer, "status", "publish", "--key", "ts", "--broker", url))
    finally:
        result = finish(pool)
    assert result.code == 0, result
    assert sorted(p.read_bytes() for p in out.iterdir()) == [b"order 0", b"order 1"]
    assert result.stderr.count("status: version 1,") == 2
    assert "handled 2 messages" in result.stderr
    shown = json.loads(ok(letterlock(w.bob, "status", "show", "--json")).stdout)
    assert shown["version"] == 1  # saved by the pool's follower


# ------------------------------------------------------------------- carried in the envelope


def test_a_receiver_that_imported_nothing_verifies_the_presented_chain(w: World) -> None:
    """clerk presents its chain (its credential and eu's) in every envelope: bob, who holds
    only the anchor, verifies it from the envelope alone."""
    fresh(w)
    (w.bob / "trust" / "credentials").unlink()
    unknown = open_(w, sealed(w.clerk, "clerk"))
    assert unknown.code == 1, unknown
    assert "rejected: unknown_sender" in unknown.stderr
    presented = ok(letterlock(w.clerk, "authority", "present", "clerk", str(w.files / "all.cred")))
    assert "with 2 credential(s), up to eu" in presented.stderr
    opened = ok(open_(w, sealed(w.clerk, "clerk")))
    assert "chain: payments > eu" in opened.stderr


def test_a_stale_receiver_says_its_sender_holds_a_newer_status(w: World) -> None:
    """The sender's status version travels in the envelope: a receiver whose status is stale
    and older says so in its (transient) refusal."""
    fresh(w)  # bob holds status version 1
    ok(letterlock(w.clerk, "root", "pin", str(w.issuer / "root" / "1.root.json")))
    ok(letterlock(w.clerk, "status", "update", str(publish(w))))  # clerk holds version 2
    ok(letterlock(w.bob, "status", "freshness", "--max-age", "1"))
    time.sleep(2.1)
    behind = open_(w, sealed(w.clerk, "clerk"))
    assert behind.code == 1, behind
    assert "stale: status version 1 is" in behind.stderr
    assert "the sender has status version 2" in behind.stderr
