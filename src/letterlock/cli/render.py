"""How the CLI shows things: rich tables and colours on a terminal, plain lines otherwise.

Plain output is stable for scripts: tables are tab-separated rows without a heading, field
lists are ``label: value`` lines (indented under a title, if any). Nothing here writes payload
bytes.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from letterlock import Envelope, Opened, VerifiedSender, format_fingerprint

__all__ = [
    "envelope_fields",
    "envelope_json",
    "iso_time",
    "note",
    "opened_fields",
    "path_keys",
    "print_fields",
    "print_table",
    "quoted",
    "safe",
    "stderr_console",
    "stdout_console",
    "warn",
]

Rows = Sequence[tuple[str, str]]


def stdout_console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def safe(text: str) -> str:
    """``text`` with every non-printable character escaped (no terminal escape injection).

    Topics and header values come from whoever sealed the message; control characters, bidi
    overrides and line breaks in them are shown as ``\\x1b``-style escapes, never emitted.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def quoted(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, at most ``limit`` characters of it (a user's argument can
    be 10,000 characters long; its control characters are escaped by ``repr``)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."


def note(message: str) -> None:
    """One line on stderr: ``letterlock: MESSAGE`` (non-printable characters escaped)."""
    sys.stderr.write(f"letterlock: {safe(message)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    """One line on stderr: ``letterlock: warning: MESSAGE``."""
    note(f"warning: {message}")


def iso_time(seconds: int) -> str:
    """UTC ISO 8601 with a Z, e.g. ``2026-01-02T03:04:05Z``; ``@seconds`` beyond the calendar.

    Envelope times are any 64-bit value, so showing one must never fail.
    """
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{seconds}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def print_table(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not console.is_terminal:
        for row in rows:
            console.file.write("\t".join(safe(cell) for cell in row) + "\n")
        return
    table = Table(*columns, header_style="bold")
    for row in rows:
        table.add_row(*(escape(safe(cell)) for cell in row))
    console.print(table)


def print_fields(console: Console, rows: Rows, *, title: str | None = None) -> None:
    if not console.is_terminal:
        indent = "  " if title else ""
        lines = [title] if title else []
        lines += [f"{indent}{safe(label)}: {safe(value)}" for label, value in rows]
        console.file.write("".join(line + "\n" for line in lines))
        return
    if title:
        console.print(title)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    for label, value in rows:
        grid.add_row(escape(safe(label)), escape(safe(value)))
    console.print(grid)


def _headers(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> Rows:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(f"header {name}", value) for name, value in items]


def path_keys(sender: VerifiedSender) -> str:
    """The keys that vouched for ``sender``, the anchor's first, as ``status revoke --key``
    takes them: authority key fingerprints, or the key ids of an X.509 path's CAs."""
    return " > ".join(format_fingerprint(key) for key in sender.path_keys)


def opened_fields(opened: Opened) -> Rows:
    """Who signed an opened message and what it was bound to."""
    sender = opened.sender
    rows = [
        ("signed by", sender.name),
        ("fingerprint", sender.fingerprint),
        *(  # a delegated signing key signed for the identity (docs/spec/keyset.md section 9)
            [("signing key", signing)]
            if (signing := format_fingerprint(sender.key_id)) != sender.fingerprint
            else []
        ),
        ("via", sender.via),
        *([("principal", sender.principal)] if sender.principal not in (None, sender.name) else []),
        *([("chain", " > ".join(sender.authorities))] if sender.authorities else []),
        *([("path keys", path_keys(sender))] if sender.path_keys else []),
        *([("roles", ", ".join(sorted(sender.roles)))] if sender.roles else []),
        *([("rule", sender.rule)] if sender.rule is not None else []),
        *(
            [("status", f"version {sender.status_version}, {sender.status_age} s old")]
            if sender.status_version is not None
            else []
        ),
        ("suite", opened.suite.label),
        ("topic", opened.topic),
        ("message id", opened.message_id.hex()),
        ("created", iso_time(opened.created)),
    ]
    if opened.expires is not None:
        rows.append(("expires", iso_time(opened.expires)))
    if opened.content_type is not None:
        rows.append(("content type", opened.content_type))
    return [*rows, *_headers(opened.headers)]


def envelope_fields(envelope: Envelope, *, total: int, names: Mapping[bytes, str]) -> Rows:
    """What a relay can read in an envelope; ``names`` labels key ids this home knows."""
    header = envelope.header

    def known(key_id: bytes) -> str:
        name = names.get(key_id)
        return f" ({name})" if name else ""

    sender = "hidden"
    if header.sender_key_id is not None:
        sender = format_fingerprint(header.sender_key_id) + known(header.sender_key_id)
    rows = [
        ("version", "1"),
        ("suite", header.suite.label),
        ("flags", "hidden-sender" if header.hidden_sender else "none"),
        ("message id", header.message_id.hex()),
        ("created", iso_time(header.created)),
        ("expires", iso_time(header.expires) if header.expires is not None else "never"),
        ("topic", header.topic),
        ("content type", header.content_type or "-"),
        *_headers(header.headers),
        ("sender", sender),
        *_credential_rows(envelope),
        ("recipients", str(len(header.recipients))),
        *[("recipient", r.key_id.hex() + known(r.key_id)) for r in header.recipients],
        ("ciphertext", f"{len(envelope.ciphertext)} bytes"),
        ("total", f"{total} bytes"),
    ]
    return rows


def _credential_rows(envelope: Envelope) -> Rows:
    """The credential block a relay can read (envelope-v1 section 4.1), if there is one."""
    block = envelope.header.credentials
    if block is None:
        return []
    items = f", {len(block.items)} item(s), {len(block.encoded)} bytes" if block.items else ""
    return [("credentials", f"{block.format.name.lower()}{items}, status version "
                            f"{block.status_version}")]  # fmt: skip


def envelope_json(envelope: Envelope, *, total: int) -> dict[str, object]:
    header = envelope.header
    return {
        "version": 1,
        "suite": header.suite.label,
        "hidden_sender": header.hidden_sender,
        "message_id": header.message_id.hex(),
        "created": header.created,
        "expires": header.expires,
        "topic": header.topic,
        "content_type": header.content_type,
        "headers": dict(header.headers),
        "sender_fingerprint": (
            None if header.sender_key_id is None else format_fingerprint(header.sender_key_id)
        ),
        "recipients": [r.key_id.hex() for r in header.recipients],
        "ciphertext_size": len(envelope.ciphertext),
        "total_size": total,
    }
