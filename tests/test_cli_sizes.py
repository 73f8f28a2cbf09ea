"""Envelope sizes: ``seal`` refuses what receivers refuse by default; ``--max-size`` says more.

The receivers' default limit is ``letterlock.DEFAULT_LIMITS.max_size`` (64 MiB). A payload just
under it makes an envelope just over it, which ``seal`` used to write (exit 0, a warning) and
``open`` then refused as over_limit with no way to raise the limit.
"""

from __future__ import annotations

from cli_support import Homes, assert_one_line_error, letterlock
from letterlock import DEFAULT_LIMITS

LIMIT = DEFAULT_LIMITS.max_size
JUST_UNDER = b"\x5a" * (LIMIT - 100)  # the envelope's overhead takes it over the limit
LARGER = str(LIMIT + 1024 * 1024)


def _seal(homes: Homes, *extra: str) -> tuple[int, bytes, str]:
    result = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        *extra, stdin=JUST_UNDER)  # fmt: skip
    return result.code, result.stdout, result.stderr


def test_seal_refuses_an_envelope_over_the_receivers_default_limit(homes: Homes) -> None:
    result = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        stdin=JUST_UNDER)  # fmt: skip
    assert_one_line_error(result, 2, f"receivers accept {LIMIT} bytes", "--max-size")


def test_seal_refuses_a_payload_over_its_max_size_before_sealing(homes: Homes) -> None:
    result = letterlock(homes.alice, "seal", "--from", "alice", "--to", "bob", "--topic", "t",
                        "--max-size", "1000", stdin=b"x" * 1001)  # fmt: skip
    assert_one_line_error(result, 2, "payload is larger than 1000 bytes", "--max-size")


def test_open_max_size_accepts_what_seal_max_size_allowed(homes: Homes) -> None:
    code, sealed, stderr = _seal(homes, "--max-size", LARGER)
    assert (code, stderr) == (0, ""), stderr
    assert len(sealed) > LIMIT
    refused = letterlock(homes.bob, "open", stdin=sealed)
    assert_one_line_error(refused, 1, "rejected: over_limit", str(LIMIT), "--max-size")
    shown = letterlock(homes.bob, "inspect", "--max-size", LARGER, stdin=sealed)
    assert shown.code == 0, shown
    opened = letterlock(homes.bob, "open", "--quiet", "--max-size", LARGER, stdin=sealed)
    assert (opened.code, opened.stderr) == (0, "")
    assert opened.stdout == JUST_UNDER
