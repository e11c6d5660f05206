"""Packing picks and booking labels: the steps that call other services.

Both call inventory or carrier-adapter outside any transaction, then settle the result in one
unit of work. A pick packed into a new shipment leaves its label leased to the packer, which
books it at once (`pack_and_book`): no claim hands it from packing to booking.

Exactly one label per shipment: the shipment id is the booking's idempotency key, so a call
that timed out (and may have booked) is simply made again and carrier-adapter returns the same
label. One call shops and books ("shop and book"): carrier-adapter chooses the cheapest quote
that meets the service level (the carrier preference breaks ties) and stores it in the unit of
work that claims the key, so the quote is fixed where the booking is, and a retry of a key that
booked (or is booking) gets that first label and quote back. shipment stores the quote with the
label when it manifests: no unit of work of its own before the call. A quote stored on the
shipment before the call (by a release that chose rates here) is still booked by its rate id.
Return parcels take exactly this path: packed from the returned units, shopped and booked with
`is_return` (a return label, customer → warehouse) under their own shipment id.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from services.kit.clock import Clock
from services.kit.uow import UnitsOfWork
from services.shipment.adapters.clients import CarrierCallFailed, CarrierClient, InventoryClient
from services.shipment.app import cancellation, shipments
from services.shipment.app.errors import PickNotQueued
from services.shipment.domain.model import ServiceLevel
from services.shipment.domain.shipment import LABEL_OUTCOME_UNKNOWN, Label, PendingPick, Shipment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookingSettings:
    max_box_weight_kg: float = 30.0
    carrier_preference: tuple[str, ...] = ()
    label_timeout_seconds: float = 10.0
    label_max_attempts: int = 20
    retry_base_delay_seconds: float = 0.5
    retry_max_delay_seconds: float = 60.0
    # The level return labels are booked at (a return is rarely worth the order's overnight).
    return_service_level: ServiceLevel = ServiceLevel.STANDARD

    def retry_delay(self, attempts: int) -> float:
        """Exponential, capped, jittered in its upper half (so a retry is never made at once)."""
        ceiling = min(self.retry_base_delay_seconds * 2**attempts, self.retry_max_delay_seconds)
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class Booking:
    """What packing and booking need: the database, the two services, the clock, the rules."""

    units: UnitsOfWork
    inventory: InventoryClient
    carriers: CarrierClient
    clock: Clock
    settings: BookingSettings


# -- packing ---------------------------------------------------------------------------------


async def pack_and_book(booking: Booking, pick: PendingPick, lease_seconds: float) -> None:
    """Pack a pick (leased to the caller) and book the label of the shipment it became."""
    shipment = await pack_pick(booking, pick, lease_seconds)
    if shipment is not None:
        await book_label(booking, shipment)


async def pack_pick(booking: Booking, pick: PendingPick, lease_seconds: float) -> Shipment | None:
    """Pack a pick into a shipment, or a return's units into its return parcel; on failure pack
    it again later. Returns the new shipment, whose label is due and leased to the caller for
    `lease_seconds`, to book at once; None when none was created here."""
    try:
        items = await booking.inventory.item_specs(units.sku for units in pick.lines)
        # Where the pick leaves from, or where the return parcel goes back to.
        warehouse = await booking.inventory.address(pick.location_id)
        packed = await booking.units.run(
            shipments.create_shipment,
            pick,
            items,
            warehouse,
            booking.settings.max_box_weight_kg,
            booking.clock(),
            booking.settings.return_service_level,
            label_lease_seconds=lease_seconds,
        )
        return packed.shipment if packed.label_leased else None
    except PickNotQueued as gone:
        log.info("%s", gone)
        return None
    except Exception as error:
        attempts = pick.attempts + 1
        due = booking.clock().timestamp() + booking.settings.retry_delay(attempts)
        log.warning("packing pick %s failed (attempt %d): %s", pick.pick_id, attempts, error)
        await booking.units.run(shipments.reschedule_pick, pick.pick_id, attempts, due, str(error))
        return None


# -- labels ----------------------------------------------------------------------------------


async def book_label(booking: Booking, shipment: Shipment) -> None:
    """Shop and book (or book the quote already chosen), and settle: MANIFESTED, retried later,
    or LABEL_FAILED when no rate meets the level, the label's outcome is unknown at the carrier
    (failure code LABEL_OUTCOME_UNKNOWN) or the attempts are spent."""
    try:
        label = await _book(booking, shipment)
        await booking.units.run(shipments.manifest, shipment.shipment_id, label, booking.clock())
    except CarrierCallFailed as error:
        await _carrier_refused(booking, shipment, error)
    except Exception as error:
        log.exception("booking shipment %s failed", shipment.shipment_id)
        await _retry_later(booking, shipment, f"{type(error).__name__}: {error}")


async def _book(booking: Booking, shipment: Shipment) -> Label:
    timeout = booking.settings.label_timeout_seconds
    if shipment.rate is not None:
        return await booking.carriers.book_label(shipment, shipment.rate, timeout=timeout)
    preference = booking.settings.carrier_preference
    return await booking.carriers.shop_and_book_label(shipment, preference, timeout=timeout)


async def _carrier_refused(booking: Booking, shipment: Shipment, error: CarrierCallFailed) -> None:
    if error.no_rate:
        level = shipment.service_level.name
        wanted = "rate for a return label" if shipment.is_return else "rate"
        await booking.units.run(
            shipments.fail_label,
            shipment.shipment_id,
            f"no carrier {wanted} meets service level {level}",
            booking.clock(),
        )
    elif error.outcome_unknown:
        # Another attempt would book a second label or be refused the same way: fail at once,
        # marked, for an operator to reconcile with the carrier.
        await booking.units.run(
            shipments.fail_label,
            shipment.shipment_id,
            error.reason,
            booking.clock(),
            LABEL_OUTCOME_UNKNOWN,
        )
    elif error.transient:
        await _retry_later(booking, shipment, error.reason)
    elif error.failed_precondition and shipment.label_attempts < 2:
        # Typically the quote expired before it was booked: shop again (a quote stored on the
        # shipment is dropped first; shop and book quotes anew on every call anyway).
        if shipment.rate is not None:
            await booking.units.run(shipments.clear_rate, shipment.shipment_id, booking.clock())
        await _retry_later(booking, shipment, error.reason)
    else:
        await booking.units.run(
            shipments.fail_label, shipment.shipment_id, error.reason, booking.clock()
        )


async def _retry_later(booking: Booking, shipment: Shipment, reason: str) -> None:
    attempts = shipment.label_attempts + 1
    now = booking.clock()
    if attempts >= booking.settings.label_max_attempts:
        await booking.units.run(shipments.fail_label, shipment.shipment_id, reason, now)
        return
    log.warning("label for %s not booked (attempt %d): %s", shipment.shipment_id, attempts, reason)
    due = now.timestamp() + booking.settings.retry_delay(attempts)
    await booking.units.run(
        shipments.reschedule_label, shipment.shipment_id, attempts, due, reason, now.timestamp()
    )


# -- voids -----------------------------------------------------------------------------------


async def void_label(booking: Booking, shipment: Shipment) -> None:
    """Void a cancelled shipment's label: VOIDED, retried later, or FAILED when the carrier
    refuses for good (e.g. the parcel was scanned after all) or the attempts are spent."""
    now = booking.clock()
    try:
        await booking.carriers.cancel_label(
            shipment.label_id, timeout=booking.settings.label_timeout_seconds
        )
    except CarrierCallFailed as error:
        attempts = shipment.label_attempts + 1
        if not error.transient or attempts >= booking.settings.label_max_attempts:
            await booking.units.run(cancellation.fail_void, shipment.shipment_id, error.reason, now)
            return
        log.warning("void of %s failed (attempt %d): %s", shipment.label_id, attempts, error)
        due = now.timestamp() + booking.settings.retry_delay(attempts)
        await booking.units.run(
            cancellation.reschedule_void,
            shipment.shipment_id,
            attempts,
            due,
            error.reason,
            now.timestamp(),
        )
        return
    await booking.units.run(cancellation.label_voided, shipment.shipment_id, booking.clock())
