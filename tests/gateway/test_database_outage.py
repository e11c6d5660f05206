"""The gateway's own database down (PostgreSQL restarting, a network cut): partners get a 503 they
can retry with the same Idempotency-Key, never a 500, and the retry after it is back succeeds once.

The cut is real: the gateway reaches PostgreSQL through a loopback TCP relay the test closes,
resetting every connection, as a restart or a partition does.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import pytest
from sqlalchemy.engine import make_url

from tests.gateway.conftest import StackFactory, bearer, order_body

pytestmark = pytest.mark.postgres


class TcpRelay:
    """Forwards a loopback port to PostgreSQL until cut; cut() resets every open connection.
    Threads, not the test's event loop: the gateway's setup blocks that loop while it migrates."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self.listener is not None
        # shutdown wakes the thread blocked in accept(); close alone would leave it listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for conn in self.open:
                # RST, as a crashed server or a cut cable leaves the client.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)


async def test_a_cut_database_answers_503_and_the_same_key_succeeds_once_it_is_back(
    make_stack: StackFactory, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    stack = await make_stack(db_url=url.set(port=relay.port).render_as_string(False))
    headers = {**bearer(stack.key_a), "Idempotency-Key": "outage-1"}

    relay.cut()
    refused = await stack.client.post("/v1/orders", json=order_body(), headers=headers)

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert "same Idempotency-Key" in refused.json()["detail"]
    assert stack.orders.created == 0

    relay.start()  # the same port: the database is back
    accepted = await stack.client.post("/v1/orders", json=order_body(), headers=headers)
    again = await stack.client.post("/v1/orders", json=order_body(), headers=headers)

    assert accepted.status_code == 201, accepted.text
    assert again.status_code == 201
    assert again.json() == accepted.json()
    assert stack.orders.created == 1
