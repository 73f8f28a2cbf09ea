"""Identities from capabilities: a public identity, a Signer and a Decapsulator.

A key that lives on a token (PKCS#11) never yields its bytes; an Identity built from such
capabilities must seal and open like any other, and refuse to give out private bytes.
"""

from __future__ import annotations

import pickle

import pytest

import letterlock
from letterlock import (
    Identity,
    Pins,
    PrivateKeys,
    PublicIdentity,
    ReplayWindow,
    Suite,
    UsageError,
    hazmat,
)
from letterlock.keystore import encrypt_identity

NOW = 1_800_000_000


class TokenKeys:
    """Stands in for keys on a hardware token: signs and unwraps, never shows its keys."""

    def __init__(self, suite: Suite) -> None:
        self._inside = PrivateKeys.generate(suite)  # "inside the token"
        self.suite = suite
        self.public = self._inside.public
        self.calls: list[str] = []

    def sign(self, message: bytes) -> bytes:
        self.calls.append("sign")
        return self._inside.sign(message)

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        self.calls.append("unwrap")
        return self._inside.unwrap(wrapped, info)


@pytest.mark.parametrize("suite", [Suite.P256, Suite.X25519], ids=str)
def test_an_identity_from_capabilities_seals_and_opens(suite: Suite) -> None:
    token = TokenKeys(suite)
    carol = Identity(token.public, signer=token, decapsulator=token)
    bob = Identity.generate(suite)
    pins = Pins()
    pins.pin("carol", carol.public)
    to_bob = letterlock.seal(b"hi", sender=carol, recipients=[bob.public], topic="t", now=NOW)
    opened = letterlock.open(to_bob, identity=bob, trust=pins, replay=ReplayWindow(), now=NOW)
    assert (opened.payload, opened.sender.name) == (b"hi", "carol")
    back = Pins()
    back.pin("bob", bob.public)
    to_carol = letterlock.seal(b"ok", sender=bob, recipients=[carol.public], topic="t", now=NOW)
    reply = letterlock.open(to_carol, identity=carol, trust=back, replay=ReplayWindow(), now=NOW)
    assert reply.payload == b"ok"
    assert token.calls == ["sign", "unwrap"]


def test_token_keys_never_become_bytes() -> None:
    token = TokenKeys(Suite.X25519)
    carol = Identity(token.public, signer=token, decapsulator=token)
    with pytest.raises(UsageError, match="not held in this process"):
        hazmat.identity_to_private_bytes(carol)
    with pytest.raises(UsageError, match="not held in this process"):
        encrypt_identity(carol, b"passphrase")


def test_capabilities_of_another_suite_are_refused() -> None:
    token = TokenKeys(Suite.X25519)
    other = PrivateKeys.generate(Suite.P256)
    with pytest.raises(UsageError, match="suite"):
        Identity(token.public, signer=other, decapsulator=token)
    with pytest.raises(UsageError, match="PublicIdentity"):
        Identity(token.public.to_bytes(), signer=token, decapsulator=token)  # type: ignore[arg-type]


def test_private_keys_in_memory_round_trip_through_their_encoding() -> None:
    keys = PrivateKeys.generate(Suite.P384)
    identity = keys.identity()
    encoded = hazmat.identity_to_private_bytes(identity)
    again = hazmat.identity_from_private_bytes(encoded)
    assert again.public == identity.public
    assert isinstance(again.signer, PrivateKeys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    assert encoded.hex() not in repr(keys)


def test_a_bad_private_encoding_is_a_parse_error() -> None:
    with pytest.raises(letterlock.ParseError):
        hazmat.private_keys_from_bytes(b"LLS\x01\x09\x00\x00\x00\x00")
    with pytest.raises(letterlock.ParseError):
        PublicIdentity(b"LLP\x01\x03" + b"\x00\x20" + bytes(32) + b"\x00\x20" + bytes(32))
    with pytest.raises(ValueError):  # ParseError is a ValueError, as before
        PublicIdentity.from_text("letterlock-x25519 ***")
