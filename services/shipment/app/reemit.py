"""Re-emitting a delivered shipment's ShipmentDelivered event, for reconciliation (a consumer,
billing above all, never got it: the message left the stream before it was consumed).

The event goes out again through the outbox under its ORIGINAL event id (outbox.reemit), so a
consumer that has it keeps it once. The id is found through the outbox row itself: a shipment does
not store it. When the outbox retention has purged that row, the event is refused rather than
rebuilt under a new id, which every consumer would take as a second delivery (billing alone would
shrug it off: invoices.shipment_id is unique there).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kit import outbox
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.uow import UnitOfWork
from services.shipment.adapters.contracts import DELIVERED_SUBJECT
from services.shipment.adapters.store import shipments as store
from services.shipment.domain.model import ShipmentKind, ShipmentStatus


@dataclass(frozen=True)
class Reemitted:
    """The delivered event's id, and whether it was sent already (so is now pending again)
    rather than still pending (nothing done)."""

    event_id: str
    reemitted: bool


def reemit_delivered(uow: UnitOfWork, shipment_id: str) -> Reemitted:
    """Publish again the ShipmentDelivered event of a DELIVERED outbound shipment, under its
    original event id; NOT_FOUND for an unknown shipment, FAILED_PRECONDITION for any other
    shipment or when the event has left the outbox."""
    shipment = store.get_shipment(uow.conn, shipment_id)
    if shipment is None:
        raise NotFound(
            f"shipment {shipment_id} not found", resource_type="shipment", resource_name=shipment_id
        )
    facts = {"shipment_id": shipment_id}
    if shipment.kind == ShipmentKind.RETURN:
        raise FailedPrecondition(
            f"shipment {shipment_id} is a return parcel; only an outbound shipment announces "
            "ShipmentDelivered",
            reason="NOT_OUTBOUND",
            metadata=facts,
        )
    # DELIVERED is terminal: no later status implies a delivery.
    if shipment.status != ShipmentStatus.DELIVERED:
        raise FailedPrecondition(
            f"shipment {shipment_id} is SHIPMENT_STATUS_{shipment.status.name}; only a "
            "DELIVERED shipment's delivered event can be re-emitted",
            reason="NOT_DELIVERED",
            metadata=facts,
        )
    event_ids = outbox.event_ids_of(uow.conn, shipment_id, DELIVERED_SUBJECT)
    if not event_ids:
        raise FailedPrecondition(
            f"the delivered event of shipment {shipment_id} is no longer in the outbox "
            "(retention); it cannot be re-emitted under its original event id",
            reason="DELIVERED_EVENT_PURGED",
            metadata=facts,
        )
    # A shipment is delivered once: its first delivered row is the event.
    event_id = event_ids[0]
    return Reemitted(event_id, outbox.reemit(uow.conn, event_id))
