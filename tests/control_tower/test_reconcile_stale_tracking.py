"""stale_tracking's judgement of a page of shipments, and its refusals without targets.

Its correction, carrier-adapter's PollTracking, runs against the real service in
tests/carrier_adapter/test_service_poll_tracking.py. The check against the real shipment and
carrier-adapter together is not tested yet.
"""

from __future__ import annotations

import pytest
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import (
    CHECKS,
    CheckContext,
)
from services.control_tower.app.reconciliation.checks.stale_tracking import StaleTracking
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift

HOUR = 3600.0
IN_TRANSIT = shipment_pb2.SHIPMENT_STATUS_IN_TRANSIT
# 600 simulated seconds a real second: the label scan (2 min after booking) is due 0.2 s after
# booking, and the next (pickup, 3 h) 18 s after, past these tests.
TIME_SCALE = "600"


def stamp(moment: float) -> Timestamp:
    return Timestamp(seconds=int(moment))


def shipment(
    shipment_id: str,
    status: int = IN_TRANSIT,
    *,
    last_scan: float | None,
    tracking_number: str = "",
    updated: float = 0.0,
) -> shipment_pb2.Shipment:
    message = shipment_pb2.Shipment(
        shipment_id=shipment_id,
        order_id=f"ord_{shipment_id}",
        status=status,  # type: ignore[arg-type]
        carrier="sandbox",
        tracking_number=tracking_number,
        update_time=stamp(updated),
    )
    if last_scan is not None:
        message.last_scan_time.CopyFrom(stamp(last_scan))
    return message


# ---- the check's judgement of a page ---------------------------------------------------------


def test_it_is_registered_with_its_owner() -> None:
    assert isinstance(CHECKS["stale_tracking"], StaleTracking)
    assert CHECK_OWNERS["stale_tracking"] == "carrier-adapter"
    assert StaleTracking.action == "carrier-adapter.PollTracking"


def test_a_last_scan_older_than_the_limit_is_a_drift_a_newer_one_is_not() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    drifts = StaleTracking.drifts(
        [
            shipment("old", last_scan=now - 30 * HOUR),
            shipment("fresh", last_scan=now - 2 * HOUR),
            shipment("edge", last_scan=now - 24 * HOUR),
            shipment(
                "out", shipment_pb2.SHIPMENT_STATUS_OUT_FOR_DELIVERY, last_scan=now - 25 * HOUR
            ),
            shipment(
                "noscan",
                shipment_pb2.SHIPMENT_STATUS_PICKED_UP,
                last_scan=None,
                updated=now - 48 * HOUR,
            ),
            # Delivered between the list and the judgement: not with the carrier any more.
            shipment("done", shipment_pb2.SHIPMENT_STATUS_DELIVERED, last_scan=now - 99 * HOUR),
        ],
        now,
        24 * HOUR,
    )
    assert drifts == [
        Drift("old", "ord_old", "in transit, last scan at 2025-12-30T18:00:00Z (30.0 h ago)"),
        Drift("out", "ord_out", "out for delivery, last scan at 2025-12-30T23:00:00Z (25.0 h ago)"),
        Drift(
            "noscan",
            "ord_noscan",
            "picked up, no scan recorded, updated at 2025-12-30T00:00:00Z (48.0 h ago)",
        ),
    ]


async def test_a_scan_without_the_owners_targets_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the shipment and carrier-adapter targets"):
        async for _ in StaleTracking().scan(CheckContext()):
            pass


async def test_a_correction_without_targets_is_refused() -> None:
    with pytest.raises(OwnerRefused) as refused:
        await StaleTracking().correct(CheckContext(), Drift("s", "o", "in transit"))
    assert refused.value.code == "UNIMPLEMENTED"
