"""The checker against a real mesh: orders placed over REST, then the history gathered through
the mesh's public surfaces (gRPC, streams, a read-only outbox and inbox audit) passes.

The session mesh is shared: earlier tests may leave orders of their own waiting in EXCEPTION on
purpose (a parcel returned to sender waits for an operator), so only this test's orders are held
to the terminal rule, and dead letters already there when it starts (poison planted on purpose)
are not held against it; every other property holds for the whole mesh.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from localmesh import Mesh
from localmesh.chaos import checker
from localmesh.chaos.gather import gather
from localmesh.chaos.history import History
from localmesh.chaos.streams import read_streams
from localmesh.demo import sample_order
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.slow

ORDERS = 3
COMPLETED = "ORDER_STATUS_COMPLETED"


def place(client: httpx.Client, external_id: str) -> str:
    created = client.post("/v1/orders", json=sample_order(external_id, random.Random(external_id)))
    assert created.status_code == 201, created.text
    return str(created.json()["order"]["orderId"])


def statuses(client: httpx.Client, order_ids: set[str]) -> dict[str, str]:
    return {o: client.get(f"/v1/orders/{o}").json()["order"]["status"] for o in order_ids}


def test_a_settled_mesh_passes_the_checker(mesh: Mesh) -> None:
    # Tests before this one on the shared mesh may have dead-lettered poison on purpose.
    earlier = asyncio.run(read_streams(mesh.nats_admin_url, set())).dead_letters
    headers = {"Authorization": f"Bearer {mesh.demo_api_key}"}
    tag = f"CHAOS-{time.time_ns()}"
    with httpx.Client(base_url=mesh.gateway_url, headers=headers, timeout=10) as client:
        mine = {place(client, f"{tag}-{n}") for n in range(ORDERS)}
        # All at once, as a workload would: they travel together.
        final = wait_until(
            lambda: statuses(client, mine),
            lambda found: set(found.values()) == {COMPLETED},
            timeout=60,
            interval=0.5,
        )
        assert set(final.values()) == {COMPLETED}, final

    history = gather(mesh)
    report = checker.check(History.from_json(history.to_json()))

    assert mine <= {o.order_id for o in history.orders}
    earlier_letters = {(letter.event_id, letter.consumer) for letter in earlier}
    others_waiting = [
        v
        for v in report.violations
        if (v.property == checker.ORDERS_TERMINAL and not set(v.subjects) & mine)
        or (v.property == checker.NO_DEAD_LETTERS and v.subjects in earlier_letters)
    ]
    assert [v for v in report.violations if v not in others_waiting] == [], report.summary()
    # Each property judged this run's records, not an empty history.
    for name in (checker.ONE_LABEL, checker.ONE_INVOICE, checker.GAPLESS, checker.STOCK):
        assert report.checked[name] >= ORDERS, report.checked
    assert report.checked[checker.NO_LOST_EVENTS] > 0, report.checked
    assert report.checked[checker.NO_DOUBLE_APPLY] > 0, report.checked
