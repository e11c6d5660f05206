"""Cancelling an order over REST at every stage, against a running mesh (every service its own
process), as a partner would: `POST /v1/orders/{id}:cancel`.

This module starts its own mesh so it can hold each stage still: no warehouse simulator (the
test is the warehouse floor, confirming picks through inventory's API like a WMS), the sandbox
carrier in real time (a parcel waits three hours for pickup) and slow to book (each label takes
two seconds, so a cancel can land while a booking is in flight). The pickup stage needs a
carrier that moves: it runs on the shared fast mesh.

Every stage ends the same way: no invoice, the stock exactly as before the order, and the label
voided where one was booked.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from localmesh import Mesh, MeshOptions, start_mesh
from localmesh.demo import sample_order
from tests.fixtures.receiver import Receiver, running_receiver
from tests.fixtures.waiting import wait_until

EAST = "WH-EAST"
LABEL_DELAY_ENV = "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS"


@pytest.fixture(scope="module")
def held_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    options = MeshOptions(
        data_dir=tmp_path_factory.mktemp("held-mesh"),
        ports="free",
        fast=False,
        warehouse_simulator=False,
    )
    saved = os.environ.get(LABEL_DELAY_ENV)
    os.environ[LABEL_DELAY_ENV] = "2"
    try:
        with start_mesh(options) as running:
            yield running
    finally:
        if saved is None:
            os.environ.pop(LABEL_DELAY_ENV, None)
        else:
            os.environ[LABEL_DELAY_ENV] = saved


class Partner:
    """The demo partner over REST, plus the warehouse floor over inventory's gRPC API."""

    def __init__(self, mesh: Mesh) -> None:
        self.http = httpx.Client(
            base_url=mesh.gateway_url,
            headers={"Authorization": f"Bearer {mesh.demo_api_key}"},
            timeout=15,
        )
        self.channel = grpc.insecure_channel(mesh.grpc_targets["inventory"])
        self.inventory = inv_grpc.InventoryServiceStub(self.channel)
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self._stack.close()
        self.http.close()
        self.channel.close()

    # -- REST ----------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def place(self, lines: list[tuple[str, int]]) -> str:
        body = sample_order(f"CXL-{uuid.uuid4().hex[:12]}", random.Random(1))
        prices = {line["sku"]: line["unitPrice"] for line in body["lines"]}
        body["lines"] = [
            {
                "sku": sku,
                "quantity": str(quantity),
                "unitPrice": prices.get(sku, {"currencyCode": "USD", "units": "10"}),
            }
            for sku, quantity in lines
        ]
        created = self.post("/v1/orders", body)
        assert created.status_code == 201, created.text
        return str(created.json()["order"]["orderId"])

    def order(self, order_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/v1/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["order"])

    def cancel(self, order_id: str, **body: Any) -> httpx.Response:
        return self.post(f"/v1/orders/{order_id}:cancel", {"reason": "customer asked", **body})

    def shipments(self, order_id: str) -> list[dict[str, Any]]:
        answer = self.http.get("/v1/shipments", params={"orderId": order_id})
        assert answer.status_code == 200, answer.text
        return list(answer.json().get("shipments", []))

    def invoices(self, order_id: str) -> list[dict[str, Any]]:
        answer = self.http.get("/v1/invoices", params={"orderId": order_id})
        assert answer.status_code == 200, answer.text
        return list(answer.json().get("invoices", []))

    def timeline(self, order_id: str) -> str:
        answer = self.http.get(f"/v1/orders/{order_id}/timeline")
        assert answer.status_code == 200, answer.text
        return " | ".join(e.get("detail", "") for e in answer.json().get("entries", []))

    def wait_order(self, order_id: str, status: str) -> dict[str, Any]:
        order = wait_until(
            lambda: self.order(order_id), lambda o: o["status"] == status, timeout=30
        )
        assert order["status"] == status, order
        return order

    def wait_shipment(self, order_id: str, done: Any) -> dict[str, Any]:
        found = wait_until(
            lambda: self.shipments(order_id),
            lambda s: len(s) == 1 and done(s[0]),
            timeout=30,
            interval=0.2,
        )
        assert len(found) == 1 and done(found[0]), found
        return found[0]

    def subscribe(self, event_types: list[str]) -> Receiver:
        receiver = self._stack.enter_context(running_receiver())
        created = self.post(
            "/v1/webhooks/subscriptions", {"url": receiver.url, "eventTypes": event_types}
        )
        assert created.status_code == 201, created.text
        return receiver

    @staticmethod
    def delivered_types(receiver: Receiver, order_id: str) -> set[str]:
        """The event types delivered about this order (its id anywhere in the payload)."""
        return {
            json.loads(r.body)["type"]
            for r in list(receiver.received)
            if order_id.encode() in r.body
        }

    # -- the warehouse floor -------------------------------------------------------------

    def stock(self, sku: str) -> tuple[int, int]:
        """(on hand, reserved) of the SKU at the east warehouse."""
        answer = self.inventory.ListPositions(
            inv_svc.ListPositionsRequest(sku=sku, location_id=EAST), timeout=10
        )
        (position,) = answer.positions
        return int(position.quantity_on_hand), int(position.quantity_reserved)

    def open_task(self, order_id: str) -> inv.PickTask:
        def tasks() -> list[inv.PickTask]:
            answer = self.inventory.ListPickTasks(
                inv_svc.ListPickTasksRequest(status=inv.PICK_STATUS_OPEN, page_size=500),
                timeout=10,
            )
            return [t for t in answer.pick_tasks if t.order_id == order_id]

        found = wait_until(tasks, lambda t: len(t) == 1, timeout=30, interval=0.2)
        assert len(found) == 1, found
        return found[0]

    def confirm(self, task: inv.PickTask) -> None:
        self.inventory.ConfirmPick(
            inv_svc.ConfirmPickRequest(
                pick_id=task.pick_id,
                lines=[
                    inv.PickConfirmationLine(
                        order_line_number=line.order_line_number,
                        sku=line.sku,
                        quantity_picked=line.quantity,
                    )
                    for line in task.lines
                ],
            ),
            timeout=10,
        )


