"""``letterlock trust check``: would this sender on this topic be accepted, by which rule, why not.

It asks the home's own trust policy (pins, own identities and ``policy.toml``: exactly what
``open`` and ``listen`` use) the question a message would, at the current time, without a
message. A pattern (``orders.#``) is answered for every topic it matches
(:func:`letterlock.trust.check.admit_pattern`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass

import click

from letterlock import PublicIdentity, Rejected, UsageError, VerifiedSender, format_fingerprint
from letterlock.cli.home import Home, check_identity_name
from letterlock.cli.options import dialect_option, example, pass_home
from letterlock.cli.render import note, safe
from letterlock.cli.streams import read_input
from letterlock.core.topics import Dialect
from letterlock.core.trust import Refusal, TrustPolicy, Via
from letterlock.trust import ScopePattern
from letterlock.trust.check import admit_pattern

__all__ = ["key_id_of", "trust_check_command"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    accepted: bool
    sender: VerifiedSender | None
    reason: str | None
    detail: str
    governing: tuple[str, ...]


def _sender_from_file(file: str) -> PublicIdentity:
    where = "standard input" if file == "-" else file
    try:
        text = read_input(file, limit=1024 * 1024).decode("utf-8")
    except (Rejected, UnicodeDecodeError):
        raise UsageError(f"{where} is not a public key line") from None
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                return PublicIdentity.from_text(line)[0]
            except ValueError as exc:
                raise UsageError(f"{where}: {exc}") from None
    raise UsageError(f"no public key line in {where} (expected 'letterlock id export' output)")


def key_id_of(fingerprint: str) -> bytes:
    """The 32 bytes of a ``SHA256:...`` fingerprint; UsageError if it is not one."""
    text = fingerprint.removeprefix("SHA256:")
    try:
        key_id = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key_id = b""
    if len(key_id) != 32:
        raise UsageError(
            f"{fingerprint[:80]!r} is not a fingerprint (SHA256:... as 'id list' shows)"
        )
    return key_id


_UNKNOWN = _Answer(
    accepted=False,
    sender=None,
    reason="unknown_sender",
    detail=(
        "no pin, identity or held credential places this key (a chain carried in its "
        "envelopes counts only once imported: letterlock authority import)"
    ),
    governing=(),
)


def _answer(policy: TrustPolicy, sender: PublicIdentity, pattern: ScopePattern) -> _Answer:
    if policy.lookup(sender.fingerprint) != sender:
        return _UNKNOWN
    verified = admit_pattern(policy, sender, pattern, now=int(time.time()))
    if isinstance(verified, Refusal):
        return _Answer(
            accepted=False,
            sender=None,
            reason=verified.reason.value,
            detail=verified.detail,
            governing=(),
        )
    governing = tuple(verified.rule.split(",")) if verified.rule else ()
    return _Answer(accepted=True, sender=verified, reason=None, detail="", governing=governing)


def _as_json(answer: _Answer, topic: str, receiver: str, policy_file: str | None) -> str:
    sender = answer.sender
    return json.dumps(
        {
            "accepted": answer.accepted,
            "as": receiver,
            "topic": topic,
            "policy": policy_file,
            "rules": list(answer.governing),
            "reason": answer.reason,
            "detail": answer.detail,
            "sender": None
            if sender is None
            else {
                "name": sender.name,
                "fingerprint": sender.fingerprint,
                "suite": sender.suite.label,
                "via": sender.via.value,
                "principal": sender.principal,
                "authorities": list(sender.authorities),
                "roles": sorted(sender.roles),
                "path_keys": [format_fingerprint(key) for key in sender.path_keys],
            },
        },
        indent=2,
    )


def _as_text(answer: _Answer, key: str, topic: str, policy_file: str | None) -> str:
    sender = answer.sender
    who = f" {key}" if sender is None else (f" {sender.name} ({sender.fingerprint}, {sender.via})")
    if answer.accepted:
        if policy_file is not None:
            why = f"by rule {', '.join(answer.governing)}"
        elif sender is not None and sender.via is Via.AUTHORITY:
            why = (
                f"(no policy.toml: within the scope of its chain {' > '.join(sender.authorities)})"
            )
        else:
            why = "(no policy.toml: pinned and own keys are accepted on every topic)"
        return f"accepted:{who} on {topic!r} {why}"
    return f"refused:{who} on {topic!r}: {answer.reason} ({answer.detail})"


@click.command(
    "check",
    epilog=example(
        "letterlock trust check --as bob --topic orders.eu --sender alice.pub",
        "letterlock trust check --as bob --topic 'orders.#' --fingerprint SHA256:... --json",
    ),
)
@click.option("--as", "name", metavar="NAME", required=True, help="Your receiving identity.")
@click.option("--topic", required=True, help="A topic, or a listen pattern (answers for all).")
@dialect_option("Pattern syntax of --topic: amqp (* #), mqtt (+ #), nats (* >).")
@click.option(
    "--sender",
    "sender_file",
    metavar="FILE",
    help="The sender's public key line ('id export' output; - reads stdin).",
)
@click.option("--fingerprint", metavar="SHA256:...", help="The sender's key fingerprint.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def trust_check_command(
    home: Home,
    *,
    name: str,
    topic: str,
    dialect: str,
    sender_file: str | None,
    fingerprint: str | None,
    as_json: bool,
) -> int:
    """Would a message from a sender on --topic be accepted, by which rule, and if not, why.

    Exit status 0 if it would be accepted, 1 if refused, 2 on a usage error.
    """
    if (sender_file is None) == (fingerprint is None):
        raise UsageError("give the sender with exactly one of --sender FILE or --fingerprint")
    check_identity_name(name)
    home.public(name)  # the receiving identity must exist
    pattern = ScopePattern.parse(topic, Dialect(dialect))
    policy = home.trust(home.own_publics(warn=note))
    sender = None
    if sender_file is not None:
        sender = _sender_from_file(sender_file)
        key = sender.fingerprint_text
    else:
        assert fingerprint is not None
        key_id = key_id_of(fingerprint)
        sender, key = policy.lookup(key_id), format_fingerprint(key_id)
    answer = _UNKNOWN if sender is None else _answer(policy, sender, pattern)
    policy_file = str(home.policy_file) if home.rules() is not None else None
    if as_json:
        click.echo(_as_json(answer, topic, name, policy_file))
    else:
        click.echo(safe(_as_text(answer, key, topic, policy_file)))
    return 0 if answer.accepted else 1
