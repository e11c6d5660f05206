"""Return parcels (RMA): what goes in the box, and what a return parcel announces. Pure.

A return parcel is the units of one authorized return on their way from the customer back to a
warehouse. It books, is tracked and never moves backwards exactly like an outbound shipment
(domain/shipment.py), but it announces its milestones under subjects of its own (the
`return_event` of domain/propagation.json): order, billing and inventory read the outbound
subjects as "goods left for the customer", which a return parcel must never be taken for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from services.kit.values import Money
from services.shipment.domain.events import (
    ReturnParcelDelivered,
    ReturnParcelException,
    ReturnParcelPickedUp,
)
from services.shipment.domain.model import ShipmentStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.tracking import Rule, ScanReport, ref_milestone

if TYPE_CHECKING:
    from services.shipment.domain.shipment import Shipment

ReturnMilestone = ReturnParcelPickedUp | ReturnParcelDelivered | ReturnParcelException


def with_shipped_lots(
    returned: Sequence[PickedUnits], shipped: Sequence[PickedUnits]
) -> tuple[PickedUnits, ...]:
    """The returned units with the lots they most likely left in.

    A return names order lines, not lots; a lot-controlled item is received back only with its
    lot. Each line takes the lots its `shipped` (delivered) units carried, in shipping order;
    units beyond those, and items shipped without lots, keep no lot. The warehouse inspecting
    the parcel has the last word (its receipt), so this is the label's best guess, no more.
    """
    lots: dict[int, list[tuple[str, int]]] = {}
    for units in shipped:
        if units.lot and units.quantity > 0:
            lots.setdefault(units.order_line_number, []).append((units.lot, units.quantity))
    packed: list[PickedUnits] = []
    for line in returned:
        remaining = line.quantity
        for lot, quantity in lots.get(line.order_line_number, []):
            take = min(remaining, quantity)
            if take <= 0:
                break
            packed.append(replace(line, quantity=take, lot=lot))
            remaining -= take
        if remaining > 0:
            packed.append(replace(line, quantity=remaining))
    return tuple(packed)


def return_milestone(
    parcel: Shipment, rule: Rule, scan: ScanReport, final_charge: Money | None
) -> ReturnMilestone:
    """The event a return parcel raises where `rule` names a return_event: exceptions and a
    parcel taken back to the customer are ReturnParcelException; pickup and delivery (at the
    warehouse) their own milestones."""
    if rule.shipment_status is ShipmentStatus.DELIVERED:
        return ReturnParcelDelivered(parcel.snapshot(), final_charge, scan.occur_time)
    milestone = ref_milestone(parcel.ref(), True, rule, scan)
    if not isinstance(milestone, ReturnParcelPickedUp | ReturnParcelException):
        raise ValueError(f"propagation rule names a return event shipment cannot build: {rule}")
    return milestone
