"""The gateway's own database down (PostgreSQL restarting, a network cut): partners get a 503 they
can retry with the same Idempotency-Key, never a 500, and the retry after it is back succeeds once.

The cut is real: the gateway reaches PostgreSQL through a loopback TCP relay the test closes
(tests/fixtures/tcp_relay.py), resetting every connection, as a restart or a partition does.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.tcp_relay import TcpRelay
from tests.gateway.conftest import StackFactory, bearer, order_body

pytestmark = pytest.mark.postgres


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
