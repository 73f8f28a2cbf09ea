"""Each vector that targets a receiver bug really catches it (issue 6, item 10).

A vector catches a wrong receiver only if that receiver reaches another outcome than the one
declared. For each bug, these tests build the wrong receiver from the independent verifier by
replacing the one rule it gets wrong (a monkeypatched seam of ``verifier.py``), and check that
every vector aimed at the bug then comes out differently: a rejected vector opens (or at least
is refused for another reason), a success is refused. The unpatched verifier reaching the
declared outcome is ``test_vectors_independent.py``; together they show that the vector
separates the two receivers.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import edwards25519, verifier

VECTORS = Path(__file__).parents[2] / "vectors"
SUITES = ("p256", "p384", "x25519", "pq")
Patch = Callable[[pytest.MonkeyPatch], None]


def _vectors(name: str) -> list[dict[str, Any]]:
    found = [json.loads(p.read_text(encoding="utf-8")) for p in VECTORS.glob(f"*/{name}.json")]
    assert found, f"no vector named {name}"
    return found


def _lax_utf8(data: bytes) -> str:
    """Skips the well-formedness check (keeps the control-character check)."""
    text = data.decode("utf-8", errors="surrogateescape")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise verifier._RejectError("malformed")
    return text


def _nfc(text: bytes) -> bytes:
    return unicodedata.normalize("NFC", text.decode("utf-8")).encode("utf-8")


def _ed25519_rule(rule: Callable[[bytes, bytes, bytes], bool]) -> Patch:
    """A receiver that verifies x25519 signatures with ``rule`` and the rest as before."""
    original = verifier._verify_signature

    def verify(suite: verifier._Suite, public_key: bytes, sig: bytes, msg: bytes) -> None:
        if suite.name != "x25519":
            original(suite, public_key, sig, msg)
        elif not rule(public_key, sig, msg):
            raise ValueError("signature does not verify")

    return lambda mp: mp.setattr(verifier, "_verify_signature", verify)


def _lax_r(public: bytes, signature: bytes, message: bytes) -> bool:
    """Decodes R reducing y mod p and compares points, not encodings."""
    a = edwards25519.decode(public)
    r = edwards25519.decode(signature[:32], strict=False)
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= edwards25519.L:
        return False
    k = edwards25519.challenge(signature[:32], public, message)
    left = edwards25519.add(
        edwards25519.multiply(s, edwards25519.BASE),
        edwards25519.negate(edwards25519.multiply(k, a)),
    )
    return edwards25519.equal(left, r)


def _no_small_order_r(public: bytes, signature: bytes, message: bytes) -> bool:
    """libsodium's rule: R of small order is refused before the (cofactorless) equation."""
    small = {edwards25519.encode(t) for t in edwards25519.small_order_points()}
    return signature[:32] not in small and edwards25519.verify_cofactorless(
        public, signature, message
    )


def _setattr(name: str, value: object) -> Patch:
    return lambda mp: mp.setattr(verifier, name, value)


