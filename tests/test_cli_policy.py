"""``letterlock trust check`` and the home's policy.toml, run as a user runs them.

bob's home has alice pinned (conftest ``homes``); a policy.toml in it puts rules over the pins.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Homes, assert_one_line_error, letterlock, seal
from letterlock import Identity, Suite

POLICY = """\
version = 1

[[rule]]
name = "orders"
topics = ["orders.#"]
senders = ["alice"]

[[rule]]
name = "audit"
topics = ["audit.#"]
principals = ["ll://acme/audit/*"]
"""


def _alice_key(homes: Homes, tmp_path: Path) -> str:
    exported = letterlock(homes.alice, "id", "export", "alice")
    assert exported.code == 0, exported
    path = tmp_path / "alice.pub"
    path.write_bytes(exported.stdout)
    return str(path)


def _check(homes: Homes, key: str, topic: str, *extra: str):  # type: ignore[no-untyped-def]
    return letterlock(
        homes.bob, "trust", "check", "--as", "bob", "--topic", topic, "--sender", key, *extra
    )


def _with_policy(homes: Homes, text: str = POLICY) -> None:
    path = homes.bob / "policy.toml"
    path.write_text(text)
    path.chmod(0o600)


def test_without_a_policy_file_pins_decide_alone(homes: Homes, tmp_path: Path) -> None:
    result = _check(homes, _alice_key(homes, tmp_path), "payroll")
    assert result.code == 0, result
    assert result.text.startswith(f"accepted: alice ({homes.alice_fingerprint}, pin) on 'payroll'")
    assert "no policy.toml" in result.text


def test_check_names_the_rule_or_why_not(homes: Homes, tmp_path: Path) -> None:
    _with_policy(homes)
    key = _alice_key(homes, tmp_path)
    accepted = _check(homes, key, "orders.eu")
    assert accepted.code == 0, accepted
    assert accepted.text == (
        f"accepted: alice ({homes.alice_fingerprint}, pin) on 'orders.eu' by rule orders\n"
    )
    uncovered = _check(homes, key, "payroll")
    assert uncovered.code == 1, uncovered
    assert uncovered.text == (
        f"refused: {homes.alice_fingerprint} on 'payroll': untrusted (no rule covers the topic)\n"
    )
    principal = _check(homes, key, "audit.login")
    assert principal.code == 1
    assert "untrusted (rule audit: the sender has no principal)" in principal.text


def test_check_as_json(homes: Homes, tmp_path: Path) -> None:
    _with_policy(homes)
    key = _alice_key(homes, tmp_path)
    accepted = json.loads(_check(homes, key, "orders.eu", "--json").text)
    assert accepted == {
        "accepted": True,
        "as": "bob",
        "topic": "orders.eu",
        "policy": str(homes.bob / "policy.toml"),
        "rules": ["orders"],
        "reason": None,
        "detail": "",
        "sender": {
            "name": "alice",
            "fingerprint": homes.alice_fingerprint,
            "suite": "x25519",
            "via": "pin",
            "principal": None,
            "authorities": [],
            "roles": [],
            "path_keys": [],
        },
    }
    refused = _check(homes, key, "payroll", "--json")
    assert refused.code == 1
    assert json.loads(refused.text)["reason"] == "untrusted"
    assert json.loads(refused.text)["sender"] is None


def test_check_a_listen_pattern_answers_for_every_topic(homes: Homes, tmp_path: Path) -> None:
    _with_policy(homes)
    key = _alice_key(homes, tmp_path)
    assert _check(homes, key, "orders.#").code == 0
    everything = _check(homes, key, "#")
    assert everything.code == 1
    assert "rule audit" in everything.text  # audit.# overlaps '#', and alice fails it
    mqtt = _check(homes, key, "orders/+", "--dialect", "mqtt")
    assert mqtt.code == 1  # '/' topics: no '.'-rule covers them


def test_check_by_fingerprint_and_an_unknown_sender(homes: Homes, tmp_path: Path) -> None:
    _with_policy(homes)
    by_fingerprint = letterlock(
        homes.bob, "trust", "check", "--as", "bob", "--topic", "orders.eu",
        "--fingerprint", homes.alice_fingerprint,
    )  # fmt: skip
    assert by_fingerprint.code == 0, by_fingerprint
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(Identity.generate(Suite.X25519).public.to_text("mallory") + "\n")
    unknown = _check(homes, str(stranger), "orders.eu")
    assert unknown.code == 1
    assert "unknown_sender" in unknown.text
    fingerprint = Identity.generate(Suite.X25519).public.fingerprint_text
    by_unknown_fingerprint = letterlock(
        homes.bob, "trust", "check", "--as", "bob", "--topic", "orders.eu",
        "--fingerprint", fingerprint,
    )  # fmt: skip
    assert by_unknown_fingerprint.code == 1
    assert by_unknown_fingerprint.text == (
        f"refused: {fingerprint} on 'orders.eu': unknown_sender (no pin, identity or held "
        "credential places this key (a chain carried in its envelopes counts once imported, "
        "letterlock authority import, or with --message FILE))\n"
    )


def test_check_usage_errors(homes: Homes, tmp_path: Path) -> None:
    key = _alice_key(homes, tmp_path)
    both = _check(homes, key, "orders", "--fingerprint", homes.alice_fingerprint)
    assert_one_line_error(both, 2, "exactly one of --sender FILE, --fingerprint or --message FILE")
    assert_one_line_error(
        letterlock(
            homes.bob, "trust", "check", "--as", "bob", "--topic", "t", "--fingerprint", "x"
        ),
        2,
        "is not a fingerprint",
    )
    assert_one_line_error(
        letterlock(homes.bob, "trust", "check", "--as", "carol", "--topic", "t", "--sender", key),
        2,
        "no identity named 'carol'",
    )


def test_a_bad_policy_file_is_an_error_naming_the_line(homes: Homes, tmp_path: Path) -> None:
    _with_policy(homes, POLICY.replace("senders =", "sender ="))
    result = _check(homes, _alice_key(homes, tmp_path), "orders.eu")
    assert_one_line_error(result, 2, "policy.toml: line 6: unknown key 'sender' in a rule")


def test_open_applies_the_policy_file(homes: Homes) -> None:
    """open uses the same policy: alice's valid signature on a topic no rule covers is refused."""
    _with_policy(homes)
    allowed = letterlock(
        homes.bob, "open", "--topic", "orders.eu", stdin=seal(homes, topic="orders.eu")
    )
    assert allowed.code == 0, allowed
    assert "rule" in allowed.stderr
    assert "orders" in allowed.stderr.split("rule", 1)[1].splitlines()[0]  # which rule admitted
    refused = letterlock(
        homes.bob, "open", "--topic", "payroll", stdin=seal(homes, topic="payroll")
    )
    assert_one_line_error(refused, 1, "rejected: untrusted")
