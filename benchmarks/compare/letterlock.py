"""letterlock itself, per suite: warm (caches in use) and cold (first contact).

Warm: one ``letterlock.Sealer`` and one ``letterlock.Opener`` for the whole run, primed with one
message, so each measured message reuses the wrapped content key and the receiver's cached
decapsulation. Cold: a new Sealer for every message and a new Opener for every open, so each
message pays one HPKE encapsulation per recipient and one decapsulation.

Builds without Sealer/Opener fall back to ``letterlock.seal``/``letterlock.open`` for both
states (a fresh content key per message); :data:`API` says which is in use.
"""

from __future__ import annotations

import letterlock
from compare.base import Case, Contender, Mode, OpenFailed, payload_of
from letterlock import Identity, Limits, Opened, Pins, PublicIdentity, ReplayWindow, Suite

__all__ = ["API", "HAS_CACHES", "contenders", "name_of"]

TOPIC = "bench.orders"
_MODES: tuple[Mode, ...] = ("warm", "cold")
HAS_CACHES = hasattr(letterlock, "Sealer") and hasattr(letterlock, "Opener")
API = (
    "letterlock.Sealer/Opener (warm = caches reused, cold = new Sealer/Opener per message)"
    if HAS_CACHES
    else "FALLBACK letterlock.seal/open: no Sealer/Opener in this build, warm == cold"
)


def name_of(suite: str, mode: Mode) -> str:
    """The contender name of letterlock in ``suite`` and ``mode``."""
    suffix = "" if HAS_CACHES else " (fallback)"
    return f"letterlock {suite} {mode}{suffix}"


class _Parties:
    """A sender, the recipients, and the first recipient's view of the sender."""

    def __init__(self, suite: Suite, size: int, recipients: int) -> None:
        self.payload = payload_of(size)
        self.sender = Identity.generate(suite)
        self.readers = [Identity.generate(suite) for _ in range(recipients)]
        self.public: list[PublicIdentity] = [r.public for r in self.readers]
        self.pins = Pins()
        self.pins.pin("sender", self.sender.public)
        # The default max_size (64 MiB) is for the whole envelope: a 64 MiB payload needs more.
        self.limits = Limits(max_size=max(letterlock.DEFAULT_LIMITS.max_size, size + (1 << 20)))

    def seal_once(self) -> bytes:
        return letterlock.seal(
            self.payload, sender=self.sender, recipients=self.public, topic=TOPIC
        )

    def open_once(self, sealed: bytes, replay: ReplayWindow) -> Opened:
        return letterlock.open(
            sealed,
            identity=self.readers[0],
            trust=self.pins,
            replay=replay,
            topic=TOPIC,
            limits=self.limits,
        )

    def opener(self, replay: ReplayWindow) -> letterlock.Opener:
        return letterlock.Opener(
            self.readers[0], trust=self.pins, replay=replay, limits=self.limits
        )


def _payload_of(opened: Opened) -> bytes:
    return opened.payload


class _Warm:
    """One Sealer and one Opener for every message: the steady state of a long-lived client."""

    def __init__(self, suite: Suite, size: int, recipients: int) -> None:
        self._parties = _Parties(suite, size, recipients)
        self.payload = self._parties.payload
        self._replay = ReplayWindow()
        if HAS_CACHES:
            self._sealer = letterlock.Sealer(self._parties.sender)
            self._opener = self._parties.opener(self._replay)
        self.open(self.seal())  # prime both caches: every measured message is warm

    def seal(self) -> bytes:
        if not HAS_CACHES:
            return self._parties.seal_once()
        return self._sealer.seal(self.payload, recipients=self._parties.public, topic=TOPIC)

    def open(self, sealed: bytes) -> bytes:
        try:
            if not HAS_CACHES:
                return _payload_of(self._parties.open_once(sealed, self._replay))
            return _payload_of(self._opener.open(sealed, topic=TOPIC))
        except letterlock.Rejected as error:
            raise OpenFailed(str(error)) from error


class _Cold:
    """A new Sealer per message and a new Opener per open: first contact, every time."""

    def __init__(self, suite: Suite, size: int, recipients: int) -> None:
        self._parties = _Parties(suite, size, recipients)
        self.payload = self._parties.payload
        self._replay = ReplayWindow()

    def seal(self) -> bytes:
        if not HAS_CACHES:
            return self._parties.seal_once()
        sealer = letterlock.Sealer(self._parties.sender)
        return sealer.seal(self.payload, recipients=self._parties.public, topic=TOPIC)

    def open(self, sealed: bytes) -> bytes:
        try:
            if not HAS_CACHES:
                return _payload_of(self._parties.open_once(sealed, self._replay))
            return _payload_of(self._parties.opener(self._replay).open(sealed, topic=TOPIC))
        except letterlock.Rejected as error:
            raise OpenFailed(str(error)) from error


def _contender(suite: Suite, mode: Mode) -> Contender:
    make = _Warm if mode == "warm" else _Cold

    def setup(size: int, recipients: int) -> Case:
        return make(suite, size, recipients)

    what = (
        "Sealer/Opener reused: wrapped content key and decapsulation cached"
        if mode == "warm"
        else "new Sealer and Opener per message: one HPKE per recipient, one to open"
    )
    if not HAS_CACHES:
        what = "letterlock.seal/open (no Sealer/Opener in this build): fresh key per message"
    return Contender(
        name=name_of(suite.label, mode),
        kind="letterlock",
        what=f"{suite.label}: {what}",
        setup=setup,
        suite=suite.label,
        mode=mode,
    )


def contenders(suites: list[Suite]) -> list[Contender]:
    """letterlock warm and cold in each of ``suites``."""
    return [_contender(suite, mode) for suite in suites for mode in _MODES]
