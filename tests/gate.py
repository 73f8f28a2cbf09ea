"""A TCP gate in front of a server, to take it out of reach of a client in another process
without stopping it (other tests use the same server).

``Gate(host, port)`` listens on a loopback port of its own and forwards each connection to
the server. ``close()`` cuts every open connection and answers each new one by closing it at
once (counted in ``refused``), as if the server were gone; ``open()`` forwards again. Its
threads are daemons, named ``gate-*``, and end with their sockets; ``stop()`` ends them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Gate:
    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open = True
        self._sockets: list[socket.socket] = []
        self.refused = 0
        threading.Thread(target=self._accept, name="gate-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                if not self._open:
                    self.refused += 1
                    client.close()
                    continue
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="gate-pump", daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Cut every connection; refuse (accept and close) the new ones."""
        with self._lock:
            self._open = False
            cut, self._sockets = self._sockets, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def open(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._open = True

    def stop(self) -> None:
        self.close()
        self._listener.close()
