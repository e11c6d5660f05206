"""Owner events that open and fix exceptions, as their producers publish them, with the hand
count of what the workbench must show for them whatever order they arrive in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import carrier_events_pb2, order_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.control_tower.domain.exceptions import ExceptionKind
from services.kit.ids import resource_id
from tests.control_tower.lifecycle import T0, Published, published


@dataclass(frozen=True)
class Expected:
    """What the workbench shows for one (kind, subject)."""

    kind: ExceptionKind
    subject_id: str
    order_id: str
    opened_at: float
    occurrences: int
    detail: str
    # The event that closed it, or None while open.
    closed_by: Published | None = None


@dataclass
class Scenario:
    events: list[Published] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)


def _ref(shipment_id: str, order_id: str, tracking: str = "") -> shipment_events_pb2.ShipmentRef:
    return shipment_events_pb2.ShipmentRef(
        shipment_id=shipment_id, order_id=order_id, tracking_number=tracking
    )


def label_failed(
    shipment_id: str, order_id: str, at: float, reason: str, failure_code: str = ""
) -> Published:
    """What shipment publishes when a label booking fails past its retries, or at once when its
    outcome is unknown at the carrier (`failure_code` LABEL_OUTCOME_UNKNOWN)."""
    message = shipment_events_pb2.ShipmentDeliveryException(
        shipment=_ref(shipment_id, order_id),
        incident_reason=tracking_pb2.INCIDENT_REASON_OTHER,
        description=f"label booking failed: {reason}",
        failure_code=failure_code,
    )
    return published(message, shipment_id, at, f"corr-{order_id}")


def outcome_unknown(shipment_id: str, order_id: str, at: float) -> Published:
    """A label the carrier may have booked before failing (carrier-adapter refused to ask again)."""
    return label_failed(
        shipment_id, order_id, at, "FAILED_PRECONDITION: may have booked", "LABEL_OUTCOME_UNKNOWN"
    )


def order_exception_raised(
    order_id: str,
    episode: int,
    at: float,
    reason: str,
    step: order_pb2.FulfillmentStep.ValueType = order_pb2.FULFILLMENT_STEP_AWAIT_PICK,
) -> Published:
    """What order publishes when it goes to EXCEPTION (or stays there for a new reason)."""
    message = order_events_pb2.OrderExceptionRaised(
        order_id=order_id, partner_id="ptn_x", episode=episode, step=step, reason=reason
    )
    return published(message, order_id, at, f"corr-{order_id}")


def order_exception_cleared(
    order_id: str,
    episode: int,
    at: float,
    clearance: order_events_pb2.OrderExceptionClearance.ValueType = (
        order_events_pb2.ORDER_EXCEPTION_CLEARANCE_PROGRESSED
    ),
) -> Published:
    message = order_events_pb2.OrderExceptionCleared(
        order_id=order_id, partner_id="ptn_x", episode=episode, clearance=clearance
    )
    return published(message, order_id, at, f"corr-{order_id}")


def order_detail(reason: str, step: str = "AWAIT_PICK") -> str:
    return f"order in EXCEPTION at {step}: {reason}"


def manifested(shipment_id: str, order_id: str, at: float, tracking: str = "") -> Published:
    ship = shipment_pb2.Shipment(
        shipment_id=shipment_id, order_id=order_id, carrier="sandbox", tracking_number=tracking
    )
    return published(
        shipment_events_pb2.ShipmentManifested(shipment=ship), shipment_id, at, f"corr-{order_id}"
    )


def code_unmapped(carrier: str, code: str, tracking: str, at: float) -> Published:
    message = carrier_events_pb2.CarrierCodeUnmapped(
        carrier=carrier, tracking_number=tracking, carrier_status_code=code, description="odd"
    )
    return published(message, tracking, at, "corr-scan")


def code_mapped(carrier: str, code: str, at: float) -> Published:
    message = carrier_events_pb2.CarrierCodeMapped(
        carrier=carrier,
        carrier_status_code=code,
        status=tracking_pb2.TRACKING_STATUS_IN_TRANSIT,
        version=1,
        operator="ops",
        note="per the carrier's docs",
    )
    return published(message, f"{carrier}:{code}", at, "corr-map")


def mixed() -> Scenario:
    """Every kind, open and fixed, with events that must open nothing."""
    s = Scenario()
    order = resource_id("ord")

    # A label that failed twice (after a retry), then was booked: closed by the manifest.
    fixed = resource_id("shp")
    first, again = (
        label_failed(fixed, order, T0 + 1, "timeout"),
        label_failed(fixed, order, T0 + 3, "carrier down"),
    )
    fix = manifested(fixed, order, T0 + 5)
    s.events += [first, again, fix]
    s.expected.append(
        Expected(
            ExceptionKind.LABEL_FAILED, fixed, order, T0 + 1, 2, again.message.description, fix
        )
    )

    # A label that failed and is still failing.
    failing, other_order = resource_id("shp"), resource_id("ord")
    failed = label_failed(failing, other_order, T0 + 2, "no rate")
    s.events.append(failed)
    s.expected.append(
        Expected(
            ExceptionKind.LABEL_FAILED,
            failing,
            other_order,
            T0 + 2,
            1,
            "label booking failed: no rate",
        )
    )

    # A label failure whose shipment was then cancelled: closed by the cancellation.
    dropped = resource_id("shp")
    dropped_failed = label_failed(dropped, order, T0 + 2, "no rate")
    cancelled = published(
        shipment_events_pb2.ShipmentCancelled(
            shipment=shipment_pb2.Shipment(shipment_id=dropped, order_id=order)
        ),
        dropped,
        T0 + 7,
        "corr",
    )
    s.events += [dropped_failed, cancelled]
    s.expected.append(
        Expected(
            ExceptionKind.LABEL_FAILED,
            dropped,
            order,
            T0 + 2,
            1,
            "label booking failed: no rate",
            cancelled,
        )
    )

    # A carrier's delivery exception (it has a tracking status) is not a label failure.
    carrier_trouble = resource_id("shp")
    s.events.append(
        published(
            shipment_events_pb2.ShipmentDeliveryException(
                shipment=_ref(carrier_trouble, order),
                status=tracking_pb2.TRACKING_STATUS_DELIVERY_FAILED,
                description="address not found",
            ),
            carrier_trouble,
            T0 + 4,
            "corr",
        )
    )

    # Voids: one failing, one failed then voided.
    void_failing, void_fixed = resource_id("shp"), resource_id("shp")
    for shipment_id, at in ((void_failing, T0 + 3), (void_fixed, T0 + 4)):
        s.events.append(
            published(
                shipment_events_pb2.ShipmentLabelVoidFailed(
                    shipment=_ref(shipment_id, order), label_id="lbl_1", reason="HTTP 503"
                ),
                shipment_id,
                at,
                "corr",
            )
        )
    voided = published(
        shipment_events_pb2.ShipmentLabelVoided(shipment=_ref(void_fixed, order)),
        void_fixed,
        T0 + 9,
        "corr",
    )
    s.events.append(voided)
    detail = "voiding label lbl_1 failed: HTTP 503"
    s.expected += [
        Expected(ExceptionKind.LABEL_VOID_FAILED, void_failing, order, T0 + 3, 1, detail),
        Expected(ExceptionKind.LABEL_VOID_FAILED, void_fixed, order, T0 + 4, 1, detail, voided),
    ]

    # Carrier codes: one unmapped code seen on two scans then mapped (its tracking number is
    # linked to an order by a manifest), one still unmapped; an incident code opens nothing.
    tracking = f"1Z{random.randrange(10**12):012d}"
    linked = resource_id("shp")
    s.events.append(manifested(linked, order, T0, tracking))
    code = f"X{random.randrange(10**6)}"
    unmapped = [code_unmapped("sandbox", code, tracking, T0 + at) for at in (6, 8)]
    mapped = code_mapped("sandbox", code, T0 + 10)
    s.events += [*unmapped, mapped]
    s.expected.append(
        Expected(
            ExceptionKind.CARRIER_CODE_UNMAPPED,
            f"sandbox:{code}",
            order,
            T0 + 6,
            2,
            _code_detail(tracking, code),
            mapped,
        )
    )
    still = f"Y{random.randrange(10**6)}"
    unlinked = f"1Z{random.randrange(10**12):012d}"
    s.events.append(code_unmapped("sandbox", still, unlinked, T0 + 11))
    s.expected.append(
        Expected(
            ExceptionKind.CARRIER_CODE_UNMAPPED,
            f"sandbox:{still}",
            "",
            T0 + 11,
            1,
            _code_detail(unlinked, still),
        )
    )
    incident = carrier_events_pb2.CarrierCodeUnmapped(
        carrier="sandbox", tracking_number=tracking, carrier_incident_code="Q9"
    )
    s.events.append(published(incident, tracking, T0 + 12, "corr"))
    _order_exceptions(s)
    _outcomes_unknown(s)
    return s


def _order_exceptions(s: Scenario) -> None:
    """Orders in EXCEPTION: one exception per episode, closed by its own clear only."""
    K = ExceptionKind.ORDER_EXCEPTION
    # Raised, retried (cleared), failed again later for one reason then another: two rows.
    order = resource_id("ord")
    first = order_exception_raised(order, 1, T0 + 1, "AWAIT_PICK not done")
    retried = order_exception_cleared(
        order, 1, T0 + 3, order_events_pb2.ORDER_EXCEPTION_CLEARANCE_RETRIED
    )
    again = order_exception_raised(order, 2, T0 + 5, "AWAIT_PICK not done again")
    other_reason = order_exception_raised(
        order, 2, T0 + 6, "shipment failed", order_pb2.FULFILLMENT_STEP_AWAIT_SHIPMENT
    )
    s.events += [first, retried, again, other_reason]
    s.expected += [
        Expected(K, f"{order}:1", order, T0 + 1, 1, order_detail("AWAIT_PICK not done"), retried),
        Expected(
            K,
            f"{order}:2",
            order,
            T0 + 5,
            2,
            order_detail("shipment failed", "AWAIT_SHIPMENT"),
        ),
    ]
    # A clear that arrives before its raise (any arrival order does it): never shown open.
    quick = resource_id("ord")
    raised = order_exception_raised(quick, 1, T0 + 2, "reserving at WH-EAST failed")
    cleared = order_exception_cleared(quick, 1, T0 + 4)
    s.events += [cleared, raised]
    s.expected.append(
        Expected(
            K, f"{quick}:1", quick, T0 + 2, 1, order_detail("reserving at WH-EAST failed"), cleared
        )
    )
    # A clear whose raise is never published (an exception older than these events): nothing.
    s.events.append(order_exception_cleared(resource_id("ord"), 1, T0 + 7))


def _outcomes_unknown(s: Scenario) -> None:
    """Labels whose outcome is unknown at the carrier: their own kind, fixed like a failure."""
    K = ExceptionKind.LABEL_OUTCOME_UNKNOWN
    order = resource_id("ord")
    unknown, dropped = resource_id("shp"), resource_id("shp")
    detail = "label booking failed: FAILED_PRECONDITION: may have booked"
    cancelled = published(
        shipment_events_pb2.ShipmentCancelled(
            shipment=shipment_pb2.Shipment(shipment_id=dropped, order_id=order)
        ),
        dropped,
        T0 + 9,
        "corr",
    )
    s.events += [outcome_unknown(unknown, order, T0 + 3), outcome_unknown(dropped, order, T0 + 4)]
    s.events.append(cancelled)
    s.expected += [
        Expected(K, unknown, order, T0 + 3, 1, detail),
        Expected(K, dropped, order, T0 + 4, 1, detail, cancelled),
    ]


def _code_detail(tracking: str, code: str) -> str:
    return f"scan of {tracking} stored as UNKNOWN: {code} 'odd'"
