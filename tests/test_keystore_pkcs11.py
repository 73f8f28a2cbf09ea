"""The PKCS#11 keystore against a real SoftHSM2 token made for this test session in tmp.

Needs SoftHSM2 (``apt-get install softhsm2``): without it these tests fail under CI=true and
are skipped elsewhere (:func:`services.require_binary`).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
import os
import pickle
import subprocess
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pytest

import letterlock
import services
from letterlock import Identity, KeyStoreError, Pins, ReplayWindow, Suite, UsageError
from letterlock import _crypto as crypto
from letterlock._crypto import ec_point_is_valid

if not services.in_ci():  # in CI the extra is installed (tasks.py), and its absence fails
    pytest.importorskip("pkcs11", reason="pip install 'letterlock[pkcs11]'")
import pkcs11
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from letterlock.keystore.pkcs11 import (
    ENCRYPTION_KEY_ID,
    PIN_ENV,
    SIGNING_KEY_ID,
    SOFTHSM2_MODULE,
    Pkcs11KeyStore,
    _TokenDecapsulator,
    pin,
)

PIN = "4721-token-pin"
SO_PIN = "so-pin-0815"
WRONG_PIN = "9999-not-the-pin"
TOKENS = ("ll-main", "ll-wrong-pin", "ll-second")
NOW = 1_800_000_000


def _pin() -> bytes:
    return PIN.encode()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SOFTHSM2_CONF pointing at a token directory in tmp, with :data:`TOKENS` initialised."""
    module = services.require_binary(SOFTHSM2_MODULE, "softhsm2")
    util = services.require_binary("softhsm2-util", "softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))  # read once, when the module is initialised
        for label in TOKENS:
            subprocess.run(
                [util, "--init-token", "--free", "--label", label, "--pin", PIN,
                 "--so-pin", SO_PIN],
                check=True, capture_output=True,
            )  # fmt: skip
        yield module


@pytest.fixture
def store(softhsm: str) -> Iterator[Pkcs11KeyStore]:
    with Pkcs11KeyStore(softhsm, "ll-main") as opened:
        yield opened


def _frames(exc: BaseException) -> Iterator[dict[str, object]]:
    """The locals of every frame on ``exc``'s traceback and on those of its cause and context."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb: TracebackType | None = current.__traceback__
        while tb is not None:
            yield dict(tb.tb_frame.f_locals)
            tb = tb.tb_next
        pending += [current.__cause__, current.__context__]


def _holds(frames: Iterator[dict[str, object]], secret: str) -> list[str]:
    """The names of the locals that hold ``secret``, as text or as UTF-8 bytes."""
    found = []
    for frame in frames:
        for name, value in frame.items():
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if isinstance(text, str) and secret in text:
                found.append(name)
    return found


@pytest.mark.parametrize("suite", [Suite.P256, Suite.P384], ids=lambda s: s.label)
@pytest.mark.parametrize("key_id", [SIGNING_KEY_ID, ENCRYPTION_KEY_ID], ids=bytes.decode)
def test_private_keys_made_on_the_token_cannot_be_extracted(
    store: Pkcs11KeyStore, suite: Suite, key_id: bytes
) -> None:
    name = f"no-export-{suite.label}-{key_id.decode()}"
    store.create(name, suite, _pin)
    session = store._session_or_raise()
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=name, id=key_id)
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.LOCAL] is True  # generated on the token, not imported
    with pytest.raises(AttributeSensitive):
        key[Attribute.VALUE]


@pytest.mark.parametrize("suite", [Suite.P256, Suite.P384], ids=lambda s: s.label)
def test_sealed_with_the_token_opens_at_a_receiver_pinning_its_public_identity(
    store: Pkcs11KeyStore, suite: Suite
) -> None:
    name = f"sender-{suite.label}"
    created = store.create(name, suite, _pin)
    sender = store.load(name, _pin)
    assert sender.public == created.public
    receiver = Identity.generate(suite)
    pins = Pins()
    pins.pin("token", sender.public)
    sealed = letterlock.seal(
        b"from the token", sender=sender, recipients=[receiver.public], topic="t", now=NOW
    )
    opened = letterlock.open(
        sealed, identity=receiver, trust=pins, replay=ReplayWindow(), topic="t", now=NOW
    )
    assert opened.payload == b"from the token"
    # and back: the token identity's decapsulator opens what is sealed to it
    back = letterlock.seal(
        b"reply", sender=receiver, recipients=[sender.public], topic="t", now=NOW
    )
    pins.pin("receiver", receiver.public)
    reply = letterlock.open(
        back, identity=sender, trust=pins, replay=ReplayWindow(), topic="t", now=NOW
    )
    assert reply.payload == b"reply"


@pytest.mark.parametrize("suite", [Suite.P256, Suite.P384], ids=lambda s: s.label)
def test_token_signatures_are_r_s_that_verify(store: Pkcs11KeyStore, suite: Suite) -> None:
    """Many signatures, so r or s with leading zero bytes (about 1 in 128) come up too."""
    identity = store.create(f"rs-{suite.label}", suite, _pin)
    for i in range(300):
        message = i.to_bytes(2, "big")
        signature = identity.sign(message)
        assert len(signature) == suite.sizes.signature
        assert identity.public.verify(signature, message)
        assert not identity.public.verify(signature, message + b"!")


def test_wrong_pin_is_refused_clearly_and_no_frame_keeps_it(softhsm: str) -> None:
    with Pkcs11KeyStore(softhsm, "ll-wrong-pin") as store:
        with pytest.raises(KeyStoreError, match=r"^wrong PIN for token 'll-wrong-pin'$") as caught:
            store.create("x", Suite.P256, WRONG_PIN.encode)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
        assert _holds(_frames(caught.value), WRONG_PIN) == []
        assert WRONG_PIN not in "".join(traceback.format_exception(caught.value))
        # the store may ask again, and the right PIN then works
        assert store.create("x", Suite.P256, _pin).suite is Suite.P256


def test_a_failure_after_login_keeps_no_pin_in_its_frames(store: Pkcs11KeyStore) -> None:
    def failing_pin() -> bytes:
        return PIN.encode()

    with pytest.raises(KeyStoreError, match="has no identity 'missing'") as caught:
        store.load("missing", failing_pin)
    assert _holds(_frames(caught.value), PIN) == []


def test_a_pin_that_is_not_text_is_refused(softhsm: str) -> None:
    with Pkcs11KeyStore(softhsm, "ll-wrong-pin") as store:
        with pytest.raises(UsageError, match="non-empty UTF-8"):
            store.load("x", lambda: b"\xff\xfe")
        with pytest.raises(UsageError, match="non-empty UTF-8"):
            store.load("x", lambda: b"")


def test_secrets_have_no_repr_no_pickle_and_are_not_logged(
    softhsm: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Pkcs11KeyStore(softhsm, "ll-second") as store:
        identity = store.create("logged", Suite.P256, _pin)
        identity.sign(b"message")
        for thing in (store, identity, identity.signer, identity.decapsulator):
            assert PIN not in repr(thing)
            with pytest.raises(TypeError, match="pickled"):
                pickle.dumps(thing)
        assert copy.deepcopy(identity) is identity
        assert repr(identity.signer) == "<token signer p256>"
    assert all(PIN not in record.getMessage() for record in caplog.records)
    assert PIN not in caplog.text


def test_names_lists_identities_without_a_pin(softhsm: str, store: Pkcs11KeyStore) -> None:
    store.create("zulu", Suite.P256, _pin)
    store.create("alpha", Suite.P384, _pin)
    names = store.names()
    assert names == sorted(names)
    assert {"alpha", "zulu"} <= set(names)
    with Pkcs11KeyStore(softhsm, "ll-main") as other:  # never logged in: public objects only
        assert other.names() == names


def test_create_never_replaces_and_refuses_other_suites(store: Pkcs11KeyStore) -> None:
    first = store.create("once", Suite.P256, _pin)
    with pytest.raises(KeyStoreError, match="already has 'once'"):
        store.create("once", Suite.P384, _pin)
    assert store.load("once", _pin).public == first.public
    for suite in (Suite.X25519, Suite.PQ):
        with pytest.raises(UsageError, match="p256 and p384"):
            store.create(f"other-{suite.label}", suite, _pin)
    with pytest.raises(UsageError, match="identity name"):
        store.create("no spaces", Suite.P256, _pin)


def test_the_pin_is_asked_only_to_log_in(store: Pkcs11KeyStore) -> None:
    asked: list[int] = []

    def counted() -> bytes:
        asked.append(1)
        return PIN.encode()

    store.create("asked", Suite.P256, counted)
    store.load("asked", counted)
    assert asked == [1]


def test_after_close_identities_stop_signing(softhsm: str) -> None:
    store = Pkcs11KeyStore(softhsm, "ll-second")
    identity = store.create("closing", Suite.P384, _pin)
    store.close()
    with pytest.raises(KeyStoreError, match="closed"):
        identity.sign(b"m")
    with pytest.raises(KeyStoreError, match="closed"):
        store.load("closing", _pin)


def test_a_second_store_on_a_logged_in_token_is_refused(
    store: Pkcs11KeyStore, softhsm: str
) -> None:
    """PKCS#11 logs a whole process in: the second store could not check its PIN."""
    store.create("first", Suite.P256, _pin)
    with (
        Pkcs11KeyStore(softhsm, "ll-main") as second,
        pytest.raises(KeyStoreError, match="already logged in"),
    ):
        second.load("first", WRONG_PIN.encode)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_cannot_use_the_parents_session(store: Pkcs11KeyStore) -> None:
    """PKCS#11 sessions do not survive fork: in the child, the identity refuses to sign (a
    clear KeyStoreError, never the parent's session), and closing the store leaves it alone."""
    identity = store.create("forked", Suite.P256, _pin)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        outcome = b"signed"
        try:
            try:
                identity.sign(b"m")
            except KeyStoreError as exc:
                outcome = b"refused: " + str(exc).encode()
            try:
                store.load("forked", _pin)
            except KeyStoreError:
                outcome += b"; load refused"
            store.close()
            os.write(write, outcome)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        told = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert told.startswith(b"refused: "), told
    assert b"does not survive fork" in told, told
    assert told.endswith(b"; load refused"), told
    assert len(identity.sign(b"m")) == 64  # the parent's session is its own still


def test_token_and_module_errors_are_keystore_errors(softhsm: str, tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="no token labelled 'nowhere'"):
        Pkcs11KeyStore(softhsm, "nowhere").load("x", _pin)
    with pytest.raises(KeyStoreError, match="cannot load the PKCS#11 module"):
        Pkcs11KeyStore(tmp_path / "missing.so", "ll-main").names()


def test_signature_from_token_refuses_what_is_not_r_s() -> None:
    good = bytes(31) + b"\x01" + bytes(31) + b"\x02"
    assert crypto.signature_from_token(Suite.P256, good) == good
    with pytest.raises(ValueError, match="not an ECDSA r"):
        crypto.signature_from_token(Suite.P256, good[:-1])
    with pytest.raises(ValueError, match="not an ECDSA r"):
        crypto.signature_from_token(Suite.P256, bytes(32) + good[32:])  # r = 0
    with pytest.raises(ValueError, match="not an ECDSA r"):
        crypto.signature_from_token(Suite.P384, good)


def _hpke_vectors() -> list[dict[str, object]]:
    """RFC 9180's base-mode vectors for DHKEM(P-256) (the file has none for P-384), except the
    export-only AEAD."""
    try:
        root = importlib.resources.files("cryptography_vectors")
    except ModuleNotFoundError:
        if services.in_ci():
            raise
        return []
    vectors = json.loads((root / "HPKE" / "test-vectors.json").read_text())
    return [v for v in vectors if v["mode"] == 0 and v["kem_id"] == 0x10 and v["aead_id"] != 0xFFFF]


@pytest.mark.parametrize(
    "vector", _hpke_vectors(), ids=lambda v: f"kdf{v['kdf_id']}-aead{v['aead_id']}"
)
def test_the_hpke_key_schedule_around_the_token_passes_rfc9180(
    store: Pkcs11KeyStore, vector: dict[str, str]
) -> None:
    """The vector's receiver key is put on the token (sensitive); the DH runs there."""
    ids = (int(vector["kem_id"]), int(vector["kdf_id"]), int(vector["aead_id"]))
    sk, pk, enc, info = (bytes.fromhex(vector[k]) for k in ("skRm", "pkRm", "enc", "info"))
    session = store._logged_in(_pin)
    key = session.create_object({
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC,
        Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107"), Attribute.VALUE: sk,
        Attribute.TOKEN: False, Attribute.PRIVATE: True, Attribute.DERIVE: True,
        Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
    })  # fmt: skip
    try:
        decapsulator = _TokenDecapsulator(store, Suite.P256, key, pk)  # type: ignore[arg-type]
        shared, aead_key, base_nonce = crypto.hpke_key_schedule(
            ids, decapsulator._dh(enc), enc, pk, info
        )
    finally:
        key.destroy()
    assert shared.hex() == vector["shared_secret"]
    assert aead_key.hex() == vector["key"]
    assert base_nonce.hex() == vector["base_nonce"]
    aead = ChaCha20Poly1305(aead_key) if ids[2] == 3 else AESGCM(aead_key)
    encryptions: list[dict[str, str]] = vector["encryptions"]  # type: ignore[assignment]
    for seq, encryption in enumerate(encryptions):
        nonce = (int.from_bytes(base_nonce, "big") ^ seq).to_bytes(12, "big")
        assert nonce.hex() == encryption["nonce"]
        opened = aead.decrypt(
            nonce, bytes.fromhex(encryption["ct"]), bytes.fromhex(encryption["aad"])
        )
        assert opened.hex() == encryption["pt"]


def test_the_token_never_sees_an_enc_that_is_not_an_uncompressed_curve_point(
    store: Pkcs11KeyStore,
) -> None:
    identity = store.create("enc-check", Suite.P256, _pin)
    good = identity.public.wrap(bytes(32), b"info")
    assert identity.unwrap(good, b"info") == bytes(32)
    assert identity.unwrap(good, b"other info") is None
    x, y = good[1:33], good[33:65]
    hybrid = bytes((6 + (y[-1] & 1),)) + good[1:]  # X9.62 hybrid form of the same point
    off_curve = b"\x04" + x + bytes(31) + b"\x01" + good[65:]
    for bad in (hybrid, off_curve, good[:40]):
        assert not ec_point_is_valid(Suite.P256, bad[:65])
        assert identity.unwrap(bad, b"info") is None


def test_pin_reads_a_file_then_the_environment(
    store: Pkcs11KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, WRONG_PIN)
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(PIN.encode() + b"\r\nsecond line\n")
    assert pin(pin_file)() == PIN.encode()  # the file wins over the environment
    assert pin()() == WRONG_PIN.encode()
    monkeypatch.setenv(PIN_ENV, PIN)
    assert store.create("from-env", Suite.P256, pin()).suite is Suite.P256
    with pytest.raises(KeyStoreError, match="cannot read the PIN file"):
        pin(tmp_path / "missing")()


def test_concurrent_signing_shares_the_one_session(store: Pkcs11KeyStore) -> None:
    identity = store.create("threads", Suite.P256, _pin)
    messages = [i.to_bytes(4, "big") for i in range(64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        signatures = list(pool.map(identity.sign, messages))
    assert all(map(identity.public.verify, signatures, messages))


@pytest.mark.parametrize("readable", [SIGNING_KEY_ID, ENCRYPTION_KEY_ID], ids=bytes.decode)
def test_an_identity_whose_private_key_can_be_read_out_is_refused(
    store: Pkcs11KeyStore, readable: bytes
) -> None:
    """Made by another tool with an extractable key: letterlock does not use it."""
    name = f"exportable-{readable.decode()}"
    session = store._logged_in(_pin)
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107")}, local=True
    )
    for key_id in (SIGNING_KEY_ID, ENCRYPTION_KEY_ID):
        exportable = key_id == readable
        params.generate_keypair(
            id=key_id, label=name, store=True,
            private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True,
                              Attribute.SENSITIVE: not exportable,
                              Attribute.EXTRACTABLE: exportable},
        )  # fmt: skip
    with pytest.raises(KeyStoreError, match="can be read out"):
        store.load(name, _pin)


def test_a_token_error_while_signing_or_unwrapping_is_a_keystore_error(
    store: Pkcs11KeyStore,
) -> None:
    identity = store.create("destroyed", Suite.P256, _pin)
    wrapped = identity.public.wrap(bytes(32), b"info")
    session = store._session_or_raise()
    for key_id in (SIGNING_KEY_ID, ENCRYPTION_KEY_ID):
        session.get_key(
            object_class=ObjectClass.PRIVATE_KEY, label="destroyed", id=key_id
        ).destroy()
    with pytest.raises(KeyStoreError, match=r"^token error: ") as caught:
        identity.sign(b"m")
    assert isinstance(caught.value.__cause__, pkcs11.exceptions.PKCS11Error)
    with pytest.raises(KeyStoreError, match=r"^token error: "):
        identity.unwrap(wrapped, b"info")
