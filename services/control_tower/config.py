"""TowerConfig: the control tower's settings, read once at start (prefix CROSSDOCK_CONTROL_TOWER_).

The kit's (its database, NATS, the consumers' batching: services.kit.runtime), plus the business
flows': one SLA per flow (seconds an item may wait before it is a breach; defaults in
services.control_tower.domain.flows), the transit allowance of shipments without a carrier
promise, and how often the flow gauges are computed; the owners the exceptions workbench's
actions call (shipment, carrier-adapter, order; order, inventory, shipment and billing for
redrives of their dead letters), how often the DLQ is read, and each exception kind's SLA;
reconciliation: whether the schedule runs, and per check its mode (`reconcile_<check>_mode`:
correct, the default, or report_only) and interval (`reconcile_interval_<check>_seconds`),
event_flow's window and unsent cut-off, stale_tracking's age of a stale last scan, and
reservations' grace before an active reservation of a finished or unknown order is leaked,
and labels' grace before a label is judged, and order_totals' grace before a finished order
is judged.
"""

from __future__ import annotations

from typing import Literal

from services.control_tower.adapters.store import SERVICE
from services.control_tower.app import FlowSettings
from services.control_tower.app.reconcile import ReconcileSettings
from services.control_tower.app.reconciliation.checks import (
    CHECKS,
    CheckContext,
    EventFlowSettings,
    StaleTrackingSettings,
)
from services.control_tower.app.workbench import ExceptionSettings
from services.control_tower.domain.exceptions import KINDS, ExceptionKind
from services.control_tower.domain.flows import (
    DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
    FLOWS,
    FLOWS_BY_NAME,
)
from services.control_tower.domain.reconciliation import Mode
from services.kit.config import ConfigError, setting
from services.kit.runtime import ConsumingServiceConfig


def _sla(flow_name: str) -> float:
    flow = FLOWS_BY_NAME[flow_name]
    return setting(  # type: ignore[no-any-return]
        default=flow.default_sla,
        minimum=1,
        description=f"SLA of flow {flow.name} in seconds: {flow.description}",
    )


def _exception_sla(kind: ExceptionKind) -> float:
    return setting(  # type: ignore[no-any-return]
        default=KINDS[kind].default_sla,
        minimum=1,
        description=f"how long a {kind.label} exception may stay open before it is a breach "
        "(seconds)",
    )


ReconcileMode = Literal["correct", "report_only"]


def _reconcile_mode(check: str) -> ReconcileMode:
    return setting(  # type: ignore[no-any-return]
        default="correct",
        description=f"reconciliation check {check}: correct (ask the owner to fix each drift, "
        "the default) or report_only (record findings only)",
    )


def _reconcile_interval(check: str) -> float:
    return setting(  # type: ignore[no-any-return]
        default=CHECKS[check].default_interval_seconds,
        minimum=10,
        description=f"how often reconciliation check {check} runs (seconds)",
    )


