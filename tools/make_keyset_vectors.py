"""Generate the keyset test vectors (``docs/spec/keyset.md`` section 8).

Usage: ``python tools/make_keyset_vectors.py OUTDIR`` writes ``OUTDIR/keyset/<name>.json`` and
removes any other ``*.json`` left there.

Keys. The private identity of role ``R`` is the x25519 identity (``envelope-v1.md`` section 3.2)
whose 64 key bytes are SHAKE-256("letterlock keyset vector key R"). Ed25519 signatures are
deterministic, so every run writes the same bytes. Keysets are encoded here by hand (section 2)
and signed with the identity key, so a malformed vector breaks exactly the rule it names and
nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from letterlock import Identity, Suite, hazmat
from letterlock.trust.keysets import KEYSET_LABEL

FORMAT: Final = "letterlock-keyset-vector-v1"
T0: Final = 1_800_000_000
DAY: Final = 86_400
GRACE: Final = 7 * DAY
ACTIVE, PRIMARY, RETIRED, DESTROYED = 1, 2, 3, 4
STATUS = {ACTIVE: "active", PRIMARY: "primary", RETIRED: "retired", DESTROYED: "destroyed"}
SIGN, ENCRYPT = 1, 2
PURPOSE = {SIGN: "sign", ENCRYPT: "encrypt"}


def key(role: str, suite: Suite = Suite.X25519) -> Identity:
    stream = hashlib.shake_256(f"letterlock keyset vector key {role}".encode()).digest(64)
    private = b"LLS\x01" + bytes([suite.value])
    private += struct.pack(">H", 32) + stream[:32] + struct.pack(">H", 32) + stream[32:]
    return hazmat.identity_from_private_bytes(private)


OWNER, K1, K2, K3, MALLORY = map(key, ("owner", "k1", "k2", "k3", "mallory"))
S1, S2 = map(key, ("s1", "s2"))  # signing keys (section 9)
P256_KEY = key("p256", Suite.P256)


@dataclass(frozen=True)
class K:
    key_id: int
    status: int
    identity: Identity
    not_before: int
    not_after: int
    retired_at: int = 0
    purpose: int = 2

    def encode(self) -> bytes:
        public = self.identity.public.to_bytes()
        return struct.pack(
            ">IBBQQQH", self.key_id, self.purpose, self.status, self.not_before,
            self.not_after, self.retired_at, len(public),
        ) + public  # fmt: skip


@dataclass(frozen=True)
class KS:
    keys: tuple[K, ...]
    identity: bytes = field(default_factory=lambda: OWNER.public.fingerprint)
    version: int = 4
    issued: int = T0 + 10 * DAY
    grace: int = GRACE
    magic: bytes = b"LLE\x01"
    count: int | None = None
    tail: bytes = b""

    def encode(self) -> bytes:
        count = len(self.keys) if self.count is None else self.count
        head = struct.pack(">4s32sQQIB", self.magic, self.identity, self.version, self.issued,
                           self.grace, count)  # fmt: skip
        return head + b"".join(k.encode() for k in self.keys) + self.tail


def line(encoded: bytes, signer: Identity = OWNER) -> str:
    signature = signer.sign(KEYSET_LABEL + encoded)
    return f"letterlock-keyset {base64.b64encode(encoded).decode()} " + (
        base64.b64encode(signature).decode()
    )


STARTED = KS(keys=(K(0, PRIMARY, OWNER, T0, T0 + 90 * DAY),), version=1, issued=T0)
ROTATION = T0 + 10 * DAY
ROTATED = KS(keys=(
    K(0, RETIRED, OWNER, T0, T0 + 90 * DAY, retired_at=ROTATION),
    K(1, PRIMARY, K1, ROTATION - DAY, ROTATION + 89 * DAY),
    K(2, ACTIVE, K2, ROTATION, ROTATION + 90 * DAY),
))  # fmt: skip
LATER = KS(keys=(
    K(0, DESTROYED, OWNER, T0, T0 + 90 * DAY, retired_at=ROTATION),
    K(1, RETIRED, K1, ROTATION - DAY, ROTATION + 89 * DAY, retired_at=ROTATION + 30 * DAY),
    K(2, PRIMARY, K2, ROTATION, ROTATION + 90 * DAY),
), version=9, issued=ROTATION + 30 * DAY)  # fmt: skip


def _keys(ks: KS, *changed: K) -> KS:
    by_id = {k.key_id: k for k in ks.keys}
    for k in changed:
        by_id[k.key_id] = k
    return replace(ks, keys=tuple(by_id[i] for i in sorted(by_id)))


def success(  # noqa: PLR0917 - a vector's fields, in the order the table lists them
    name: str,
    description: str,
    ks: KS,
    now: int,
    sealing: Identity | None,
    opens: list[int],
    signing: Identity | None = None,
    signs: tuple[int, ...] = (),
) -> dict[str, Any]:
    return {
        "name": name, "description": description, "text": line(ks.encode()), "now": now,
        "expect": "success", "version": ks.version, "grace": ks.grace,
        "keys": [
            {"id": k.key_id, "purpose": PURPOSE[k.purpose], "status": STATUS[k.status],
             "fingerprint": k.identity.public.fingerprint_text, "not_before": k.not_before,
             "not_after": k.not_after, "retired_at": k.retired_at}
            for k in ks.keys
        ],
        "sealing_key": None if sealing is None else sealing.public.fingerprint_text,
        "opens_with": opens,
        "signing_key": None if signing is None else signing.public.fingerprint_text,
        "signs": list(signs),
    }  # fmt: skip


def reject(name: str, description: str, text: str, reason: str) -> dict[str, Any]:
    return {"name": name, "description": description, "text": text, "now": ROTATION,
            "expect": "reject", "reason": reason}  # fmt: skip


def malformed(name: str, description: str, ks: KS) -> dict[str, Any]:
    return reject(f"reject-malformed-{name}", description, line(ks.encode()), "malformed")


def _signing() -> KS:
    """ROTATED with two signing keys: 3, the former one (active), and 4, the primary."""
    return _keys(
        ROTATED,
        K(3, ACTIVE, S1, ROTATION - 5 * DAY, ROTATION + 5 * DAY, purpose=SIGN),
        K(4, PRIMARY, S2, ROTATION, ROTATION + 30 * DAY, purpose=SIGN),
    )


def vectors() -> list[dict[str, Any]]:
    signing = _signing()
    rotated_text = line(ROTATED.encode())
    encoded, signature = (base64.b64decode(p) for p in rotated_text.split(" ")[1:])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    deadline_0 = ROTATION + GRACE
    cases = [
        success("success-started", "version 1: the identity key as key 0, primary", STARTED,
                T0 + DAY, OWNER, [0]),
        success("success-rotated-within-grace", "key 0 retired at the rotation still opens "
                "within the grace period", ROTATED, deadline_0 - 1, K1, [0, 1, 2]),
        success("success-rotated-after-grace", "key 0 no longer opens at its deadline",
                ROTATED, deadline_0, K1, [1, 2]),
        success("success-primary-past-lifetime", "no key to seal to once the primary's "
                "lifetime is over; it still opens for the grace period", ROTATED,
                ROTATION + 89 * DAY, None, [1, 2]),
        success("success-destroyed-and-retired", "a destroyed key opens nothing; a retired key "
                "until its deadline", LATER, ROTATION + 30 * DAY + GRACE - 1, K2, [1, 2]),
        success("success-lifetime-ends-before-retirement", "a key retired after its lifetime "
                "ended serves only until not_after", _keys(ROTATED, K(
                    0, RETIRED, OWNER, T0, T0 + 5 * DAY, retired_at=ROTATION)),
                T0 + 5 * DAY + GRACE, K1, [1, 2]),
        success("success-signing-keys", "two signing keys: the primary signs, the former "
                "one (active) still vouches; neither opens", signing, ROTATION, K1, [0, 1, 2],
                S2, (3, 4)),
        success("success-signing-key-expired", "the former signing key past its lifetime "
                "vouches for nothing", signing, ROTATION + 5 * DAY, K1, [0, 1, 2], S2, (4,)),
        success("success-signing-key-not-yet-valid", "the primary signing key before its "
                "not_before: no key to sign with", signing, ROTATION - DAY, K1, [0, 1, 2],
                None, (3,)),
        success("success-signing-key-retired", "a retired signing key vouches for nothing; "
                "no primary signing key", _keys(signing, replace(
                    signing.keys[4], status=RETIRED, retired_at=ROTATION + DAY)),
                ROTATION + DAY, K1, [0, 1, 2], None, (3,)),
        success("success-signing-key-destroyed", "a destroyed signing key vouches for "
                "nothing", _keys(signing, replace(signing.keys[3], status=DESTROYED,
                                                   retired_at=ROTATION)),
                ROTATION, K1, [0, 1, 2], S2, (4,)),
        reject("reject-wrong-identity", "a valid keyset of another identity (mallory's)",
               line(replace(STARTED, identity=MALLORY.public.fingerprint, keys=(
                   K(0, PRIMARY, MALLORY, T0, T0 + DAY),)).encode(), MALLORY),
               "wrong_identity"),
        reject("reject-bad-signature-other-signer", "the owner's keyset signed by mallory",
               line(ROTATED.encode(), MALLORY), "bad_signature"),
        reject("reject-bad-signature-flipped", "one bit of the signature flipped",
               f"letterlock-keyset {base64.b64encode(encoded).decode()} "
               f"{base64.b64encode(flipped).decode()}", "bad_signature"),
        reject("reject-malformed-base64", "base64 with its padding cut",
               rotated_text.replace("==", "=", 1) if "==" in rotated_text
               else rotated_text + "x", "malformed"),
        reject("reject-malformed-fields", "a fourth field", rotated_text + " extra",
               "malformed"),
        malformed("magic", "an envelope's magic", replace(ROTATED, magic=b"LLK\x01")),
        malformed("version-zero", "version 0", replace(ROTATED, version=0)),
        malformed("grace-too-long", "a grace period over 366 days",
                  replace(ROTATED, grace=366 * DAY + 1)),
        malformed("no-keys", "count 0", replace(ROTATED, keys=(), count=0)),
        malformed("trailing-byte", "a byte after the last key", replace(ROTATED, tail=b"\x00")),
        malformed("truncated", "the count says one key more", replace(ROTATED, count=4)),
        malformed("two-primaries", "keys 1 and 2 both primary",
                  _keys(ROTATED, replace(ROTATED.keys[2], status=PRIMARY))),
        malformed("no-primary", "no primary key",
                  _keys(ROTATED, replace(ROTATED.keys[1], status=ACTIVE))),
        malformed("ids-unsorted", "key 2 before key 1",
                  replace(ROTATED, keys=(ROTATED.keys[0], ROTATED.keys[2], ROTATED.keys[1]))),
        malformed("id-twice", "key 1 twice (two different keys)",
                  replace(ROTATED, keys=(ROTATED.keys[0], ROTATED.keys[1],
                                         replace(ROTATED.keys[2], key_id=1)))),
        malformed("same-key-twice", "one public key under ids 1 and 2",
                  _keys(ROTATED, replace(ROTATED.keys[2], identity=K1))),
        malformed("purpose", "purpose 0x03 (undefined)",
                  _keys(ROTATED, replace(ROTATED.keys[2], purpose=3))),
        malformed("purpose-zero", "purpose 0x00 (undefined)",
                  _keys(ROTATED, replace(ROTATED.keys[2], purpose=0))),
        malformed("two-primary-signing-keys", "signing keys 3 and 4 both primary",
                  _keys(signing, replace(signing.keys[3], status=PRIMARY))),
        malformed("key-0-signing", "key 0 (the identity key) of purpose signing",
                  _keys(ROTATED, replace(ROTATED.keys[0], purpose=SIGN))),
        malformed("only-a-signing-primary", "the only primary key is a signing key",
                  _keys(signing, replace(signing.keys[1], status=ACTIVE))),
        malformed("status", "status 0x05", _keys(ROTATED, replace(ROTATED.keys[2], status=5))),
        malformed("retired-without-time", "a retired key with retired_at 0",
                  _keys(ROTATED, replace(ROTATED.keys[0], retired_at=0))),
        malformed("active-with-time", "an active key with a retirement time",
                  _keys(ROTATED, replace(ROTATED.keys[2], retired_at=ROTATION))),
        malformed("empty-lifetime", "not_before equal to not_after",
                  _keys(ROTATED, replace(ROTATED.keys[2], not_after=ROTATION))),
        malformed("mixed-suites", "key 3 of suite p256",
                  _keys(ROTATED, K(3, ACTIVE, P256_KEY, ROTATION, ROTATION + DAY))),
        malformed("key-0-not-identity", "key 0 is not the identity key",
                  _keys(ROTATED, replace(ROTATED.keys[0], identity=K3))),
        malformed("identity-not-key-0", "no key 0, and the identity key under id 3",
                  replace(ROTATED, keys=(*ROTATED.keys[1:],
                                         K(3, ACTIVE, OWNER, ROTATION, ROTATION + DAY)))),
    ]  # fmt: skip
    identity = OWNER.public.to_bytes().hex()
    return [{"format": FORMAT, "identity": identity, **case} for case in cases]


def main(outdir: str) -> None:
    folder = Path(outdir) / "keyset"
    folder.mkdir(parents=True, exist_ok=True)
    made = vectors()
    names = {f"{v['name']}.json" for v in made}
    for stale in folder.glob("*.json"):
        if stale.name not in names:
            stale.unlink()
    for vector in made:
        text = json.dumps(vector, indent=2) + "\n"
        (folder / f"{vector['name']}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
