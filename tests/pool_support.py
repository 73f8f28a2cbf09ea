"""What the pool tests hand to worker processes: importable by name, picklable by reference.

A worker is a spawned process: it imports this module and calls these functions with the
arguments a :func:`functools.partial` carried over. Handlers record each message they took as
a file of their own in a directory (written completely, then renamed), so the test process can
count what the application saw across processes, including ones that were killed.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from letterlock import Opened, Opener, Pins, ReplayWindow, SQLiteReplayStore, hazmat


def opener(reader: bytes, senders: dict[str, bytes], replay: str | None) -> Opener:
    """The receiver's Opener: its private key bytes, pinned senders, a replay store file
    shared by the workers (``None``: in memory, one per worker)."""
    pins = Pins()
    for name, key in senders.items():
        pins.pin(name, hazmat.public_identity_from_bytes(key))
    store = None if replay is None else SQLiteReplayStore(replay)
    return Opener(
        hazmat.identity_from_private_bytes(reader), trust=pins, replay=ReplayWindow(store)
    )


def opener_once(marker: str, *arguments: object) -> Opener:
    """As :func:`opener` for the first worker to ask (per ``marker`` folder); the next fails."""
    if not _first(Path(marker), b"opener"):
        raise RuntimeError("this worker's opener cannot be built")
    return opener(*arguments)  # type: ignore[arg-type]


def seen(out: Path) -> list[bytes]:
    """Every payload recorded in ``out`` (one entry per handler call that returned)."""
    return sorted(p.read_bytes() for p in out.glob("*.msg"))


def pids(out: Path) -> set[str]:
    """The worker processes that recorded something in ``out``."""
    return {p.name.split("-")[0] for p in out.glob("*.msg")}


def record(out: str, opened: Opened) -> None:
    """The application: keep the payload. Payloads starting with a command do more first:

    ``die``      the first time (per ``out``), the process kills itself (SIGKILL) in here;
    ``always-die`` every time;
    ``fail``     raise every time; ``fail-once`` raise the first time only;
    ``slow``     take 0.2 s; ``hang`` take 5 s the first time.
    """
    payload = opened.payload
    folder = Path(out)
    if payload.startswith(b"always-die") or (
        payload.startswith(b"die") and _first(folder, payload)
    ):
        os.kill(os.getpid(), signal.SIGKILL)
    if payload.startswith(b"fail-once"):
        if _first(folder, payload):
            raise RuntimeError("the handler failed once")
    elif payload.startswith(b"fail"):
        raise RuntimeError("the handler failed")
    if payload.startswith(b"slow"):
        time.sleep(0.2)
    if payload.startswith(b"hang") and _first(folder, payload):
        time.sleep(5)
    name = f"{os.getpid()}-{secrets.token_hex(8)}"
    partial = folder / f"{name}.part"
    partial.write_bytes(payload)
    partial.rename(folder / f"{name}.msg")


def _first(folder: Path, payload: bytes) -> bool:
    """True only the first time it is asked about ``payload`` (a marker file per payload)."""
    try:
        (folder / f"{payload.hex()}.first").touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def reveal_to_a_program(secret: Callable[[], bytes], out: Connection) -> None:
    """In a spawned process: run a program the way ``os.system`` does (no descriptor closed)
    and send back what it could read of every descriptor it inherited."""
    import os
    import sys

    secret()  # the worker has read its secret, and keeps its copy open
    script = (
        "import os\n"
        "found = b''\n"
        "for name in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        found += os.pread(int(name), 4096, 0)\n"
        "    except OSError:\n"
        "        pass\n"
        "os.write(1, found)\n"
    )
    read, write = os.pipe()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", script], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, write, 1)])  # fmt: skip
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    out.send_bytes(b"".join(chunks))


def reveal(secret: Callable[[], bytes], out: Connection) -> None:
    """In a spawned process: send what ``secret`` (a WorkerSecret) holds back, close it."""
    out.send_bytes(secret())
    close = getattr(secret, "close", None)
    if close is not None:
        close()


def tamper(secret: Callable[[], bytes], out: Connection) -> None:
    """In a spawned process: try every way a compromised worker has to change the secret the
    next workers read; send back the ways that worked, and the access mode of its descriptor."""
    import fcntl
    import json
    import mmap

    fd: int = getattr(secret, "_fd")  # noqa: B009 - the worker's inherited descriptor
    size = len(secret())
    worked: list[str] = []

    def attempt(name: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (OSError, ValueError):
            return
        worked.append(name)

    def reopened() -> None:
        again = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            os.pwrite(again, b"X" * size, 0)
        finally:
            os.close(again)

    attempt("write", lambda: os.pwrite(fd, b"X" * size, 0))
    attempt("reopen read-write", reopened)
    attempt("truncate", lambda: os.ftruncate(fd, 0))
    attempt("grow", lambda: os.ftruncate(fd, size + 1))
    attempt("writable mapping", lambda: mmap.mmap(fd, size).close())
    attempt("unseal", lambda: fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0))
    access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    out.send_bytes(json.dumps({"worked": worked, "access": access}).encode())
