"""Fuzz target: arbitrary bytes through the envelope parser and, when they parse, through open.

The only allowed outcomes are success and :class:`letterlock.Rejected`; any other exception is a
crash. Each input is checked whole and then at many of its prefixes (the envelope parser is not
incremental, so a prefix stands for "the bytes arrived so far", as h11's fuzz target feeds a
connection byte by byte). Opening uses fixed identities derived from constant seeds, so the
seed corpus (``make_corpus.py``) holds real envelopes that reach every step of the open
procedure.

Run: ``python fuzz/fuzz_envelope.py -atheris_runs=20000 NEW_DIR fuzz/corpus`` (libFuzzer adds
new inputs to the first directory, so pass an empty scratch directory first to keep the seed
corpus unchanged). Imported as a module, nothing is instrumented and atheris is not needed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from harness import check_prefixes, fuzz, instrumentation

with instrumentation(__name__ == "__main__"):
    import letterlock
    from letterlock import Identity, Pins, Rejected, ReplayWindow, Suite, hazmat
    from letterlock.core.envelope import DEFAULT_LIMITS, parse
    from letterlock.trust import Authorities, FirstKnown
    from letterlock.trust.x509 import AnchorSet
    from letterlock.trust.x509_senders import X509Senders

__all__ = ["NOW", "RECEIVERS", "SENDERS", "TestOneInput", "check_one", "fixed_identity"]

#: The time at which the corpus was sealed and at which the target opens (2023-11-14T22:13:20Z).
NOW = 1_700_000_000
ALL_SUITES = frozenset(Suite)
OPENED = "opened"


def fixed_identity(suite: Suite, role: str) -> Identity:
    """A deterministic identity for ``role``: public test keys, never use them for anything else."""
    sizes = suite.sizes
    seed = hashlib.shake_256(f"letterlock fuzz {role} {suite.label}".encode()).digest(
        sizes.sig_private + sizes.kem_private
    )
    sig, kem = seed[: sizes.sig_private], seed[sizes.sig_private :]
    encoded = b"".join(
        (b"LLS\x01", bytes([suite.value]), struct.pack(">H", len(sig)), sig,
         struct.pack(">H", len(kem)), kem)
    )  # fmt: skip
    return hazmat.identity_from_private_bytes(encoded)


SENDERS = {suite: fixed_identity(suite, "sender") for suite in Suite}
RECEIVERS = {suite: fixed_identity(suite, "receiver") for suite in Suite}
PINS = Pins()
for _suite, _sender in SENDERS.items():
    PINS.pin(f"sender-{_suite.label}", _sender.public)
#: The pins, behind the policies that read carried credential blocks (with no anchors, so they
#: admit nothing): a block's items reach the X.509 and credential parsers.
TRUST = FirstKnown(X509Senders(AnchorSet([]), [], now=NOW), Authorities([], []), PINS)


#: One long-lived Opener per suite: its labels and unwrap caches stay warm across inputs.
WARM = {suite: letterlock.Opener(RECEIVERS[suite], trust=TRUST, replay=ReplayWindow())
        for suite in Suite}  # fmt: skip


def check_one(data: bytes) -> str:
    """Parse, and if that succeeds open as the fixed receiver: "opened" or the reason code.

    Each parsed input is opened twice, cold (``letterlock.open``) and through the suite's warm
    Opener, whose caches have seen earlier inputs: the outcomes must be equal.
    """
    try:
        envelope = parse(data, suites=ALL_SUITES, limits=DEFAULT_LIMITS)
    except Rejected as exc:
        return exc.reason.value
    suite = envelope.header.suite
    cold = _outcome(
        lambda: letterlock.open(
            data, identity=RECEIVERS[suite], trust=TRUST, replay=ReplayWindow(), now=NOW
        )
    )
    warm_opener = WARM[suite]
    warm_opener.replay = ReplayWindow()
    warm = _outcome(lambda: warm_opener.open(data, now=NOW))
    assert warm == cold, (warm, cold)
    return cold


def _outcome(call: Callable[[], letterlock.Opened]) -> str:
    try:
        opened = call()
    except Rejected as exc:
        return exc.reason.value
    assert opened.sender.key_id == SENDERS[opened.suite].public.fingerprint
    return OPENED


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris and libFuzzer expect
    """Check the input whole and at its prefixes; only success or Rejected may happen."""
    check_prefixes(check_one, data)


if __name__ == "__main__":
    fuzz(TestOneInput)
