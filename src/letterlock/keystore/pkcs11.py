"""Identities whose private keys live on a PKCS#11 token (an HSM, a smart card, SoftHSM2).

:class:`Pkcs11KeyStore` is a :class:`~letterlock.keystore.base.KeyStore` over one token, through
python-pkcs11 (the ``pkcs11`` extra). An identity ``NAME`` is two EC key pairs of its suite
(p256 or p384) generated on the token, both labelled ``NAME``, both private keys sensitive and
not extractable, so neither ever leaves the token:

* the signing key (``CKA_ID`` :data:`SIGNING_KEY_ID`) signs with ``CKM_ECDSA`` over the suite's
  hash (SHA-256 for p256, SHA-384 for p384); that mechanism's ``r || s`` output is already the
  envelope's signature encoding (``docs/spec/envelope-v1.md`` section 2);
* the encryption key (``CKA_ID`` :data:`ENCRYPTION_KEY_ID`) does the DH of HPKE's DHKEM on the
  token (``CKM_ECDH1_DERIVE``); the rest of HPKE base mode (the key schedule and the AEAD) runs
  in this process (:func:`letterlock._crypto.hpke_open_after_dh`), on the DH output of one
  message's ephemeral key, which is all that leaves the token.

The PIN comes through the :data:`~letterlock.keystore.base.Secret` callable, asked when the
store first logs in; :func:`pin` makes one that reads a file, :data:`PIN_ENV` or the terminal,
as the CLI gets a key file's passphrase. PKCS#11 logs in a whole process at once: the store
keeps one logged-in session, and every identity it loads uses it until
:meth:`Pkcs11KeyStore.close`. A second store on the same token in the same process is refused
while the first is open (its PIN could not be checked). Token errors leave as
:class:`~letterlock.errors.KeyStoreError`; a failure while logging in is raised with no
traceback or context that holds the PIN. Identities may sign and unwrap from several threads
(python-pkcs11 serialises operations on the one session).

A session belongs to the process that opened it: PKCS#11 forbids using a module's sessions in
a child made by ``fork`` (the child must initialise the module again, and log in itself). In a
forked child, the store's identities raise :class:`~letterlock.errors.KeyStoreError` instead
of touching the parent's session, and closing the store there leaves that session alone. A
process that needs the token (a pool worker, see :mod:`letterlock.transports.pool`) opens a
store of its own after it starts, with the PIN handed to it as a
:class:`~letterlock.transports.pool.WorkerSecret`.
"""

from __future__ import annotations

import getpass
import os
import threading
from pathlib import Path
from typing import Any, Final, NoReturn

import pkcs11
from pkcs11 import KDF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.types import DeriveMixin, SignMixin

from letterlock import _crypto
from letterlock._edges import ExceptionMapping, map_exceptions
from letterlock.core.keys import PUBLIC_MAGIC, Identity, PublicIdentity, _join_identity
from letterlock.core.suites import Suite
from letterlock.errors import KeyStoreError, LetterlockError, ParseError, UsageError
from letterlock.keystore.base import Secret
from letterlock.trust.pins import check_name

__all__ = [
    "ENCRYPTION_KEY_ID",
    "PIN_ENV",
    "SIGNING_KEY_ID",
    "SOFTHSM2_MODULE",
    "Pkcs11KeyStore",
    "pin",
]

#: Where Debian's ``softhsm2`` package installs its PKCS#11 module.
SOFTHSM2_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
#: ``CKA_ID`` of an identity's signing key pair (its ``CKA_LABEL`` is the identity's name).
SIGNING_KEY_ID: Final = b"letterlock-sign"
#: ``CKA_ID`` of an identity's encryption key pair.
ENCRYPTION_KEY_ID: Final = b"letterlock-encrypt"

#: The environment variable :func:`pin` reads (visible to the same user in /proc/PID/environ;
#: prefer a file only the service can read).
PIN_ENV: Final = "LETTERLOCK_PIN"
_MAX_PIN_FILE: Final = 4096

#: DER of the named-curve OIDs that ``CKA_EC_PARAMS`` holds (RFC 5480 section 2.1.1.1).
_EC_PARAMS: Final = {
    Suite.P256: bytes.fromhex("06082a8648ce3d030107"),  # secp256r1
    Suite.P384: bytes.fromhex("06052b81040022"),  # secp384r1
}
_SUITE_OF_PARAMS: Final = {params: suite for suite, params in _EC_PARAMS.items()}


