"""The AWS Encryption SDK, offline: raw RSA master keys and the default algorithm suite.

Offline, without KMS, the SDK's own package offers raw AES and raw RSA wrapping keys (raw ECDH
needs the separate Material Providers Library). We use RSA-3072 with OAEP-SHA256, one master
key per recipient, and the default suite AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 (key
commitment, framed AES-256-GCM, an ECDSA P-384 signature). That signature is made with a fresh
key per message whose public half travels in the message: it protects integrity, but does not
say who sent the message, unlike every other contender here.
"""

from __future__ import annotations

import functools
import logging

from compare.base import Case, Contender, OpenFailed, payload_of

__all__ = ["CONTENDER"]


def _available() -> str | None:
    try:
        import aws_encryption_sdk  # noqa: F401
    except ImportError:
        return "AWS Encryption SDK not installed (pip install aws-encryption-sdk)"
    return None


@functools.lru_cache(maxsize=16)
def _rsa_pem(index: int) -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of the index-th recipient: RSA-3072 keys are slow to make."""
    del index
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _master_key(index: int, *, private: bool) -> object:
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKey

    private_pem, public_pem = _rsa_pem(index)
    wrapping = WrappingKey(
        wrapping_algorithm=WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
        wrapping_key=private_pem if private else public_pem,
        wrapping_key_type=EncryptionKeyType.PRIVATE if private else EncryptionKeyType.PUBLIC,
    )
    return RawMasterKey(provider_id="bench", key_id=f"r{index}".encode(), wrapping_key=wrapping)


class _Case:
    def __init__(self, size: int, recipients: int) -> None:
        import aws_encryption_sdk
        from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
        from cryptography.exceptions import InvalidSignature, InvalidTag

        # The SDK logs a traceback for every refused message; the harness reports refusals.
        logging.getLogger("aws_encryption_sdk").addHandler(logging.NullHandler())

        self.payload = payload_of(size)
        self._client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )
        keys = [_master_key(i, private=False) for i in range(recipients)]
        self._encrypt_to = keys[0]
        for key in keys[1:]:
            self._encrypt_to.add_master_key_provider(key)  # type: ignore[attr-defined]
        self._decrypt_with = _master_key(0, private=True)
        # ValueError: a damaged header (bad base64, a point off the curve) fails in parsing.
        self._errors = (AWSEncryptionSDKClientError, InvalidTag, InvalidSignature, ValueError)

    def seal(self) -> bytes:
        sealed, _header = self._client.encrypt(source=self.payload, key_provider=self._encrypt_to)
        return bytes(sealed)

    def open(self, sealed: bytes) -> bytes:
        try:
            payload, _header = self._client.decrypt(source=sealed, key_provider=self._decrypt_with)
        except self._errors as error:
            raise OpenFailed(str(error)) from error
        return bytes(payload)


def _setup(size: int, recipients: int) -> Case:
    return _Case(size, recipients)


CONTENDER = Contender(
    name="aws-encryption-sdk",
    kind="peer",
    what="AWS Encryption SDK: raw RSA-3072 OAEP key per recipient, default suite (ECDSA P-384)",
    setup=_setup,
    available=_available,
)
