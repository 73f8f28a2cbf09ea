"""Shared fixtures: one cast of identities per suite (generated once per session) and pins.

The cast is named after the usual roles: ``alice`` and ``carol`` send, ``bob`` and ``dave``
receive, ``eve`` is an outsider nobody addressed, ``mallory`` holds a key of her own and tries to
pass as someone else. ``pool`` is five further receivers for tests that pick random subsets.
Hypothesis tests cannot take function-scoped fixtures, so :func:`cast_of` is also importable.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_support import Homes, copy_homes, prepare_homes
from letterlock import Identity, Pins, PublicIdentity, Suite
from letterlock.core.envelope import Envelope, encode_envelope

_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Never hang after the summary: a thread a failed test left running (a publisher
    retrying against a queue its fixture has deleted) would keep the interpreter alive
    forever, and CI would time out instead of reporting. Name such threads and exit."""
    deadline = time.monotonic() + 5.0
    stray = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in stray:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in stray if t.is_alive()]
    if alive and _EXIT_STATUS in config.stash:
        print(f"\nthreads left running after the tests, not waited for: {alive}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


#: A fixed "now" for every test that does not care about the clock (2023-11-14T22:13:20Z).
NOW = 1_700_000_000
SUITES = tuple(Suite)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cast:
    """The identities of one suite that the tests play with."""

    suite: Suite
    alice: Identity
    carol: Identity
    bob: Identity
    dave: Identity
    eve: Identity
    mallory: Identity
    pool: tuple[Identity, ...]

    def pins(self) -> Pins:
        """A receiver's pins trusting the two senders, alice and carol (not mallory)."""
        return make_pins(alice=self.alice.public, carol=self.carol.public)


@functools.cache
def cast_of(suite: Suite) -> Cast:
    """The cast of ``suite``, generated on first use and reused for the whole session."""
    alice, carol, bob, dave, eve, mallory, *pool = (Identity.generate(suite) for _ in range(11))
    return Cast(
        suite=suite,
        alice=alice,
        carol=carol,
        bob=bob,
        dave=dave,
        eve=eve,
        mallory=mallory,
        pool=tuple(pool),
    )


def make_pins(**named: PublicIdentity) -> Pins:
    """A Pins trust store pinning each keyword's key under the keyword's name."""
    pins = Pins()
    for name, identity in named.items():
        pins.pin(name, identity)
    return pins


@pytest.fixture(scope="session", params=SUITES, ids=[s.label for s in SUITES])
def cast(request: pytest.FixtureRequest) -> Cast:
    """The cast of each suite in turn (tests using it run once per suite)."""
    suite: Suite = request.param
    return cast_of(suite)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Homes:
    """Alice's and bob's CLI homes, made once per session (never modify them: use ``homes``)."""
    return prepare_homes(tmp_path_factory.mktemp("prepared"))


@pytest.fixture
def homes(prepared: Homes, tmp_path: Path) -> Homes:
    """Private copies of the prepared CLI homes, for one test to change as it likes."""
    return copy_homes(prepared, tmp_path)


def reencoded(envelope: Envelope) -> bytes:
    """A parsed envelope encoded again (canonical parsing: it must give the same bytes)."""
    return encode_envelope(envelope.header_bytes, envelope.ciphertext, envelope.signature)