def _token_error(exc: Exception) -> LetterlockError:
    return KeyStoreError(f"token error: {_describe(exc)}")


#: Private keys stay on the token, readable by nobody: sensitive, never extractable.
_PRIVATE_TEMPLATE: Final = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
}
_TOKEN_ERRORS: Final[ExceptionMapping] = {PKCS11Error: _token_error}
_LOGIN_ERRORS: Final = {
    PinIncorrect: "wrong PIN for token {token!r}",
    PinInvalid: "wrong PIN for token {token!r}",
    PinLenRange: "wrong PIN for token {token!r} (its length is out of the token's range)",
    PinLocked: "the PIN of token {token!r} is locked (too many wrong tries)",
    UserAlreadyLoggedIn: (
        "token {token!r} is already logged in by this process (another Pkcs11KeyStore on it "
        "is open; close it first)"
    ),
}


def _describe(exc: BaseException) -> str:
    """A token error as ``Name: text`` (python-pkcs11 often raises with an empty message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def pin(file: str | os.PathLike[str] | None = None, *, prompt: str = "Token PIN: ") -> Secret:
    """A :data:`~letterlock.keystore.base.Secret` for the token PIN, read when the store asks:
    the first line of ``file`` if given, else :data:`PIN_ENV` if set, else the terminal."""

    def read() -> bytes:
        if file is not None:
            try:
                with open(file, "rb") as opened:
                    return opened.read(_MAX_PIN_FILE).split(b"\n", 1)[0].removesuffix(b"\r")
            except OSError as exc:
                raise KeyStoreError(
                    f"cannot read the PIN file {os.fspath(file)}: {exc.strerror}"
                ) from None
        if PIN_ENV in os.environ:
            return os.fsencode(os.environ[PIN_ENV])
        if not Path("/dev/tty").exists():
            raise UsageError(f"no PIN: no terminal to ask on; set {PIN_ENV} or give a PIN file")
        return getpass.getpass(prompt).encode("utf-8")

    return read


def _pin_text(raw: object) -> str | None:
    """The PIN as python-pkcs11 takes it (UTF-8 text), or None if ``raw`` is not such bytes."""
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ec_point(encoded: bytes, suite: Suite) -> bytes:
    """The uncompressed point of ``CKA_EC_POINT``: a DER OCTET STRING (PKCS#11), or the bare
    point some tokens give. ParseError if it is neither."""
    size = suite.sizes.sig_public
    if len(encoded) == size + 2 and encoded[:2] == bytes((0x04, size)):
        return encoded[2:]
    if len(encoded) == size:
        return encoded
    raise ParseError(f"the token's EC point is not a {suite} point")


class _TokenSigner:
    """Signs on the token with ``CKM_ECDSA`` (a :class:`~letterlock.core.keys.Signer`)."""

    __slots__ = ("_key", "_store", "suite")

    def __init__(self, store: Pkcs11KeyStore, suite: Suite, key: SignMixin) -> None:
        self.suite = suite
        self._store = store
        self._key = key

    def sign(self, message: bytes) -> bytes:
        digest = _crypto.digest(self.suite, message)
        with self._store._lock, map_exceptions(_TOKEN_ERRORS):
            self._store._session_or_raise()
            raw = self._key.sign(digest, mechanism=Mechanism.ECDSA)
        try:
            return _crypto.signature_from_token(self.suite, raw)
        except ValueError as exc:
            raise KeyStoreError(str(exc)) from None

    def __repr__(self) -> str:
        return f"<token signer {self.suite.label}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a token key cannot be pickled")


class _TokenDecapsulator:
    """HPKE base-mode unwrap whose DH runs on the token (a
    :class:`~letterlock.core.keys.Decapsulator`); the receiver's key never leaves it."""

    __slots__ = ("_kem_public", "_key", "_store", "suite")

    def __init__(
        self, store: Pkcs11KeyStore, suite: Suite, key: DeriveMixin, kem_public: bytes
    ) -> None:
        self.suite = suite
        self._store = store
        self._key = key
        self._kem_public = kem_public

    def unwrap(self, wrapped: bytes, info: bytes) -> bytes | None:
        """The content key, or None; ``enc`` must be an uncompressed point on the curve (spec
        section 3.3), checked here before the token sees it."""
        size = self.suite.sizes.kem_public
        enc, ciphertext = bytes(wrapped[:size]), bytes(wrapped[size:])
        if not _crypto.ec_point_is_valid(self.suite, enc):
            return None
        return _crypto.hpke_open_after_dh(
            self.suite, self._dh(enc), enc=enc, kem_public=self._kem_public,
            ciphertext=ciphertext, info=info,
        )  # fmt: skip

    def _dh(self, point: bytes) -> bytes:
        """ECDH of the token's key with ``point`` (the x-coordinate, as DHKEM's DH is)."""
        with self._store._lock, map_exceptions(_TOKEN_ERRORS):
            self._store._session_or_raise()
            secret = self._key.derive_key(
                KeyType.GENERIC_SECRET, 8 * self.suite.sizes.kem_private,
                mechanism=Mechanism.ECDH1_DERIVE, mechanism_param=(KDF.NULL, None, point),
                template={Attribute.TOKEN: False, Attribute.SENSITIVE: False,
                          Attribute.EXTRACTABLE: True},
            )  # fmt: skip
            try:
                return bytes(secret[Attribute.VALUE])
            finally:
                secret.destroy()

    def __repr__(self) -> str:
        return f"<token decapsulator {self.suite.label}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a token key cannot be pickled")


