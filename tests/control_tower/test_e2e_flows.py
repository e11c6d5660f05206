"""Acceptance, end to end on the whole local mesh (the same launcher as `make run`): with the
warehouse simulator paused, orders placed over the partner REST API stop at "released, not
picked", and the control tower's /metrics gauge for that flow equals the hand count derived
from REST (each released order's status, read one by one). Once the simulator resumes, they
leave the flow.

The mesh is the test session's shared one (tests/fixtures/mesh.py): its other orders of the
demo partner are counted too. The simulator is paused with SIGSTOP on its process group and
always resumed with SIGCONT, even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from localmesh import Mesh
from localmesh.demo import PartnerApi, sample_order
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOW = "released_not_picked"
RELEASED = "ORDER_STATUS_RELEASED"


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process group of `pid` stopped (SIGSTOP) for the block, continued (SIGCONT) after."""
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


def tower_samples(mesh: Mesh) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(mesh.metrics_urls["control-tower"], timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def flow_gauge(mesh: Mesh) -> float | None:
    return tower_samples(mesh).get(("crossdock_flow_items", (("flow", FLOW),)))


def status_of(api: PartnerApi, order_id: str) -> str:
    return str(api.call("GET", f"/v1/orders/{order_id}")["order"]["status"])


def released_by_hand(api: PartnerApi) -> set[str]:
    """The demo partner's orders REST lists as released, each confirmed by its own GET."""
    listed: list[str] = []
    token = ""
    while True:
        query = f"status={RELEASED}&pageSize=500" + (f"&pageToken={token}" if token else "")
        page = api.call("GET", f"/v1/orders?{query}")
        listed += [order["orderId"] for order in page.get("orders", [])]
        token = page.get("nextPageToken", "")
        if not token:
            break
    return {order_id for order_id in listed if status_of(api, order_id) == RELEASED}


def flow_items(stub: pb_grpc.TowerServiceStub) -> set[str]:
    found: set[str] = set()
    token = ""
    while True:
        page = stub.ListFlowItems(pb.ListFlowItemsRequest(flow=FLOW, page_token=token), timeout=10)
        found |= {item.order_id for item in page.items}
        token = page.next_page_token
        if not token:
            return found


def test_orders_held_by_a_paused_warehouse_match_the_flow_gauge(mesh: Mesh) -> None:
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    rng = random.Random(20261207)
    with grpc.insecure_channel(mesh.grpc_targets["control-tower"]) as channel:
        stub = pb_grpc.TowerServiceStub(channel)
        with paused(mesh.pids["warehouse-sim"]):
            placed = hold_three_orders(api, stub, mesh, rng)
        # Resumed: the picks are confirmed and the orders leave the flow.
        left = wait_until(
            lambda: flow_items(stub), lambda found: not set(placed) & found, timeout=90
        )
        assert not set(placed) & left


def hold_three_orders(
    api: PartnerApi, stub: pb_grpc.TowerServiceStub, mesh: Mesh, rng: random.Random
) -> list[str]:
    """Place three orders while the warehouse is paused; check the gauge against REST."""
    placed = []
    for _ in range(3):
        body = sample_order(f"FLOW-{uuid.uuid4().hex[:12]}", rng)
        created = api.call("POST", "/v1/orders", body, Idempotency_Key=str(uuid.uuid4()))
        placed.append(created["order"]["orderId"])
    # Allocated and released without the warehouse; nobody confirms their picks.
    statuses = wait_until(
        lambda: [status_of(api, order_id) for order_id in placed],
        lambda found: found == [RELEASED] * 3,
        timeout=60,
    )
    assert statuses == [RELEASED] * 3

    hand = released_by_hand(api)
    assert set(placed) <= hand
    # The tower consumes asynchronously and refreshes its gauges every few seconds.
    gauge = wait_until(lambda: flow_gauge(mesh), lambda value: value == len(hand), timeout=60)
    assert gauge == len(hand), (gauge, sorted(hand))
    assert flow_items(stub) == hand
    # Still paused: the hand count holds (nothing else moves these orders).
    assert released_by_hand(api) == hand

    # The tower reads the mesh's JetStream with its own, read-only NATS user.
    samples = tower_samples(mesh)
    pending = [dict(labels) for name, labels in samples if name == "crossdock_consumer_pending"]
    assert {"consumer": "control-tower-projections", "stream": "ORDER"} in pending, pending
    assert {labels["stream"] for labels in pending} >= {"ORDER", "INVENTORY", "SHIPMENT"}
    assert any(name == "crossdock_dlq_depth" for name, _ in samples)
    return placed
