"""Inventory's use cases: one function per command or query, each run in one unit of work.

`use_case(uow, ...)` is synchronous and runs on the DB worker inside the kit's transaction
(`await units.run(use_case, ...)` from the servicer, `UnitOfWork.of(conn)` in a consumer). It
reads and writes through the SQL repository on `uow.conn`, lets the domain decide, and
announces what happened with `uow.publish_all(outcome.events)`; the kit re-runs the whole unit
of work on an optimistic `Conflict`, so the domain decision is always made on fresh rows.

`ids` and `clock` are passed in, so tests and the warehouse simulator stay in control of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from services.inventory import domain
from services.inventory.adapters.store import SqlInventory
from services.inventory.domain.errors import NotFound, ReservationNotActive, not_found
from services.inventory.domain.ids import IdSource
from services.kit.clock import Clock
from services.kit.paging import page_size
from services.kit.uow import UnitOfWork

log = logging.getLogger(__name__)

# Page size when a List request asks for 0 (the service's long-standing default).
DEFAULT_PAGE_SIZE = 100
# The release reason recorded when an order's cancellation gives its stock back.
CANCEL_REASON = "order cancelled"


@dataclass(frozen=True)
class ListPage:
    """Which page of a list a caller asked for: its size (0 = default) and token."""

    page_size: int = 0
    page_token: str = ""

    @property
    def size(self) -> int:
        return page_size(self.page_size, DEFAULT_PAGE_SIZE)


# -- item master and locations ----------------------------------------------------------------


def create_item(uow: UnitOfWork, item: domain.Item) -> domain.Item:
    return domain.create_item(SqlInventory(uow.conn), item)


def update_item(uow: UnitOfWork, item: domain.Item) -> domain.Item:
    return domain.update_item(SqlInventory(uow.conn), item)


def get_item(uow: UnitOfWork, sku: str) -> domain.Item:
    item = SqlInventory(uow.conn).get_item(sku)
    if item is None:
        raise not_found("item", sku)
    return item


def list_items(
    uow: UnitOfWork, page: ListPage, include_inactive: bool
) -> tuple[list[domain.Item], str]:
    """Items in SKU order; inactive ones only when asked for."""
    return SqlInventory(uow.conn).items_page(
        include_inactive=include_inactive, size=page.size, token=page.page_token
    )


def create_location(uow: UnitOfWork, location: domain.Location) -> domain.Location:
    return domain.create_location(SqlInventory(uow.conn), location)


def update_location(uow: UnitOfWork, location: domain.Location) -> domain.Location:
    return domain.update_location(SqlInventory(uow.conn), location)


def get_location(uow: UnitOfWork, location_id: str) -> domain.Location:
    location = SqlInventory(uow.conn).get_location(location_id)
    if location is None:
        raise not_found("location", location_id)
    return location


def list_locations(uow: UnitOfWork, page: ListPage) -> tuple[list[domain.Location], str]:
    """Locations in id order."""
    return SqlInventory(uow.conn).locations_page(size=page.size, token=page.page_token)


# -- stock ------------------------------------------------------------------------------------


def availability(
    uow: UnitOfWork, skus: tuple[str, ...], location_ids: tuple[str, ...]
) -> tuple[domain.SkuAvailability, ...]:
    return domain.availability(SqlInventory(uow.conn), skus, location_ids)


def availability_with_items(
    uow: UnitOfWork, skus: tuple[str, ...], location_ids: tuple[str, ...]
) -> tuple[tuple[domain.SkuAvailability, ...], dict[str, domain.Item]]:
    """Availability and the item master entries of `skus` (unknown SKUs are absent), in one
    unit of work: capture checks both, and one read of both keeps it one call."""
    return domain.availability_with_items(SqlInventory(uow.conn), skus, location_ids)


def list_positions(
    uow: UnitOfWork, page: ListPage, sku: str | None, location_id: str | None
) -> tuple[list[domain.Position], str]:
    """Positions by SKU then location; either filter None means all."""
    return SqlInventory(uow.conn).positions_page(
        sku=sku, location_id=location_id, size=page.size, token=page.page_token
    )


def list_reservations(
    uow: UnitOfWork,
    page: ListPage,
    sku: str | None,
    location_id: str | None,
    order_id: str | None,
    status: domain.ReservationStatus | None,
) -> tuple[list[domain.Reservation], str]:
    """Reservations oldest first; any filter None means all."""
    return SqlInventory(uow.conn).reservations_page(
        sku=sku,
        location_id=location_id,
        order_id=order_id,
        status=status,
        size=page.size,
        token=page.page_token,
    )


def reserve_stock(
    uow: UnitOfWork, command: domain.ReserveStock, ids: IdSource, clock: Clock
) -> domain.ReserveOutcome:
    outcome = domain.reserve(SqlInventory(uow.conn), ids, command, clock())
    uow.publish_all(outcome.events)
    return outcome


def release_reservation(
    uow: UnitOfWork, command: domain.ReleaseStock, clock: Clock
) -> domain.ReleaseOutcome:
    """The whole reservation when the command names no lines, else only those lines."""
    repo = SqlInventory(uow.conn)
    if command.lines:
        outcome = domain.release_lines(repo, command, clock())
    else:
        outcome = domain.release(repo, command.reservation_id, command.reason, clock())
    uow.publish_all(outcome.events)
    return outcome


def adjust_stock(
    uow: UnitOfWork, command: domain.AdjustStock, ids: IdSource, clock: Clock
) -> domain.AdjustOutcome:
    outcome = domain.adjust(SqlInventory(uow.conn), ids, command, clock())
    uow.publish_all(outcome.events)
    return outcome


def receive_stock(
    uow: UnitOfWork, command: domain.ReceiveStock, ids: IdSource, clock: Clock
) -> domain.ReceiveOutcome:
    outcome = domain.receive(SqlInventory(uow.conn), ids, command, clock())
    uow.publish_all(outcome.events)
    return outcome


# -- picks ------------------------------------------------------------------------------------


def list_pick_tasks(
    uow: UnitOfWork,
    page: ListPage,
    location_id: str | None,
    status: domain.PickStatus | None,
) -> tuple[list[domain.PickTask], str]:
    """Pick tasks oldest first; either filter None means all."""
    return SqlInventory(uow.conn).pick_tasks_page(
        location_id=location_id, status=status, size=page.size, token=page.page_token
    )


def confirm_pick(
    uow: UnitOfWork,
    pick_id: str,
    lines: tuple[domain.PickConfirmationLine, ...],
    ids: IdSource,
    clock: Clock,
) -> domain.ConfirmPickOutcome:
    outcome = domain.confirm_pick(SqlInventory(uow.conn), ids, pick_id, lines, clock())
    uow.publish_all(outcome.events)
    return outcome


# -- order and shipment decisions (event consumers) --------------------------------------------


def create_pick_tasks(
    uow: UnitOfWork, reservation_ids: Iterable[str], ids: IdSource, clock: Clock
) -> None:
    """The order released its reservations to the warehouse: one pick task per reservation.

    Idempotent per reservation. A reservation inventory never granted raises NotFound; one
    released meanwhile (a cancel overtook the release) is skipped: nothing is left to pick.
    """
    repo = SqlInventory(uow.conn)
    for reservation_id in reservation_ids:
        try:
            domain.create_pick_task(repo, ids, reservation_id, clock())
        except ReservationNotActive:
            log.info("skipping pick for inactive reservation %s", reservation_id)


def release_order_reservations(
    uow: UnitOfWork, order_id: str, released_reservation_ids: Iterable[str], clock: Clock
) -> None:
    """The order was cancelled: give back its still-active reservations.

    Releasing also withdraws their open pick tasks (the compensation "cancel before pick
    releases the stock"). Unknown, released or already picked reservations are left alone.
    """
    repo = SqlInventory(uow.conn)
    wanted = set(released_reservation_ids)
    wanted.update(
        r.reservation_id
        for r in repo.reservations(order_id=order_id, status=domain.ReservationStatus.ACTIVE)
    )
    for reservation_id in sorted(wanted):
        # release reads (and locks) the reservation itself: an unknown one raises NotFound, a
        # picked one ReservationNotActive, a released one is a replay with no events.
        try:
            outcome = domain.release(repo, reservation_id, CANCEL_REASON, clock())
        except (NotFound, ReservationNotActive):
            continue
        uow.publish_all(outcome.events)


def restock_cancelled_shipment(
    uow: UnitOfWork,
    shipment_id: str,
    location_id: str,
    lines: tuple[domain.ReceiptLine, ...],
    ids: IdSource,
    clock: Clock,
) -> None:
    """A cancelled shipment's picked units go back into stock where they were picked."""
    command = domain.ReceiveStock(
        location_id,
        domain.ReceiptSource.CANCELLATION,
        shipment_id,
        lines,
        f"cancel/{shipment_id}",
    )
    _restock(uow, command, ids, clock)


def restock_returned_to_sender(
    uow: UnitOfWork,
    shipment_id: str,
    location_id: str,
    lines: tuple[domain.ReceiptLine, ...],
    ids: IdSource,
    clock: Clock,
) -> None:
    """A parcel the carrier brought back is received at the warehouse that shipped it.

    Older producers sent no location or items: there is nothing to receive then.
    """
    if not location_id:
        log.info("returned-to-sender %s names no location; nothing restocked", shipment_id)
        return
    command = domain.ReceiveStock(
        location_id,
        domain.ReceiptSource.RETURNED_TO_SENDER,
        shipment_id,
        lines,
        f"rts/{shipment_id}",
    )
    _restock(uow, command, ids, clock)


def _restock(uow: UnitOfWork, command: domain.ReceiveStock, ids: IdSource, clock: Clock) -> None:
    # The key names the shipment, so an event re-emitted with another event id (past the
    # inbox) replays the receipt instead of restocking twice.
    if not command.lines:
        log.info("shipment %s brought nothing back; nothing restocked", command.source_reference)
        return
    receive_stock(uow, command, ids, clock)
