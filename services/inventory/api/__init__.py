"""Inventory's gRPC api: the servicer (`servicer`) and proto ↔ domain mapping (`mapping`)."""

from services.inventory.api.servicer import InventoryApi, add_to_server

__all__ = ["InventoryApi", "add_to_server"]