@pytest.fixture
def partner(held_mesh: Mesh) -> Iterator[Partner]:
    p = Partner(held_mesh)
    yield p
    p.close()


def _settled(partner: Partner, order_id: str, sku: str, before: tuple[int, int]) -> None:
    """No invoice, the order CANCELLED, and the stock exactly as before the order."""
    order = partner.wait_order(order_id, "ORDER_STATUS_CANCELLED")
    assert all(line["quantityCancelled"] == line["quantityOrdered"] for line in order["lines"])
    stock = wait_until(lambda: partner.stock(sku), lambda s: s == before, timeout=20)
    assert stock == before
    assert partner.invoices(order_id) == []


def test_before_the_pick_the_reservation_is_released_and_the_pick_withdrawn(
    partner: Partner,
) -> None:
    before = partner.stock("MUG-001")
    order_id = partner.place([("MUG-001", 2)])
    task = partner.open_task(order_id)
    assert partner.stock("MUG-001") == (before[0], before[1] + 2)

    cancelled = partner.cancel(order_id)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["order"]["status"] == "ORDER_STATUS_CANCELLED"
    _settled(partner, order_id, "MUG-001", before)

    # The warehouse confirms the withdrawn task anyway: a precise refusal, nothing moves.
    def confirm_refusal() -> grpc.RpcError | None:
        try:
            partner.confirm(task)
        except grpc.RpcError as error:
            return error
        return None

    error = wait_until(confirm_refusal, lambda e: e is not None, timeout=20)
    assert error is not None and error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancelled" in (error.details() or "")
    assert partner.stock("MUG-001") == before
    assert partner.shipments(order_id) == []
    assert "cancelled: customer asked" in partner.timeline(order_id)


def test_picked_while_the_label_is_being_booked(partner: Partner) -> None:
    before = partner.stock("LAMP-DESK")
    order_id = partner.place([("LAMP-DESK", 1)])
    partner.confirm(partner.open_task(order_id))
    assert partner.stock("LAMP-DESK") == (before[0] - 1, before[1])
    # Packed, its booking in flight (each label takes two seconds): cancel now.
    partner.wait_shipment(order_id, lambda s: s["status"] == "SHIPMENT_STATUS_CREATED")

    cancelled = partner.cancel(order_id)
    assert cancelled.status_code == 200, cancelled.text
    _settled(partner, order_id, "LAMP-DESK", before)
    # The booking that was in flight still ends in a label, which is then voided.
    shipment = partner.wait_shipment(
        order_id, lambda s: s.get("labelVoid") in ("LABEL_VOID_STATUS_VOIDED", None)
    )
    assert shipment["status"] == "SHIPMENT_STATUS_CANCELLED"
    assert shipment.get("labelVoid", "LABEL_VOID_STATUS_VOIDED") == "LABEL_VOID_STATUS_VOIDED"
    assert partner.invoices(order_id) == []


