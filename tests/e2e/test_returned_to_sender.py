"""A parcel the carrier sends back, and the operator's reship or cancel-and-credit, over REST
against the shared running mesh (every service its own process), as a partner would:
`POST /v1/orders/{order_id}/shipments/{shipment_id}:reship` and `:cancelAndCredit`.

How a parcel comes back deterministically: the shared mesh's sandbox carrier delivers every
parcel (its return rate is 0 in fast mode), so the test is the carrier. As soon as the label is
booked, it pushes the sandbox's own signed webhook (its wire format, HMAC-signed with the
mesh's sandbox secret from localmesh's credentials) with a "returned to sender" scan through the
partner API's carrier route, `POST /v1/carriers/sandbox/webhooks`, the way the carrier's
notification service would. Carrier-adapter verifies and normalizes it, shipment makes it its
milestone (terminal, so the sandbox's own later delivery scan changes nothing), inventory takes
the units back and the order shows the exception. The sandbox needs ~10 s of simulated transit
before its own delivery scan, so the push wins; should it ever lose, the test starts over with a
new order instead of asserting on a delivered parcel.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from localmesh import Mesh
from localmesh.credentials import load as load_credentials
from localmesh.demo import sample_order
from services.carrier_adapter.adapters.carriers.sandbox import webhooks
from services.carrier_adapter.domain.normalize import RawScan
from tests.e2e.test_partner_api import Partner
from tests.fixtures.waiting import wait_until

RETURNED = "SHIPMENT_STATUS_RETURNED_TO_SENDER"
DELIVERED = "SHIPMENT_STATUS_DELIVERED"


class Operator(Partner):
    """The demo partner over REST, and the carrier's webhook pushes."""

    def __init__(self, mesh: Mesh) -> None:
        super().__init__(mesh, mesh.demo_api_key)
        self.secret = load_credentials(mesh.data_dir, ()).sandbox_webhook_secret

    def order(self, order_id: str) -> dict[str, Any]:
        answer = self.get(f"/v1/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["order"])

    def shipments(self, order_id: str) -> list[dict[str, Any]]:
        answer = self.get("/v1/shipments", orderId=order_id)
        assert answer.status_code == 200, answer.text
        return list(answer.json().get("shipments", []))

    def documents(self, kind: str, order_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/v1/{kind}", orderId=order_id)
        assert answer.status_code == 200, answer.text
        return list(answer.json().get(kind, []))

    def wait_order(self, order_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        order = wait_until(
            lambda: self.order(order_id), lambda o: o["status"] == status, timeout=timeout
        )
        assert order["status"] == status, order
        return order

    def push_returned_to_sender(self, tracking_number: str) -> None:
        """The sandbox carrier's signed push of a "returned to sender" scan."""
        now = datetime.now(UTC)
        scan = RawScan("RTD", "Returned to sender", now)
        event_id = f"evt_sbx_rts_{uuid.uuid4().hex[:12]}"
        body = webhooks.encode_push(event_id, tracking_number, [scan], now)
        headers = webhooks.sign(body, [self.secret], event_id, now)
        answer = self.http.post(
            "/v1/carriers/sandbox/webhooks",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text

    def decide(self, order_id: str, shipment_id: str, action: str) -> httpx.Response:
        return self.post(
            f"/v1/orders/{order_id}/shipments/{shipment_id}:{action}", {"reason": "operator"}
        )

    def labelled(self, order_id: str) -> dict[str, Any]:
        """The order's one shipment, once its label is booked."""
        found = wait_until(
            lambda: self.shipments(order_id),
            lambda shipments: len(shipments) == 1 and bool(shipments[0].get("trackingNumber")),
            timeout=60,
            interval=0.2,
        )
        assert len(found) == 1 and found[0].get("trackingNumber"), found
        return found[0]

    def place_one_line(self, name: str, seed: int) -> str:
        body = sample_order(f"{name}-{uuid.uuid4().hex[:8]}", random.Random(seed))
        body["lines"] = body["lines"][:1]
        created = self.post("/v1/orders", body)
        assert created.status_code == 201, created.text
        return str(created.json()["order"]["orderId"])

    def returned_order(self, name: str) -> tuple[str, dict[str, Any]]:
        """An order of one line whose only parcel the carrier returned to sender."""
        for attempt in range(3):
            order_id = self.place_one_line(name, attempt)
            labelled = self.labelled(order_id)
            self.push_returned_to_sender(labelled["trackingNumber"])
            shipment = wait_until(
                lambda order_id=order_id: self.shipments(order_id)[0],  # type: ignore[misc]
                lambda found: found["status"] in (RETURNED, DELIVERED),
            )
            if shipment["status"] == RETURNED:
                return order_id, shipment
        pytest.fail("the sandbox delivered every parcel before its return could be pushed")


@pytest.fixture
def operator(mesh: Mesh) -> Operator:
    return Operator(mesh)


def _exception_names_the_parcel(operator: Operator, order_id: str, shipment_id: str) -> None:
    order = operator.wait_order(order_id, "ORDER_STATUS_EXCEPTION")
    assert shipment_id in order["exceptionReason"], order
    assert "reship it or cancel and credit it" in order["exceptionReason"], order
    line = order["lines"][0]
    assert line.get("quantityShipped", "0") == "0" and line.get("quantityDelivered", "0") == "0"


def _total(documents: list[dict[str, Any]]) -> Decimal:
    return sum(
        (
            Decimal(d["total"].get("units", "0")) + Decimal(d["total"].get("nanos", 0)) / 10**9
            for d in documents
        ),
        Decimal(0),
    )


def test_returned_to_sender_then_reship_completes_with_exactly_one_invoice(
    operator: Operator,
) -> None:
    order_id, returned = operator.returned_order("RTS-RESHIP")
    _exception_names_the_parcel(operator, order_id, returned["shipmentId"])
    assert operator.documents("invoices", order_id) == []  # never delivered, never invoiced

    reshipped = operator.decide(order_id, returned["shipmentId"], "reship")
    assert reshipped.status_code == 200, reshipped.text
    assert reshipped.json()["order"]["status"] != "ORDER_STATUS_EXCEPTION"
    again = operator.decide(order_id, returned["shipmentId"], "reship")
    assert again.status_code == 200, again.text
    other_way = operator.decide(order_id, returned["shipmentId"], "cancelAndCredit")
    assert other_way.status_code == 409, other_way.text
    assert other_way.headers["content-type"].startswith("application/problem+json")
    assert "already reshipped" in other_way.json()["detail"]

    order = operator.wait_order(order_id, "ORDER_STATUS_COMPLETED", timeout=90)
    line = order["lines"][0]
    assert line["quantityDelivered"] == line["quantityInvoiced"] == line["quantityOrdered"]
    assert line.get("quantityCancelled", "0") == "0"
    shipments = {s["shipmentId"]: s for s in operator.shipments(order_id)}
    assert len(shipments) == 2 and shipments[returned["shipmentId"]]["status"] == RETURNED
    (invoice,) = operator.documents("invoices", order_id)
    assert invoice["shipmentId"] != returned["shipmentId"]
    assert shipments[invoice["shipmentId"]]["status"] == DELIVERED
    assert operator.documents("creditNotes", order_id) == []

    timeline = operator.get(f"/v1/orders/{order_id}/timeline").json()["entries"]
    details = [e.get("detail", "") for e in timeline]
    assert any(f"shipment {returned['shipmentId']} returned to sender" in d for d in details)
    assert any("reshipped: " in d and "planned again" in d for d in details)


def test_returned_to_sender_then_cancel_and_credit_nets_to_zero(operator: Operator) -> None:
    order_id, returned = operator.returned_order("RTS-CREDIT")
    _exception_names_the_parcel(operator, order_id, returned["shipmentId"])

    cancelled = operator.decide(order_id, returned["shipmentId"], "cancelAndCredit")
    assert cancelled.status_code == 200, cancelled.text
    order = cancelled.json()["order"]
    assert order["status"] == "ORDER_STATUS_CANCELLED"
    assert all(line["quantityCancelled"] == line["quantityOrdered"] for line in order["lines"])
    again = operator.decide(order_id, returned["shipmentId"], "cancelAndCredit")
    assert again.status_code == 200 and again.json()["order"]["status"] == order["status"]
    other_way = operator.decide(order_id, returned["shipmentId"], "reship")
    assert other_way.status_code == 409, other_way.text

    # Σ invoices - Σ credit notes of the order: nothing kept, nothing billed.
    invoices = operator.documents("invoices", order_id)
    credit_notes = operator.documents("creditNotes", order_id)
    assert _total(invoices) - _total(credit_notes) == 0, (invoices, credit_notes)
    assert operator.order(order_id)["status"] == "ORDER_STATUS_CANCELLED"


def test_a_parcel_that_was_not_returned_cannot_be_decided_on_409(operator: Operator) -> None:
    order_id = operator.place_one_line("RTS-NOT", 7)
    shipment = operator.labelled(order_id)
    operator.wait_order(order_id, "ORDER_STATUS_COMPLETED", timeout=90)

    for action in ("reship", "cancelAndCredit"):
        answer = operator.decide(order_id, shipment["shipmentId"], action)
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        detail = answer.json()["detail"]
        assert f"shipment {shipment['shipmentId']} of order {order_id} was not returned" in detail
        assert "(it is delivered)" in detail
