"""Does pyca/cryptography release the GIL? Threads against processes, per operation.

    .venv/bin/python benchmarks/gil.py [--seconds 2] [--rounds 3]

For each operation, N threads run it in a loop for ``--seconds`` and the total rate is
compared with one thread, for N = 1 and 2 (this machine has 2 cores). A speed-up near 2 means
the operation runs outside the GIL; near 1 (or below) means threads take turns. The same is done
with ``letterlock.Opener.open`` of a 1 KiB message (p256, a warm Opener per worker: one ECDSA
verify and one AES-GCM decrypt per message, plus parsing and the replay check) in threads and
in processes. Each row is the median of ``--rounds`` runs; 1 and N alternate inside a round, so
noise from the machine falls on both. ``cores`` is the CPU time the 2 workers used over the
wall time: a GIL held throughout caps it at 1.00 whatever else runs on the machine, so it says
more than the speed-up when other work competes for the cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import letterlock
from letterlock import hazmat

Operation = Callable[[], object]


def _ecdsa() -> Operation:
    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(64)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    return lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def _ed25519() -> Operation:
    key = ed25519.Ed25519PrivateKey.generate()
    message = os.urandom(64)
    signature = key.sign(message)
    public = key.public_key()
    return lambda: public.verify(signature, message)


def _ecdh() -> Operation:
    mine, theirs = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    peer = theirs.public_key()
    return lambda: mine.exchange(ec.ECDH(), peer)


def _aes_gcm(size: int) -> Callable[[], Operation]:
    def make() -> Operation:
        aead, nonce = AESGCM(AESGCM.generate_key(128)), os.urandom(12)
        sealed = aead.encrypt(nonce, os.urandom(size), b"")
        return lambda: aead.decrypt(nonce, sealed, b"")

    return make


def _mldsa() -> Operation:
    key = mldsa.MLDSA87PrivateKey.generate()
    message = os.urandom(64)
    signature = key.sign(message)
    public = key.public_key()
    return lambda: public.verify(signature, message)


OPERATIONS: dict[str, Callable[[], Operation]] = {
    "ECDSA P-256 verify": _ecdsa,
    "Ed25519 verify": _ed25519,
    "ECDH P-256": _ecdh,
    "AES-128-GCM decrypt 1 KiB": _aes_gcm(1024),
    "AES-128-GCM decrypt 1 MiB": _aes_gcm(1 << 20),
    "ML-DSA-87 verify": _mldsa,
}


def _spin(operation: Operation, start: threading.Barrier, seconds: float, out: list[int]) -> None:
    count = 0
    start.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        operation()
        count += 1
    out.append(count)


def threads_rate(
    make: Callable[[], Operation], workers: int, seconds: float
) -> tuple[float, float]:
    """Operations per second of ``workers`` threads together (each with its own operation),
    and the process's CPU time over the wall time meanwhile (how many cores it kept busy)."""
    operations = [make() for _ in range(workers)]
    start, counts = threading.Barrier(workers + 1), list[int]()
    threads = [
        threading.Thread(target=_spin, args=(op, start, seconds, counts)) for op in operations
    ]
    for thread in threads:
        thread.start()
    began, cpu = time.perf_counter(), time.process_time()
    start.wait()
    for thread in threads:
        thread.join()
    wall = max(seconds, time.perf_counter() - began)
    return sum(counts) / wall, (time.process_time() - cpu) / wall


class Opening:
    """Opens pre-sealed 1 KiB p256 messages with a warm Opener, one at a time."""

    def __init__(self, keys: tuple[bytes, bytes], envelopes: list[bytes]) -> None:
        self.sender = hazmat.public_identity_from_bytes(keys[0])
        self.reader = hazmat.identity_from_private_bytes(keys[1])
        self.pins = letterlock.Pins()
        self.pins.pin("sender", self.sender)
        self.envelopes = envelopes
        self.index = 0
        self.opener = self._opener()

    def _opener(self) -> letterlock.Opener:
        return letterlock.Opener(self.reader, trust=self.pins, replay=letterlock.ReplayWindow())

    def __call__(self) -> None:
        if self.index == len(self.envelopes):  # every one opened once: a fresh replay window
            self.index, self.opener.replay = 0, letterlock.ReplayWindow()
        self.opener.open(self.envelopes[self.index], topic="bench")
        self.index += 1


def sealed_messages(count: int) -> tuple[tuple[bytes, bytes], list[bytes]]:
    suite = letterlock.Suite.P256
    sender, reader = letterlock.Identity.generate(suite), letterlock.Identity.generate(suite)
    sealer, payload = letterlock.Sealer(sender), os.urandom(1024)
    envelopes = [
        sealer.seal(payload, recipients=[reader.public], topic="bench") for _ in range(count)
    ]
    return (sender.public.to_bytes(), hazmat.identity_to_private_bytes(reader)), envelopes


def _open_in_process(
    keys: tuple[bytes, bytes], envelopes: list[bytes], seconds: float, pipe: Connection
) -> None:
    opening = Opening(keys, envelopes)
    opening()  # warm up
    pipe.send("ready")
    pipe.recv()  # go
    count, cpu, deadline = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        opening()
        count += 1
    pipe.send((count, time.process_time() - cpu))


def processes_rate(
    keys: tuple[bytes, bytes], envelopes: list[bytes], workers: int, seconds: float
) -> tuple[float, float]:
    """Messages opened per second by ``workers`` processes together (spawned, then timed),
    and their CPU time over the wall time (how many cores they kept busy)."""
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(workers):
        mine, theirs = context.Pipe()
        process = context.Process(target=_open_in_process, args=(keys, envelopes, seconds, theirs))
        process.start()
        pipes.append(mine)
        processes.append(process)
    for pipe in pipes:
        assert pipe.recv() == "ready"
    for pipe in pipes:
        pipe.send("go")
    results: list[tuple[int, float]] = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    return sum(n for n, _ in results) / seconds, sum(c for _, c in results) / seconds


def row(name: str, runs: dict[int, list[tuple[float, float]]]) -> str:
    """Median rates with 1 and 2 workers, the speed-up, and the cores 2 workers kept busy."""
    one, two = (statistics.median(rate for rate, _ in runs[n]) for n in (1, 2))
    cores = statistics.median(busy for _, busy in runs[2])
    return f"{name:<40} {one:>10,.0f} {two:>10,.0f} {two / one:>8.2f}x {cores:>7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import cryptography

    print(
        f"pyca/cryptography {cryptography.__version__}, {os.cpu_count()} cores, "
        f"{args.seconds:g} s per measurement, median of {args.rounds} rounds"
    )
    print(
        f"{'operation (ops/s)':<40} {'1 worker':>10} {'2 workers':>10} {'speed-up':>9} {'cores':>7}"
    )
    for name, make in OPERATIONS.items():
        rates: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                rates[workers].append(threads_rate(make, workers, args.seconds))
        print(row(f"{name}, threads", rates))
    keys, envelopes = sealed_messages(4000)
    opening_rates: dict[str, dict[int, list[tuple[float, float]]]] = {
        "threads": {1: [], 2: []},
        "processes": {1: [], 2: []},
    }
    for _ in range(args.rounds):
        for workers in (1, 2):
            opening_rates["threads"][workers].append(
                threads_rate(lambda: Opening(keys, envelopes), workers, args.seconds)
            )
            opening_rates["processes"][workers].append(
                processes_rate(keys, envelopes, workers, args.seconds)
            )
    for how, rates in opening_rates.items():
        print(row(f"Opener.open 1 KiB p256, {how}", rates))


if __name__ == "__main__":
    main()