def test_labelled_not_picked_up_the_label_is_voided(partner: Partner) -> None:
    receiver = partner.subscribe(
        ["crossdock.order.cancelled.v1", "crossdock.shipment.cancelled.v1"]
    )
    before = partner.stock("BOOK-ATLAS")
    order_id = partner.place([("BOOK-ATLAS", 2)])
    partner.confirm(partner.open_task(order_id))
    labelled = partner.wait_shipment(
        order_id, lambda s: s["status"] == "SHIPMENT_STATUS_MANIFESTED"
    )
    assert labelled["labelId"] and labelled["trackingNumber"]
    partner.wait_order(order_id, "ORDER_STATUS_SHIPPED")

    cancelled = partner.cancel(order_id)
    assert cancelled.status_code == 200, cancelled.text
    _settled(partner, order_id, "BOOK-ATLAS", before)
    shipment = partner.wait_shipment(
        order_id, lambda s: s.get("labelVoid") == "LABEL_VOID_STATUS_VOIDED"
    )
    assert shipment["status"] == "SHIPMENT_STATUS_CANCELLED"
    assert shipment["cancelReason"] == "customer asked"
    timeline = wait_until(lambda: partner.timeline(order_id), lambda t: "voided" in t, timeout=20)
    assert f"label {labelled['trackingNumber']} of shipment" in timeline
    assert "units back to stock" in timeline
    # Cancelling again changes nothing and restocks nothing more.
    again = partner.cancel(order_id)
    assert again.status_code == 200, again.text
    assert partner.stock("BOOK-ATLAS") == before
    # The partner heard of both by webhook.
    types = wait_until(
        lambda: partner.delivered_types(receiver, order_id),
        lambda t: len(t) >= 2,
        timeout=30,
        interval=0.5,
    )
    assert types == {"crossdock.order.cancelled.v1", "crossdock.shipment.cancelled.v1"}


def test_a_partial_cancel_takes_unpicked_units_and_the_rest_ships(partner: Partner) -> None:
    before = partner.stock("TEE-BLK-M")
    order_id = partner.place([("TEE-BLK-M", 3), ("MUG-001", 1)])
    partner.open_task(order_id)

    too_many = partner.cancel(order_id, lines=[{"lineNumber": 1, "quantity": "4"}])
    assert too_many.status_code == 409, too_many.text
    problem = too_many.json()
    assert problem["status"] == 409 and "lines[0]" in problem["detail"], problem
    assert "3 units not yet picked" in problem["detail"]

    partial = partner.cancel(order_id, lines=[{"lineNumber": 1, "quantity": "2"}])
    assert partial.status_code == 200, partial.text
    order = partial.json()["order"]
    assert order["status"] != "ORDER_STATUS_CANCELLED"
    tee = next(line for line in order["lines"] if line["sku"] == "TEE-BLK-M")
    assert tee["quantityCancelled"] == "2" and tee["quantityAllocated"] == "1"
    assert partner.stock("TEE-BLK-M") == (before[0], before[1] + 1)

    # The warehouse picks what is left: one T-shirt and the mug.
    task = partner.open_task(order_id)
    assert sorted((line.sku, line.quantity) for line in task.lines) == [
        ("MUG-001", 1),
        ("TEE-BLK-M", 1),
    ]
    partner.confirm(task)
    shipment = partner.wait_shipment(
        order_id, lambda s: s["status"] == "SHIPMENT_STATUS_MANIFESTED"
    )
    shipped = sorted(
        (item["sku"], item["quantity"]) for p in shipment["packages"] for item in p["items"]
    )
    assert shipped == [("MUG-001", "1"), ("TEE-BLK-M", "1")]
    assert partner.stock("TEE-BLK-M") == (before[0] - 1, before[1])
    assert "cancelled 2 of line 1" in partner.timeline(order_id)


def test_after_pickup_the_cancel_is_refused_with_409(mesh: Mesh) -> None:
    """On the shared mesh, whose fast sandbox picks a parcel up within a second of its label."""
    p = Partner(mesh)
    try:
        order_id = p.place([("MUG-001", 1)])
        on_the_road = {
            "SHIPMENT_STATUS_PICKED_UP",
            "SHIPMENT_STATUS_IN_TRANSIT",
            "SHIPMENT_STATUS_OUT_FOR_DELIVERY",
            "SHIPMENT_STATUS_DELIVERED",
        }
        p.wait_shipment(order_id, lambda s: s["status"] in on_the_road)
        before = p.order(order_id)

        refused = p.cancel(order_id)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert "return" in problem["detail"], problem
        assert any(state in problem["detail"] for state in on_the_road | {"delivered"}), problem
        after = p.order(order_id)
        assert after["status"] != "ORDER_STATUS_CANCELLED"
        assert after["lines"][0].get("quantityCancelled", "0") == "0"
        assert after["lines"] == before["lines"] or after["status"] == "ORDER_STATUS_COMPLETED"
    finally:
        p.close()
