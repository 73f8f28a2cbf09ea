"""``letterlock trust check``: would this sender on this topic be accepted, by which rule, why not.

It asks the home's own trust policy (pins, own identities and ``policy.toml``: exactly what
``open`` and ``listen`` use) the question a message would, at the current time, without a
message. A pattern (``orders.#``) is answered for every topic it matches
(:func:`letterlock.trust.check.admit_pattern`). With ``--message FILE`` the sender is the
envelope's, and the chain it carries counts as ``open`` counts it (placed only if it verifies
from the home's own anchors), without importing anything; the envelope is not decrypted.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
from dataclasses import dataclass

import click

import letterlock
from letterlock import (
    Limits,
    PublicIdentity,
    Rejected,
    UsageError,
    VerifiedSender,
    format_fingerprint,
)
from letterlock.cli.home import Home, check_identity_name
from letterlock.cli.options import dialect_option, example, pass_home
from letterlock.cli.render import note, safe
from letterlock.cli.streams import read_input
from letterlock.core.carriage import CredentialBlock
from letterlock.core.topics import Dialect
from letterlock.core.trust import Refusal, TrustPolicy, Via, lookup_carried
from letterlock.trust import ScopePattern
from letterlock.trust.check import admit_pattern, why_not_placed

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
        "envelopes counts once imported, letterlock authority import, or with --message FILE)"
    ),
    governing=(),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    """What ``--message FILE`` tells: the sender's key id, its carried chain, its topic."""

    key_id: bytes
    credentials: CredentialBlock | None
    topic: str


def _message_from_file(file: str) -> _Message:
    where = "standard input" if file == "-" else file
    limits = Limits()
    try:
        envelope = letterlock.inspect(read_input(file, limit=limits.max_size), limits=limits)
    except Rejected as exc:
        raise UsageError(f"{where} is not an envelope letterlock opens ({exc})") from None
    header = envelope.header
    if header.sender_key_id is None:
        raise UsageError(
            f"{where} hides its sender (and carries no chain): only its receivers learn who "
            "signed it, by opening it"
        )
    return _Message(key_id=header.sender_key_id, credentials=header.credentials,
                    topic=header.topic)  # fmt: skip


def _unknown(policy: TrustPolicy, message: _Message | None) -> _Answer:
    """The answer for a key nothing places, with why the message's chain did not."""
    if message is None:
        return _UNKNOWN
    if message.credentials is None:
        detail = (
            "no pin, identity or held credential places this key, and the message carries no chain"
        )
    else:
        why = why_not_placed(policy, message.key_id, message.credentials)
        detail = (
            "no pin, identity or held credential places this key, nor the chain the message "
            + (f"carries: {why}" if why else "carries (no anchor of yours reads its format)")
        )
    return dataclasses.replace(_UNKNOWN, detail=detail)


def _answer(
    policy: TrustPolicy,
    sender: PublicIdentity,
    pattern: ScopePattern,
    credentials: CredentialBlock | None = None,
) -> _Answer:
    if lookup_carried(policy, sender.fingerprint, credentials) != sender:
        return _UNKNOWN
    verified = admit_pattern(policy, sender, pattern, now=int(time.time()),
                             credentials=credentials)  # fmt: skip
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
        "letterlock trust check --as bob --topic 'orders.#' --fingerprint SHA256:... --json",
        "letterlock trust check --as bob --topic orders.eu --sender alice.pub",
        "letterlock trust check --as bob --message order.ll",
    ),
)
@click.option("--as", "name", metavar="NAME", required=True, help="Your receiving identity.")
@click.option(
    "--topic",
    help="A topic, or a listen pattern (answers for all); with --message, default: the topic "
    "the message is signed for.",
)
@dialect_option("Pattern syntax of --topic: amqp (* #), mqtt (+ #), nats (* >).")
@click.option(
    "--sender",
    "sender_file",
    metavar="FILE",
    help="The sender's public key line ('id export' output; - reads stdin).",
)
@click.option("--fingerprint", metavar="SHA256:...", help="The sender's key fingerprint.")
@click.option(
    "--message",
    "message_file",
    metavar="FILE",
    help="An envelope: its sender, with the chain it carries (not imported, not decrypted; "
    "- reads stdin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_home
def trust_check_command(
    home: Home,
    *,
    name: str,
    topic: str | None,
    dialect: str,
    sender_file: str | None,
    fingerprint: str | None,
    message_file: str | None,
    as_json: bool,
) -> int:
    """Would a message from a sender on --topic be accepted, by which rule, and if not, why.

    The sender is a public key (--sender), a fingerprint, or the signer of an envelope
    (--message), whose carried chain counts as 'open' counts it: verified from your own
    anchors, never imported. Exit status 0 if it would be accepted, 1 if refused, 2 on a
    usage error.
    """
    if [sender_file, fingerprint, message_file].count(None) != 2:
        raise UsageError(
            "give the sender with exactly one of --sender FILE, --fingerprint or --message FILE"
        )
    check_identity_name(name)
    home.public(name)  # the receiving identity must exist
    message = None if message_file is None else _message_from_file(message_file)
    if topic is None:
        if message is None:
            raise UsageError("give --topic (a topic or a listen pattern), or --message FILE")
        topic = message.topic
    pattern = ScopePattern.parse(topic, Dialect(dialect))
    policy = home.trust(home.own_publics(warn=note))
    credentials = None if message is None else message.credentials
    sender: PublicIdentity | None
    if sender_file is not None:
        sender = _sender_from_file(sender_file)
        key = sender.fingerprint_text
    else:
        key_id = message.key_id if message is not None else key_id_of(str(fingerprint))
        sender, key = lookup_carried(policy, key_id, credentials), format_fingerprint(key_id)
    if sender is None:
        answer = _unknown(policy, message)
    else:
        answer = _answer(policy, sender, pattern, credentials)
    policy_file = str(home.policy_file) if home.rules() is not None else None
    if as_json:
        click.echo(_as_json(answer, topic, name, policy_file))
    else:
        click.echo(safe(_as_text(answer, key, topic, policy_file)))
    return 0 if answer.accepted else 1
