"""uvicorn serving an ASGI app on a socket bound here (port 0 picks a free port).

Shared by every HTTP surface (the gateway, the schema registry's REST API) so they bind, start
and drain the same way; the process owner handles signals and calls `stop()`.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        # The owner of the process handles SIGTERM and stops us; uvicorn must not steal it.
        return


class HttpServer:
    """One uvicorn server; `start()` returns the bound port, `stop()` drains and closes."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._requested_port = host, port
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; returns the bound port."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: without it a keep-alive response can sit ~40 ms in
        # Nagle + delayed-ACK when headers and body go out as separate writes.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._host, self._requested_port))
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("HTTP server serving", extra={"http_port": self.port})
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close."""
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
