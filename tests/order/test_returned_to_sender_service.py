"""A parcel returned to sender, and the operator's reship or cancel-and-credit, through the real
order service over gRPC with real NATS, on SQLite files and PostgreSQL.

Order, inventory, shipment and billing run for real (the warehouse simulator picks). The shipment
service creates the shipment from the pick; its carrier milestones (manifested, returned to
sender, delivered) are published as its relay would publish them, for the shipment it created.
Inventory receives the returned units from that event; billing invoices and credits from the
events the order and shipment publish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
from crossdock.billing.v1 import billing_pb2
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2 as order_events
from crossdock.events.v1 import shipment_events_pb2 as shp_events
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.shipment.v1 import shipment_pb2
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.kit.grpc_errors import details_of, status_from_error
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.databases import NewDbUrl
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import running_billing
from tests.fixtures.waiting import wait_for
from tests.order.service_support import PARTNER, Mesh, order_request, running_mesh

S = order_pb2
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N9Z"
FREIGHT = common_pb2.Money(currency_code="EUR", units=5)


@dataclass
class World:
    mesh: Mesh
    js: JetStreamContext
    billing: billing_grpc.BillingServiceStub


@pytest.fixture
async def world(
    db_urls: dict[str, str], new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[World]:
    """The partner is billed on ship: a parcel is invoiced when it leaves, before it comes back."""
    async with (
        running_mesh(db_urls, nats_server.url, nats_client) as mesh,
        running_billing(
            new_db_url("billing"), nats_server.url, ON_SHIP_PARTNERS=PARTNER
        ) as billing,
    ):
        yield World(mesh, nats_client.jetstream(), billing)


async def get_order(world: World, order_id: str) -> order_pb2.Order:
    return (await world.mesh.orders.GetOrder(svc.GetOrderRequest(order_id=order_id))).order


async def until(world: World, order_id: str, done: object) -> order_pb2.Order:
    return await wait_for(lambda: get_order(world, order_id), done)  # type: ignore[arg-type]


async def picked_shipment(world: World, order_id: str, count: int = 1) -> shipment_pb2.Shipment:
    """The `count`-th shipment the shipment service built from the order's picks."""
    await wait_for(world.mesh.simulator.step, lambda confirmed: confirmed >= 1)

    async def created() -> list[shipment_pb2.Shipment]:
        messages = await stream_messages(world.js, "SHIPMENT", "crossdock.shipment.created.v1")
        events = [shp_events.ShipmentCreated.FromString(m.data) for m in messages]
        return [e.shipment for e in events if e.shipment.order_id == order_id]

    found = await wait_for(created, lambda shipments: len(shipments) >= count)
    return found[count - 1]


async def manifest(world: World, shipment: shipment_pb2.Shipment) -> None:
    labelled = shipment_pb2.Shipment()
    labelled.CopyFrom(shipment)
    labelled.carrier, labelled.tracking_number = "sandbox", f"SBX{shipment.shipment_id[-8:]}"
    event = shp_events.ShipmentManifested(shipment=labelled, quoted_charge=FREIGHT)
    await publish_as_relay(world.js, event, shipment.shipment_id)


async def return_to_sender(world: World, shipment: shipment_pb2.Shipment) -> None:
    event = shp_events.ShipmentReturnedToSender(
        shipment=shp_events.ShipmentRef(
            shipment_id=shipment.shipment_id,
            order_id=shipment.order_id,
            partner_id=shipment.partner_id,
            carrier="sandbox",
        ),
        incident_reason=tracking_pb2.INCIDENT_REASON_REFUSED,
        location_id=shipment.location_id,
        items=[item for package in shipment.packages for item in package.items],
    )
    await publish_as_relay(world.js, event, shipment.shipment_id)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    return str(info.reason)


def money(value: common_pb2.Money) -> Decimal:
    return Decimal(value.units) + Decimal(value.nanos) / Decimal(1_000_000_000)


def goods(lines: list[billing_pb2.InvoiceLine]) -> Decimal:
    return sum(
        (
            money(x.unit_price) * x.quantity
            for x in lines
            if x.kind == billing_pb2.INVOICE_LINE_KIND_GOODS
        ),
        Decimal(0),
    )


