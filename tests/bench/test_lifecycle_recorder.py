"""The lifecycle benchmark's event recorder keys each milestone by the ids its event carries,
and says where unfinished orders stopped. Messages are built in memory, as nats-py hands them
over (subject, CloudEvents headers, protobuf body)."""

from __future__ import annotations

from dataclasses import dataclass

from crossdock.billing.v1 import billing_pb2
from crossdock.events.v1 import billing_events_pb2, inventory_events_pb2, shipment_events_pb2
from crossdock.inventory.v1 import inventory_pb2
from crossdock.shipment.v1 import shipment_pb2

from bench.lifecycle_probes import EventRecorder, stuck_stages


@dataclass
class Message:
    subject: str
    headers: dict[str, str]
    data: bytes = b""


def message(subject: str, at: str, aggregate: str, data: bytes = b"") -> Message:
    return Message(f"crossdock.{subject}.v1", {"ce-time": at, "ce-subject": aggregate}, data)


async def test_milestones_are_keyed_by_the_ids_their_events_carry() -> None:
    recorder = EventRecorder()
    shipment = shipment_pb2.Shipment(shipment_id="shp_1", order_id="ord_1", pick_id="pck_1")
    pick = inventory_events_pb2.PickCompleted(pick_id="pck_1", order_id="ord_1")
    feed = [
        message("order.placed", "2026-01-05T10:00:00.000000Z", "ord_1"),
        message(
            "inventory.reserved",
            "2026-01-05T10:00:00.040000Z",
            "rsv_1",
            inventory_events_pb2.StockReserved(
                reservation=inventory_pb2.Reservation(reservation_id="rsv_1", order_id="ord_1")
            ).SerializeToString(),
        ),
        message("order.released", "2026-01-05T10:00:00.050000Z", "ord_1"),
        message(
            "inventory.pick_completed",
            "2026-01-05T10:00:00.600000Z",
            "ord_1",
            pick.SerializeToString(),
        ),
        message(
            "shipment.manifested",
            "2026-01-05T10:00:00.700000Z",
            "shp_1",
            shipment_events_pb2.ShipmentManifested(shipment=shipment).SerializeToString(),
        ),
        message("shipment.delivered", "2026-01-05T10:00:20.700000Z", "shp_1"),
        message(
            "billing.invoice_posted",
            "2026-01-05T10:00:20.730000Z",
            "inv_1",
            billing_events_pb2.InvoicePosted(
                invoice=billing_pb2.Invoice(invoice_id="inv_1", shipment_id="shp_1")
            ).SerializeToString(),
        ),
        message("order.placed", "2026-01-05T10:00:01Z", "ord_2"),
        message("order.completed", "2026-01-05T10:00:20.760000Z", "ord_1"),
        message("order.completed", "2026-01-05T10:00:29Z", "ord_1"),  # a redelivery: first wins
        Message("crossdock.order.placed.v1", {}),  # no CloudEvents headers: counted, skipped
    ]
    for msg in feed:
        await recorder._on_message(msg)  # type: ignore[arg-type]

    times = recorder.times
    t0 = times.placed["ord_1"]
    assert times.reserved["rsv_1"][0] == "ord_1"
    assert round(times.reserved["rsv_1"][1] - t0, 3) == 0.040
    assert times.picked["pck_1"][0] == "ord_1"
    assert times.manifested["shp_1"][:2] == ("ord_1", "pck_1")
    assert round(times.invoiced["shp_1"] - times.delivered["shp_1"], 3) == 0.030
    assert round(times.completed["ord_1"] - t0, 3) == 20.760
    assert recorder.undecodable == 1
    assert stuck_stages(times, ["ord_1", "ord_2", "ord_3"]) == {"placed": 1, "accepted": 1}
