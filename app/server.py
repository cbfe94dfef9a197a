"""The ``cellar serve`` process: its listening socket, its stop signals, uvicorn.

``cellar serve`` may own an embedded PostgreSQL, which must stop with it
whatever stops it.  SIGINT (Ctrl-C), SIGTERM (``docker stop``, systemd,
``timeout``) and SIGHUP (a closed terminal) therefore all mean one thing
here, "stop cleanly", in every phase:

- while the embedded server starts, a stop waits until it has started (so
  that pgserver has recorded our handle), then stops it;
- while migrations run, a stop interrupts them (each runs in a transaction);
- while serving, uvicorn drains requests and returns instead of re-raising
  the signal (uvicorn re-raises it so the process dies of it, which would
  skip the stop of PostgreSQL), also with ``--workers N``, where SIGHUP
  stops the supervisor rather than restarting the workers.

The socket is bound before anything starts, so a busy port is one line
naming it, before PostgreSQL, migrations or "serving on".
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors import Multiprocess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

logger = logging.getLogger("uvicorn.error")


class ListenError(Exception):
    """The address cannot be listened on; the message names host and port."""


class StopRequested(Exception):
    """A stop signal arrived before the service was serving."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(f"stopped by {signum.name} before serving")
        self.signum = signum


def listen(host: str, port: int) -> socket.socket:
    """Bind (not yet listen on) ``host:port``, as uvicorn would, or raise ``ListenError``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        reason = f"unknown host ({exc.strerror})"
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reasons = {
            errno.EADDRINUSE: "the port is already in use (another cellar serve?)",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: "this machine has no such address",
        }
        reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP as one request to stop, until uvicorn takes over.

    Outside ``deferred()`` a signal raises ``StopRequested`` where the
    program is; inside, it is remembered and raised when the block ends, so
    that a block which must not be cut in half (starting PostgreSQL, giving
    its handle back) completes first.  The previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._deferring = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        if not self._deferring:
            raise StopRequested(self.received)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.received is not None:
            raise StopRequested(self.received)


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGHUP too and returning after a stop signal.

    Its shutdown first ends the realtime streams: uvicorn waits for open
    responses, and a Server-Sent Events stream never ends by itself.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from app.realtime.services import close_streams

        close_streams()
        await super().shutdown(sockets)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, for which SIGHUP means stop, as with one worker."""

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, exiting.")
        self.should_exit.set()


def run(config: uvicorn.Config, sock: socket.socket) -> bool:
    """Serve on ``sock`` until a stop signal; False when the app failed to start."""
    if config.workers > 1:
        _Supervisor(config, sockets=[sock]).run()
        return True
    server = _Server(config)
    server.run(sockets=[sock])
    return server.started