async def returned_order(world: World, external_id: str) -> tuple[str, shipment_pb2.Shipment]:
    """An order of 2 SKU-A picked, manifested (invoiced, billed on ship) and returned."""
    await seed(world.mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 10})
    created = await world.mesh.orders.CreateOrder(
        order_request([("SKU-A", 2)], external_id=external_id)
    )
    order_id = created.order.order_id
    await until(world, order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    shipment = await picked_shipment(world, order_id)
    await manifest(world, shipment)
    await wait_for(
        lambda: world.billing.ListInvoices(billing_svc.ListInvoicesRequest(order_id=order_id)),
        lambda answer: len(answer.invoices) == 1,
    )
    await return_to_sender(world, shipment)
    order = await until(world, order_id, lambda o: o.status == S.ORDER_STATUS_EXCEPTION)
    assert order.exception_reason == (
        f"shipment {shipment.shipment_id} returned to sender (2 units back at {EAST}): "
        "reship it or cancel and credit it"
    )
    assert (order.lines[0].quantity_shipped, order.lines[0].quantity_invoiced) == (0, 0)
    return order_id, shipment


async def test_cancel_and_credit_nets_the_order_to_zero_and_is_partner_scoped(world: World) -> None:
    orders = world.mesh.orders
    order_id, shipment = await returned_order(world, "RTS-CANCEL")

    # Inventory received the parcel back, into quarantine (its default).
    async def stock() -> list[tuple[int, int]]:
        answer = await world.mesh.inventory.ListPositions(
            inv_svc.ListPositionsRequest(sku="SKU-A", location_id=EAST)
        )
        return [(p.quantity_on_hand, p.quantity_non_sellable) for p in answer.positions]

    assert await wait_for(stock, lambda found: found == [(8, 2)]) == [(8, 2)]

    def cancel(partner_id: str = PARTNER) -> object:
        return orders.CancelAndCreditReturnedShipment(
            svc.CancelAndCreditReturnedShipmentRequest(
                order_id=order_id,
                partner_id=partner_id,
                shipment_id=shipment.shipment_id,
                reason="customer refused the parcel",
            )
        )

    # Another partner's order answers like a missing one; a retry cannot bring a parcel back.
    assert (await refused(cancel(OTHER_PARTNER))).code() is grpc.StatusCode.NOT_FOUND
    retry = await refused(orders.RetryOrderStep(svc.RetryOrderStepRequest(order_id=order_id)))
    assert retry.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(retry) == "RETURNED_SHIPMENT_AWAITS_DECISION"

    answer = await cancel()  # type: ignore[misc]
    assert answer.order.status == S.ORDER_STATUS_CANCELLED
    assert answer.order.lines[0].quantity_cancelled == 2
    assert answer.order.cancel_reason == "customer refused the parcel"
    again = await cancel()  # type: ignore[misc]
    assert again.order == (await get_order(world, order_id))
    other_way = await refused(
        orders.ReshipReturnedShipment(
            svc.ReshipReturnedShipmentRequest(
                order_id=order_id, partner_id=PARTNER, shipment_id=shipment.shipment_id
            )
        )
    )
    assert other_way.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(other_way) == "RETURNED_SHIPMENT_ALREADY_RESOLVED"

    # Billing credits the invoice it posted on ship: the goods net to zero.
    notes = await wait_for(
        lambda: world.billing.ListCreditNotes(
            billing_svc.ListCreditNotesRequest(order_id=order_id)
        ),
        lambda answer: len(answer.credit_notes) >= 1,
    )
    (note,) = notes.credit_notes
    (invoice,) = (
        await world.billing.ListInvoices(billing_svc.ListInvoicesRequest(order_id=order_id))
    ).invoices
    assert note.return_id == shipment.shipment_id and note.invoice_id == invoice.invoice_id
    assert note.reason == "returned to sender"
    assert goods(list(invoice.lines)) - goods(list(note.lines)) == 0
    # The freight stays billed: the carrier carried the parcel there and back.
    assert money(invoice.total) - money(note.total) == money(FREIGHT)

    timeline = await wait_for(
        lambda: orders.GetOrderTimeline(svc.GetOrderTimelineRequest(order_id=order_id)),
        lambda answer: any(e.detail.startswith("credit note") for e in answer.entries),
    )
    details = [e.detail for e in timeline.entries]
    assert (
        f"credit note {note.credit_note_id} credits invoice {invoice.invoice_id} of shipment "
        f"{shipment.shipment_id} (returned to sender)" in details
    )
    assert any(e.transition == "cancel" for e in timeline.entries)

    # Partners hear of the decision (a milestone, delivered as a webhook).
    messages = await stream_messages(
        world.js, "ORDER", "crossdock.order.returned_shipment_resolved.v1"
    )
    (resolved,) = [
        e
        for e in (order_events.OrderReturnedShipmentResolved.FromString(m.data) for m in messages)
        if e.order.order_id == order_id
    ]
    assert resolved.resolution == S.RETURNED_SHIPMENT_RESOLUTION_CANCEL_AND_CREDIT
    assert [(x.line_number, x.sku, x.quantity) for x in resolved.lines] == [(1, "SKU-A", 2)]


async def test_reship_ships_again_and_completes_with_the_credit_of_the_returned_parcel(
    world: World,
) -> None:
    orders = world.mesh.orders
    order_id, returned = await returned_order(world, "RTS-RESHIP")
    request = svc.ReshipReturnedShipmentRequest(
        order_id=order_id,
        partner_id=PARTNER,
        shipment_id=returned.shipment_id,
        reason="new address",
    )

    # The returned units are planned again; asking twice changes nothing.
    answer = await orders.ReshipReturnedShipment(request)
    assert answer.order.status in (
        S.ORDER_STATUS_PLACED,
        S.ORDER_STATUS_ALLOCATED,
        S.ORDER_STATUS_RELEASED,
    )
    await orders.ReshipReturnedShipment(request)  # published once: checked at the end

    await until(world, order_id, lambda o: o.status == S.ORDER_STATUS_RELEASED)
    again = await picked_shipment(world, order_id, count=2)
    assert again.shipment_id != returned.shipment_id
    # A shipment that did not come back is refused, naming its state. The order learns of the
    # new shipment from ShipmentCreated, which may still be on its way (NOT_FOUND until then).
    not_returned = await wait_for(
        lambda: refused(
            orders.CancelAndCreditReturnedShipment(
                svc.CancelAndCreditReturnedShipmentRequest(
                    order_id=order_id, shipment_id=again.shipment_id
                )
            )
        ),
        lambda error: error.code() is not grpc.StatusCode.NOT_FOUND,
    )
    assert not_returned.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(not_returned) == "SHIPMENT_NOT_RETURNED_TO_SENDER"
    assert "was not returned to sender (it is not yet handed to the carrier)" in (
        not_returned.details() or ""
    )

    await manifest(world, again)
    await publish_as_relay(
        world.js, shp_events.ShipmentDelivered(shipment=again), again.shipment_id
    )
    done = await until(world, order_id, lambda o: o.status == S.ORDER_STATUS_COMPLETED)
    line = done.lines[0]
    assert (line.quantity_delivered, line.quantity_invoiced, line.quantity_cancelled) == (2, 2, 0)

    # Two invoices were posted (each parcel billed when it left), the returned one credited:
    # the order is billed once for its goods.
    invoices = (
        await world.billing.ListInvoices(billing_svc.ListInvoicesRequest(order_id=order_id))
    ).invoices
    notes = await wait_for(
        lambda: world.billing.ListCreditNotes(
            billing_svc.ListCreditNotesRequest(order_id=order_id)
        ),
        lambda answer: len(answer.credit_notes) >= 1,
    )
    assert sorted(i.shipment_id for i in invoices) == sorted(
        [returned.shipment_id, again.shipment_id]
    )
    (note,) = notes.credit_notes
    billed = sum((goods(list(i.lines)) for i in invoices), Decimal(0))
    assert billed - goods(list(note.lines)) == Decimal("5.00")  # 2 units at 2.50, delivered

    # The relay publishes after the commit that COMPLETED shows: wait for the event itself.
    async def completed_events() -> list[order_events.OrderCompleted]:
        found = await stream_messages(world.js, "ORDER", "crossdock.order.completed.v1")
        events = (order_events.OrderCompleted.FromString(m.data) for m in found)
        return [e for e in events if e.order_id == order_id]

    (event,) = await wait_for(completed_events, lambda events: len(events) >= 1)
    (kept,) = [i.invoice_id for i in invoices if i.shipment_id == again.shipment_id]
    assert list(event.invoice_ids) == [kept]
    decisions = await stream_messages(
        world.js, "ORDER", "crossdock.order.returned_shipment_resolved.v1"
    )
    resolved = [order_events.OrderReturnedShipmentResolved.FromString(m.data) for m in decisions]
    assert [
        (e.shipment_id, e.resolution, e.reason) for e in resolved if e.order.order_id == order_id
    ] == [(returned.shipment_id, S.RETURNED_SHIPMENT_RESOLUTION_RESHIP, "new address")]