class TowerConfig(ConsumingServiceConfig, service=SERVICE):
    """The control tower's settings."""

    sla_awaiting_allocation_seconds: float = _sla("awaiting_allocation")
    sla_released_not_picked_seconds: float = _sla("released_not_picked")
    sla_picked_no_label_seconds: float = _sla("picked_no_label")
    sla_labelled_not_picked_up_seconds: float = _sla("labelled_not_picked_up")
    sla_in_transit_past_promise_seconds: float = _sla("in_transit_past_promise")
    sla_delivered_not_invoiced_seconds: float = _sla("delivered_not_invoiced")
    sla_return_authorized_not_received_seconds: float = _sla("return_authorized_not_received")
    sla_return_received_not_credited_seconds: float = _sla("return_received_not_credited")
    # Off every order's critical path, so its batches may wait to grow: at a few orders a second
    # each durable applies one transaction every quarter second instead of one per few events
    # (the tower sees every event of every lifecycle; a transaction has a fixed cost).
    consumer_linger_ms: float = setting(
        default=250.0,
        minimum=0.0,
        maximum=1000.0,
        description="once fewer than a batch of events arrived, how long to wait for more to "
        "apply in the same transaction (0: none)",
    )
    transit_allowance_seconds: float = setting(
        default=DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
        minimum=1,
        description="how long after pickup a shipment whose carrier gave no estimated delivery "
        "is due (flow in_transit_past_promise)",
    )
    shipment_target: str = setting(
        description="host:port of shipment (the workbench's label retries)"
    )
    carrier_adapter_target: str = setting(
        description="host:port of carrier-adapter (the workbench's carrier code mappings)"
    )
    order_target: str = setting(
        description="host:port of order (the workbench's order step retries, and redrives of "
        "its dead letters)"
    )
    inventory_target: str = setting(
        description="host:port of inventory (redrives of its dead letters, and reconciliation "
        "check reservations)"
    )
    billing_target: str = setting(description="host:port of billing (redrives of its dead letters)")
    dead_letter_poll_seconds: float = setting(
        default=1.0,
        minimum=0.1,
        maximum=60,
        description="how often the DLQ stream is read into the exceptions workbench",
    )
    sla_exception_label_failed_seconds: float = _exception_sla(ExceptionKind.LABEL_FAILED)
    sla_exception_label_void_failed_seconds: float = _exception_sla(ExceptionKind.LABEL_VOID_FAILED)
    sla_exception_carrier_code_unmapped_seconds: float = _exception_sla(
        ExceptionKind.CARRIER_CODE_UNMAPPED
    )
    sla_exception_dead_letter_seconds: float = _exception_sla(ExceptionKind.DEAD_LETTER)
    sla_exception_order_exception_seconds: float = _exception_sla(ExceptionKind.ORDER_EXCEPTION)
    sla_exception_label_outcome_unknown_seconds: float = _exception_sla(
        ExceptionKind.LABEL_OUTCOME_UNKNOWN
    )
    sla_exception_reconciliation_finding_seconds: float = _exception_sla(
        ExceptionKind.RECONCILIATION_FINDING
    )
    flow_gauges_interval_seconds: float = setting(
        default=5.0,
        minimum=0.1,
        maximum=3600,
        description="how often the flow, DLQ and consumer gauges are recomputed",
    )

    reconcile_enabled: bool = setting(
        default=True,
        description="run the reconciliation checks on their schedules (RunReconciliation and "
        "`crossdock reconcile run` work either way)",
    )
    reconcile_poll_seconds: float = setting(
        default=30.0,
        minimum=1,
        maximum=3600,
        description="how often the reconciliation schedule is read for due checks",
    )
    reconcile_delivered_vs_invoiced_mode: ReconcileMode = _reconcile_mode("delivered_vs_invoiced")
    reconcile_interval_delivered_vs_invoiced_seconds: float = _reconcile_interval(
        "delivered_vs_invoiced"
    )
    reconcile_event_flow_mode: ReconcileMode = _reconcile_mode("event_flow")
    reconcile_interval_event_flow_seconds: float = _reconcile_interval("event_flow")
    reconcile_event_flow_lookback_seconds: float = setting(
        default=EventFlowSettings.lookback_seconds,
        minimum=60,
        maximum=30 * 24 * 3600,
        description="reconciliation check event_flow: how far back it compares published and "
        "applied events (seconds)",
    )
    reconcile_event_flow_grace_seconds: float = setting(
        default=EventFlowSettings.grace_seconds,
        minimum=0,
        maximum=3600,
        description="reconciliation check event_flow: events written this recently are still in "
        "flight and not judged; by when the event was written, not sent, so a re-emitted event "
        "stays judged (seconds)",
    )
    reconcile_event_flow_unsent_minutes: float = setting(
        default=EventFlowSettings.unsent_minutes,
        minimum=1,
        maximum=24 * 60,
        description="reconciliation check event_flow: an outbox row still unsent this long after "
        "it was written is a finding (minutes)",
    )
    reconcile_stale_tracking_mode: ReconcileMode = _reconcile_mode("stale_tracking")
    reconcile_interval_stale_tracking_seconds: float = _reconcile_interval("stale_tracking")
    reconcile_stale_tracking_hours: float = setting(
        default=StaleTrackingSettings.stale_hours,
        minimum=0.001,
        maximum=30 * 24,
        description="reconciliation check stale_tracking: a shipment with the carrier whose last "
        "scan is older than this is polled now (hours)",
    )
    reconcile_reservations_mode: ReconcileMode = _reconcile_mode("reservations")
    reconcile_interval_reservations_seconds: float = _reconcile_interval("reservations")
    reconcile_reservations_grace_seconds: float = setting(
        default=CheckContext.reservations_grace_seconds,
        minimum=0,
        maximum=24 * 3600,
        description="reconciliation check reservations: a reservation made this recently is "
        "never judged leaked, its order may still be committing (seconds)",
    )
    reconcile_labels_mode: ReconcileMode = _reconcile_mode("labels")
    reconcile_interval_labels_seconds: float = _reconcile_interval("labels")
    reconcile_labels_grace_seconds: float = setting(
        default=CheckContext.labels_grace_seconds,
        minimum=0,
        maximum=24 * 3600,
        description="reconciliation check labels: a label claimed this recently is never judged "
        "(its booking may still be reaching its shipment or the carrier) (seconds)",
    )
    reconcile_order_totals_mode: ReconcileMode = _reconcile_mode("order_totals")
    reconcile_interval_order_totals_seconds: float = _reconcile_interval("order_totals")
    reconcile_order_totals_grace_seconds: float = setting(
        default=CheckContext.order_totals_grace_seconds,
        minimum=0,
        maximum=24 * 3600,
        description="reconciliation check order_totals: an order changed this recently is "
        "never judged, its shipment cancellations and credits may still be in flight (seconds)",
    )

    def reconcile_settings(self) -> ReconcileSettings:
        """Each registered check's mode and interval (from its settings), and the switch."""
        return ReconcileSettings(
            modes={name: Mode(getattr(self, f"reconcile_{name}_mode")) for name in CHECKS},
            intervals={
                name: float(getattr(self, f"reconcile_interval_{name}_seconds")) for name in CHECKS
            },
            enabled=self.reconcile_enabled,
        )

    def event_flow_settings(self) -> EventFlowSettings:
        """event_flow's window and unsent cut-off."""
        if self.reconcile_event_flow_grace_seconds >= self.reconcile_event_flow_lookback_seconds:
            # Two settings' relation: the kit's per-setting checks cannot see it.
            raise ConfigError(
                [
                    f"{self.env_prefix}RECONCILE_EVENT_FLOW_GRACE_SECONDS: must be less than "
                    f"{self.env_prefix}RECONCILE_EVENT_FLOW_LOOKBACK_SECONDS "
                    f"({self.reconcile_event_flow_lookback_seconds:g}): the window would be empty"
                ]
            )
        return EventFlowSettings(
            lookback_seconds=self.reconcile_event_flow_lookback_seconds,
            grace_seconds=self.reconcile_event_flow_grace_seconds,
            unsent_minutes=self.reconcile_event_flow_unsent_minutes,
        )

    def stale_tracking_settings(self) -> StaleTrackingSettings:
        """stale_tracking's age of a last scan that makes a shipment stale."""
        return StaleTrackingSettings(stale_hours=self.reconcile_stale_tracking_hours)

    def dead_letter_targets(self) -> dict[str, str]:
        """The consuming services whose dead letters the workbench redrives, and their targets
        (each serves the kit's DeadLetterService on its gRPC port)."""
        return {
            "order": self.order_target,
            "inventory": self.inventory_target,
            "shipment": self.shipment_target,
            "billing": self.billing_target,
        }

    def exception_settings(self) -> ExceptionSettings:
        """Each exception kind's SLA (from its `sla_exception_<kind>_seconds` setting)."""
        return ExceptionSettings(
            slas={
                kind: float(getattr(self, f"sla_exception_{kind.label}_seconds"))
                for kind in ExceptionKind
            }
        )

    def flow_settings(self) -> FlowSettings:
        """Each flow's SLA (from its `sla_<flow>_seconds` setting) and the transit allowance."""
        return FlowSettings(
            slas={flow.name: float(getattr(self, f"sla_{flow.name}_seconds")) for flow in FLOWS},
            transit_allowance=self.transit_allowance_seconds,
        )
