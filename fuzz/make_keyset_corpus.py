"""Write the keyset fuzz seeds: keysets of the fixed fuzz identity, as bytes and as text.

Usage: ``python fuzz/make_keyset_corpus.py [DIR]`` (default ``fuzz/corpus-keyset``): a new
keyset, one after a whole rotation (a retired, a primary and an active key), and one with
signing keys too (a former one, active, and the primary), each as its encoding and as its
signed line, so the fuzzer starts from inputs that parse.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

from fuzz_keyset import IDENTITY, PARSED, check_one

from letterlock import PublicIdentity, Suite, hazmat
from letterlock.trust.keysets import Keyset, Purpose, sign_keyset

NOW = 1_700_000_000
DAY = 86_400


def _key(role: str) -> PublicIdentity:
    seed = hashlib.shake_256(f"letterlock fuzz keyset {role}".encode()).digest(64)
    encoded = b"LLS\x01" + bytes([Suite.X25519.value])
    encoded += struct.pack(">H", 32) + seed[:32] + struct.pack(">H", 32) + seed[32:]
    return hazmat.identity_from_private_bytes(encoded).public


def seeds() -> dict[str, bytes]:
    started = Keyset.start(IDENTITY.public, now=NOW, lifetime=90 * DAY, grace=7 * DAY)
    rotated = started.add(_key("one"), now=NOW + DAY, lifetime=90 * DAY)
    rotated = rotated.promote(1, now=NOW + DAY).retire(0, now=NOW + DAY)
    rotated = rotated.add(_key("two"), now=NOW + 2 * DAY, lifetime=90 * DAY)
    signing = rotated.add(_key("s1"), now=NOW + DAY, lifetime=30 * DAY, purpose=Purpose.SIGN)
    signing = signing.add(_key("s2"), now=NOW + 2 * DAY, lifetime=30 * DAY, purpose=Purpose.SIGN)
    out = {}
    for name, keyset in (("started", started), ("rotated", rotated), ("signing", signing)):
        out[f"{name}.bin"] = keyset.encode()
        out[f"{name}.txt"] = sign_keyset(keyset, IDENTITY).to_text().encode()
    return out


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        if check_one(data) != PARSED:
            raise SystemExit(f"{name}: the fuzz target does not parse its own seed")
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus-keyset")
