"""A pool worker's passphrase or PIN (:class:`WorkerSecret`) reaches it without being pickled:
a spawned process inherits a descriptor of an anonymous in-memory file, and any other pickle
of it carries nothing."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import set_spawning_popen
from multiprocessing.popen_spawn_posix import _DupFd
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, cast

import pytest

import pool_support
from letterlock import UsageError
from letterlock.cli.brokers import ListenerOpener
from letterlock.transports.pool import WorkerSecret

SECRET = b"0815-worker-pin-\xe2\x9c\x93"


def _spawn(target: Callable[[WorkerSecret, Connection], None], secret: WorkerSecret) -> bytes:
    """What ``target(secret, pipe)`` sends back from a spawned process, which must exit 0."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(secret, theirs))
    child.start()
    theirs.close()
    assert mine.poll(30)
    sent = mine.recv_bytes()
    child.join(30)
    assert child.exitcode == 0
    return sent


def test_a_spawned_process_reads_it_and_the_parents_copy_stays_whole() -> None:
    with WorkerSecret(SECRET) as secret:
        assert _spawn(pool_support.reveal, secret) == SECRET
        assert secret() == SECRET  # the worker closed its copy; the file is the parent's


def test_a_program_the_worker_runs_does_not_inherit_it() -> None:
    """The worker's descriptor is close-on-exec, like the pool's: a program a worker's
    application code starts (os.system, os.posix_spawn, exec) cannot read the PIN."""
    with WorkerSecret(SECRET) as secret:
        assert SECRET not in _spawn(pool_support.reveal_to_a_program, secret)


class _Spawning:
    """What multiprocessing's spawn Popen offers a pickler: descriptors to pass to the child."""

    DupFd = _DupFd

    def __init__(self) -> None:
        self.passed: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.passed.append(fd)
        return fd


def test_while_a_process_is_spawned_it_pickles_as_a_descriptor_only() -> None:
    with WorkerSecret(SECRET) as secret:
        spawning = _Spawning()
        set_spawning_popen(cast(Any, spawning))
        try:
            data = bytes(ForkingPickler.dumps(secret))
        finally:
            set_spawning_popen(None)
        assert SECRET not in data
        assert len(spawning.passed) == 1
        assert os.pread(spawning.passed[0], 64, 0) == SECRET


def test_pickled_any_other_way_it_holds_nothing(tmp_path: Path) -> None:
    with WorkerSecret(SECRET) as secret:
        assert SECRET.decode() not in repr(secret)
        data = pickle.dumps(secret)
        factory = pickle.dumps(ListenerOpener(tmp_path, "alice", secret))  # what the pool sends
    assert SECRET not in data
    assert SECRET not in factory
    with pytest.raises(UsageError, match="holds nothing"):
        pickle.loads(data)()


def test_closed_it_is_overwritten_and_refuses() -> None:
    secret = WorkerSecret(SECRET)
    fd = secret._fd
    assert fd is not None
    kept = os.dup(fd)
    try:
        secret.close()
        assert os.pread(kept, 64, 0) == bytes(len(SECRET))
    finally:
        os.close(kept)
    with pytest.raises(UsageError, match="closed"):
        secret()
    with pytest.raises(UsageError):
        WorkerSecret(b"")


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="sealed memory files are Linux's")
def test_a_worker_cannot_change_the_secret_later_workers_read() -> None:
    """A compromised worker can neither write its descriptor (read-only), nor reopen the file
    read-write and write it, resize it, map it writable or change its seals: the next worker
    reads the same secret, and the parent's wipe on close still overwrites it."""
    with WorkerSecret(SECRET) as secret:
        tried = json.loads(_spawn(pool_support.tamper, secret))
        assert tried == {"worked": [], "access": os.O_RDONLY}
        assert secret() == SECRET
        assert _spawn(pool_support.reveal, secret) == SECRET  # the next worker
        fd = secret._fd
        assert fd is not None
        kept = os.dup(fd)
    try:
        assert os.pread(kept, 64, 0) == bytes(len(SECRET))  # wiped through the parent's mapping
    finally:
        os.close(kept)
