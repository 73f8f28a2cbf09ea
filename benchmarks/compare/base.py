"""What every contender offers the harness, and the few helpers they share.

A :class:`Contender` is one way to seal and open a message (letterlock in one suite and cache
state, a floor of raw pyca/cryptography calls, or a peer library). ``setup(size, recipients)``
returns a :class:`Case`: keys made, one payload chosen; ``seal()`` makes one message to every
recipient and ``open()`` opens one as the first recipient, returning the payload, or raises
:class:`OpenFailed` when the message does not verify or decrypt.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "Case",
    "Contender",
    "Kind",
    "Mode",
    "OpenFailed",
    "join_frames",
    "payload_of",
    "split_frames",
]

Kind = Literal["letterlock", "floor", "peer"]
Mode = Literal["warm", "cold", "bulk"]

_LENGTH = struct.Struct(">I")


class OpenFailed(Exception):
    """A contender refused a message: the outcome expected for a damaged one."""


class Case(Protocol):
    """One contender with its keys made for one payload size and recipient count."""

    @property
    def payload(self) -> bytes:
        """The payload every ``seal()`` call seals."""
        ...

    def seal(self) -> bytes:
        """One new message carrying ``payload``, signed, to every recipient."""
        ...

    def open(self, sealed: bytes) -> bytes:
        """The verified payload, as the first recipient; :class:`OpenFailed` otherwise."""
        ...


def _always() -> str | None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Contender:
    """A named way to seal and open, with what it stands for."""

    name: str
    kind: Kind
    what: str
    setup: Callable[[int, int], Case]
    #: None when the contender can run here, else why not (a missing package or command).
    available: Callable[[], str | None] = field(default=_always)
    #: The letterlock suite this is, or is the floor of.
    suite: str | None = None
    mode: Mode | None = None
    #: Payloads above this are not measured (too slow for the time box); None: no limit.
    max_size: int | None = None
    #: Payloads below this are not measured (a bulk-throughput floor); 0: no limit.
    min_size: int = 0


@functools.lru_cache(maxsize=2)
def payload_of(size: int) -> bytes:
    """Random bytes of ``size``, the same object for every contender of one scenario."""
    return os.urandom(size)


def join_frames(parts: Sequence[bytes]) -> bytes:
    """Length-prefixed parts, for peers whose messages are several pieces (one copy)."""
    pieces: list[bytes] = []
    for part in parts:
        pieces += (_LENGTH.pack(len(part)), part)
    return b"".join(pieces)


def split_frames(data: bytes) -> list[memoryview]:
    """The parts :func:`join_frames` joined (views, not copies); OpenFailed if malformed."""
    view = memoryview(data)
    parts: list[memoryview] = []
    pos = 0
    while pos < len(view):
        if pos + _LENGTH.size > len(view):
            raise OpenFailed("truncated frame length")
        (length,) = _LENGTH.unpack_from(view, pos)
        pos += _LENGTH.size
        if pos + length > len(view):
            raise OpenFailed("truncated frame")
        parts.append(view[pos : pos + length])
        pos += length
    return parts
