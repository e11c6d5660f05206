"""delivered_vs_invoiced's judgement of a page: a delivered outbound shipment with no invoice or
with two is a drift, a return parcel never is; a double invoice is refused for correction.
(The check's RPCs end to end: tests/control_tower/test_e2e_reconcile.py on the mesh.)"""

from __future__ import annotations

from typing import Any

import pytest
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CHECKS, CheckContext
from services.control_tower.app.reconciliation.checks.delivered_vs_invoiced import (
    DeliveredVsInvoiced,
)
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift

DELIVERED = Timestamp(seconds=1_767_225_600)  # 2026-01-01T00:00:00Z


def shipment(shipment_id: str, kind: int = shipment_pb2.SHIPMENT_KIND_OUTBOUND) -> Any:
    return shipment_pb2.Shipment(
        shipment_id=shipment_id,
        order_id=f"ord_{shipment_id}",
        status=shipment_pb2.SHIPMENT_STATUS_DELIVERED,
        kind=kind,  # type: ignore[arg-type]
        proof_of_delivery=shipment_pb2.ProofOfDelivery(deliver_time=DELIVERED),
    )


def test_it_is_registered_with_its_owner() -> None:
    assert isinstance(CHECKS["delivered_vs_invoiced"], DeliveredVsInvoiced)
    assert CHECK_OWNERS["delivered_vs_invoiced"] == "shipment"


def test_missing_and_double_invoices_are_drifts_one_invoice_is_not() -> None:
    drifts = DeliveredVsInvoiced._drifts(
        [
            shipment("a"),
            shipment("b"),
            shipment("c"),
            shipment("d", shipment_pb2.SHIPMENT_KIND_UNSPECIFIED),
            shipment("r", shipment_pb2.SHIPMENT_KIND_RETURN),
        ],
        {"b": ["INV-1"], "c": ["INV-3", "INV-2"]},
    )
    assert drifts == [
        Drift("a", "ord_a", "delivered at 2026-01-01T00:00:00Z, no invoice"),
        Drift("c", "ord_c", "delivered at 2026-01-01T00:00:00Z, 2 invoices: INV-2, INV-3"),
        # No kind recorded reads as outbound.
        Drift("d", "ord_d", "delivered at 2026-01-01T00:00:00Z, no invoice"),
    ]


async def test_a_double_invoice_is_left_to_an_operator() -> None:
    drift = Drift("c", "ord_c", "delivered at 2026-01-01T00:00:00Z, 2 invoices: INV-2, INV-3")
    with pytest.raises(OwnerRefused, match="more than one invoice") as refused:
        await DeliveredVsInvoiced().correct(CheckContext(), drift)
    assert refused.value.code == "NOT_CORRECTABLE"


async def test_a_scan_without_the_owners_targets_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the shipment and billing targets"):
        async for _ in DeliveredVsInvoiced().scan(CheckContext()):
            pass
