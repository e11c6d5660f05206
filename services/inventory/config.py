"""Inventory's settings (prefix CROSSDOCK_INVENTORY_), read once at start.

DB_URL, GRPC_PORT and METRICS_PORT are required; NATS_URL, MIGRATE_ON_START and the relay and
consumer knobs come from the kit's ConsumingServiceConfig with their usual defaults.
"""

from __future__ import annotations

from services.kit.runtime import ConsumingServiceConfig


class InventoryConfig(ConsumingServiceConfig, service="inventory"):
    """The inventory service's configuration; it has no settings beyond the kit's."""
