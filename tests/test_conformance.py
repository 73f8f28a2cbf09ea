"""letterlock's primitive layer (``letterlock._crypto``) against Wycheproof.

Every case of the Wycheproof files in ``../shared/conformance/wycheproof/`` (see that folder's
README) goes through the code letterlock really runs: ``load_public`` (the public identity's
keys), ``Verifier.verify`` (ECDSA ``r || s``, Ed25519), ``load_private`` and
``Decapsulator.unwrap`` (HPKE, where the case is a key agreement: the tests build the HPKE
ciphertext around the case's public key and shared secret with ``tests/independent/rfc9180.py``).
Each ``valid`` case must pass, each ``invalid`` one fail. For ``acceptable`` cases the outcome is
ours to choose; the tests state it and pin it. Where letterlock is deliberately stricter than
Wycheproof (small-order X25519 keys, compressed points in identities), the test asserts the
stricter outcome, says why, and pins how many cases it concerns.

This is also where the Ed25519 verification rule of the spec (section 2) meets outside data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from independent import mlkem1024_p384, rfc9180
from letterlock import Suite, _crypto

WYCHEPROOF = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "wycheproof"
pytestmark = pytest.mark.skipif(
    not WYCHEPROOF.is_dir(), reason="no Wycheproof data at ../shared/conformance/wycheproof"
)

Case = dict[str, Any]
P25519 = 2**255 - 19
#: Section 3.1: the u-coordinates of the X25519 points of small order.
X25519_SMALL_ORDER = {
    0,
    1,
    P25519 - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
}
INFO = b"letterlock/v1 content key conformance"
CONTENT_KEY = bytes(range(32))


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WYCHEPROOF / name).read_text(encoding="utf-8"))
    return data


def cases(name: str) -> Iterator[tuple[dict[str, Any], Case]]:
    for group in _load(name)["testGroups"]:
        for case in group["tests"]:
            yield group, case


def tally(name: str) -> Counter[str]:
    return Counter(case["result"] for _, case in cases(name))


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


#: Companion keys, so that each case's key can sit in a whole public identity.
P256_KEY = ec.derive_private_key(7, ec.SECP256R1())
P384_KEY = ec.derive_private_key(7, ec.SECP384R1())
X25519_PUBLIC = x25519.X25519PrivateKey.from_private_bytes(bytes([7] * 32)).public_key()
ED25519_SEED = bytes([7] * 32)
ED25519_PUBLIC = _crypto.load_private(Suite.X25519, ED25519_SEED, bytes([7] * 32))[2]
MLDSA_SEED = bytes([7] * 32)
P384_SCALAR = (7).to_bytes(48, "big")
PQ_KEM_PRIVATE = bytes(64) + P384_SCALAR


def _loads(suite: Suite, sig_public: bytes, kem_public: bytes) -> bool:
    try:
        _crypto.load_public(suite, sig_public, kem_public)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("name", "suite"),
    [
        ("ecdsa_secp256r1_sha256_p1363_test.json", Suite.P256),
        ("ecdsa_secp384r1_sha384_p1363_test.json", Suite.P384),
    ],
)
def test_ecdsa_r_s_signatures(name: str, suite: Suite) -> None:
    """``r || s`` as the envelope carries it: valid verifies, invalid does not (no acceptable)."""
    wrong = []
    for group, case in cases(name):
        point = bytes.fromhex(group["publicKey"]["uncompressed"])
        verifier, _ = _crypto.load_public(suite, point, point)
        verified = verifier.verify(bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]))
        if verified != (case["result"] == "valid"):
            wrong.append(case["tcId"])
    assert wrong == []
    assert tally(name)["acceptable"] == 0


def test_ed25519_signatures() -> None:
    """Section 2's rule (pyca/OpenSSL): S < L, cofactorless [S]B = R + [k]A compared by R's
    encoding. Wycheproof's keys are all canonical and of large order, so section 3.1 loads them
    all; every valid signature verifies and every invalid one (S + L malleability, truncated,
    compressed or non-canonical R, wrong k) fails."""
    wrong = []
    for group, case in cases("ed25519_test.json"):
        public = bytes.fromhex(group["publicKey"]["pk"])
        verifier, _ = _crypto.load_public(Suite.X25519, public, X25519_PUBLIC.public_bytes_raw())
        verified = verifier.verify(bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]))
        if verified != (case["result"] == "valid"):
            wrong.append(case["tcId"])
    assert wrong == []


def test_mldsa87_signatures() -> None:
    """ML-DSA-87 keys through ``load_public`` (the pq identity's first key): a key of the wrong
    length is refused there. letterlock signs and verifies with the context "letterlock/v1";
    Wycheproof's signatures carry their own contexts, so each is checked, with its context, on
    the ML-DSA key object that ``load_public`` built (pyca's FIPS 204 verification)."""
    wrong, refused_at_load = [], 0
    point = _point(P384_KEY)
    *_, kem_public = _crypto.load_private(Suite.PQ, MLDSA_SEED + P384_SCALAR, PQ_KEM_PRIVATE)
    for group, case in cases("mldsa_87_verify_test.json"):
        try:
            verifier, _ = _crypto.load_public(
                Suite.PQ, bytes.fromhex(group["publicKey"]) + point, kem_public
            )
        except ValueError:
            refused_at_load += 1
            verified = False
        else:
            assert isinstance(verifier, _crypto.PqVerifier)
            key = verifier._mldsa  # the ML-DSA-87 half of the pq verifier
            try:
                ctx = bytes.fromhex(case.get("ctx", ""))
                key.verify(bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]), ctx)
                verified = True
            except Exception:  # InvalidSignature, or ValueError for a context over 255 bytes
                verified = False
        if verified != (case["result"] == "valid"):
            wrong.append(case["tcId"])
    assert wrong == []
    assert refused_at_load == 4  # the IncorrectPublicKeyLength cases


