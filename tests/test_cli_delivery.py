"""``letterlock open`` records a message as handled only once its payload is safely delivered.

Each test breaks the delivery (a full device, a closed stdout, a reader that goes away, a
kill -9 in the middle of a write, a file size limit), checks that the run exits non-zero with
one line on stderr, then opens the same message again: it must still open. A closed stderr
must not corrupt the payload with the report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_support import (
    LETTERLOCK,
    PAYLOAD,
    Homes,
    Result,
    assert_one_line_error,
    cli_env,
    finish,
    letterlock,
    posix_only,
    seal,
    spawn,
)

pytestmark = posix_only

BIG = os.urandom(4 * 1024 * 1024)  # far more than a pipe holds


def _opens_again(homes: Homes, sealed: bytes, payload: bytes = PAYLOAD) -> None:
    again = letterlock(homes.bob, "open", "--quiet", stdin=sealed)
    assert (again.code, again.stderr) == (0, ""), again
    assert again.stdout == payload
    replayed = letterlock(homes.bob, "open", stdin=sealed)
    assert replayed.stderr == "letterlock: rejected: replayed\n"


def _run(homes: Homes, args: list[str], sealed: bytes, **streams: object) -> Result:
    """Run ``letterlock open`` with the given stdout/stderr (files or subprocess constants)."""
    done = subprocess.run(
        [*LETTERLOCK, "open", *args],
        input=sealed,
        env=cli_env(homes.bob),
        timeout=60,
        start_new_session=True,
        check=False,
        **streams,  # type: ignore[call-overload]
    )
    stderr = done.stderr.decode() if isinstance(done.stderr, bytes) else ""
    stdout = done.stdout if isinstance(done.stdout, bytes) else b""
    return Result(code=done.returncode, stdout=stdout, stderr=stderr)


def test_dev_full_as_out_leaves_the_message_openable(homes: Homes) -> None:
    sealed = seal(homes)
    result = letterlock(homes.bob, "open", "--out", "/dev/full", stdin=sealed)
    assert_one_line_error(result, 2, "/dev/full", "No space left on device", "not recorded")
    _opens_again(homes, sealed)


def test_dev_full_as_stdout_leaves_the_message_openable(homes: Homes) -> None:
    sealed = seal(homes)
    with open("/dev/full", "wb") as full:
        result = _run(homes, [], sealed, stdout=full, stderr=subprocess.PIPE)
    assert_one_line_error(result, 2, "standard output", "No space left on device")
    _opens_again(homes, sealed)


def test_closed_stdout_leaves_the_message_openable(homes: Homes) -> None:
    sealed = seal(homes)
    done = subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" >&-', "sh", *LETTERLOCK, "open"],
        input=sealed, capture_output=False, stderr=subprocess.PIPE, env=cli_env(homes.bob),
        timeout=60, start_new_session=True, check=False,
    )  # fmt: skip
    result = Result(code=done.returncode, stdout=b"", stderr=done.stderr.decode())
    assert_one_line_error(result, 2, "standard output is closed")
    _opens_again(homes, sealed)


def test_a_broken_pipe_leaves_the_message_openable(homes: Homes) -> None:
    """As ``letterlock open < msg | head -c 10``: the reader goes away after a few bytes."""
    sealed = seal(homes, payload=BIG)
    process = spawn(homes.bob, "open")
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(sealed)
    process.stdin.close()
    process.stdin = None
    assert process.stdout.read(10) == BIG[:10]
    process.stdout.close()
    process.stdout = None
    result = finish(process)
    assert_one_line_error(result, 2, "standard output", "Broken pipe", "not recorded")
    _opens_again(homes, sealed, BIG)


@pytest.mark.parametrize("via", ["--out", "stdout"])
def test_a_closed_stderr_does_not_corrupt_the_payload(
    homes: Homes, tmp_path: Path, via: str
) -> None:
    sealed = seal(homes)
    out = tmp_path / "payload.bin"
    redirect = f'2>&- --out "{out}"' if via == "--out" else f'2>&- > "{out}"'
    done = subprocess.run(
        ["/bin/sh", "-c", f'exec "$@" {redirect}', "sh", *LETTERLOCK, "open"],
        input=sealed, capture_output=True, env=cli_env(homes.bob), timeout=60,
        start_new_session=True, check=False,
    )  # fmt: skip
    assert out.read_bytes() == PAYLOAD
    assert done.returncode == 0
    replayed = letterlock(homes.bob, "open", stdin=sealed)
    assert replayed.stderr == "letterlock: rejected: replayed\n"


@pytest.mark.parametrize("via", ["--out", "stdout"])
def test_kill_9_while_writing_leaves_the_message_openable(
    homes: Homes, tmp_path: Path, via: str
) -> None:
    """The payload goes to a FIFO whose reader stops reading; the writer is killed mid-write."""
    sealed = seal(homes, payload=BIG)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    envelope = tmp_path / "msg.ll"
    envelope.write_bytes(sealed)
    command = [*LETTERLOCK, "open", "--in", str(envelope)]
    if via == "--out":
        process = subprocess.Popen(
            [*command, "--out", str(fifo)], env=cli_env(homes.bob), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        reader = os.open(fifo, os.O_RDONLY)
    else:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        with open(fifo, "wb") as writer:
            process = subprocess.Popen(
                command, env=cli_env(homes.bob), start_new_session=True, stdout=writer,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        os.set_blocking(reader, True)
    try:
        assert os.read(reader, 1000)  # some of the payload arrives, then nobody reads
        time.sleep(0.5)
        assert process.poll() is None  # blocked in the middle of writing
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        os.close(reader)
    _opens_again(homes, sealed, BIG)


def test_a_failed_file_write_leaves_no_temporary_file(homes: Homes, tmp_path: Path) -> None:
    """A file size limit (like a full disk) stops the write halfway: no partial plaintext."""
    sealed = seal(homes, payload=BIG)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    import resource  # POSIX only, like the whole module

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    done = subprocess.run(
        [*LETTERLOCK, "open", "--out", str(out_dir / "payload.bin")],
        input=sealed, capture_output=True, env=cli_env(homes.bob), timeout=60,
        start_new_session=True, check=False, preexec_fn=limit_file_size,
    )  # fmt: skip
    result = Result(code=done.returncode, stdout=done.stdout, stderr=done.stderr.decode())
    assert_one_line_error(result, 2, "payload.bin", "not recorded")
    assert list(out_dir.iterdir()) == []
    _opens_again(homes, sealed, BIG)


def test_a_successful_open_exits_0_and_records(homes: Homes, tmp_path: Path) -> None:
    sealed = seal(homes)
    out = tmp_path / "payload.bin"
    out.write_bytes(b"an older file, replaced whole")
    opened = letterlock(homes.bob, "open", "--quiet", "--out", str(out), stdin=sealed)
    assert (opened.code, opened.stderr, out.read_bytes()) == (0, "", PAYLOAD)
    assert [p.name for p in tmp_path.iterdir() if p.name not in {"alice", "bob"}] == ["payload.bin"]
    assert letterlock(homes.bob, "open", stdin=sealed).code == 1


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temp"])
def test_output_files_are_complete_private_and_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anonymous: bool
) -> None:
    """Both ways of placing a file: new or replaced, mode 0600, no temporary file left."""
    from letterlock import _fs
    from letterlock.cli import streams

    if not anonymous:
        monkeypatch.setattr(_fs, "_TMPFILE", 0)
    target = tmp_path / "payload.bin"
    assert streams.write_output(str(target), BIG, private=True) == target
    assert streams.write_output(str(target), PAYLOAD, private=True) == target
    assert target.read_bytes() == PAYLOAD
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["payload.bin"]

    def disk_failure(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_failure)
    with pytest.raises(streams.DeliveryFailed, match="Input/output error"):
        streams.write_output(str(tmp_path / "other.bin"), BIG, private=True)
    assert [p.name for p in tmp_path.iterdir()] == ["payload.bin"]
