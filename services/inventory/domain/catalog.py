"""Item master and location administration: create and update with existence rules."""

from __future__ import annotations

from services.inventory.domain.errors import AlreadyExists, FailedPrecondition, not_found
from services.inventory.domain.model import Item, Location
from services.inventory.domain.repository import InventoryRepository


def create_item(repo: InventoryRepository, item: Item) -> Item:
    """Add an item; a SKU can be created once."""
    if repo.get_item(item.sku) is not None:
        raise AlreadyExists(
            f"item {item.sku!r} already exists", resource_type="item", resource_name=item.sku
        )
    repo.save_item(item)
    return item


def update_item(repo: InventoryRepository, item: Item) -> Item:
    """Replace an item's attributes.

    Turning lot control on is refused while stock is reserved: open picks were released without
    a lot requirement and could no longer be confirmed as planned.
    """
    current = repo.get_item(item.sku)
    if current is None:
        raise not_found("item", item.sku)
    enabling_lots = item.lot_controlled and not current.lot_controlled
    if enabling_lots and any(p.reserved for p in repo.positions(sku=item.sku)):
        raise FailedPrecondition(
            f"item {item.sku!r} has reserved stock; pick or release it before enabling lots",
            reason="ITEM_HAS_RESERVATIONS",
        )
    repo.save_item(item)
    return item


def create_location(repo: InventoryRepository, location: Location) -> Location:
    """Add a location; an id can be created once."""
    if repo.get_location(location.location_id) is not None:
        raise AlreadyExists(
            f"location {location.location_id!r} already exists",
            resource_type="location",
            resource_name=location.location_id,
        )
    repo.save_location(location)
    return location


def update_location(repo: InventoryRepository, location: Location) -> Location:
    """Replace a location's name, address or active flag.

    Deactivating keeps existing reservations (they are picked or released as usual); it only
    stops new ones, so it never strands stock that orders were promised.
    """
    if repo.get_location(location.location_id) is None:
        raise not_found("location", location.location_id)
    repo.save_location(location)
    return location