# --------------------------------------------------------------------------- ML-KEM-1024


def test_mlkem1024_keys_and_decapsulation() -> None:
    """The pq encryption private key is the ML-KEM seed d || z (section 3.2): ``load_private``
    refuses seeds of another length and derives Wycheproof's encapsulation key from the rest.
    Each ciphertext ``c`` with its shared secret ``K`` is then wrapped in an MLKEM1024-P384
    HPKE ciphertext (section 3.3) and opened by letterlock's ``Decapsulator``: valid cases give
    the content key back (implicit rejection included), invalid ones (a ciphertext of the wrong
    length) do not."""
    wrong = []
    for _, case in cases("mlkem_1024_test.json"):
        seed = bytes.fromhex(case["seed"])
        try:
            *_, decapsulator, _, kem_public = _crypto.load_private(
                Suite.PQ, MLDSA_SEED + P384_SCALAR, seed + P384_SCALAR
            )
        except ValueError:
            if case["result"] == "valid":
                wrong.append(case["tcId"])
            continue
        if "ek" in case and kem_public[:1568] != bytes.fromhex(case["ek"]):
            wrong.append(case["tcId"])
        shared = bytes.fromhex(case["K"]) or bytes(32)
        ek_t = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), kem_public[1568:])
        wrapped = mlkem1024_p384.seal_base(
            bytes.fromhex(case["c"]), shared, ek_t, CONTENT_KEY, INFO
        )
        opened = decapsulator.unwrap(wrapped, INFO) == CONTENT_KEY
        if opened != (case["result"] == "valid"):
            wrong.append(case["tcId"])
    assert wrong == []


# --------------------------------------------------------------------------- key agreement

DHKEM: dict[Suite, rfc9180.Dhkem] = {
    Suite.P256: rfc9180.DHKEM_P256,
    Suite.P384: rfc9180.DHKEM_P384,
    Suite.X25519: rfc9180.DHKEM_X25519,
}


def dhkem_wrapped(suite: Suite, enc: bytes, dh: bytes, pk_rm: bytes) -> bytes:
    """An HPKE ciphertext of CONTENT_KEY whose KEM output is ``enc`` with DH output ``dh``."""
    return DHKEM[suite].seal(enc=enc, dh=dh, pk_rm=pk_rm, plaintext=CONTENT_KEY, info=INFO)


