"""Returns (RMA) through the real order service over gRPC, with real NATS, on SQLite files and
PostgreSQL.

Orders are fulfilled for real up to the pick (order reserves through inventory, the warehouse
simulator picks); shipment's milestones are published as shipment's relay would publish them.
Goods come back through inventory's real ReceiveStock and, in the full flow, billing (real too)
credits them. Duplicates and reorders are staged by publishing the events again, or early, as
their producers' relays would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from crossdock.billing.v1 import billing_pb2
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import billing_events_pb2 as bill_events
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.events.v1 import return_events_pb2 as return_events
from crossdock.events.v1 import shipment_events_pb2 as shp_events
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as svc
from crossdock.shipment.v1 import shipment_pb2
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.kit.grpc_errors import details_of, status_from_error
from services.kit.ids import resource_id
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.databases import NewDbUrl
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import running_billing
from tests.fixtures.waiting import wait_for
from tests.order.service_support import PARTNER, Mesh, order_request, running_mesh

S = order_pb2
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N9Z"
AUTHORIZED_SUBJECT = "crossdock.return.authorized.v1"
RECEIVED_SUBJECT = "crossdock.return.received.v1"


@dataclass
class World:
    mesh: Mesh
    js: JetStreamContext
    billing: billing_grpc.BillingServiceStub | None = None


@pytest.fixture
async def world(
    db_urls: dict[str, str], nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[World]:
    async with running_mesh(db_urls, nats_server.url, nats_client) as mesh:
        yield World(mesh, nats_client.jetstream())


@pytest.fixture
async def world_with_billing(
    db_urls: dict[str, str], new_db_url: NewDbUrl, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[World]:
    async with (
        running_mesh(db_urls, nats_server.url, nats_client) as mesh,
        running_billing(new_db_url("billing"), nats_server.url) as billing,
    ):
        yield World(mesh, nats_client.jetstream(), billing)


async def get_order(world: World, order_id: str) -> order_pb2.Order:
    return (await world.mesh.orders.GetOrder(svc.GetOrderRequest(order_id=order_id))).order


async def delivered_order(world: World, lines: list[tuple[str, int]], external_id: str) -> str:
    """An order picked for real, then manifested and delivered by shipment's events (billing, if
    it runs, invoices the delivery and the order completes)."""
    mesh = world.mesh
    created = await mesh.orders.CreateOrder(order_request(lines, external_id=external_id))
    order_id = created.order.order_id
    await wait_for(
        lambda: get_order(world, order_id), lambda o: o.status == S.ORDER_STATUS_RELEASED
    )
    await wait_for(mesh.simulator.step, lambda confirmed: confirmed >= 1)
    picked = await wait_for(
        lambda: get_order(world, order_id), lambda o: o.status == S.ORDER_STATUS_PICKED
    )
    shipment_id = resource_id("shp")
    shipment = shipment_pb2.Shipment(
        shipment_id=shipment_id,
        order_id=order_id,
        partner_id=PARTNER,
        location_id=EAST,
        carrier="sandbox",
        packages=[
            shipment_pb2.Package(
                package_id=resource_id("pkg"),
                items=[
                    shipment_pb2.PackageItem(
                        order_line_number=line.line_number,
                        sku=line.sku,
                        quantity=line.quantity_picked,
                    )
                    for line in picked.lines
                ],
            )
        ],
    )
    freight = common_pb2.Money(currency_code="EUR", units=5)
    await publish_as_relay(
        world.js,
        shp_events.ShipmentManifested(shipment=shipment, quoted_charge=freight),
        shipment_id,
    )
    await publish_as_relay(world.js, shp_events.ShipmentDelivered(shipment=shipment), shipment_id)
    done = await wait_for(
        lambda: get_order(world, order_id),
        lambda o: all(line.quantity_delivered == line.quantity_ordered for line in o.lines),
    )
    assert [line.quantity_delivered for line in done.lines] == [q for _, q in lines]
    return order_id


def return_request(
    order_id: str,
    *lines: tuple[int, int],
    key: str = "",
    partner_id: str = PARTNER,
    reason: str = "DAMAGED",
) -> svc.CreateReturnRequest:
    return svc.CreateReturnRequest(
        order_id=order_id,
        partner_id=partner_id,
        idempotency_key=key,
        order_return=svc.ReturnInput(
            lines=[
                svc.ReturnLineInput(
                    order_line_number=number,
                    quantity=quantity,
                    disposition=S.RETURN_DISPOSITION_RESTOCK,
                    reason=reason,
                )
                for number, quantity in lines
            ]
        ),
    )


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


async def get_return(world: World, return_id: str) -> order_pb2.Return:
    answer = await world.mesh.orders.GetReturn(svc.GetReturnRequest(return_id=return_id))
    return answer.order_return


async def events_of(world: World, subject: str, return_id: str) -> list[object]:
    messages = await stream_messages(world.js, "RETURN", subject)
    kind = (
        return_events.ReturnAuthorized
        if subject == AUTHORIZED_SUBJECT
        else return_events.ReturnReceived
    )
    decoded = [kind.FromString(m.data) for m in messages]
    return [e for e in decoded if e.order_return.return_id == return_id]


# -- CreateReturn, GetReturn, ListReturns ----------------------------------------------------------


async def test_returns_are_authorized_up_to_the_delivered_units_and_partner_scoped(
    world: World,
) -> None:
    await seed(world.mesh.inventory, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 9, ("SKU-B", EAST): 9})
    order_id = await delivered_order(world, [("SKU-A", 5), ("SKU-B", 2)], "RMA-1")
    orders = world.mesh.orders

    first = (await orders.CreateReturn(return_request(order_id, (1, 2), key="key-1"))).order_return
    assert first.status == S.RETURN_STATUS_AUTHORIZED
    assert first.return_id.startswith("rma_") and first.partner_id == PARTNER
    assert first.return_location_id == EAST  # where the units shipped from
    assert [(x.order_line_number, x.sku, x.quantity_authorized) for x in first.lines] == [
        (1, "SKU-A", 2)
    ]
    # Idempotent: the same key and request answer the same return; another request is refused.
    again = await orders.CreateReturn(return_request(order_id, (1, 2), key="key-1"))
    assert again.order_return == first
    reused = await refused(orders.CreateReturn(return_request(order_id, (1, 1), key="key-1")))
    assert reused.code() is grpc.StatusCode.ALREADY_EXISTS

    # Another partner's order and return answer exactly like missing ones.
    for call in (
        orders.CreateReturn(return_request(order_id, (1, 1), partner_id=OTHER_PARTNER)),
        orders.GetReturn(svc.GetReturnRequest(return_id=first.return_id, partner_id=OTHER_PARTNER)),
    ):
        assert (await refused(call)).code() is grpc.StatusCode.NOT_FOUND
    missing = await refused(orders.GetReturn(svc.GetReturnRequest(return_id=resource_id("rma"))))
    assert missing.code() is grpc.StatusCode.NOT_FOUND

    # The rest of both lines, then one unit too many: a precise precondition failure.
    second = (await orders.CreateReturn(return_request(order_id, (1, 3), (2, 2)))).order_return
    too_many = await refused(orders.CreateReturn(return_request(order_id, (2, 1))))
    assert too_many.code() is grpc.StatusCode.FAILED_PRECONDITION
    status = status_from_error(too_many)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    assert info.reason == "RETURN_NOT_ALLOWED"
    (failure,) = details_of(status, error_details_pb2.PreconditionFailure)
    assert [(v.subject, v.description) for v in failure.violations] == [
        ("order_return.lines[0].quantity", "line 2: 0 returnable, 1 requested")
    ]

    # Malformed requests are INVALID_ARGUMENT naming the field.
    bad_reason = await refused(orders.CreateReturn(return_request(order_id, (1, 1), reason="MEH")))
    assert bad_reason.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "order_return.lines[0].reason" in _violated_fields(bad_reason)
    twice = await refused(orders.CreateReturn(return_request(order_id, (1, 1), (1, 1))))
    assert twice.code() is grpc.StatusCode.INVALID_ARGUMENT

    # Lists: newest first, filtered by order and status, keyset-paged, partner-scoped.
    listed = await orders.ListReturns(svc.ListReturnsRequest(partner_id=PARTNER))
    assert [r.return_id for r in listed.returns] == [second.return_id, first.return_id]
    page_one = await orders.ListReturns(svc.ListReturnsRequest(order_id=order_id, page_size=1))
    page_two = await orders.ListReturns(
        svc.ListReturnsRequest(order_id=order_id, page_size=1, page_token=page_one.next_page_token)
    )
    assert [r.return_id for r in (*page_one.returns, *page_two.returns)] == [
        second.return_id,
        first.return_id,
    ]
    assert page_two.next_page_token == ""
    for request, expected in (
        (svc.ListReturnsRequest(status=S.RETURN_STATUS_AUTHORIZED), 2),
        (svc.ListReturnsRequest(status=S.RETURN_STATUS_RECEIVED), 0),
        (svc.ListReturnsRequest(partner_id=OTHER_PARTNER), 0),
        (svc.ListReturnsRequest(order_id=resource_id("ord")), 0),
    ):
        assert len((await orders.ListReturns(request)).returns) == expected, request

    # One ReturnAuthorized per return (none for the replay), and the order's timeline says so.
    published = await wait_for(
        lambda: stream_messages(world.js, "RETURN", AUTHORIZED_SUBJECT),
        lambda found: len(found) >= 2,
    )
    events = [return_events.ReturnAuthorized.FromString(m.data) for m in published]
    assert sorted(e.order_return.return_id for e in events) == sorted(
        [first.return_id, second.return_id]
    )
    assert all(e.order_return.return_location_id == EAST for e in events)
    timeline = await orders.GetOrderTimeline(svc.GetOrderTimelineRequest(order_id=order_id))
    assert sum("authorized" in e.detail and "rma_" in e.detail for e in timeline.entries) == 2


# -- goods and credit notes coming back ----------------------------------------------------------


async def test_a_return_receipt_is_received_credited_by_billing_and_counted_on_the_order(
    world_with_billing: World,
) -> None:
    world = world_with_billing
    assert world.billing is not None
    mesh = world.mesh
    await seed(mesh.inventory, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 9, ("SKU-B", EAST): 9})
    order_id = await delivered_order(world, [("SKU-A", 5), ("SKU-B", 2)], "RMA-FLOW")
    await wait_for(
        lambda: get_order(world, order_id), lambda o: o.status == S.ORDER_STATUS_COMPLETED
    )
    created = await mesh.orders.CreateReturn(return_request(order_id, (1, 3), (2, 2)))
    return_id = created.order_return.return_id

    await mesh.inventory.ReceiveStock(
        inv_svc.ReceiveStockRequest(
            location_id=EAST,
            source=inv.RECEIPT_SOURCE_RETURN,
            source_reference=return_id,
            lines=[
                inv_svc.ReceiptLineInput(sku="SKU-A", quantity=3),
                inv_svc.ReceiptLineInput(
                    sku="SKU-B",
                    quantity=1,
                    condition=inv.STOCK_CONDITION_DAMAGED,
                    reason="cracked",
                ),
            ],
            idempotency_key=f"return-receipt-{return_id}",
        )
    )
    credited = await wait_for(
        lambda: get_return(world, return_id), lambda r: r.status == S.RETURN_STATUS_CREDITED
    )
    assert credited.status == S.RETURN_STATUS_CREDITED
    assert [(x.quantity_received, x.disposition) for x in credited.lines] == [
        (3, S.RETURN_DISPOSITION_RESTOCK),
        (1, S.RETURN_DISPOSITION_REFURBISH),
    ]
    assert credited.receipt_id  # the receipt inventory recorded
    (credit_note_id,) = credited.credit_note_ids

    # Billing credited exactly the received units, at the invoiced unit prices, by order line.
    note = (
        await world.billing.GetCreditNote(
            billing_svc.GetCreditNoteRequest(credit_note_id=credit_note_id)
        )
    ).credit_note
    assert note.return_id == return_id and note.order_id == order_id
    goods = [line for line in note.lines if line.kind == billing_pb2.INVOICE_LINE_KIND_GOODS]
    assert [(line.order_line_number, line.quantity) for line in goods] == [(1, 3), (2, 1)]
    assert all(
        line.unit_price.units == 2 and line.unit_price.nanos == 500_000_000 for line in goods
    )

    order = await get_order(world, order_id)
    assert [line.quantity_returned for line in order.lines] == [3, 1]
    assert order.status == S.ORDER_STATUS_COMPLETED

    # The same receipt and credit note again, under new event ids (a relay republishing, or a
    # producer retrying): nothing changes and ReturnReceived stays one.
    (receipt_event,) = [
        inv_events.StockReceived.FromString(m.data)
        for m in await stream_messages(world.js, "INVENTORY", "crossdock.inventory.received.v1")
        if inv_events.StockReceived.FromString(m.data).receipt.source_reference == return_id
    ]
    posted = await stream_messages(world.js, "BILLING", "crossdock.billing.credit_note_posted.v1")
    (credit_event,) = [bill_events.CreditNotePosted.FromString(m.data) for m in posted]
    await publish_as_relay(world.js, receipt_event, receipt_event.receipt.receipt_id)
    await publish_as_relay(world.js, credit_event, credit_note_id)
    await _settled(world, order_id)
    assert await get_return(world, return_id) == credited
    assert len(await events_of(world, RECEIVED_SUBJECT, return_id)) == 1
    notes = await world.billing.ListCreditNotes(billing_svc.ListCreditNotesRequest())
    assert [n.credit_note_id for n in notes.credit_notes] == [credit_note_id]
    assert [line.quantity_returned for line in (await get_order(world, order_id)).lines] == [3, 1]


async def test_a_credit_note_before_its_receipt_and_duplicates_end_in_the_same_state(
    world: World,
) -> None:
    await seed(world.mesh.inventory, ["SKU-A"], {("SKU-A", EAST): 9})
    order_id = await delivered_order(world, [("SKU-A", 4)], "RMA-REORDER")
    created = await world.mesh.orders.CreateReturn(return_request(order_id, (1, 4)))
    return_id = created.order_return.return_id
    receipt = inv.Receipt(
        receipt_id=resource_id("rcp"),
        location_id=EAST,
        source=inv.RECEIPT_SOURCE_RETURN,
        source_reference=return_id,
        lines=[inv.ReceiptLine(sku="SKU-A", quantity=4)],
    )
    credit_note = billing_pb2.CreditNote(
        credit_note_id=resource_id("crn"),
        invoice_id=resource_id("inv"),
        order_id=order_id,
        return_id=return_id,
        partner_id=PARTNER,
    )

    # The credit note overtakes the receipt: recorded, the return waits for its goods.
    await publish_as_relay(
        world.js, bill_events.CreditNotePosted(credit_note=credit_note), credit_note.credit_note_id
    )
    early = await wait_for(
        lambda: get_return(world, return_id), lambda r: len(r.credit_note_ids) == 1
    )
    assert early.status == S.RETURN_STATUS_AUTHORIZED

    # Receipts nobody should act on: another return's id (unknown here) and a cancelled
    # pick's restock, which references the order.
    for reference in (resource_id("rma"), order_id):
        stray = inv.Receipt(
            receipt_id=resource_id("rcp"),
            location_id=EAST,
            source=inv.RECEIPT_SOURCE_RETURN,
            source_reference=reference,
            lines=[inv.ReceiptLine(sku="SKU-A", quantity=1)],
        )
        await publish_as_relay(world.js, inv_events.StockReceived(receipt=stray), stray.receipt_id)
    # The receipt twice (two event ids), and the credit note again.
    for _ in range(2):
        await publish_as_relay(
            world.js, inv_events.StockReceived(receipt=receipt), receipt.receipt_id
        )
    await publish_as_relay(
        world.js, bill_events.CreditNotePosted(credit_note=credit_note), credit_note.credit_note_id
    )
    final = await wait_for(
        lambda: get_return(world, return_id), lambda r: r.status == S.RETURN_STATUS_CREDITED
    )
    await _settled(world, order_id)
    final = await get_return(world, return_id)
    assert final.status == S.RETURN_STATUS_CREDITED
    assert final.receipt_id == receipt.receipt_id
    assert list(final.credit_note_ids) == [credit_note.credit_note_id]
    assert [x.quantity_received for x in final.lines] == [4]
    received = await wait_for(
        lambda: events_of(world, RECEIVED_SUBJECT, return_id), lambda found: len(found) >= 1
    )
    assert len(received) == 1
    (event,) = received
    assert event.receipt_id == receipt.receipt_id  # type: ignore[attr-defined]
    order = await get_order(world, order_id)
    assert [line.quantity_returned for line in order.lines] == [4]
    # Every unit is back: nothing more can be returned.
    exhausted = await refused(world.mesh.orders.CreateReturn(return_request(order_id, (1, 1))))
    assert exhausted.code() is grpc.StatusCode.FAILED_PRECONDITION


async def _settled(world: World, order_id: str) -> None:
    """Wait until the order consumer has caught up (its durable consumers have nothing pending)."""

    async def pending() -> int:
        total = 0
        for stream in ("INVENTORY", "BILLING", "SHIPMENT"):
            try:
                info = await world.js.consumer_info(stream, "order-events")
            except NotFoundError:  # a stream order has no durable on yet
                continue
            total += info.num_pending + info.num_ack_pending
        return total

    assert await wait_for(pending, lambda n: n == 0) == 0


def _violated_fields(error: grpc.aio.AioRpcError) -> set[str]:
    status = status_from_error(error)
    assert status is not None
    return {
        v.field
        for bad in details_of(status, error_details_pb2.BadRequest)
        for v in bad.field_violations
    }
