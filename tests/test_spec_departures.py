"""Where letterlock departs from its specification today, each pinned as a strict xfail.

The fix belongs in ``src/`` and has been reported. When it lands, the xfail turns into a
failure: make the test a plain one and add the matching vector to ``tools/make_vectors.py``.

The HPKE ``enc`` of a recipient entry (and, for pq, its ``ct_T``) is an EC point in the
uncompressed SEC1 encoding, first byte 0x04 (RFC 9180 section 7.1.1, spec section 3.3).
pyca/cryptography 50 decodes it with OpenSSL, which also accepts the X9.62 *hybrid* encoding
(first byte 0x06 or 0x07, the parity of y): a sender who feeds those bytes into its own KEM
context gets an entry that letterlock opens and a receiver following the text refuses. It
gives a sender nothing it could not do anyway, but two conforming receivers must agree.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from independent import mlkem1024_p384, rfc9180, verifier
from letterlock import Suite, _crypto

INFO = b"letterlock/v1 content key departures"
CONTENT_KEY = bytes(range(32))
HYBRID = pytest.mark.xfail(
    strict=True, reason="pyca 50 accepts the X9.62 hybrid point encoding (0x06/0x07) in enc"
)


def hybrid(point: bytes) -> bytes:
    """The X9.62 hybrid encoding of an uncompressed point: 0x06 or 0x07 by the parity of y."""
    return bytes([0x06 | (point[-1] & 1)]) + point[1:]


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@HYBRID
@pytest.mark.parametrize(
    ("suite", "dhkem", "curve"),
    [
        (Suite.P256, rfc9180.DHKEM_P256, ec.SECP256R1()),
        (Suite.P384, rfc9180.DHKEM_P384, ec.SECP384R1()),
    ],
)
def test_dhkem_enc_in_hybrid_form_is_refused(
    suite: Suite, dhkem: rfc9180.Dhkem, curve: ec.EllipticCurve
) -> None:
    size = curve.key_size // 8
    scalar = (7).to_bytes(size, "big")
    *_, decapsulator, _, pk_rm = _crypto.load_private(suite, scalar, scalar)
    receiver = ec.derive_private_key(7, curve)
    ephemeral = ec.generate_private_key(curve)
    dh = ephemeral.exchange(ec.ECDH(), receiver.public_key())
    honest = dhkem.seal(enc=_point(ephemeral), dh=dh, pk_rm=pk_rm, plaintext=CONTENT_KEY, info=INFO)
    assert decapsulator.unwrap(honest, INFO) == CONTENT_KEY  # the construction is right
    odd = dhkem.seal(
        enc=hybrid(_point(ephemeral)), dh=dh, pk_rm=pk_rm, plaintext=CONTENT_KEY, info=INFO
    )
    assert decapsulator.unwrap(odd, INFO) is None


@HYBRID
def test_pq_ct_t_in_hybrid_form_is_refused() -> None:
    scalar = (7).to_bytes(48, "big")
    *_, decapsulator, _, kem_public = _crypto.load_private(
        Suite.PQ, bytes(32) + scalar, bytes(64) + scalar
    )
    ml_public = mlkem.MLKEM1024PublicKey.from_public_bytes(kem_public[:1568])
    ek_t = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), kem_public[1568:])
    ss_pq, ct_pq = ml_public.encapsulate()
    honest = mlkem1024_p384.seal_base(ct_pq, ss_pq, ek_t, CONTENT_KEY, INFO)
    assert decapsulator.unwrap(honest, INFO) == CONTENT_KEY  # the construction is right
    odd = mlkem1024_p384.seal_base(ct_pq, ss_pq, ek_t, CONTENT_KEY, INFO, reencode=hybrid)
    assert decapsulator.unwrap(odd, INFO) is None


def test_the_independent_verifier_follows_the_text() -> None:
    """The receiver written from the spec refuses the hybrid encoding, in both kinds of KEM."""
    scalar = (7).to_bytes(32, "big")
    p256 = b"LLS\x01\x01" + (32).to_bytes(2, "big") + scalar + (32).to_bytes(2, "big") + scalar
    suite, public, key = verifier._load_private_identity(p256)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    dh = ephemeral.exchange(ec.ECDH(), key.public_key())
    for enc, opens in ((_point(ephemeral), True), (hybrid(_point(ephemeral)), False)):
        wrapped = rfc9180.DHKEM_P256.seal(
            enc=enc, dh=dh, pk_rm=public[-65:], plaintext=CONTENT_KEY, info=INFO
        )
        if opens:
            assert verifier._hpke_open(suite, key, wrapped, INFO) == CONTENT_KEY
        else:
            with pytest.raises(ValueError, match="uncompressed"):
                verifier._hpke_open(suite, key, wrapped, INFO)

    scalar = (7).to_bytes(48, "big")
    pq = b"LLS\x01\x04" + (80).to_bytes(2, "big") + bytes(32) + scalar
    pq += (112).to_bytes(2, "big") + bytes(64) + scalar
    suite, _, pq_key = verifier._load_private_identity(pq)
    assert isinstance(pq_key, tuple)
    ss_pq, ct_pq = pq_key[0].public_key().encapsulate()
    ek_t = pq_key[1].public_key()
    honest = mlkem1024_p384.seal_base(ct_pq, ss_pq, ek_t, CONTENT_KEY, INFO)
    assert verifier._hpke_open(suite, pq_key, honest, INFO) == CONTENT_KEY
    odd = mlkem1024_p384.seal_base(ct_pq, ss_pq, ek_t, CONTENT_KEY, INFO, reencode=hybrid)
    with pytest.raises(ValueError, match="uncompressed"):
        verifier._hpke_open(suite, pq_key, odd, INFO)