def test_x25519() -> None:
    """Two uses of an X25519 key. As a recipient's key in a public identity (section 3.1)
    letterlock refuses non-canonical encodings (u >= p, top bit set) and the points of small
    order, which Wycheproof marks acceptable: stricter on purpose, so that a key has one
    encoding and is never one whose shared secret is zero. As the HPKE ``enc`` of a recipient
    entry, any 32 bytes are decoded as RFC 7748 says (top bit masked, u reduced) and only an
    all-zero shared secret is refused (RFC 9180 section 7.1.4): valid cases open, acceptable
    ones open exactly when their shared secret is not zero."""
    outcomes: Counter[tuple[str, str, bool]] = Counter()
    wrong = []
    for _, case in cases("x25519_test.json"):
        public, shared = bytes.fromhex(case["public"]), bytes.fromhex(case["shared"])
        u = int.from_bytes(public, "little")
        strict = u < P25519 and u not in X25519_SMALL_ORDER
        loads = _loads(Suite.X25519, ED25519_PUBLIC, public)
        outcomes["identity", case["result"], loads] += 1
        *_, decapsulator, _, pk_rm = _crypto.load_private(
            Suite.X25519, ED25519_SEED, bytes.fromhex(case["private"])
        )
        opened = decapsulator.unwrap(dhkem_wrapped(Suite.X25519, public, shared, pk_rm), INFO)
        opens = opened == CONTENT_KEY
        outcomes["hpke", case["result"], opens] += 1
        if loads != strict or opens != (shared != bytes(32)) or case["result"] == "invalid":
            wrong.append(case["tcId"])
    assert wrong == []
    assert tally("x25519_test.json") == {"valid": 264, "acceptable": 254}
    assert outcomes == {
        # Every valid key is canonical and of large order. Section 3.1 refuses 44 acceptable
        # ones: 15 of small order, 21 with the top bit set and 8 with p <= u < 2^255.
        ("identity", "valid", True): 264,
        ("identity", "acceptable", True): 210,
        ("identity", "acceptable", False): 44,
        # HPKE: every valid enc opens; of the acceptable ones, the 31 whose shared secret is
        # zero do not, the 223 others (twist points, non-canonical u) do.
        ("hpke", "valid", True): 264,
        ("hpke", "acceptable", True): 223,
        ("hpke", "acceptable", False): 31,
    }


@pytest.mark.parametrize(
    ("name", "suite", "private_key"),
    [
        ("ecdh_secp256r1_ecpoint_test.json", Suite.P256, P256_KEY),
        ("ecdh_secp384r1_ecpoint_test.json", Suite.P384, P384_KEY),
    ],
)
def test_ec_point_encodings(
    name: str, suite: Suite, private_key: ec.EllipticCurvePrivateKey
) -> None:
    """Wycheproof's public points, twice. In a public identity (section 3.1) only the
    uncompressed SEC1 encoding of a point on the curve loads: the compressed point that
    Wycheproof calls acceptable is refused on purpose (one encoding per key, so one
    fingerprint). As the HPKE ``enc`` of a recipient entry (uncompressed, Nenc bytes) a valid
    point opens and a point off the curve does not."""
    size = {Suite.P256: 65, Suite.P384: 97}[suite]
    companion = _point(private_key)
    wrong = []
    refused_acceptable = 0
    for _, case in cases(name):
        public = bytes.fromhex(case["public"])
        loads = _loads(suite, public, companion) and _loads(suite, companion, public)
        if case["result"] == "acceptable":
            refused_acceptable += not loads
        elif loads != (case["result"] == "valid"):
            wrong.append(case["tcId"])
        if len(public) == size:
            scalar = int(case["private"], 16)
            *_, decapsulator, _, pk_rm = _crypto.load_private(
                suite, (7).to_bytes(size // 2, "big"), scalar.to_bytes(size // 2, "big")
            )
            dh = bytes.fromhex(case["shared"]) or bytes(size // 2)
            opened = decapsulator.unwrap(dhkem_wrapped(suite, public, dh, pk_rm), INFO)
            if (opened == CONTENT_KEY) != (case["result"] == "valid"):
                wrong.append(case["tcId"])
    assert wrong == []
    assert refused_acceptable == tally(name)["acceptable"] == 1  # the compressed point
