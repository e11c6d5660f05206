"""A return's physical leg over the partner REST API, on the running mesh (localmesh: every
service its own process, the sandbox carrier in fast mode, the warehouse simulator):

a completed order's units are returned; shipment books one return label for them (a return
parcel, listed with the order's shipments as kind RETURN, with its label and tracking); the
sandbox carrier carries it to the warehouse; the simulator receives it (sellable: the mesh's
damage rate is 0); the return ends RECEIVED then CREDITED, the credit note is the returned units
at their invoiced price to the cent, the order line counts them as returned, the stock is back
at the return location, and nothing about the outbound side moved (no second invoice, same
status). A second return of the remainder passes; one unit more is a 422.

The order uses SKUs of its own (created here), so the stock figures are this test's alone.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import grpc
from crossdock.common.v1 import common_pb2
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from localmesh import Mesh
from localmesh.seed import CURRENCY, DEMO_WAREHOUSES
from tests.e2e.test_partner_api import COMPLETED, Partner, new_partner
from tests.e2e.test_returns_api import PROBLEM, return_body
from tests.fixtures.waiting import wait_until

WAREHOUSE = DEMO_WAREHOUSES[-1].location_id
PRICES_CENTS = (1234, 5678)  # per unit, of the order's two lines
STOCKED = 10


def money(cents: int) -> dict[str, Any]:
    return {"currencyCode": CURRENCY, "units": str(cents // 100), "nanos": (cents % 100) * 10**7}


def amount(value: dict[str, Any]) -> Decimal:
    return Decimal(value.get("units", "0")) + Decimal(value.get("nanos", 0)) / 10**9


def new_skus(mesh: Mesh) -> list[str]:
    """Two items only this test orders, stocked at one warehouse (so it ships from there)."""
    tag = uuid.uuid4().hex[:8].upper()
    skus = [f"RMA-{tag}-{n}" for n in (1, 2)]
    with grpc.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        stub = inv_grpc.InventoryServiceStub(channel)
        for sku, cents in zip(skus, PRICES_CENTS, strict=True):
            stub.CreateItem(
                inv_svc.CreateItemRequest(
                    item=inv_svc.ItemInput(
                        sku=sku,
                        description=f"return parcel test item {sku}",
                        unit_of_measure=inv.UNIT_OF_MEASURE_EACH,
                        dimensions=common_pb2.Dimensions(
                            length=20,
                            width=15,
                            height=10,
                            unit=common_pb2.DIMENSION_UNIT_CENTIMETER,
                        ),
                        weight=common_pb2.Weight(value=0.8, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
                        active=True,
                        unit_price=common_pb2.Money(
                            currency_code=CURRENCY, units=cents // 100, nanos=(cents % 100) * 10**7
                        ),
                    )
                ),
                timeout=10,
            )
            stub.ReceiveStock(
                inv_svc.ReceiveStockRequest(
                    location_id=WAREHOUSE,
                    source=inv.RECEIPT_SOURCE_PURCHASE_ORDER,
                    source_reference=f"PO-{sku}",
                    lines=[inv_svc.ReceiptLineInput(sku=sku, quantity=STOCKED)],
                    idempotency_key=f"e2e-stock-{sku}",
                ),
                timeout=10,
            )
    return skus


def stock(mesh: Mesh, sku: str) -> inv.InventoryPosition:
    with grpc.insecure_channel(mesh.grpc_targets["inventory"]) as channel:
        answer = inv_grpc.InventoryServiceStub(channel).ListPositions(
            inv_svc.ListPositionsRequest(sku=sku, location_id=WAREHOUSE), timeout=10
        )
    (position,) = answer.positions
    return position


def test_a_return_travels_back_is_received_and_credited_to_the_cent(mesh: Mesh) -> None:
    skus = new_skus(mesh)
    partner = Partner(mesh, new_partner(mesh, f"return parcels {uuid.uuid4().hex[:6]}"))
    body = {
        "externalOrderId": f"RP-{uuid.uuid4().hex[:8]}",
        "customer": {"partyId": "CUST-RP", "name": "Grace Hopper"},
        "shipTo": {
            "name": "Grace Hopper",
            "lines": ["1 Navy Yard"],
            "city": "Arlington",
            "region": "VA",
            "postalCode": "22202",
            "countryCode": "US",
        },
        "lines": [
            {"sku": sku, "quantity": str(quantity), "unitPrice": money(cents)}
            for sku, quantity, cents in zip(skus, (3, 2), PRICES_CENTS, strict=True)
        ],
        "currencyCode": CURRENCY,
        "serviceLevel": "SERVICE_LEVEL_STANDARD",
    }
    created = partner.post("/v1/orders", body)
    assert created.status_code == 201, created.text
    order_id = created.json()["order"]["orderId"]
    completed = wait_until(
        lambda: partner.get(f"/v1/orders/{order_id}").json()["order"],
        lambda o: o["status"] == COMPLETED,
        timeout=90,
        interval=0.5,
    )
    assert completed["status"] == COMPLETED, completed
    (outbound,) = partner.get("/v1/shipments", orderId=order_id).json()["shipments"]
    invoices = partner.get("/v1/invoices", orderId=order_id).json()["invoices"]
    assert [i["shipmentId"] for i in invoices] == [outbound["shipmentId"]]
    (invoice,) = invoices
    invoiced_price = {
        line["orderLineNumber"]: amount(line["unitPrice"])
        for line in invoice["lines"]
        if line.get("orderLineNumber")
    }
    assert invoiced_price == {1: Decimal("12.34"), 2: Decimal("56.78")}
    on_hand = stock(mesh, skus[0]).quantity_on_hand
    assert on_hand == STOCKED - 3

    answer = partner.post(f"/v1/orders/{order_id}/returns", return_body((1, 2)))
    assert answer.status_code == 201, answer.text
    order_return = answer.json()["orderReturn"]
    return_id = order_return["returnId"]
    assert order_return["returnLocationId"] == WAREHOUSE

    # The return parcel: listed with the order's shipments, as a return, with its return label.
    def return_parcels() -> list[dict[str, Any]]:
        listed = partner.get("/v1/shipments", orderId=order_id, kind="SHIPMENT_KIND_RETURN").json()
        return list(listed.get("shipments", []))

    parcels = wait_until(
        return_parcels, lambda p: len(p) == 1 and p[0].get("labelId"), timeout=60, interval=0.5
    )
    assert len(parcels) == 1 and parcels[0].get("labelId"), parcels
    parcel = parcels[0]
    assert parcel["kind"] == "SHIPMENT_KIND_RETURN" and parcel["returnId"] == return_id
    assert parcel["trackingNumber"] and parcel["trackingNumber"] != outbound["trackingNumber"]
    assert parcel["shipFrom"]["city"] == "Arlington" and parcel["locationId"] == WAREHOUSE
    by_return = partner.get("/v1/shipments", returnId=return_id).json()["shipments"]
    assert [s["shipmentId"] for s in by_return] == [parcel["shipmentId"]]

    # The sandbox carries it to the warehouse; the simulator receives it; billing credits it.
    credited = wait_until(
        lambda: partner.get(f"/v1/returns/{return_id}").json()["orderReturn"],
        lambda r: r["status"] == "RETURN_STATUS_CREDITED",
        timeout=120,
        interval=0.5,
    )
    assert credited["status"] == "RETURN_STATUS_CREDITED", credited
    assert credited["receiptId"]
    assert [(x["quantityReceived"], x["disposition"]) for x in credited["lines"]] == [
        ("2", "RETURN_DISPOSITION_RESTOCK")
    ]
    tracking = partner.get(f"/v1/shipments/{parcel['shipmentId']}/tracking").json()
    assert tracking["status"] == "SHIPMENT_STATUS_DELIVERED"
    statuses = [event["status"] for event in tracking["events"]]
    assert "TRACKING_STATUS_PICKED_UP" in statuses
    assert statuses[-1] == "TRACKING_STATUS_DELIVERED"

    # The credit note: the returned units at their invoiced unit price, no freight.
    notes = partner.get("/v1/creditNotes", orderId=order_id).json()["creditNotes"]
    assert [n["creditNoteId"] for n in notes] == credited["creditNoteIds"]
    (note,) = notes
    assert note["returnId"] == return_id and note["invoiceId"] == invoice["invoiceId"]
    assert amount(note["total"]) == 2 * invoiced_price[1] == Decimal("24.68")

    # The order counts the units as returned and nothing else moved: same status, the same
    # figures otherwise, still one invoice (the return parcel was never invoiced).
    order = partner.get(f"/v1/orders/{order_id}").json()["order"]
    assert order["status"] == COMPLETED
    assert [line.get("quantityReturned", "0") for line in order["lines"]] == ["2", "0"]
    for line in (*order["lines"], *completed["lines"]):
        line.pop("quantityReturned", None)
    assert order["lines"] == completed["lines"]
    again = partner.get("/v1/invoices", orderId=order_id).json()["invoices"]
    assert [i["invoiceId"] for i in again] == [invoice["invoiceId"]]
    # The goods are back on the shelf at the return location, sellable.
    back = stock(mesh, skus[0])
    assert (back.quantity_on_hand, back.quantity_non_sellable) == (on_hand + 2, 0)

    # The rest can still come back; one unit more cannot.
    rest = partner.post(f"/v1/orders/{order_id}/returns", return_body((1, 1), (2, 2)))
    assert rest.status_code == 201, rest.text
    too_many = partner.post(f"/v1/orders/{order_id}/returns", return_body((1, 1)))
    assert too_many.status_code == 422, too_many.text
    assert too_many.headers["content-type"].startswith(PROBLEM)
    assert too_many.json()["violations"] == [
        {
            "field": "order_return.lines[0].quantity",
            "description": "line 1: 0 returnable, 1 requested",
        }
    ]
