"""TowerConfig: the control tower's settings, read once at start (prefix CROSSDOCK_CONTROL_TOWER_).

Only the kit's: its database, NATS, and the consumers' batching (services.kit.runtime).
"""

from __future__ import annotations

from services.control_tower.adapters.store import SERVICE
from services.kit.runtime import ConsumingServiceConfig


class TowerConfig(ConsumingServiceConfig, service=SERVICE):
    """The control tower's settings."""
