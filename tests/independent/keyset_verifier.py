"""An independent verifier of letterlock keysets, from ``docs/spec/keyset.md``.

Nothing from ``letterlock`` is imported: only the standard library and this folder's verifiers
(for the public identity rules of ``envelope-v1.md`` section 3.1 and its signatures, section 2,
which the keyset spec refers to). Each check names its section. :func:`verify_vector` returns
the outcome fields of a vector (section 8).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
from typing import Any

from .credentials import _public_identity
from .verifier import _RejectError, fingerprint_text
from .verifier import _verify_signature as verify_signature

LABEL = b"letterlock/v1 keyset\x00"
STATUSES = {1: "active", 2: "primary", 3: "retired", 4: "destroyed"}
PURPOSES = {1: "sign", 2: "encrypt"}
MAX_GRACE = 366 * 86400


def _malformed() -> _RejectError:
    return _RejectError("malformed")


def _b64(text: str) -> bytes:
    """Section 4: standard base64 with padding, canonical."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise _malformed() from None
    if base64.b64encode(data).decode() != text:
        raise _malformed()
    return data


def parse(data: bytes) -> dict[str, Any]:
    """Section 2, rules 1 to 7; raises _RejectError("malformed")."""
    head = ">4s32sQQIB"
    if len(data) < struct.calcsize(head):
        raise _malformed()
    magic, identity, version, _issued, grace, count = struct.unpack_from(head, data)
    if magic != b"LLE\x01" or version < 1 or grace > MAX_GRACE or not 1 <= count <= 64:
        raise _malformed()  # rules 1 and 2
    pos = struct.calcsize(head)
    keys = []
    suites = set()
    for _ in range(count):
        entry = ">IBBQQQH"
        if len(data) < pos + struct.calcsize(entry):
            raise _malformed()  # rule 1: truncated
        key_id, purpose, status, not_before, not_after, retired, n = struct.unpack_from(
            entry, data, pos
        )
        pos += struct.calcsize(entry)
        public = data[pos : pos + n]
        pos += n
        if len(public) != n:
            raise _malformed()
        suite, _ = _public_identity(public)  # rule 1: a valid public identity
        suites.add(suite.name)
        if purpose not in PURPOSES or status not in STATUSES:
            raise _malformed()  # rule 4
        if not not_before < not_after or (retired == 0) != (status in (1, 2)):
            raise _malformed()  # rule 6
        fingerprint = hashlib.sha256(public).digest()
        if (key_id == 0) != (fingerprint == identity) or (key_id == 0 and purpose != 2):
            raise _malformed()  # rule 7
        keys.append(
            {
                "id": key_id,
                "purpose": PURPOSES[purpose],
                "status": STATUSES[status],
                "fp": fingerprint,
                "not_before": not_before,
                "not_after": not_after,
                "retired_at": retired,
            }
        )
    if pos != len(data):
        raise _malformed()  # rule 1: trailing bytes
    ids = [k["id"] for k in keys]
    if any(a >= b for a, b in itertools.pairwise(ids)):
        raise _malformed()  # rule 3
    if len({k["fp"] for k in keys}) != len(keys):
        raise _malformed()  # rule 3
    primaries = [k["purpose"] for k in keys if k["status"] == "primary"]
    if primaries.count("encrypt") != 1 or primaries.count("sign") > 1 or len(suites) != 1:
        raise _malformed()  # rules 4 and 5
    return {"identity": identity, "version": version, "grace": grace, "keys": keys}


def verify_line(text: str, identity: bytes) -> dict[str, Any]:
    """Section 4, steps 1 to 3, in order."""
    fields = text.strip().split(" ")
    if len(fields) != 3 or fields[0] != "letterlock-keyset":
        raise _malformed()
    keyset_bytes, signature = _b64(fields[1]), _b64(fields[2])
    keyset = parse(keyset_bytes)
    suite, signing_key = _public_identity(identity)
    if keyset["identity"] != hashlib.sha256(identity).digest():
        raise _RejectError("wrong_identity")
    try:
        verify_signature(suite, signing_key, signature, LABEL + keyset_bytes)
    except Exception:  # any failure of the signature check (section 2) is bad_signature
        raise _RejectError("bad_signature") from None
    return keyset


def _signs(key: dict[str, Any], created: int, now: int) -> bool:
    """Section 9: a signing key in service, within its lifetime at both times."""
    return (
        key["purpose"] == "sign" and key["status"] in ("active", "primary")
        and key["not_before"] <= created < key["not_after"]
        and key["not_before"] <= now < key["not_after"]
    )  # fmt: skip


def _deadline(key: dict[str, Any], grace: int) -> int:
    """Section 5: end(K) + G, end(K) = min(retired_at, not_after), or not_after."""
    end = key["not_after"] if key["retired_at"] == 0 else min(key["retired_at"], key["not_after"])
    return int(end) + grace


def verify_vector(vector: dict[str, Any]) -> dict[str, Any]:
    try:
        keyset = verify_line(vector["text"], bytes.fromhex(vector["identity"]))
    except _RejectError as exc:
        return {"expect": "reject", "reason": exc.reason}
    now, grace = vector["now"], keyset["grace"]
    primary = next(
        k for k in keyset["keys"] if k["status"] == "primary" and k["purpose"] == "encrypt"
    )
    signer = next(
        (k for k in keyset["keys"] if k["status"] == "primary" and k["purpose"] == "sign"), None
    )
    signing = (
        fingerprint_text(signer["fp"])
        if signer is not None and signer["not_before"] <= now < signer["not_after"] else None
    )  # fmt: skip
    sealing = (
        fingerprint_text(primary["fp"])
        if primary["not_before"] <= now < primary["not_after"] else None
    )  # fmt: skip
    return {
        "expect": "success", "version": keyset["version"], "grace": grace,
        "keys": [
            {"id": k["id"], "purpose": k["purpose"], "status": k["status"],
             "fingerprint": fingerprint_text(k["fp"]),
             "not_before": k["not_before"], "not_after": k["not_after"],
             "retired_at": k["retired_at"]}
            for k in keyset["keys"]
        ],
        "sealing_key": sealing,
        "opens_with": [k["id"] for k in keyset["keys"]
                       if k["purpose"] == "encrypt" and k["status"] != "destroyed"
                       and now < _deadline(k, grace)],
        "signing_key": signing,
        "signs": [k["id"] for k in keyset["keys"] if _signs(k, now, now)],
    }  # fmt: skip
