"""reservations: inventory's reserved quantities match its active reservations, and no active
reservation is held for an order that no longer needs it.

Inventory owns positions and reservations; order owns orders. Two kinds of drift:
- leaked: an ACTIVE reservation whose order is terminal (COMPLETED, CANCELLED) or unknown to
  order (NOT_FOUND), made more than the grace ago. Order's CreateOrder commits the order BEFORE
  it reserves, so an unknown order id is a caller that crashed after reserving; a reservation of
  moments ago may still belong to an order whose answer is in flight, hence the grace. Subject
  `reservation:<id>`, corrected by inventory's ReleaseReservation (idempotent: releasing a
  released reservation answers it again).
- a position whose reserved quantity differs from the sum of its active reservations' lines.
  Subject `position:<sku>:<location>`, never corrected here: inventory has no RPC that
  recomputes a position, so correct() refuses and the finding stays for an operator.

Scan: inventory's ListReservations(ACTIVE) page by page (1000); per page one GetOrder per
distinct order of the reservations older than the grace (order has no batch read by ids), and
the sums per (sku, location) are added up (one integer per reserved pair: never the rows).
Then ListPositions page by page (500), each compared with its sum. A position that differs is
read again, with its active reservations (ListReservations by SKU and location), before it is a
drift: the two passes read at different moments, and a reservation made in between would
otherwise look like drift. Sums left over (reservations at a pair with no position) are
confirmed the same way.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime

import grpc
from crossdock.inventory.v1 import inventory_pb2 as inv
from crossdock.inventory.v1 import inventory_service_pb2 as inv_svc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from crossdock.order.v1 import order_pb2
from crossdock.order.v1 import order_service_pb2 as order_svc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage
from services.control_tower.domain.reconciliation import Drift

RESERVATIONS_PAGE_SIZE = 1000
POSITIONS_PAGE_SIZE = 500
POSITION = "position:"
RESERVATION = "reservation:"
# Order lookups of one page in flight at once (one GetOrder per distinct order).
_ORDER_LOOKUPS = 16
_TERMINAL = {
    order_pb2.ORDER_STATUS_COMPLETED: "completed",
    order_pb2.ORDER_STATUS_CANCELLED: "cancelled",
}
_UNKNOWN = "unknown to order"
# ReleaseReservation's reason: at most 200 characters (its contract).
_REASON_MAX = 200

Pair = tuple[str, str]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _created(reservation: inv.Reservation) -> float:
    return reservation.create_time.seconds + reservation.create_time.nanos / 1e9


def position_subject(sku: str, location_id: str) -> str:
    return f"{POSITION}{sku}:{location_id}"


def position_evidence(sku: str, location_id: str, reserved: int, held: int) -> str:
    return f"position {sku}@{location_id}: reserved {reserved}, active reservations sum {held}"


def leak_evidence(reservation: inv.Reservation, order_state: str) -> str:
    lines = ", ".join(f"{line.sku}x{line.quantity}" for line in reservation.lines)
    return (
        f"reservation {reservation.reservation_id} of order {reservation.order_id} "
        f"({order_state}) holds {lines} at {reservation.location_id} since "
        f"{_iso(_created(reservation))}"
    )


def add_lines(sums: dict[Pair, int], reservations: Iterable[inv.Reservation]) -> None:
    for reservation in reservations:
        for line in reservation.lines:
            sums[(line.sku, reservation.location_id)] += line.quantity


class Reservations:
    name = "reservations"
    owner = "inventory"
    action = "inventory.ReleaseReservation"
    default_interval_seconds = 900.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        inventory, orders = ctx.inventory, ctx.order
        if inventory is None or orders is None:
            raise RuntimeError(f"{self.name} needs the inventory and order targets")
        cutoff = ctx.clock() - ctx.reservations_grace_seconds
        sums: dict[Pair, int] = defaultdict(int)
        token = ""
        while True:
            page = await _list_reservations(
                inventory,
                inv_svc.ListReservationsRequest(
                    status=inv.RESERVATION_STATUS_ACTIVE,
                    page_size=RESERVATIONS_PAGE_SIZE,
                    page_token=token,
                ),
            )
            add_lines(sums, page.reservations)
            old = [r for r in page.reservations if _created(r) <= cutoff]
            states = await _order_states(orders, {r.order_id for r in old})
            leaks = [
                Drift(f"{RESERVATION}{r.reservation_id}", r.order_id, leak_evidence(r, state))
                for r in old
                if (state := states.get(r.order_id)) is not None
            ]
            yield ScanPage(len(page.reservations), leaks)
            token = page.next_page_token
            if not token:
                break
        while True:
            try:
                positions = await inventory.ListPositions(
                    inv_svc.ListPositionsRequest(page_size=POSITIONS_PAGE_SIZE, page_token=token)
                )
            except grpc.aio.AioRpcError as error:
                raise OwnerRefused.of("inventory.ListPositions", error) from error
            suspects = [
                (p.sku, p.location_id)
                for p in positions.positions
                if p.quantity_reserved != sums.pop((p.sku, p.location_id), 0)
            ]
            yield ScanPage(len(positions.positions), await _confirmed(inventory, suspects))
            token = positions.next_page_token
            if not token:
                break
        # Reservations at a pair with no position (reserved 0 there).
        leftover = sorted(pair for pair, held in sums.items() if held)
        if leftover:
            yield ScanPage(len(leftover), await _confirmed(inventory, leftover))

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        if drift.subject_id.startswith(POSITION):
            raise OwnerRefused(
                self.action,
                "NOT_CORRECTABLE",
                f"{drift.evidence}: inventory has no RPC that recomputes a position's reserved "
                "quantity; an operator's decision in inventory, resolve the finding once done",
            )
        if not drift.subject_id.startswith(RESERVATION):
            raise OwnerRefused(
                self.action, "INVALID_ARGUMENT", f"not a subject of {self.name}: {drift.subject_id}"
            )
        if ctx.inventory is None:
            raise OwnerRefused(
                self.action, "UNIMPLEMENTED", "the tower has no target for inventory"
            )
        reservation_id = drift.subject_id.removeprefix(RESERVATION)
        reason = f"reconciliation {self.name}: order {drift.order_id} no longer holds stock"
        try:
            answer = await ctx.inventory.ReleaseReservation(
                inv_svc.ReleaseReservationRequest(
                    reservation_id=reservation_id, reason=reason[:_REASON_MAX]
                )
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(self.action, error) from error
        return f"reservation {answer.reservation.reservation_id} released"


async def _list_reservations(
    inventory: inv_grpc.InventoryServiceAsyncStub, request: inv_svc.ListReservationsRequest
) -> inv_svc.ListReservationsResponse:
    try:
        return await inventory.ListReservations(request)
    except grpc.aio.AioRpcError as error:
        raise OwnerRefused.of("inventory.ListReservations", error) from error


async def _order_states(
    orders: order_grpc.OrderServiceAsyncStub, order_ids: Iterable[str]
) -> dict[str, str]:
    """order id → why its reservations are leaked ("completed", "cancelled", unknown), for the
    orders among `order_ids` that no longer need stock; live orders are absent."""
    gate = asyncio.Semaphore(_ORDER_LOOKUPS)

    async def state(order_id: str) -> tuple[str, str | None]:
        async with gate:
            try:
                answer = await orders.GetOrder(order_svc.GetOrderRequest(order_id=order_id))
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    return order_id, _UNKNOWN
                raise OwnerRefused.of("order.GetOrder", error) from error
        return order_id, _TERMINAL.get(answer.order.status)

    found = await asyncio.gather(*(state(order_id) for order_id in sorted(order_ids)))
    return {order_id: why for order_id, why in found if why is not None}


async def _confirmed(
    inventory: inv_grpc.InventoryServiceAsyncStub, pairs: Sequence[Pair]
) -> list[Drift]:
    """The drifts among suspect pairs, each read again (its position and its active
    reservations) so a reservation made between the scan's two passes is not one."""
    drifts: list[Drift] = []
    for sku, location_id in pairs:
        try:
            answer = await inventory.ListPositions(
                inv_svc.ListPositionsRequest(sku=sku, location_id=location_id)
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of("inventory.ListPositions", error) from error
        reserved = sum(p.quantity_reserved for p in answer.positions)
        sums: dict[Pair, int] = defaultdict(int)
        token = ""
        while True:
            page = await _list_reservations(
                inventory,
                inv_svc.ListReservationsRequest(
                    sku=sku,
                    location_id=location_id,
                    status=inv.RESERVATION_STATUS_ACTIVE,
                    page_size=RESERVATIONS_PAGE_SIZE,
                    page_token=token,
                ),
            )
            add_lines(sums, page.reservations)
            token = page.next_page_token
            if not token:
                break
        held = sums[(sku, location_id)]
        if reserved != held:
            drifts.append(
                Drift(
                    position_subject(sku, location_id),
                    "",
                    position_evidence(sku, location_id, reserved, held),
                )
            )
    return drifts
