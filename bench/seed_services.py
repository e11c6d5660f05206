"""Seeded order histories written through each owner's own domain and store code.

One batch of planned orders (bench/seed_plan.py) becomes, per service, ONE transaction on its
database, in the order the mesh's own flow runs:
- order's saga (pure) places each order and asks for its reservation;
- inventory: a purchase-order receipt per warehouse covering the batch, then per order the
  domain's reserve, create_pick_task and confirm_pick (the reservation CONSUMED, on hand down by
  what was picked, reserved back where it was);
- the saga takes the reservation and the pick;
- carrier-adapter: the chosen quote and the label claimed and completed (BOOKED, keyed by the
  shipment id, as shipment books it);
- shipment: the order's delivery reference, the shipment created from the pick, packed,
  manifested with that label and moved by the carrier's scans to DELIVERED, its tracking number;
- billing: the order's prices, the freight quote and the invoice posted on delivery, numbered
  from its gapless series;
- the saga takes the shipment's milestones and the invoice, and order stores it COMPLETED.
The order's steps are in bench/seed_history.py, the others here.

Left out on purpose: saga commands (the command worker would run them) and, unless the seed is
recent, the events (bench/seed_events.py writes each step's `raised` events then). The tower's
checks compare the owners' state, which is all here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import tracking_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection

from bench.seed_history import History, SeedingError, delivery_address
from bench.seed_plan import PlannedOrder, currency
from services.billing.adapters.store import repository as billing_store
from services.billing.domain import invoicing
from services.billing.domain.documents import Freight, Invoice, OrderPrices
from services.billing.domain.events import InvoicePosted
from services.carrier_adapter.adapters.store import labels as label_store
from services.carrier_adapter.adapters.store.quotes import StoredQuote, save_quotes
from services.carrier_adapter.domain.model import BookedLabel, LabelFormat, RateQuote
from services.carrier_adapter.domain.model import ServiceLevel as CarrierLevel
from services.inventory import domain as inventory
from services.inventory.adapters.store import SqlInventory
from services.kit.values import Address, Money
from services.shipment.adapters import contracts as shipment_contracts
from services.shipment.adapters.store import scans as shipment_scans
from services.shipment.adapters.store import shipments as shipment_store
from services.shipment.domain.model import ServiceLevel as ShipmentLevel
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import ItemSpec, PickedUnits, pack
from services.shipment.domain.shipment import Label, OrderRef, Package, PendingPick, Rate, Shipment
from services.shipment.domain.tracking import ScanReport

CARRIER = "sandbox"
CARRIER_ACCOUNT = "sandbox"
SERVICE_CODE = "sandbox_standard"
INVOICE_SERIES = "INV"  # billing's default series (BillingSettings.invoice_series)
MAX_BOX_KG = 30.0
INVENTORY, SHIPMENT, BILLING = "inventory", "shipment", "billing"


def _warehouse_address(plan: PlannedOrder) -> Address:
    """As localmesh.seed creates the warehouse in inventory (shipment ships from there)."""
    w = plan.warehouse
    return Address(w.name, (w.street,), w.city, w.postal_code, "US", w.region, "crossdock demo")


# -- inventory ----------------------------------------------------------------------------


def write_inventory(conn: Connection, batch: Sequence[History], seed: int, number: int) -> None:
    """Receive the batch's units, then reserve, release to the warehouse and pick each order."""
    repo = SqlInventory(conn)
    receipts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for history in batch:
        for line in history.plan.lines:
            receipts[history.plan.location_id][line.sku] += line.quantity
    first = batch[0]
    received_at = first.plan.at.placed - timedelta(seconds=1)
    for location_id, units in sorted(receipts.items()):
        receipt = inventory.receive(
            repo,
            first.at(first.plan.at.placed - timedelta(seconds=1)),
            inventory.ReceiveStock(
                location_id,
                inventory.ReceiptSource.PURCHASE_ORDER,
                f"seed-{seed}-po-{number}",
                tuple(inventory.ReceiptLine(sku, qty) for sku, qty in sorted(units.items())),
                f"seed-{seed}-receipt-{number}-{location_id}",
            ),
            received_at,
        )
        first.raise_all(INVENTORY, receipt.events, received_at)
    for history in batch:
        ask, at = history.reserve, history.plan.at
        outcome = inventory.reserve(
            repo,
            history.at(at.reserved),
            inventory.ReserveStock(
                history.order.order_id,
                ask.location_id,
                tuple(inventory.ReserveLine(h.line_number, h.sku, h.quantity) for h in ask.lines),
                inventory.ReservationPolicy.PARTIAL,
                ask.idempotency_key,
            ),
            at.reserved,
        )
        if outcome.reservation is None or outcome.shortfalls:
            raise SeedingError(f"order {history.plan.index}: short at {ask.location_id}")
        history.reservation_id = outcome.reservation.reservation_id
        history.raise_all(INVENTORY, outcome.events, at.reserved)
        task = inventory.create_pick_task(
            repo, history.at(at.reserved), history.reservation_id, at.reserved
        ).task
        history.pick_id = task.pick_id
        picked = inventory.confirm_pick(
            repo,
            history.at(at.picked),
            task.pick_id,
            tuple(
                inventory.PickConfirmationLine(line.order_line_number, line.sku, line.quantity)
                for line in task.lines
            ),
            at.picked,
        )
        history.raise_all(INVENTORY, picked.events, at.picked)


