"""Units coming back into stock through the real service, on SQLite and PostgreSQL: cancelled
shipments and parcels returned to sender (events), and receipts with stock conditions (RPC).

The shipment events are consumed in stream order by one durable, so once a later "sentinel"
event's effect shows, every event published before it has been handled (or skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import inventory_events_pb2 as inv_events
from crossdock.events.v1 import shipment_events_pb2 as shp_events
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as svc
from crossdock.shipment.v1 import shipment_pb2
from google.rpc import error_details_pb2
from sqlalchemy import Connection

from services.inventory import domain
from services.inventory.adapters.contracts import mapper
from services.inventory.adapters.store import SqlInventory, migrate
from services.inventory.entrypoints.consumers import event_handlers
from services.kit.db import Database
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.handlers import PermanentError
from tests.fixtures.catalog import EAST, seed
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.running import Inventory
from tests.fixtures.waiting import wait_for
from tests.inventory.service_support import RECEIVED, position

CANCELLED = "crossdock.shipment.cancelled.v1"
RETURNED_TO_SENDER = "crossdock.shipment.returned_to_sender.v1"


def _items(*items: tuple[str, int]) -> list[shipment_pb2.PackageItem]:
    return [shipment_pb2.PackageItem(order_line_number=1, sku=s, quantity=q) for s, q in items]


def _cancelled(shipment_id: str, *items: tuple[str, int]) -> shp_events.ShipmentCancelled:
    return shp_events.ShipmentCancelled(
        shipment=shipment_pb2.Shipment(shipment_id=shipment_id, location_id=EAST),
        items=_items(*items),
        reason="customer cancelled",
    )


def _returned(
    shipment_id: str, *items: tuple[str, int], location_id: str = EAST
) -> shp_events.ShipmentReturnedToSender:
    return shp_events.ShipmentReturnedToSender(
        shipment=shp_events.ShipmentRef(shipment_id=shipment_id),
        incident_reason=tracking_pb2.INCIDENT_REASON_REFUSED,
        location_id=location_id,
        items=_items(*items),
    )


async def _after_sentinel(inventory: Inventory) -> None:
    """Publish a cancellation restocking one SKU-S unit and wait until it is on hand."""
    await publish_as_relay(
        inventory.nc.jetstream(), _cancelled("shp_SENTINEL", ("SKU-S", 1)), "shp_SENTINEL"
    )

    async def sentinel_on_hand() -> int:
        answer = await inventory.stub.ListPositions(svc.ListPositionsRequest(sku="SKU-S"))
        return sum(p.quantity_on_hand for p in answer.positions)

    assert await wait_for(sentinel_on_hand, lambda units: units == 1) == 1


async def _receipts_for(inventory: Inventory, shipment_id: str) -> list[inv_events.StockReceived]:
    messages = await stream_messages(inventory.nc.jetstream(), "INVENTORY", RECEIVED)
    received = [inv_events.StockReceived.FromString(m.data) for m in messages]
    return [r for r in received if r.receipt.source_reference == shipment_id]


async def test_a_cancelled_shipment_is_restocked_once(inventory: Inventory) -> None:
    await seed(inventory.stub, ["SKU-A", "SKU-S"], {("SKU-A", EAST): 10})
    js = inventory.nc.jetstream()
    event = _cancelled("shp_1", ("SKU-A", 2), ("SKU-A", 1))

    event_id = await publish_as_relay(js, event, "shp_1")
    await publish_as_relay(js, event, "shp_1", event_id=event_id, msg_id="redelivered-1")
    await publish_as_relay(js, event, "shp_1")  # re-emitted: another event id, same shipment
    await publish_as_relay(js, _cancelled("shp_2"), "shp_2")  # nothing was picked
    await _after_sentinel(inventory)

    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_available) == (13, 13)
    (received,) = await wait_for(lambda: _receipts_for(inventory, "shp_1"), lambda r: len(r) >= 1)
    assert received.receipt.source == inv.RECEIPT_SOURCE_CANCELLATION
    assert [(x.sku, x.quantity, x.condition) for x in received.receipt.lines] == [
        ("SKU-A", 2, inv.STOCK_CONDITION_SELLABLE),
        ("SKU-A", 1, inv.STOCK_CONDITION_SELLABLE),
    ]
    assert await _receipts_for(inventory, "shp_2") == []


async def test_a_parcel_returned_to_sender_goes_to_quarantine_once(inventory: Inventory) -> None:
    await seed(inventory.stub, ["SKU-A", "SKU-S"], {("SKU-A", EAST): 10})
    js = inventory.nc.jetstream()

    await publish_as_relay(js, _returned("shp_9", ("SKU-A", 2)), "shp_9")
    await publish_as_relay(js, _returned("shp_9", ("SKU-A", 2)), "shp_9")  # re-emitted
    # What producers sent before the event carried a location and items: skipped.
    await publish_as_relay(js, _returned("shp_8", location_id=""), "shp_8")
    await publish_as_relay(js, _returned("shp_7", ("SKU-A", 5), location_id=""), "shp_7")
    await _after_sentinel(inventory)

    found = await position(inventory, "SKU-A", EAST)
    assert (found.quantity_on_hand, found.quantity_available) == (10, 10)
    assert found.quantity_non_sellable == 2
    (received,) = await wait_for(lambda: _receipts_for(inventory, "shp_9"), lambda r: len(r) >= 1)
    assert received.receipt.source == inv.RECEIPT_SOURCE_RETURNED_TO_SENDER
    (line,) = received.receipt.lines
    assert (line.condition, line.reason) == (
        inv.STOCK_CONDITION_QUARANTINE,
        "returned to sender: refused",
    )
    assert [p.quantity_non_sellable for p in received.positions] == [2]
    assert await _receipts_for(inventory, "shp_8") == []
    assert await _receipts_for(inventory, "shp_7") == []


async def test_a_return_with_mixed_conditions_over_grpc(inventory: Inventory) -> None:
    stub = inventory.stub
    await seed(stub, ["SKU-A", "SKU-B"], {("SKU-A", EAST): 10})
    lines = [
        svc.ReceiptLineInput(sku="SKU-A", quantity=3),
        svc.ReceiptLineInput(
            sku="SKU-A", quantity=2, condition=inv.STOCK_CONDITION_DAMAGED, reason="crushed"
        ),
        svc.ReceiptLineInput(
            sku="SKU-B", quantity=1, condition=inv.STOCK_CONDITION_QUARANTINE, reason="inspect"
        ),
    ]
    request = svc.ReceiveStockRequest(
        location_id=EAST,
        source=inv.RECEIPT_SOURCE_RETURN,
        source_reference="RMA-1",
        lines=lines,
        idempotency_key="return-key-01",
    )

    answer = await stub.ReceiveStock(request)

    assert [x.condition for x in answer.receipt.lines] == [
        inv.STOCK_CONDITION_SELLABLE,
        inv.STOCK_CONDITION_DAMAGED,
        inv.STOCK_CONDITION_QUARANTINE,
    ]
    a, b = await position(inventory, "SKU-A", EAST), await position(inventory, "SKU-B", EAST)
    assert (a.quantity_on_hand, a.quantity_available, a.quantity_non_sellable) == (13, 13, 2)
    assert (b.quantity_on_hand, b.quantity_available, b.quantity_non_sellable) == (0, 0, 1)
    availability = await stub.GetAvailability(svc.GetAvailabilityRequest(skus=["SKU-B"]))
    assert availability.availability[0].quantity_available == 0

    lines[1].ClearField("reason")
    no_reason = svc.ReceiveStockRequest(
        location_id=EAST,
        source=inv.RECEIPT_SOURCE_RETURN,
        source_reference="RMA-2",
        lines=lines,
        idempotency_key="return-key-02",
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ReceiveStock(no_reason)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = status_from_error(refused.value)
    assert status is not None
    (bad_request,) = details_of(status, error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == ["lines[1].reason"]


NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="inventory", event_mapper=mapper)

    def stock(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.save_location(domain.Location(EAST, "East"))
        repo.save_item(domain.Item("SKU-A", "A"))

    database.run_sync(stock)
    yield database
    database.engine.dispose()


def test_returned_to_sender_can_be_configured_sellable(db: Database) -> None:
    handlers = event_handlers(
        domain.SequentialIds(), lambda: NOW, returned_to_sender=domain.StockCondition.SELLABLE
    )
    route = handlers.route(RETURNED_TO_SENDER)
    assert route is not None and route.handler is not None
    handle = route.handler

    db.run_sync(lambda conn: handle(_returned("shp_5", ("SKU-A", 2)), {}, conn))

    def books(conn: Connection) -> tuple[domain.Position, domain.Receipt | None]:
        repo = SqlInventory(conn)
        return repo.get_position("SKU-A", EAST), repo.get_receipt_by_key("rts/shp_5")

    found, receipt = db.run_sync(books)
    assert (found.on_hand, found.non_sellable) == (2, 0)
    assert receipt is not None and receipt.source is domain.ReceiptSource.RETURNED_TO_SENDER
    assert [(x.condition, x.reason) for x in receipt.lines] == [
        (domain.StockCondition.SELLABLE, "")
    ]
    with pytest.raises(PermanentError):
        # A SKU inventory does not know can never be received: dead-letter it, don't retry.
        db.run_sync(lambda conn: handle(_returned("shp_6", ("SKU-NOPE", 1)), {}, conn))