class Pkcs11KeyStore:
    """The identities on one PKCS#11 token: p256 and p384, private keys that never leave it.

    ``module`` is the token's PKCS#11 library (:data:`SOFTHSM2_MODULE` for SoftHSM2), ``token``
    its label. Use it as a context manager, or call :meth:`close`: identities it loaded stop
    signing then (KeyStoreError).
    """

    def __init__(self, module: str | os.PathLike[str], token: str) -> None:
        self._module = os.fspath(module)
        self._token_label = token
        self._lock = threading.RLock()
        self._session: pkcs11.Session | None = None
        self._pid = os.getpid()  #: the process whose session ``_session`` is
        self._closed = False

    def __repr__(self) -> str:
        return f"<Pkcs11KeyStore token={self._token_label!r}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a token session cannot be pickled")

    def __enter__(self) -> Pkcs11KeyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's session (which logs the process out of the token)."""
        with self._lock:
            session, self._session, self._closed = self._session, None, True
            if session is not None and self._pid == os.getpid():  # else the parent's: leave it
                with map_exceptions(_TOKEN_ERRORS):
                    session.close()

    # ------------------------------------------------------------------ the token

    def _token(self) -> pkcs11.Token:
        if self._closed:
            raise KeyStoreError(f"{self!r} is closed")

        def unloadable(exc: Exception) -> LetterlockError:
            return KeyStoreError(f"cannot load the PKCS#11 module {self._module}: {_describe(exc)}")

        with map_exceptions({PKCS11Error: unloadable}):
            library = pkcs11.lib(self._module)
        try:
            with map_exceptions(_TOKEN_ERRORS):
                return library.get_token(token_label=self._token_label)
        except KeyStoreError as exc:
            if isinstance(exc.__cause__, NoSuchToken):
                raise KeyStoreError(f"no token labelled {self._token_label!r}") from None
            raise

    def _session_or_raise(self) -> pkcs11.Session:
        self._refuse_forked()
        if self._session is None:
            raise KeyStoreError(f"{self!r} is closed")
        return self._session

    def _refuse_forked(self) -> None:
        if self._pid != os.getpid():
            raise KeyStoreError(
                f"{self!r} was opened by process {self._pid}: a PKCS#11 session does not "
                "survive fork; open the token again in this process"
            )

    def _logged_in(self, secret: Secret) -> pkcs11.Session:
        """The store's logged-in session; asks ``secret`` for the PIN if there is none yet."""
        self._refuse_forked()
        if self._session is not None:
            return self._session
        token = self._token()
        problem: str | None = None
        try:
            # The PIN is bound here only until the login returns or fails (``finally``), and a
            # failure is raised below, outside the except clause, so no traceback or chained
            # exception keeps a frame that holds it (test_keystore_pkcs11 inspects them).
            pin = _pin_text(secret())
            if pin is None:
                raise UsageError("the token PIN must be non-empty UTF-8 bytes")
            self._session = token.open(rw=True, user_pin=pin)
        except PKCS11Error as exc:
            template = next(
                (text for kind, text in _LOGIN_ERRORS.items() if isinstance(exc, kind)),
                "cannot log in to token {token!r}: " + _describe(exc),
            )
            problem = template.format(token=self._token_label)
        finally:
            pin = None
        if problem is not None:
            raise KeyStoreError(problem)
        return self._session_or_raise()

    def _public_session(self) -> pkcs11.Session:
        """A session for public objects: the logged-in one, or a fresh one without login."""
        self._refuse_forked()
        if self._session is not None:
            return self._session
        with map_exceptions(_TOKEN_ERRORS):
            return self._token().open()

    # ------------------------------------------------------------------ KeyStore

    def names(self) -> list[str]:
        """The names of the token's letterlock identities, sorted (no PIN needed)."""
        with self._lock:
            session = self._public_session()
            try:
                with map_exceptions(_TOKEN_ERRORS):
                    found = session.get_objects(
                        {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: SIGNING_KEY_ID}
                    )
                    return sorted({str(key[Attribute.LABEL]) for key in found})
            finally:
                if session is not self._session:
                    session.close()

    def load(self, name: str, secret: Secret) -> Identity:
        """The identity ``name``, signing and unwrapping on the token; KeyStoreError if it
        cannot be, or if one of its private keys could be read out of the token."""
        check_name(name, "identity name")
        with self._lock:
            session = self._logged_in(secret)
            with map_exceptions(_TOKEN_ERRORS):
                return self._identity(session, name)

    def create(self, name: str, suite: Suite, secret: Secret) -> Identity:
        """Generate identity ``name`` of ``suite`` (p256 or p384) on the token; never replaces."""
        check_name(name, "identity name")
        if suite not in _EC_PARAMS:
            raise UsageError(f"a PKCS#11 token holds p256 and p384 identities, not {suite}")
        with self._lock:
            session = self._logged_in(secret)
            with map_exceptions(_TOKEN_ERRORS):
                if list(session.get_objects({Attribute.LABEL: name})):
                    raise KeyStoreError(f"token {self._token_label!r} already has {name!r}")
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: _EC_PARAMS[suite]}, local=True
                )
                params.generate_keypair(
                    id=SIGNING_KEY_ID, label=name, store=True,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    private_template=_PRIVATE_TEMPLATE,
                )  # fmt: skip
                params.generate_keypair(
                    id=ENCRYPTION_KEY_ID, label=name, store=True,
                    capabilities=MechanismFlag.DERIVE, private_template=_PRIVATE_TEMPLATE,
                )  # fmt: skip
                return self._identity(session, name)

    def _identity(self, session: pkcs11.Session, name: str) -> Identity:
        def key(kind: ObjectClass, key_id: bytes) -> Any:
            try:
                return session.get_key(object_class=kind, label=name, id=key_id)
            except NoSuchKey:
                raise KeyStoreError(
                    f"token {self._token_label!r} has no identity {name!r}"
                ) from None

        sig_public = key(ObjectClass.PUBLIC_KEY, SIGNING_KEY_ID)
        suite = _SUITE_OF_PARAMS.get(bytes(sig_public[Attribute.EC_PARAMS]))
        if suite is None:
            raise KeyStoreError(f"{name!r} on the token is not a p256 or p384 key")
        kem_public = key(ObjectClass.PUBLIC_KEY, ENCRYPTION_KEY_ID)
        if bytes(kem_public[Attribute.EC_PARAMS]) != _EC_PARAMS[suite]:
            raise KeyStoreError(f"{name!r} on the token is damaged: its keys' curves differ")
        try:
            sig_point = _ec_point(bytes(sig_public[Attribute.EC_POINT]), suite)
            kem_point = _ec_point(bytes(kem_public[Attribute.EC_POINT]), suite)
            public = PublicIdentity(_join_identity(PUBLIC_MAGIC, suite, sig_point, kem_point))
        except ParseError as exc:
            raise KeyStoreError(f"{name!r} on the token is damaged: {exc}") from None
        sig_private = key(ObjectClass.PRIVATE_KEY, SIGNING_KEY_ID)
        kem_private = key(ObjectClass.PRIVATE_KEY, ENCRYPTION_KEY_ID)
        for private in (sig_private, kem_private):
            if private[Attribute.EXTRACTABLE] or not private[Attribute.SENSITIVE]:
                raise KeyStoreError(
                    f"{name!r} on the token has a private key that can be read out; letterlock "
                    "uses only keys that never leave the token (sensitive, not extractable)"
                )
        signer = _TokenSigner(self, suite, sig_private)
        decapsulator = _TokenDecapsulator(self, suite, kem_private, kem_point)
        return Identity(public, signer=signer, decapsulator=decapsulator)
