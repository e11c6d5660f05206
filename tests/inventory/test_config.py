"""Inventory's own setting: where parcels returned to sender go."""

from __future__ import annotations

import pytest

from services.inventory.config import InventoryConfig
from services.inventory.domain import StockCondition
from services.kit.config import ConfigError

REQUIRED = {
    "CROSSDOCK_INVENTORY_DB_URL": "sqlite:///inventory.db",
    "CROSSDOCK_INVENTORY_GRPC_PORT": "0",
    "CROSSDOCK_INVENTORY_METRICS_PORT": "0",
}
VARIABLE = "CROSSDOCK_INVENTORY_RETURNED_TO_SENDER_CONDITION"


def test_returned_to_sender_units_are_quarantined_unless_configured_sellable() -> None:
    assert InventoryConfig.from_env(REQUIRED).returned_to_sender_stock is StockCondition.QUARANTINE
    sellable = InventoryConfig.from_env({**REQUIRED, VARIABLE: "sellable"})
    assert sellable.returned_to_sender_stock is StockCondition.SELLABLE


def test_an_unknown_condition_fails_the_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        InventoryConfig.from_env({**REQUIRED, VARIABLE: "damaged"})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{VARIABLE} must be one of sellable, quarantine")
