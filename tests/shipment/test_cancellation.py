"""Cancelling shipments inside the real spine: a label the carrier will not void becomes a
visible exception an operator can retry, and the aggregate's void bookkeeping.

The happy paths (cancel before the pick, while the label is booked, after it) are e2e tests over
REST (tests/e2e/test_cancellation.py); the races are in tests/order/test_cancel_races.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as svc
from nats.aio.client import Client as NATS

from services.kit.errors import FailedPrecondition
from services.kit.values import Dimensions, DimensionUnit, Weight, WeightUnit
from services.shipment.domain.events import (
    ShipmentCancelled,
    ShipmentLabelVoided,
    ShipmentLabelVoidFailed,
)
from services.shipment.domain.model import LabelVoid, ShipmentStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import (
    Label,
    OrderRef,
    Package,
    PendingPick,
    Shipment,
    ShipmentNotCancellable,
)
from services.shipment.domain.tracking import Progress
from tests.fixtures.nats import NatsServer
from tests.fixtures.spine import EAST, order_request, running_spine, seed_catalog, sqlite_urls
from tests.fixtures.waiting import wait_for

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
UNITS = (PickedUnits(1, "KETTLE", 2, ""),)


def _shipment() -> Shipment:
    pick = PendingPick("pck_1", "ord_1", EAST, UNITS, "corr-1")
    ref = OrderRef("ord_1", "ptn_1", 2, None)  # type: ignore[arg-type]
    package = Package(
        "pkg_1",
        Weight(Decimal(3), WeightUnit.KILOGRAM),
        Dimensions(Decimal(30), Decimal(20), Decimal(10), DimensionUnit.CENTIMETER),
        UNITS,
    )
    shipment = Shipment.create("shp_1", pick, ref, [package], None, T0)  # type: ignore[arg-type]
    shipment.pull_events()
    return shipment


def test_cancel_before_the_label_needs_no_void_and_announces_the_units() -> None:
    shipment = _shipment()
    assert shipment.cancel("customer asked", T0)
    assert (
        shipment.status is ShipmentStatus.CANCELLED and shipment.label_void is LabelVoid.UNSPECIFIED
    )
    [event] = shipment.pull_events()
    assert isinstance(event, ShipmentCancelled) and event.items == UNITS
    assert not shipment.cancel("again", T0) and shipment.pull_events() == []
    with pytest.raises(FailedPrecondition, match="no label to void"):
        shipment.retry_void(T0)


def test_a_label_is_voided_or_fails_visibly_and_can_be_retried() -> None:
    shipment = _shipment()
    shipment.manifest(Label("lbl_1", "sandbox", "SBX1"), T0)
    shipment.pull_events()
    shipment.cancel("customer asked", T0)
    assert shipment.label_void is LabelVoid.PENDING
    shipment.pull_events()

    assert shipment.void_attempt_failed(1, "UNAVAILABLE: carrier down")
    assert shipment.fail_void("FAILED_PRECONDITION: already picked up", T0)
    assert shipment.label_void is LabelVoid.FAILED
    [failed] = shipment.pull_events()
    assert isinstance(failed, ShipmentLabelVoidFailed) and failed.label_id == "lbl_1"
    assert not shipment.fail_void("again", T0)  # once

    assert shipment.retry_void(T0) and shipment.label_void is LabelVoid.PENDING
    assert shipment.label_voided(T0) and shipment.label_void is LabelVoid.VOIDED
    [voided] = shipment.pull_events()
    assert isinstance(voided, ShipmentLabelVoided)
    assert not shipment.label_voided(T0) and not shipment.retry_void(T0)


def test_a_booking_that_lands_after_the_cancel_is_recorded_and_its_void_is_due() -> None:
    shipment = _shipment()
    shipment.cancel("customer asked", T0)  # the booking was in flight
    shipment.pull_events()
    assert shipment.manifest(Label("lbl_1", "sandbox", "SBX1"), T0)
    assert shipment.status is ShipmentStatus.CANCELLED
    assert shipment.label_id == "lbl_1" and shipment.label_void is LabelVoid.PENDING
    assert shipment.pull_events() == []  # no "manifested" for a cancelled shipment


def test_once_the_carrier_has_the_parcels_a_cancel_is_refused_and_changes_nothing() -> None:
    shipment = _shipment()
    shipment.manifest(Label("lbl_1", "sandbox", "SBX1"), T0)
    shipment.status = ShipmentStatus.IN_TRANSIT
    shipment.progress = Progress(ShipmentStatus.IN_TRANSIT, ShipmentStatus.IN_TRANSIT)
    shipment.pull_events()
    with pytest.raises(ShipmentNotCancellable, match="SHIPMENT_STATUS_IN_TRANSIT") as refused:
        shipment.cancel("too late", T0)
    assert "return" in refused.value.message
    assert shipment.status is ShipmentStatus.IN_TRANSIT and shipment.pull_events() == []


async def test_a_void_the_carrier_refuses_is_an_exception_on_the_order_and_can_be_retried(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> None:
    # The sandbox runs fast but pushes no scans: it has picked the parcel up by the time the
    # cancel arrives, while shipment (which heard nothing) still sees a label not picked up.
    carrier = {"SANDBOX_PUSH": "off", "ACCOUNT_SANDBOX_TIME_SCALE": "1000000"}
    async with running_spine(
        sqlite_urls(tmp_path), nats_server.url, nats_client, carrier=carrier
    ) as spine:
        await seed_catalog(spine.inventory, {"KETTLE": (1.5, "40.00")}, {("KETTLE", EAST): 10})
        placed = await spine.orders.CreateOrder(order_request("VOID-1", [("KETTLE", 1, "40.00")]))
        order_id = placed.order.order_id

        async def shipments() -> list[shipment_pb2.Shipment]:
            answer = await spine.shipments.ListShipments(
                svc.ListShipmentsRequest(order_id=order_id)
            )
            return list(answer.shipments)

        await wait_for(
            shipments,
            lambda s: len(s) == 1 and s[0].status == shipment_pb2.SHIPMENT_STATUS_MANIFESTED,
        )
        cancelled = await spine.orders.CancelOrder(
            order_svc.CancelOrderRequest(order_id=order_id, reason="customer asked")
        )
        assert cancelled.order.status == order_pb2.ORDER_STATUS_CANCELLED

        failed = await wait_for(
            shipments, lambda s: s[0].label_void == shipment_pb2.LABEL_VOID_STATUS_FAILED
        )
        assert failed[0].status == shipment_pb2.SHIPMENT_STATUS_CANCELLED
        assert "picked up" in failed[0].failure_reason

        async def timeline() -> list[order_pb2.TimelineEntry]:
            answer = await spine.orders.GetOrderTimeline(
                order_svc.GetOrderTimelineRequest(order_id=order_id)
            )
            return list(answer.entries)

        entries = await wait_for(
            timeline, lambda e: any("voiding label" in x.detail for x in e), timeout=20
        )
        [exception] = [e for e in entries if "voiding label" in e.detail]
        assert exception.kind == order_pb2.TIMELINE_ENTRY_KIND_EXCEPTION
        assert "RetryLabelVoid" in exception.detail

        # The operator retries; the carrier still refuses: FAILED again, never lost.
        retried = await spine.shipments.RetryLabelVoid(
            svc.RetryLabelVoidRequest(shipment_id=failed[0].shipment_id)
        )
        assert retried.shipment.label_void == shipment_pb2.LABEL_VOID_STATUS_PENDING
        await wait_for(
            shipments, lambda s: s[0].label_void == shipment_pb2.LABEL_VOID_STATUS_FAILED
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await spine.shipments.RetryLabelVoid(
                svc.RetryLabelVoidRequest(shipment_id="shp_" + "0" * 26)
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
