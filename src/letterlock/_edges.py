"""Private: where third-party exceptions enter letterlock's family (httpcore's ``map_exceptions``).

Every adapter (a broker client, a replay store's database driver, SQLite) wraps its calls into
the library it adapts in :func:`map_exceptions`, naming which of that library's exceptions
become which of ours::

    with map_exceptions({pika.exceptions.AMQPError: TransportError}):
        channel.basic_ack(delivery_tag)

so a pika, paho, nats, redis, zmq, kombu, sqlite3 or ``OSError`` exception never leaves an
adapter untranslated, and the original stays reachable as ``__cause__``. Two kinds of exception
always pass through unchanged, whatever the mapping says: letterlock's own (a
:class:`~letterlock.errors.UsageError` is also a ``ValueError``, and must stay a caller's
mistake), and those that are not an :class:`Exception` at all (``KeyboardInterrupt``,
``SystemExit``, ``GeneratorExit``, task cancellation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType

from letterlock.errors import LetterlockError, UsageError

__all__ = ["ExceptionMapping", "map_exceptions"]

#: Their exception type -> how to build ours from an instance of it: one of our exception
#: classes (built from the original, so its message is the original's) or a function that
#: writes a message of its own. The first type the exception is an instance of wins.
ExceptionMapping = Mapping[type[Exception], Callable[[Exception], LetterlockError]]


class map_exceptions:  # noqa: N801 - used as a function: ``with map_exceptions(...):``
    """Raise ours ``from`` theirs for every exception of a type listed in ``mapping``.

    A class, not a ``contextlib.contextmanager``: a generator-based context manager costs
    several microseconds per use, and adapters enter this once or more per message. An
    instance keeps nothing but its mapping, so one made at import serves every ``with`` of a
    module, nested or in any thread (``_MAPPED = map_exceptions(ERRORS)``): the mapping is
    checked once, not at every use.
    """

    __slots__ = ("_mapping",)

    def __init__(self, mapping: ExceptionMapping) -> None:
        for theirs in mapping:
            if not (isinstance(theirs, type) and issubclass(theirs, Exception)):
                raise UsageError(f"map_exceptions maps Exception types only, not {theirs!r}")
        self._mapping = mapping

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, LetterlockError) or not isinstance(exc, Exception):
            return  # nothing raised, already ours, or not ours to translate: unchanged
        for theirs, ours in self._mapping.items():
            if isinstance(exc, theirs):
                raise ours(exc) from exc
