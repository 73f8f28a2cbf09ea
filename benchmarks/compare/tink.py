"""Tink: an ECDSA P-256 signature, then HPKE hybrid encryption to each recipient.

Signature: the standard ``ECDSA_P256`` template (DER, SHA-256). Encryption: HPKE with
DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM (Tink's Python package ships this
only as a protobuf parameter set, built below), one hybrid ciphertext of the signed message
per recipient: Tink has no multi-recipient primitive. Both keysets use Tink's 5-byte prefix.
"""

from __future__ import annotations

import functools

from compare.base import Case, Contender, OpenFailed, join_frames, payload_of, split_frames

__all__ = ["CONTENDER"]

_CONTEXT = b"bench.orders"


def _available() -> str | None:
    try:
        import tink  # noqa: F401
    except ImportError:
        return "Tink not installed (pip install tink)"
    return None


@functools.cache
def _templates() -> tuple[object, object]:
    """(signature template, HPKE P-256 hybrid template), Tink's primitives registered."""
    import tink
    from tink import hybrid, signature
    from tink.proto import hpke_pb2, tink_pb2

    hybrid.register()
    signature.register()
    params = hpke_pb2.HpkeParams(
        kem=hpke_pb2.DHKEM_P256_HKDF_SHA256,
        kdf=hpke_pb2.HKDF_SHA256,
        aead=hpke_pb2.AES_128_GCM,
    )
    hpke = tink_pb2.KeyTemplate(
        type_url="type.googleapis.com/google.crypto.tink.HpkePrivateKey",
        value=hpke_pb2.HpkeKeyFormat(params=params).SerializeToString(),
        output_prefix_type=tink_pb2.TINK,
    )
    del tink
    return signature.signature_key_templates.ECDSA_P256, hpke


class _Case:
    def __init__(self, size: int, recipients: int) -> None:
        import tink
        from tink import hybrid, signature

        sign_template, hpke_template = _templates()
        self.payload = payload_of(size)
        signing = tink.new_keyset_handle(sign_template)
        self._signer = signing.primitive(signature.PublicKeySign)
        self._verifier = signing.public_keyset_handle().primitive(signature.PublicKeyVerify)
        readers = [tink.new_keyset_handle(hpke_template) for _ in range(recipients)]
        self._encrypters = [
            r.public_keyset_handle().primitive(hybrid.HybridEncrypt) for r in readers
        ]
        self._decrypter = readers[0].primitive(hybrid.HybridDecrypt)
        self._error: type[Exception] = tink.TinkError

    def seal(self) -> bytes:
        signed = join_frames([self._signer.sign(self.payload), self.payload])
        boxes: list[bytes] = [e.encrypt(signed, _CONTEXT) for e in self._encrypters]
        return boxes[0] if len(boxes) == 1 else join_frames(boxes)

    def open(self, sealed: bytes) -> bytes:
        mine = sealed if len(self._encrypters) == 1 else bytes(split_frames(sealed)[0])
        try:
            signed = self._decrypter.decrypt(mine, _CONTEXT)
            signature, payload = (bytes(p) for p in split_frames(signed))
            self._verifier.verify(signature, payload)
        except self._error as error:
            raise OpenFailed(str(error)) from error
        return payload


def _setup(size: int, recipients: int) -> Case:
    return _Case(size, recipients)


CONTENDER = Contender(
    name="tink",
    kind="peer",
    what="Tink: ECDSA P-256 signature + HPKE (P-256, AES-128-GCM) hybrid box per recipient",
    setup=_setup,
    available=_available,
)
