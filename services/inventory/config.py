"""Inventory's settings (prefix CROSSDOCK_INVENTORY_), read once at start.

DB_URL, GRPC_PORT and METRICS_PORT are required; NATS_URL, MIGRATE_ON_START and the relay and
consumer knobs come from the kit's ConsumingServiceConfig with their usual defaults.
RETURNED_TO_SENDER_CONDITION says where parcels the carrier brought back go.
"""

from __future__ import annotations

from typing import Literal

from services.inventory.domain import StockCondition
from services.kit.config import setting
from services.kit.runtime import ConsumingServiceConfig

ReturnedToSenderCondition = Literal["sellable", "quarantine"]


class InventoryConfig(ConsumingServiceConfig, service="inventory"):
    """The inventory service's configuration."""

    returned_to_sender_condition: ReturnedToSenderCondition = setting(
        default="quarantine",
        description="where units of a parcel returned to sender go: sellable (back on hand) or "
        "quarantine (held as non-sellable until inspected)",
    )

    @property
    def returned_to_sender_stock(self) -> StockCondition:
        """RETURNED_TO_SENDER_CONDITION as the domain's condition."""
        return StockCondition[self.returned_to_sender_condition.upper()]