# -- carrier-adapter ----------------------------------------------------------------------


def _charge(history: History) -> Money:
    return Money(currency(), history.plan.freight)


def write_labels(conn: Connection, batch: Sequence[History]) -> None:
    """The quote shipment chose and the label booked on it under the shipment's id."""
    for history in batch:
        at = history.plan.at.manifested
        ids = history.at(at)
        history.shipment_id = ids.new_id("shp")
        history.rate_id = ids.new_id("rte")
        quote = RateQuote(
            CARRIER,
            CARRIER_ACCOUNT,
            SERVICE_CODE,
            "Sandbox Standard",
            CarrierLevel.STANDARD,
            _charge(history),
            transit_days=2,
        )
        stored_quote = StoredQuote(history.rate_id, quote, at + timedelta(hours=24))
        save_quotes(conn, [(history.rate_id, quote)], at, stored_quote.expires_at)
        request = carrier_svc.BookLabelRequest(
            idempotency_key=history.shipment_id, rate_id=history.rate_id
        ).SerializeToString(deterministic=True)
        # The seeded source mints the claim token and label id: the same seed books the same
        # label ids.
        claim = label_store.claim_booking(
            conn,
            history.shipment_id,
            stored_quote,
            LabelFormat.PDF,
            False,
            request,
            at,
            timedelta(minutes=2),
            False,
            new_id=ids.new_id,
        )
        if claim.outcome is not label_store.ClaimOutcome.CLAIMED:
            raise SeedingError(f"label key {history.shipment_id} already {claim.outcome.value}")
        history.tracking_number = "SBX" + str(int(history.shipment_id[-12:], 36) % 10**12).zfill(12)
        booked = label_store.complete_booking(
            conn,
            history.shipment_id,
            claim.stored.claim_token,
            BookedLabel(
                carrier=CARRIER,
                carrier_account_id=CARRIER_ACCOUNT,
                service_code=SERVICE_CODE,
                tracking_number=history.tracking_number,
                package_tracking_numbers=(history.tracking_number,),
                label_format=LabelFormat.PDF,
                document=b"%PDF-1.4 seeded label",
                idempotency_key=history.shipment_id,
                created_at=at,
                quoted_charge=_charge(history),
                carrier_shipment_id=history.tracking_number,
            ),
            at,
        )
        if booked is None:
            raise SeedingError(f"label {history.shipment_id} lost its claim")
        history.label_id = booked.label_id


# -- shipment -----------------------------------------------------------------------------


def _units(history: History) -> tuple[PickedUnits, ...]:
    return tuple(PickedUnits(h.line_number, h.sku, h.quantity) for h in history.reserve.lines)


# The carrier's scans of a delivery: the sandbox's codes (its status_map.json), canonical status.
_JOURNEY = (
    ("PKP", TrackingStatus.PICKED_UP, "Picked up"),
    ("DEP", TrackingStatus.IN_TRANSIT, "Departed facility"),
    ("DLV", TrackingStatus.DELIVERED, "Delivered"),
)


def _scans(history: History) -> list[ScanReport]:
    """The journey's scans as carrier-adapter publishes them, read by shipment's own contract."""
    at = history.plan.at
    found = []
    for (code, status, text), when in zip(
        _JOURNEY, (at.picked_up, at.in_transit, at.delivered), strict=True
    ):
        occurred = Timestamp()
        occurred.FromDatetime(when)
        found.append(
            shipment_contracts.scan_of(
                tracking_pb2.TrackingEvent(
                    tracking_number=history.tracking_number,
                    carrier=CARRIER,
                    status=int(status),  # type: ignore[arg-type]
                    carrier_status_code=code,
                    description=text,
                    occur_time=occurred,
                    dedupe_key=f"{CARRIER}:{history.tracking_number}:{code}",
                )
            )
        )
    return found


