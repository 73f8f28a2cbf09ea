"""ECDSA signatures travel as fixed-length ``r || s`` (spec section 2); pyca speaks DER.

letterlock converts between the two by hand on the hot path (``_crypto._rs_of`` and
``_crypto._der_of``, faster than pyca's helpers); these tests pin both to pyca's own encoder
and decoder, for random signatures and for the edge cases of the minimal DER integer.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from letterlock import _crypto

CURVES = [(ec.SECP256R1(), 32, hashes.SHA256()), (ec.SECP384R1(), 48, hashes.SHA384())]


@pytest.mark.parametrize(("curve", "n", "hash_algorithm"), CURVES, ids=["p256", "p384"])
def test_signatures_openssl_makes_convert_both_ways(
    curve: ec.EllipticCurve, n: int, hash_algorithm: hashes.HashAlgorithm
) -> None:
    key = ec.generate_private_key(curve)
    for _ in range(1000):
        der = key.sign(os.urandom(16), ec.ECDSA(hash_algorithm))
        r, s = decode_dss_signature(der)
        fixed = r.to_bytes(n, "big") + s.to_bytes(n, "big")
        assert _crypto._rs_of(der, n) == fixed
        assert _crypto._der_of(fixed, n) == der


@settings(max_examples=500, deadline=None)
@given(
    n=st.sampled_from([32, 48]),
    r=st.integers(1, 2**384 - 1) | st.integers(1, 2**16) | st.just(2**255),
    s=st.integers(1, 2**384 - 1) | st.integers(1, 2**16) | st.just(2**383),
)
def test_any_fixed_length_pair_encodes_as_pyca_does(n: int, r: int, s: int) -> None:
    r, s = r % 2 ** (8 * n) or 1, s % 2 ** (8 * n) or 1
    fixed = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    der = encode_dss_signature(r, s)
    assert _crypto._der_of(fixed, n) == der
    assert _crypto._rs_of(der, n) == fixed


@pytest.mark.parametrize("n", [32, 48])
def test_zero_r_or_s_never_reaches_the_verifier(n: int) -> None:
    one = (1).to_bytes(n, "big")
    assert _crypto._der_of(bytes(n) + one, n) is None
    assert _crypto._der_of(one + bytes(n), n) is None
