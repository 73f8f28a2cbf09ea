"""PyNaCl: an Ed25519 signature, then one SealedBox per recipient.

What a PyNaCl user writes: ``SigningKey.sign`` (signature prepended) and ``SealedBox.encrypt``
(an ephemeral X25519 key and XSalsa20-Poly1305). PyNaCl has no multi-recipient box, so each
recipient gets a box of the whole signed message; several boxes are length-prefixed.
"""

from __future__ import annotations

from compare.base import Case, Contender, OpenFailed, join_frames, payload_of, split_frames

__all__ = ["CONTENDER"]


def _available() -> str | None:
    try:
        import nacl.public  # noqa: F401
    except ImportError:
        return "PyNaCl not installed (pip install pynacl)"
    return None


class _Case:
    def __init__(self, size: int, recipients: int) -> None:
        from nacl.public import PrivateKey, SealedBox
        from nacl.signing import SigningKey

        self.payload = payload_of(size)
        self._signing = SigningKey.generate()
        self._verify = self._signing.verify_key
        readers = [PrivateKey.generate() for _ in range(recipients)]
        self._boxes = [SealedBox(r.public_key) for r in readers]
        self._unbox = SealedBox(readers[0])

    def seal(self) -> bytes:
        signed = bytes(self._signing.sign(self.payload))
        boxes = [box.encrypt(signed) for box in self._boxes]
        return boxes[0] if len(boxes) == 1 else join_frames(boxes)

    def open(self, sealed: bytes) -> bytes:
        from nacl.exceptions import CryptoError

        mine = sealed if len(self._boxes) == 1 else bytes(split_frames(sealed)[0])
        try:
            return bytes(self._verify.verify(self._unbox.decrypt(mine)))
        except CryptoError as error:  # BadSignatureError is a CryptoError
            raise OpenFailed(str(error)) from error


def _setup(size: int, recipients: int) -> Case:
    return _Case(size, recipients)


CONTENDER = Contender(
    name="pynacl",
    kind="peer",
    what="PyNaCl: Ed25519 signature + one SealedBox (X25519, XSalsa20-Poly1305) per recipient",
    setup=_setup,
    available=_available,
)
