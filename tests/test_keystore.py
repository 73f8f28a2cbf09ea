"""The encrypted key file (docs/spec/keyfile-v1.md): format, KDF bounds, tampering, storage."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from letterlock import Identity, KeyStoreError, Suite, UsageError
from letterlock import _crypto as crypto
from letterlock.hazmat import identity_to_private_bytes
from letterlock.keystore import (
    DEFAULT_KDF,
    MAX_KDF,
    MAX_KDF_WORK,
    MIN_KDF,
    KdfParams,
    decrypt_identity,
    encrypt_identity,
    load_identity,
    save_identity,
)
from letterlock.keystore.file import WRONG_PASSPHRASE

PASS = b"correct horse battery staple"
FAST = MIN_KDF  # the cheapest parameters a reader accepts: ~50 ms per derivation
PREFIX = struct.Struct(">4sBIIB16s12sI")
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate(Suite.X25519)


@pytest.fixture(scope="module")
def fast_file(identity: Identity) -> bytes:
    return encrypt_identity(identity, PASS, kdf=FAST)


def _fake_argon2id(
    passphrase: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int
) -> bytes:
    """A cheap stand-in that, like Argon2id, depends on every input."""
    params = struct.pack(">III", memory_kib, iterations, lanes)
    return hashlib.sha256(passphrase + b"|" + salt + b"|" + params).digest()


@pytest.fixture
def fake_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "argon2id", _fake_argon2id)


@pytest.fixture
def kdf_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """Records every derivation (and still derives)."""
    calls: list[dict[str, int]] = []
    real = crypto.argon2id

    def spy(
        passphrase: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int
    ) -> bytes:
        calls.append({"memory_kib": memory_kib, "iterations": iterations, "lanes": lanes})
        return real(
            passphrase, salt=salt, memory_kib=memory_kib, iterations=iterations, lanes=lanes
        )

    monkeypatch.setattr(crypto, "argon2id", spy)
    return calls


@pytest.fixture
def no_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("Argon2id must not run for this file")

    monkeypatch.setattr(crypto, "argon2id", refuse)


def _with_params(data: bytes, *, memory_kib: int, iterations: int, lanes: int) -> bytes:
    magic, kdf, _, _, _, salt, nonce, ct_len = PREFIX.unpack_from(data)
    header = PREFIX.pack(magic, kdf, memory_kib, iterations, lanes, salt, nonce, ct_len)
    return header + data[PREFIX.size :]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suite", list(Suite), ids=lambda s: s.label)
def test_round_trip_every_suite(tmp_path: Path, suite: Suite) -> None:
    original = Identity.generate(suite)
    path = tmp_path / "id.key"
    save_identity(path, original, PASS, kdf=FAST)
    loaded = load_identity(path, PASS)
    assert loaded.public == original.public
    assert identity_to_private_bytes(loaded) == identity_to_private_bytes(original)
    assert original.public.verify(loaded.sign(b"message"), b"message")


def test_default_parameters_are_rfc9106_second_recommendation(
    tmp_path: Path, identity: Identity, kdf_calls: list[dict[str, int]]
) -> None:
    path = tmp_path / "id.key"
    save_identity(path, identity, PASS)
    assert load_identity(path, PASS).public == identity.public
    expected = {"memory_kib": 65536, "iterations": 3, "lanes": 4}
    assert kdf_calls == [expected, expected]  # once to save, once to load: no other KDF runs
    assert KdfParams(**expected) == DEFAULT_KDF


def test_layout_matches_the_spec_independently(fast_file: bytes, identity: Identity) -> None:
    """Decrypt with pyca/cryptography directly, following keyfile-v1.md section 1 and 2."""
    magic, kdf, memory, iterations, lanes, salt, nonce, ct_len = PREFIX.unpack_from(fast_file)
    assert PREFIX.size == 46
    assert (magic, kdf) == (b"LLF\x01", 0x01)
    assert (memory, iterations, lanes) == (FAST.memory_kib, FAST.iterations, FAST.lanes)
    private = identity_to_private_bytes(identity)
    assert ct_len == len(private) + 16 == len(fast_file) - 46
    key = Argon2id(
        salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory
    ).derive(PASS)
    assert AESGCM(key).decrypt(nonce, fast_file[46:], fast_file[:46]) == private


def test_every_save_draws_a_fresh_salt_and_nonce(identity: Identity, fake_kdf: None) -> None:
    first = encrypt_identity(identity, PASS, kdf=FAST)
    second = encrypt_identity(identity, PASS, kdf=FAST)
    assert first[14:30] != second[14:30]  # salt
    assert first[30:42] != second[30:42]  # nonce
    assert decrypt_identity(second, PASS).public == identity.public


# --------------------------------------------------------------------------- refusals


def test_wrong_passphrase(fast_file: bytes) -> None:
    with pytest.raises(KeyStoreError, match=f"^{WRONG_PASSPHRASE}$"):
        decrypt_identity(fast_file, b"correct horse battery stapler")


@pytest.mark.parametrize("offset", [14, 29, 30, 41, 46, 60, -16, -1], ids=lambda o: f"at{o}")
def test_damage_reads_like_a_wrong_passphrase(fast_file: bytes, offset: int) -> None:
    """Salt, nonce, ciphertext and tag: the real KDF, the one message."""
    damaged = bytearray(fast_file)
    damaged[offset] ^= 0x01
    with pytest.raises(KeyStoreError, match=f"^{WRONG_PASSPHRASE}$"):
        decrypt_identity(bytes(damaged), PASS)


def test_any_flipped_bit_anywhere_is_refused(identity: Identity, fake_kdf: None) -> None:
    """Every byte, two bit positions each: the header is bound as AAD or checked before use."""
    data = encrypt_identity(identity, PASS, kdf=FAST)
    assert decrypt_identity(data, PASS).public == identity.public  # the fake KDF round-trips
    for index in range(len(data)):
        for bit in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[index] ^= bit
            with pytest.raises(KeyStoreError):
                decrypt_identity(bytes(damaged), PASS)


def test_truncated_or_extended_files_are_refused(identity: Identity, fake_kdf: None) -> None:
    data = encrypt_identity(identity, PASS, kdf=FAST)
    for length in range(len(data)):
        with pytest.raises(KeyStoreError):
            decrypt_identity(data[:length], PASS)
    with pytest.raises(KeyStoreError):
        decrypt_identity(data + b"\x00", PASS)


def _kdf(memory_kib: int, iterations: int, lanes: int) -> KdfParams:
    return KdfParams(memory_kib=memory_kib, iterations=iterations, lanes=lanes)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (_kdf(MAX_KDF.memory_kib + 1, 3, 4), "memory_kib .* above the cap"),
        (_kdf(2**32 - 1, 3, 4), "memory_kib .* above the cap"),
        (_kdf(65536, MAX_KDF.iterations + 1, 4), "iterations .* above the cap"),
        (_kdf(65536, 3, MAX_KDF.lanes + 1), "lanes .* above the cap"),
        (_kdf(MIN_KDF.memory_kib - 1, 3, 4), "memory_kib .* below the floor"),
        (_kdf(8, 3, 1), "memory_kib .* below the floor"),
        (_kdf(65536, 1, 4), "iterations .* below the floor"),
        (_kdf(65536, 0, 4), "iterations .* below the floor"),
        (_kdf(65536, 3, 0), "lanes .* below the floor"),
    ],
)
def test_kdf_parameters_outside_bounds_are_refused_before_deriving(
    fast_file: bytes, no_kdf: None, params: KdfParams, message: str
) -> None:
    hostile = _with_params(
        fast_file, memory_kib=params.memory_kib, iterations=params.iterations, lanes=params.lanes
    )
    with pytest.raises(KeyStoreError, match=message):
        decrypt_identity(hostile, PASS)


@pytest.mark.parametrize(
    "params",
    [
        _kdf(MAX_KDF.memory_kib, MAX_KDF.iterations, MAX_KDF.lanes),  # the old cap: ~3 min a try
        _kdf(MAX_KDF.memory_kib, 3, 4),
        _kdf(65536, MAX_KDF.iterations, 4),
        _kdf(2**21 // 64 + 1, 64, 1),
    ],
    ids=["old-cap", "1GiB-x3", "64MiB-x64", "just-above"],
)
def test_a_hostile_key_file_at_the_old_cap_is_refused_before_deriving(
    fast_file: bytes, no_kdf: None, params: KdfParams
) -> None:
    """Each field inside its own cap, their product (memory x passes) far above the work cap."""
    hostile = _with_params(
        fast_file, memory_kib=params.memory_kib, iterations=params.iterations, lanes=params.lanes
    )
    with pytest.raises(KeyStoreError, match=r"memory_kib x iterations .* above the cap 2097152 "):
        decrypt_identity(hostile, PASS)


def test_the_bounds_themselves_are_accepted(identity: Identity, fake_kdf: None) -> None:
    at_the_work_cap = (
        _kdf(MAX_KDF.memory_kib, MAX_KDF_WORK // MAX_KDF.memory_kib, MAX_KDF.lanes),
        _kdf(MAX_KDF_WORK // MAX_KDF.iterations, MAX_KDF.iterations, MAX_KDF.lanes),
    )
    for params in (MIN_KDF, *at_the_work_cap):
        data = encrypt_identity(identity, PASS, kdf=params)
        assert decrypt_identity(data, PASS).public == identity.public


def test_writer_refuses_parameters_a_reader_would_refuse(identity: Identity, no_kdf: None) -> None:
    weak = KdfParams(memory_kib=4096, iterations=1, lanes=1)
    with pytest.raises(UsageError, match="below the floor"):
        encrypt_identity(identity, PASS, kdf=weak)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a letterlock key file"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----" + bytes(40), "not a letterlock key file"),
        (b"LLF\x02" + bytes(60), "unsupported key file version 2"),
        (b"LLF\x01\x02" + bytes(60), "unsupported key derivation function 0x02"),
        (b"LLF\x01" + bytes(70000), "too large"),
    ],
    ids=["empty", "other-format", "version", "kdf", "huge"],
)
def test_foreign_files_are_refused_without_deriving(
    data: bytes, message: str, no_kdf: None
) -> None:
    with pytest.raises(KeyStoreError, match=message):
        decrypt_identity(data, PASS)


def test_an_authentic_file_without_a_valid_key_is_refused(fake_kdf: None) -> None:
    salt, nonce, junk = bytes(16), bytes(12), b"LLS\x01\x03not a key"
    prefix = PREFIX.pack(b"LLF\x01", 1, *(FAST.memory_kib, FAST.iterations, FAST.lanes),
                         salt, nonce, len(junk) + 16)  # fmt: skip
    key = _fake_argon2id(
        PASS, salt=salt, memory_kib=FAST.memory_kib, iterations=FAST.iterations, lanes=FAST.lanes
    )
    data = prefix + crypto.sealed_box_encrypt(key, nonce, junk, prefix)
    with pytest.raises(KeyStoreError, match="no valid private key"):
        decrypt_identity(data, PASS)


@pytest.mark.parametrize("bad", [b"", "text passphrase"])
def test_empty_or_text_passphrase_is_refused(
    tmp_path: Path, identity: Identity, fast_file: bytes, bad: object, no_kdf: None
) -> None:
    with pytest.raises(UsageError):
        save_identity(tmp_path / "k", identity, bad, kdf=FAST)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        decrypt_identity(fast_file, bad)  # type: ignore[arg-type]
    assert not (tmp_path / "k").exists()


def test_only_a_private_identity_can_be_saved(tmp_path: Path, identity: Identity) -> None:
    with pytest.raises(UsageError):
        save_identity(tmp_path / "k", identity.public, PASS)  # type: ignore[arg-type]


def test_missing_file_is_a_keystore_error(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="cannot read"):
        load_identity(tmp_path / "absent.key", PASS)


# --------------------------------------------------------------------------- storage


@posix_only
def test_file_is_0600_and_new_directories_0700_even_with_a_lax_umask(
    tmp_path: Path, identity: Identity, fake_kdf: None
) -> None:
    path = tmp_path / "home" / "identities" / "alice.key"
    old = os.umask(0)
    try:
        save_identity(path, identity, PASS, kdf=FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


@posix_only
def test_existing_directories_keep_their_mode(
    tmp_path: Path, identity: Identity, fake_kdf: None
) -> None:
    tmp_path.chmod(0o755)
    save_identity(tmp_path / "alice.key", identity, PASS, kdf=FAST)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_write_leaves_exactly_the_key_file(
    tmp_path: Path, identity: Identity, fake_kdf: None
) -> None:
    save_identity(tmp_path / "alice.key", identity, PASS, kdf=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.key"]


def test_never_overwrites_unless_asked(tmp_path: Path, identity: Identity, fake_kdf: None) -> None:
    path = tmp_path / "alice.key"
    path.write_bytes(b"precious")
    with pytest.raises(KeyStoreError, match="already exists"):
        save_identity(path, identity, PASS, kdf=FAST)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.key"]
    save_identity(path, identity, PASS, kdf=FAST, overwrite=True)
    assert load_identity(path, PASS).public == identity.public


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, identity: Identity, fake_kdf: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alice.key"
    save_identity(path, identity, PASS, kdf=FAST)
    before = path.read_bytes()

    def disk_failure(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_failure)
    with pytest.raises(KeyStoreError, match="Input/output error"):
        save_identity(path, Identity.generate(Suite.X25519), b"other", kdf=FAST, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.key"]


def test_identity_never_pickles_and_hides_its_secret(tmp_path: Path, identity: Identity) -> None:
    path = tmp_path / "alice.key"
    save_identity(path, identity, PASS, kdf=FAST)
    loaded = load_identity(path, PASS)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(loaded)
    assert copy.deepcopy(loaded) is loaded
    private = identity_to_private_bytes(loaded)
    assert private.hex() not in repr(loaded)
    assert private[-32:].hex() not in repr(loaded)
