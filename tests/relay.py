"""A TCP relay on 127.0.0.1 for tests that need a daemon to hang or a network to split."""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """A 127.0.0.1 listener in front of ``target`` (``host:port``): while ``silent`` (or
    without a target) it accepts connections and never answers, like a hung daemon;
    otherwise it passes bytes both ways."""

    def __init__(self, target: str | None = None) -> None:
        self.target = target
        self.silent = target is None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._upstreams: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(client)
            if self.silent or self.target is None:
                continue
            host, port = self.target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            self._open.append(upstream)
            self._upstreams.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        for s in self._open:
            s.close()

    def cut(self) -> None:
        """A network partition: new connections hang, open ones lose their far end."""
        self.silent = True
        for s in self._upstreams:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
