"""The reconciliation checks: what each compares, whose RPC corrects it, how often it runs.

A check reads the owners only through their RPCs (never another service's database) and pages
through their data: `scan` yields one `ScanPage` per page it read (how many items it compared,
and the drifts among them), so the reconciler records a page per unit of work and reports
progress. `correct` asks the owner to fix one drift and returns the owner's answer, or raises
OwnerRefused (the refusal is recorded on the finding, which stays open).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import event_ledger_pb2_grpc as ledger_grpc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc

from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift

__all__ = [
    "CHECKS",
    "Check",
    "CheckContext",
    "EventFlowSettings",
    "ScanPage",
    "StaleTrackingSettings",
    "declare",
    "registry",
]


@dataclass(frozen=True)
class ScanPage:
    """One page a scan read: how many items it compared, and the drifts among them."""

    scanned: int
    drifts: list[Drift] = field(default_factory=list)


@dataclass(frozen=True)
class EventFlowSettings:
    """event_flow's window [now - lookback, now - grace] (the grace leaves events in flight
    unjudged), and how old an unsent outbox row is before it is a finding."""

    lookback_seconds: float = 3600.0
    grace_seconds: float = 60.0
    unsent_minutes: float = 5.0


@dataclass(frozen=True)
class StaleTrackingSettings:
    """stale_tracking: how long a parcel with the carrier may go without a scan."""

    stale_hours: float = 24.0


@dataclass(frozen=True)
class CheckContext:
    """The owners' clients a check reads and corrects through (None or absent: no target
    configured), the checks' own settings, and the clock their windows are cut from."""

    shipment: shipment_grpc.ShipmentServiceAsyncStub | None = None
    billing: billing_grpc.BillingServiceAsyncStub | None = None
    carrier: carrier_grpc.CarrierAdapterServiceAsyncStub | None = None
    inventory: inventory_grpc.InventoryServiceAsyncStub | None = None
    order: order_grpc.OrderServiceAsyncStub | None = None
    # service → its EventLedgerService (every kit service with an outbox or consumers).
    ledgers: dict[str, ledger_grpc.EventLedgerServiceAsyncStub] = field(default_factory=dict)
    event_flow: EventFlowSettings = field(default_factory=EventFlowSettings)
    stale_tracking: StaleTrackingSettings = field(default_factory=StaleTrackingSettings)
    # reservations: a reservation younger than this is never judged leaked (its order's
    # answer may still be in flight).
    reservations_grace_seconds: float = 600.0
    # labels: a label claimed this recently is never judged (its booking may still be on its
    # way to its shipment, or still at the carrier).
    labels_grace_seconds: float = 600.0
    # order_totals: an order changed this recently is never judged (the shipment cancellations
    # and credits it asked for may still be in flight).
    order_totals_grace_seconds: float = 600.0
    clock: Callable[[], float] = time.time


@runtime_checkable
class Check(Protocol):
    """One reconciliation check."""

    # Its name: snake_case, in config settings, metrics and subjects.
    name: str
    # The service whose RPC corrects its drifts (the owner of its findings' exceptions).
    owner: str
    # The owner's RPC `correct` calls, e.g. "shipment.ReemitDelivered".
    action: str
    default_interval_seconds: float

    def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]: ...

    async def correct(self, ctx: CheckContext, drift: Drift) -> str: ...


def declare(check: Check) -> Check:
    """Make a check's owner known to the workbench (its findings' exceptions are the owner's)."""
    CHECK_OWNERS[check.name] = check.owner
    return check


def registry(*checks: Check) -> dict[str, Check]:
    """name → check, each declared."""
    return {check.name: declare(check) for check in checks}


def _production() -> dict[str, Check]:
    from services.control_tower.app.reconciliation.checks.delivered_vs_invoiced import (
        DeliveredVsInvoiced,
    )
    from services.control_tower.app.reconciliation.checks.event_flow import EventFlow
    from services.control_tower.app.reconciliation.checks.labels import Labels
    from services.control_tower.app.reconciliation.checks.order_totals import OrderTotals
    from services.control_tower.app.reconciliation.checks.reservations import Reservations
    from services.control_tower.app.reconciliation.checks.stale_tracking import StaleTracking

    return registry(
        DeliveredVsInvoiced(), EventFlow(), StaleTracking(), Reservations(), Labels(), OrderTotals()
    )


# The checks the tower runs.
CHECKS: Mapping[str, Check] = _production()

ProgressCallback = Callable[[str, int, int], None]