#: (wrong receiver, how it is made, the vectors that must catch it).
WRONG: list[tuple[str, Patch, tuple[str, ...]]] = [
    (
        "skips the UTF-8 check of header values",
        _setattr("_utf8", _lax_utf8),
        (
            "reject-malformed-header-value-lone-continuation",
            "reject-malformed-header-value-truncated-sequence",
            "reject-malformed-header-value-above-10ffff",
        ),
    ),
    (
        "no cap on header values",
        _setattr("MAX_HEADER_VALUE", 65535),
        ("reject-malformed-header-value-4097",),
    ),
    (
        "no cap on header names",
        _setattr("MAX_HEADER_NAME", 255),
        ("reject-malformed-header-name-65",),
    ),
    ("no cap on the topic", _setattr("MAX_TOPIC", 65535), ("reject-malformed-topic-1025",)),
    (
        "reads payload_len as 32 bits",
        _setattr("_payload_len", lambda cur: cur.uint(8) & 0xFFFFFFFF),
        ("reject-malformed-inner-payload-len-above-32-bits",),
    ),
    (
        "accepts two equal recipient key ids",
        _setattr("_strictly_ascending", lambda previous, current: current >= previous),
        ("reject-malformed-recipients-duplicate",),
    ),
    (
        "compares topics after Unicode normalisation (NFC)",
        _setattr("_topic_expected", lambda expected, topic: _nfc(expected) == _nfc(topic)),
        (
            "reject-wrong-topic-nfd-sealed-nfc-expected",
            "reject-wrong-topic-nfc-sealed-nfd-expected",
        ),
    ),
    (
        "computes now - max_age in unsigned 64-bit arithmetic",
        _setattr("_window_start", lambda now, max_age: (now - max_age) % 2**64),
        ("success-now-below-max-age",),
    ),
    ("starts the floor at 0 instead of -1", _setattr("FLOOR", 0), ("success-created-zero",)),
    (
        "verifies Ed25519 with the cofactored equation",
        _ed25519_rule(edwards25519.verify_cofactored),
        (
            "reject-bad-signature-ed25519-r-small-order",
            "reject-bad-signature-ed25519-mixed-order-key",
        ),
    ),
    (
        "decodes Ed25519 R leniently and compares points",
        _ed25519_rule(_lax_r),
        ("reject-bad-signature-ed25519-r-not-canonical",),
    ),
    (
        "refuses an Ed25519 R of small order (libsodium)",
        _ed25519_rule(_no_small_order_r),
        ("success-ed25519-r-identity",),
    ),
]


@pytest.mark.parametrize(("bug", "patch", "names"), WRONG, ids=[w[0] for w in WRONG])
def test_vector_catches_the_wrong_receiver(
    monkeypatch: pytest.MonkeyPatch, bug: str, patch: Patch, names: tuple[str, ...]
) -> None:
    vectors = [v for name in names for v in _vectors(name)]
    declared = [(v["name"], v["suite"], v.get("reason", "success")) for v in vectors]
    patch(monkeypatch)
    for vector, (name, suite, reason) in zip(vectors, declared, strict=True):
        outcome = verifier.verify_vector(vector)
        if reason == "success":
            assert not outcome.ok, f"{suite}/{name}: a receiver that {bug} still opens it"
        else:
            assert outcome.ok, f"{suite}/{name}: a receiver that {bug} reaches {outcome.reason}"


#: Issue 6 item 10: one vector (or more) per receiver bug, each in all four suites.
ITEM_10 = (
    "reject-malformed-header-value-lone-continuation",
    "reject-malformed-header-value-truncated-sequence",
    "reject-malformed-header-value-above-10ffff",
    "reject-malformed-header-value-4097",
    "reject-malformed-header-name-65",
    "reject-malformed-topic-1025",
    "reject-malformed-inner-payload-len-above-32-bits",
    "reject-malformed-recipients-duplicate",
    "reject-wrong-topic-nfd-sealed-nfc-expected",
    "reject-wrong-topic-nfc-sealed-nfd-expected",
)


@pytest.mark.parametrize("name", ITEM_10)
def test_item_10_vector_exists_in_every_suite_and_is_proven(name: str) -> None:
    assert sorted(v["suite"] for v in _vectors(name)) == sorted(SUITES)
    assert any(name in names for _, _, names in WRONG)


def test_a_receiver_refusing_mixed_order_keys_cannot_load_the_trust_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Section 3.1 refuses only small-order keys; a receiver that also refuses keys with a
    torsion component (a prime-order check) disagrees with the mixed-order success vector."""
    original = verifier._check_25519_keys

    def prime_order_only(ed_key: bytes, x_key: bytes) -> None:
        original(ed_key, x_key)
        point = edwards25519.decode(ed_key)
        order_l = edwards25519.multiply(edwards25519.L, point) if point else None
        if order_l is None or not edwards25519.equal(order_l, edwards25519.IDENTITY):
            raise ValueError("key not in the prime-order subgroup")

    (vector,) = _vectors("success-ed25519-mixed-order-key")
    assert verifier.verify_vector(vector).ok
    monkeypatch.setattr(verifier, "_check_25519_keys", prime_order_only)
    with pytest.raises(ValueError, match="prime-order"):
        verifier.verify_vector(vector)
