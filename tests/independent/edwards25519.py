"""Edwards25519 arithmetic in pure Python (RFC 8032 section 5.1), for tests and vector making.

Slow and not constant time: never for secrets that matter. It exists so that the tests and
``tools/make_vectors.py`` can build and check Ed25519 signatures that no honest signer makes
(small-order ``R``, non-canonical encodings, keys with a torsion component) and can run the
*cofactored* verification equation, which pyca/cryptography (OpenSSL) does not use, to show
where the two disagree. Standard library only; nothing from ``letterlock``.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias

P = 2**255 - 19
#: The order of the prime-order subgroup (RFC 8032's L).
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)

#: Extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z.
Point: TypeAlias = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def add(a: Point, b: Point) -> Point:
    """RFC 8032 section 5.1.4 point addition (complete on edwards25519)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def negate(a: Point) -> Point:
    x, y, z, t = a
    return (-x % P, y, z, -t % P)


def multiply(scalar: int, a: Point) -> Point:
    """``scalar * a`` for any integer ``scalar >= 0`` (not reduced: torsion survives)."""
    out = IDENTITY
    while scalar > 0:
        if scalar & 1:
            out = add(out, a)
        a = add(a, a)
        scalar >>= 1
    return out


def equal(a: Point, b: Point) -> bool:
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    """RFC 8032 section 5.1.3, step 2-4: x from y and its sign bit, or None."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def point(x: int, y: int) -> Point:
    return (x % P, y % P, 1, x * y % P)


def decode(encoded: bytes, *, strict: bool = True) -> Point | None:
    """RFC 8032 section 5.1.3 decoding, or None. ``strict=False`` also reads y >= p as y - p
    (the lax decoding some libraries use for keys and R)."""
    if len(encoded) != 32:
        return None
    value = int.from_bytes(encoded, "little")
    y, sign = value & ((1 << 255) - 1), value >> 255
    if not strict and y >= P:
        y -= P
    x = _recover_x(y, sign)
    return None if x is None else point(x, y)


def encode(a: Point) -> bytes:
    """RFC 8032 section 5.1.2: the canonical 32-byte encoding."""
    x, y, z, _ = a
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


#: RFC 8032's base point B.
BASE: Point = point(
    15112221349535400772501151409588531511454012693041857206046113283949847762202,
    46316835694926478169428394003475163141307993866256225615783033603165251855960,
)


def small_order_points() -> list[Point]:
    """The eight points of order dividing 8 (the torsion subgroup), by solving the curve."""
    # The y-coordinate of the points of order 8, as the spec lists it (section 3.1); the
    # assertions check that it has order exactly 8, so the multiples are the whole subgroup.
    y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
    x8 = _recover_x(y8, 0)
    assert x8 is not None
    generator = point(x8, y8)
    points = [multiply(i, generator) for i in range(8)]
    assert equal(multiply(8, generator), IDENTITY)
    assert not equal(points[4], IDENTITY)
    return points


def challenge(r_encoded: bytes, a_encoded: bytes, message: bytes) -> int:
    """k = SHA-512(R || A || M) as a little-endian integer, reduced mod L (RFC 8032 5.1.7)."""
    digest = hashlib.sha512(r_encoded + a_encoded + message).digest()
    return int.from_bytes(digest, "little") % L


def sign_raw(
    scalar: int, public: bytes, message: bytes, *, nonce: int, r_encoded: bytes | None = None
) -> bytes:
    """``R || S`` with ``R = nonce * B`` (or the given ``r_encoded``, whose point must then
    be ``nonce * B`` for the signature to mean anything) and ``S = nonce + k * scalar mod L``.

    With a key ``A = scalar * B + T`` (``T`` of small order) the result satisfies the cofactored
    equation always and the cofactorless one only when ``k * T`` is the identity.
    """
    r = encode(multiply(nonce, BASE)) if r_encoded is None else r_encoded
    s = (nonce + challenge(r, public, message) * scalar) % L
    return r + s.to_bytes(32, "little")


def verify_cofactored(public: bytes, signature: bytes, message: bytes) -> bool:
    """[8][S]B = [8]R + [8][k]A, with S < L and both encodings decoded strictly (RFC 8032
    5.1.7 as written, the "cofactored" equation): the rule letterlock does NOT use."""
    a = decode(public)
    r = decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = challenge(signature[:32], public, message)
    left = multiply(8 * s, BASE)
    right = add(multiply(8, r), multiply(8 * k, a))
    return equal(left, right)


def verify_cofactorless(public: bytes, signature: bytes, message: bytes) -> bool:
    """encode([S]B - [k]A) == R bytewise, S < L, A decoded strictly: the rule of section 2."""
    a = decode(public)
    s = int.from_bytes(signature[32:], "little")
    if a is None or s >= L:
        return False
    k = challenge(signature[:32], public, message)
    return encode(add(multiply(s, BASE), negate(multiply(k, a)))) == signature[:32]
