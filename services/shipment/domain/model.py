"""Canonical statuses, mirrored from the contracts so the domain needs no generated code.

A test pins every value to crossdock.shipment.v1.ShipmentStatus / ShipmentKind and
crossdock.carrier.v1.TrackingStatus / ServiceLevel; IncidentReason mirrors
crossdock.carrier.v1.IncidentReason.
"""

from __future__ import annotations

import enum


class ShipmentStatus(enum.IntEnum):
    UNSPECIFIED = 0
    CREATED = 1
    MANIFESTED = 2
    PICKED_UP = 3
    IN_TRANSIT = 4
    OUT_FOR_DELIVERY = 5
    DELIVERED = 6
    EXCEPTION = 7
    RETURNED_TO_SENDER = 8
    LABEL_FAILED = 9
    CANCELLED = 10


class ShipmentKind(enum.IntEnum):
    """Which way the goods travel (crossdock.shipment.v1.ShipmentKind); UNSPECIFIED is only ever
    read (documents stored before kinds existed) and means OUTBOUND."""

    UNSPECIFIED = 0
    OUTBOUND = 1
    RETURN = 2


class LabelVoid(enum.IntEnum):
    """Where voiding a cancelled shipment's label stands (crossdock.shipment.v1.LabelVoidStatus)."""

    UNSPECIFIED = 0  # no label to void
    PENDING = 1
    VOIDED = 2
    FAILED = 3


class TrackingStatus(enum.IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    PICKED_UP = 2
    IN_TRANSIT = 3
    OUT_FOR_DELIVERY = 4
    DELIVERED = 5
    DELIVERY_FAILED = 6
    DELIVERY_DELAYED = 7
    ON_HOLD = 8
    READY_FOR_PICKUP = 9
    RETURNED_TO_SENDER = 10
    CANCELLED = 11
    UNKNOWN = 12


class IncidentReason(enum.IntEnum):
    UNSPECIFIED = 0
    RECIPIENT_ABSENT = 1
    ADDRESS_PROBLEM = 2
    REFUSED = 3
    DAMAGED = 4
    LOST = 5
    WEATHER = 6
    CUSTOMS = 7
    CARRIER_DELAY = 8
    PAYMENT_DUE = 9
    OTHER = 10


class ServiceLevel(enum.IntEnum):
    UNSPECIFIED = 0
    ECONOMY = 1
    STANDARD = 2
    EXPEDITED = 3
    OVERNIGHT = 4


# Statuses no scan can move a shipment out of.
TERMINAL = frozenset(
    {
        ShipmentStatus.DELIVERED,
        ShipmentStatus.RETURNED_TO_SENDER,
        ShipmentStatus.CANCELLED,
        ShipmentStatus.LABEL_FAILED,
    }
)

# A shipment can be cancelled until the carrier has the parcels: before its label, with a
# booked label (voided), or after booking failed. Every other status is on the road or done.
CANCELLABLE = frozenset(
    {ShipmentStatus.CREATED, ShipmentStatus.MANIFESTED, ShipmentStatus.LABEL_FAILED}
)

# How far along the journey each progress milestone is; a scan may only move this forwards.
PROGRESS_RANK: dict[ShipmentStatus, int] = {
    ShipmentStatus.CREATED: 0,
    ShipmentStatus.MANIFESTED: 1,
    ShipmentStatus.PICKED_UP: 2,
    ShipmentStatus.IN_TRANSIT: 3,
    ShipmentStatus.OUT_FOR_DELIVERY: 4,
    ShipmentStatus.DELIVERED: 5,
    ShipmentStatus.RETURNED_TO_SENDER: 5,
}