def write_shipments(conn: Connection, batch: Sequence[History]) -> None:
    """Each order's shipment, from its pick to its delivery scan."""
    for history in batch:
        plan, at = history.plan, history.plan.at
        ref = OrderRef(history.order.order_id, history.order.partner_id, 2, delivery_address(plan))
        shipment_store.save_order_ref(conn, ref)
        specs = {
            sku: ItemSpec(sku, item.weight_kg, *item.dimensions_cm)
            for sku in {line.sku for line in plan.lines}
            for item in (plan.item(sku),)
        }
        ids = history.at(at.picked)
        packages = [
            Package.of_box(ids.new_id("pkg"), box)
            for box in pack(_units(history), specs, MAX_BOX_KG)
        ]
        pick = PendingPick(
            history.pick_id,
            history.order.order_id,
            plan.location_id,
            _units(history),
            f"seed-{plan.external_order_id}",
        )
        shipment = Shipment.create(
            history.shipment_id, pick, ref, packages, _warehouse_address(plan), at.picked
        )
        history.raise_all(SHIPMENT, shipment.pull_events(), at.picked)
        rate = Rate(history.rate_id, CARRIER, ShipmentLevel.STANDARD, _charge(history))
        shipment.choose_rate(rate, at.manifested)
        shipment.manifest(
            Label(
                history.label_id,
                CARRIER,
                history.tracking_number,
                (history.tracking_number,) * len(packages),
                _charge(history),
                rate,
            ),
            at.manifested,
        )
        history.raise_all(SHIPMENT, shipment.pull_events(), at.manifested)
        scans = _scans(history)
        for scan in scans:
            shipment.record_scan(scan, None)
            shipment.touch(scan.occur_time)
            history.raise_all(SHIPMENT, shipment.pull_events(), scan.occur_time)
        shipment.record_final_charge(_charge(history))
        if shipment.status is not ShipmentStatus.DELIVERED:
            raise SeedingError(f"shipment {history.shipment_id} ended {shipment.status.name}")
        shipment_store.insert_shipment(
            conn, shipment, label_due_at=None, now=at.delivered.timestamp()
        )
        shipment_scans.add_tracking_numbers(
            conn, CARRIER, [history.tracking_number], history.shipment_id
        )
        shipment_scans.add_scans(conn, [(history.shipment_id, scan) for scan in scans])


# -- billing ------------------------------------------------------------------------------


def write_billing(conn: Connection, batch: Sequence[History]) -> None:
    """Prices at placement, the freight quote at manifest, the invoice on delivery."""
    for history in batch:
        order, plan, at = history.order, history.plan, history.plan.at
        prices = OrderPrices(
            order.order_id,
            order.partner_id,
            {"party_id": order.customer.party_id, "name": order.customer.name},
            order.currency_code,
            {
                line.line_number: invoicing.OrderLinePrice(
                    line.line_number, line.sku, line.unit_price.amount
                )
                for line in order.lines
            },
        )
        billing_store.save_prices(conn, prices)
        ids = history.at(at.manifested)
        billing_store.save_freight(
            conn,
            Freight(
                ids.new_id("frt"),
                history.shipment_id,
                order.order_id,
                order.partner_id,
                CARRIER,
                currency(),
                plan.freight,
                plan.freight,
                at.delivered,
            ),
        )
        amount, _ = invoicing.freight_to_bill(plan.freight, plan.freight)
        shipped = [
            invoicing.ShippedItem(u.order_line_number, u.sku, u.quantity) for u in _units(history)
        ]
        lines = invoicing.invoice_lines(prices.lines, shipped, amount)
        posted = at.invoiced
        series = f"{INVOICE_SERIES}-{posted.year}"
        number = billing_store.next_number(conn, series)
        history.invoice_id = history.at(posted).new_id("inv")
        invoice = Invoice(
            invoice_id=history.invoice_id,
            invoice_number=invoicing.format_number(INVOICE_SERIES, posted.year, number),
            series=series,
            order_id=order.order_id,
            shipment_id=history.shipment_id,
            partner_id=order.partner_id,
            customer=prices.customer,
            currency=prices.currency,
            lines=tuple(lines),
            total=invoicing.total(lines),
            posted_at=posted,
        )
        billing_store.insert_invoice(conn, invoice)
        history.raise_all(BILLING, [InvoicePosted(invoice, posted)], posted)
