"""Returns (RMA) over the partner REST API against the running mesh (localmesh: every service its
own process, the sandbox carrier, billing): a completed order's units are returned with 201s,
one unit too many is a 422 naming the line and its limit, another partner's return is a 404,
lists filter, retries replay; and goods received in the warehouse end with a credit note and the
return CREDITED.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import grpc
import httpx
import pytest
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc

from localmesh import Mesh
from localmesh.demo import sample_order
from localmesh.seed import CURRENCY, DEMO_ITEMS
from tests.e2e.test_partner_api import COMPLETED, Partner, new_partner
from tests.fixtures.waiting import wait_until

PROBLEM = "application/problem+json"


def fixed_order(external_id: str) -> dict[str, Any]:
    """3 of the first demo item and 2 of the second."""
    body = sample_order(external_id, random.Random(external_id))
    body["lines"] = [
        {
            "sku": item.sku,
            "quantity": str(quantity),
            "unitPrice": {
                "currencyCode": CURRENCY,
                "units": str(item.unit_price_cents // 100),
                "nanos": (item.unit_price_cents % 100) * 10_000_000,
            },
        }
        for item, quantity in zip(DEMO_ITEMS[:2], (3, 2), strict=True)
    ]
    return body


def return_body(*lines: tuple[int, int], reason: str = "DAMAGED") -> dict[str, Any]:
    return {
        "lines": [
            {
                "orderLineNumber": number,
                "quantity": str(quantity),
                "disposition": "RETURN_DISPOSITION_RESTOCK",
                "reason": reason,
            }
            for number, quantity in lines
        ]
    }


class Shop:
    """A partner with one completed order."""

    def __init__(self, mesh: Mesh) -> None:
        self.partner = Partner(mesh, new_partner(mesh, f"returns {uuid.uuid4().hex[:6]}"))
        created = self.partner.post("/v1/orders", fixed_order(f"RMA-{uuid.uuid4().hex[:8]}"))
        assert created.status_code == 201, created.text
        self.order_id = created.json()["order"]["orderId"]
        order = wait_until(
            lambda: self.partner.get(f"/v1/orders/{self.order_id}").json()["order"],
            lambda o: o["status"] == COMPLETED,
            timeout=60,
            interval=0.5,
        )
        assert order["status"] == COMPLETED, order
        self.partner_id = order["partnerId"]

    def create(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return self.partner.http.post(
            f"/v1/orders/{self.order_id}/returns",
            json=body,
            headers={"Idempotency-Key": key or str(uuid.uuid4())},
        )


@pytest.fixture(scope="module")
def shop(mesh: Mesh) -> Shop:
    return Shop(mesh)


def test_returns_are_created_read_listed_and_refused_precisely(mesh: Mesh, shop: Shop) -> None:
    key = str(uuid.uuid4())
    first = shop.create(return_body((1, 2)), key)
    assert first.status_code == 201, first.text
    created = first.json()["orderReturn"]
    assert created["status"] == "RETURN_STATUS_AUTHORIZED"
    assert created["orderId"] == shop.order_id and created["returnId"].startswith("rma_")
    assert created["returnLocationId"]  # the warehouse that shipped the units
    assert created["lines"][0]["quantityAuthorized"] == "2"

    # A retry with the same Idempotency-Key replays; the key also reached the order service,
    # which answers a gRPC retry with the same key with the same return.
    replay = shop.create(return_body((1, 2)), key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    with grpc.insecure_channel(mesh.grpc_targets["order"]) as channel:
        again = order_grpc.OrderServiceStub(channel).CreateReturn(
            order_svc.CreateReturnRequest(
                order_id=shop.order_id,
                partner_id=shop.partner_id,
                idempotency_key=key,
                order_return=order_svc.ReturnInput(
                    lines=[
                        order_svc.ReturnLineInput(
                            order_line_number=1,
                            quantity=2,
                            disposition=order_pb2.RETURN_DISPOSITION_RESTOCK,
                            reason="DAMAGED",
                        )
                    ]
                ),
            ),
            timeout=10,
        )
    assert again.order_return.return_id == created["returnId"]

    read = shop.partner.get(f"/v1/returns/{created['returnId']}")
    assert read.status_code == 200 and read.json()["orderReturn"] == created

    # One unit too many: 422 problem+json naming the line and its limit; nothing is created.
    too_many = shop.create(return_body((2, 1), (1, 2)))
    assert too_many.status_code == 422, too_many.text
    assert too_many.headers["content-type"].startswith(PROBLEM)
    problem = too_many.json()
    assert problem["grpc_code"] == "FAILED_PRECONDITION"
    assert problem["violations"] == [
        {
            "field": "order_return.lines[1].quantity",
            "description": "line 1: 1 returnable, 2 requested",
        }
    ]
    assert "line 1: 1 returnable, 2 requested" in problem["detail"]

    # Malformed input stays 400, naming the field.
    for body, named in (
        (return_body((1, 0)), "order_return.lines[0].quantity"),
        (return_body((1, 1), reason="BORED"), "order_return.lines[0].reason"),
        (return_body((1, 1), (1, 1)), "each order line may appear on one return line only"),
        (
            {"lines": [{"orderLineNumber": 1, "quantity": "1", "reason": "DAMAGED"}]},
            "order_return.lines[0].disposition",
        ),
    ):
        bad = shop.create(body)
        assert bad.status_code == 400, (body, bad.text)
        assert bad.headers["content-type"].startswith(PROBLEM)
        violations = bad.json()["violations"]
        assert any(named in (v["field"], v["description"]) for v in violations), bad.text

    second = shop.create(return_body((1, 1), (2, 2)))
    assert second.status_code == 201, second.text
    second_id = second.json()["orderReturn"]["returnId"]

    # Lists: newest first, filtered by order and status.
    listed = shop.partner.get("/v1/returns", orderId=shop.order_id)
    assert listed.status_code == 200, listed.text
    assert [r["returnId"] for r in listed.json()["returns"]] == [second_id, created["returnId"]]
    authorized = shop.partner.get(
        "/v1/returns", orderId=shop.order_id, status="RETURN_STATUS_AUTHORIZED"
    )
    assert len(authorized.json()["returns"]) == 2
    received = shop.partner.get(
        "/v1/returns", orderId=shop.order_id, status="RETURN_STATUS_RECEIVED"
    )
    assert received.status_code == 200 and received.json().get("returns", []) == []

    # Another partner sees none of it: 404 like a missing return, and empty lists.
    stranger = Partner(mesh, new_partner(mesh, f"stranger {uuid.uuid4().hex[:6]}"))
    for answer in (
        stranger.get(f"/v1/returns/{created['returnId']}"),
        stranger.post(f"/v1/orders/{shop.order_id}/returns", return_body((1, 1))),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
    assert stranger.get("/v1/returns", orderId=shop.order_id).json().get("returns", []) == []
    assert all(
        r["orderId"] != shop.order_id for r in stranger.get("/v1/returns").json().get("returns", [])
    )


def test_goods_received_back_are_credited(mesh: Mesh) -> None:
    shop = Shop(mesh)
    created = shop.create(return_body((1, 3), (2, 1)))
    assert created.status_code == 201, created.text
    order_return = created.json()["orderReturn"]
    return_id = order_return["returnId"]
    skus = {line["orderLineNumber"]: line["sku"] for line in order_return["lines"]}

    # The warehouse records the parcel against the return (inventory's gRPC, as the floor does).
    with grpc.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        inv_grpc.InventoryServiceStub(channel).ReceiveStock(
            inv_svc.ReceiveStockRequest(
                location_id=order_return["returnLocationId"],
                source=inv.RECEIPT_SOURCE_RETURN,
                source_reference=return_id,
                lines=[
                    inv_svc.ReceiptLineInput(sku=skus[1], quantity=3),
                    inv_svc.ReceiptLineInput(
                        sku=skus[2],
                        quantity=1,
                        condition=inv.STOCK_CONDITION_DAMAGED,
                        reason="dented box",
                    ),
                ],
                idempotency_key=f"e2e-{return_id}",
            ),
            timeout=10,
        )
    credited = wait_until(
        lambda: shop.partner.get(f"/v1/returns/{return_id}").json()["orderReturn"],
        lambda r: r["status"] == "RETURN_STATUS_CREDITED",
        timeout=60,
        interval=0.5,
    )
    assert credited["status"] == "RETURN_STATUS_CREDITED", credited
    assert [(x["quantityReceived"], x["disposition"]) for x in credited["lines"]] == [
        ("3", "RETURN_DISPOSITION_RESTOCK"),
        ("1", "RETURN_DISPOSITION_REFURBISH"),
    ]
    notes = shop.partner.get("/v1/creditNotes", orderId=shop.order_id).json()["creditNotes"]
    assert [n["creditNoteId"] for n in notes] == credited["creditNoteIds"]
    assert {n["returnId"] for n in notes} == {return_id}
    order = shop.partner.get(f"/v1/orders/{shop.order_id}").json()["order"]
    assert [line.get("quantityReturned", "0") for line in order["lines"]] == ["3", "1"]
    listed = shop.partner.get("/v1/returns", orderId=shop.order_id, status="RETURN_STATUS_CREDITED")
    assert [r["returnId"] for r in listed.json()["returns"]] == [return_id]
