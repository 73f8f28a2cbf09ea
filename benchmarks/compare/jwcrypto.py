"""jwcrypto: a JWS (ES256) inside a JWE (ECDH-ES+A128KW, A128GCM).

The compact JWS is the JWE's plaintext; the JWE has one recipient entry per recipient (each an
ephemeral-static ECDH on P-256 wrapping the content key with AES key wrap) in the JSON
serialization (flattened for one recipient, general for several).
"""

from __future__ import annotations

from compare.base import Case, Contender, OpenFailed, payload_of

__all__ = ["CONTENDER"]


def _available() -> str | None:
    try:
        import jwcrypto.jwe  # noqa: F401
    except ImportError:
        return "jwcrypto not installed (pip install jwcrypto)"
    return None


class _Case:
    def __init__(self, size: int, recipients: int) -> None:
        from jwcrypto import jwk
        from jwcrypto.common import json_encode

        self.payload = payload_of(size)
        self._sender = jwk.JWK.generate(kty="EC", crv="P-256")
        self._sender_public = jwk.JWK(**self._sender.export_public(as_dict=True))
        self._reader = jwk.JWK.generate(kty="EC", crv="P-256")
        others = [jwk.JWK.generate(kty="EC", crv="P-256") for _ in range(recipients - 1)]
        self._recipients = [
            jwk.JWK(**k.export_public(as_dict=True)) for k in (self._reader, *others)
        ]
        self._signed_header = json_encode({"alg": "ES256"})
        self._protected = json_encode({"enc": "A128GCM", "cty": "JWT"})
        self._per_recipient = json_encode({"alg": "ECDH-ES+A128KW"})

    def seal(self) -> bytes:
        from jwcrypto import jwe, jws

        token = jws.JWS(self.payload)
        token.add_signature(self._sender, None, self._signed_header)
        envelope = jwe.JWE(token.serialize(compact=True).encode(), protected=self._protected)
        for recipient in self._recipients:
            envelope.add_recipient(recipient, header=self._per_recipient)
        serialized: str = envelope.serialize()
        return serialized.encode()

    def open(self, sealed: bytes) -> bytes:
        from jwcrypto import jwe, jws
        from jwcrypto.common import JWException

        try:
            envelope = jwe.JWE()
            envelope.deserialize(sealed.decode(), key=self._reader)
            token = jws.JWS()
            token.deserialize(envelope.payload.decode())
            token.verify(self._sender_public, alg="ES256")
            payload: bytes = token.payload
        except (JWException, ValueError) as error:  # ValueError: broken JSON or UTF-8
            raise OpenFailed(str(error)) from error
        return payload


def _setup(size: int, recipients: int) -> Case:
    return _Case(size, recipients)


CONTENDER = Contender(
    name="jwcrypto",
    kind="peer",
    what="jwcrypto: JWS ES256 inside JWE ECDH-ES+A128KW/A128GCM, JSON serialization",
    setup=_setup,
    available=_available,
)
