"""Fuzz target: arbitrary bytes through the keyset parsers (``docs/spec/keyset.md``).

Each input is read twice: as keyset bytes (:meth:`Keyset.decode`, section 2) and, as text, as
a signed keyset line verified against the fixed identity key (:meth:`SignedKeyset.from_text`,
section 4). The only allowed outcomes are success and :class:`letterlock.ParseError`; anything
else is a crash. A keyset that parses must re-encode to the same bytes (canonical) and satisfy
the model's invariants (exactly one primary encryption key, at most one primary signing key,
and a signing key never opens nor an encryption key signs, section 9). Each input is checked
whole and at its prefixes, as ``fuzz_envelope.py`` does.

Run: ``python fuzz/fuzz_keyset.py -atheris_runs=20000 NEW_DIR fuzz/corpus-keyset``. Seeds:
``python fuzz/make_keyset_corpus.py``. Imported as a module, nothing is instrumented.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct

from harness import check_prefixes, fuzz, instrumentation

with instrumentation(__name__ == "__main__"):
    from letterlock import Identity, ParseError, Suite, hazmat
    from letterlock.trust.keysets import Keyset, Purpose, SignedKeyset, Status

__all__ = ["IDENTITY", "TestOneInput", "check_one"]

PARSED = "parsed"
MALFORMED = "malformed"


def _fixed_identity() -> Identity:
    """The fuzz identity key: public test keys, never use them for anything else."""
    seed = hashlib.shake_256(b"letterlock fuzz keyset identity").digest(64)
    encoded = b"LLS\x01" + bytes([Suite.X25519.value])
    encoded += struct.pack(">H", 32) + seed[:32] + struct.pack(">H", 32) + seed[32:]
    return hazmat.identity_from_private_bytes(encoded)


IDENTITY = _fixed_identity()


def check_one(data: bytes) -> str:
    """ "parsed" if the bytes or the text parse (and verify), else "malformed"."""
    outcomes = {_decoded(data)}
    with contextlib.suppress(UnicodeDecodeError):
        outcomes.add(_verified(data.decode("utf-8")))
    return PARSED if PARSED in outcomes else MALFORMED


def _decoded(data: bytes) -> str:
    try:
        keyset = Keyset.decode(data)
    except ParseError:
        return MALFORMED
    assert keyset.encode() == data, "a parsed keyset re-encodes to other bytes"
    primaries = [key.purpose for key in keyset.keys if key.status is Status.PRIMARY]
    assert primaries.count(Purpose.ENCRYPT) == 1
    assert primaries.count(Purpose.SIGN) <= 1
    assert keyset.primary.purpose is Purpose.ENCRYPT
    for key in keyset.keys:
        if key.purpose is Purpose.SIGN:
            assert key not in keyset.opens_with(key.not_before)
        else:
            assert keyset.signer(key.public.fingerprint) is None
            assert not key.signs(created=key.not_before, now=key.not_before)
    return PARSED


def _verified(text: str) -> str:
    try:
        signed = SignedKeyset.from_text(text, identity=IDENTITY.public)
    except ParseError:
        return MALFORMED
    assert signed.keyset.identity == IDENTITY.public.fingerprint
    return PARSED


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """Check the input whole and at its prefixes; only success or ParseError may happen."""
    check_prefixes(check_one, data)


if __name__ == "__main__":
    fuzz(TestOneInput)
