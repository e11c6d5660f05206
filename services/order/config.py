"""Order's settings, read once at start from CROSSDOCK_ORDER_* environment variables."""

from __future__ import annotations

from datetime import timedelta

from services.kit.config import setting
from services.kit.runtime import ConsumingServiceConfig
from services.order.adapters.store import SERVICE
from services.order.domain import StepTimeouts


class OrderConfig(ConsumingServiceConfig, service=SERVICE):
    inventory_target: str = setting(description="host:port of the inventory gRPC service")
    shipment_target: str = setting(
        default="",
        description="host:port of the shipment service, which retries failed label bookings "
        "when an operator retries the order; empty skips those retries",
    )
    reserve_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long reservation may take before EXCEPTION"
    )
    release_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long release to the warehouse may take"
    )
    pick_timeout_seconds: float = setting(
        default=4 * 3600.0, minimum=0.01, description="how long a pick may stay unconfirmed"
    )
    sweep_interval_seconds: float = setting(
        default=5.0, minimum=0.01, description="how often overdue steps are looked for"
    )
    command_poll_interval_seconds: float = setting(
        default=0.5, minimum=0.01, description="saga command worker fallback poll interval"
    )

    def step_timeouts(self) -> StepTimeouts:
        """The saga's step timeouts (steps without a setting keep the domain's defaults)."""
        return StepTimeouts(
            reserve=timedelta(seconds=self.reserve_timeout_seconds),
            release_to_warehouse=timedelta(seconds=self.release_timeout_seconds),
            pick=timedelta(seconds=self.pick_timeout_seconds),
        )
