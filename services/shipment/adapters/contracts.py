"""Shipment values <-> crossdock contracts, and shipment's one EventMapper.

- Outbound: the Shipment aggregate -> crossdock.shipment.v1.Shipment (RPC answers, event
  payloads and the stored `document`), domain events -> crossdock.events.v1 (`mapper`, which
  `uow.publish` goes through), packages -> carrier parcels.
- Inbound: the events shipment consumes (a ReturnAuthorized becomes the return parcel's units
  to pack), inventory's item master and carrier-adapter's rates and labels -> domain values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from crossdock.carrier.v1 import carrier_pb2, tracking_pb2
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import (
    carrier_events_pb2,
    inventory_events_pb2,
    order_events_pb2,
    return_events_pb2,
)
from crossdock.events.v1 import shipment_events_pb2 as events_pb
from crossdock.inventory.v1 import inventory_pb2
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.events import event_spec
from services.kit.proto_values import (
    address_to_domain,
    address_to_proto,
    dimensions_to_domain,
    dimensions_to_proto,
    money_to_domain,
    money_to_proto,
    timestamp,
    weight_to_domain,
    weight_to_proto,
)
from services.kit.uow import EventMapper, Mapped
from services.kit.values import Money
from services.shipment.adapters.store import SERVICE
from services.shipment.domain.events import (
    ReturnParcelDelivered,
    ReturnParcelException,
    ReturnParcelManifested,
    ReturnParcelPickedUp,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryException,
    ShipmentDocument,
    ShipmentLabelVoided,
    ShipmentLabelVoidFailed,
    ShipmentManifested,
    ShipmentOutForDelivery,
    ShipmentPickedUp,
    ShipmentRef,
    ShipmentReturnedToSender,
)
from services.shipment.domain.model import (
    IncidentReason,
    LabelVoid,
    ServiceLevel,
    ShipmentKind,
    ShipmentStatus,
    TrackingStatus,
)
from services.shipment.domain.packing import ItemSpec, PickedUnits
from services.shipment.domain.shipment import (
    Label,
    OrderRef,
    Package,
    PendingPick,
    Rate,
    Shipment,
)
from services.shipment.domain.tracking import Progress, ProofOfDelivery, ScanReport

mapper = EventMapper(SERVICE)

V = TypeVar("V")
P = TypeVar("P", bound=Message)

# The item master may use any unit; the packer works in kilograms and centimetres. Plain floats,
# as the packer's arithmetic has always been (the kit's Decimal Weight.to() rounds differently
# in the last bit, which could move a box boundary), and UNSPECIFIED reads as kg / cm.
_KG_PER = {
    common_pb2.WEIGHT_UNIT_UNSPECIFIED: 1.0,
    common_pb2.WEIGHT_UNIT_KILOGRAM: 1.0,
    common_pb2.WEIGHT_UNIT_GRAM: 0.001,
    common_pb2.WEIGHT_UNIT_OUNCE: 0.028349523125,
    common_pb2.WEIGHT_UNIT_POUND: 0.45359237,
}
_CM_PER = {
    common_pb2.DIMENSION_UNIT_UNSPECIFIED: 1.0,
    common_pb2.DIMENSION_UNIT_CENTIMETER: 1.0,
    common_pb2.DIMENSION_UNIT_INCH: 2.54,
}


def _moment(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _money_or_none(message: object, name: str) -> Money | None:
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    return money_to_domain(getattr(message, name))


# -- inbound: the events shipment consumes ----------------------------------------------------


def order_ref_of(event: order_events_pb2.OrderPlaced) -> OrderRef:
    order = event.order
    return OrderRef(
        order.order_id,
        order.partner_id,
        int(order.service_level),
        address_to_domain(order.ship_to),
    )


def picked_lines_of(event: inventory_events_pb2.PickCompleted) -> tuple[PickedUnits, ...]:
    """The units that left the shelf (short lines with nothing picked are dropped)."""
    return tuple(
        PickedUnits(ln.order_line_number, ln.sku, ln.quantity_picked, ln.lot)
        for ln in event.lines
        if ln.quantity_picked > 0
    )


def return_parcel_of(event: return_events_pb2.ReturnAuthorized, correlation_id: str) -> PendingPick:
    """The units of an authorized return to pack into its return parcel, keyed by the return id
    (one parcel per return), going back to the return's location."""
    order_return = event.order_return
    return PendingPick(
        pick_id=order_return.return_id,
        order_id=order_return.order_id,
        location_id=order_return.return_location_id,
        lines=tuple(
            PickedUnits(line.order_line_number, line.sku, line.quantity_authorized)
            for line in order_return.lines
            if line.quantity_authorized > 0
        ),
        correlation_id=correlation_id,
        return_id=order_return.return_id,
    )


def scan_of(scan: tracking_pb2.TrackingEvent) -> ScanReport:
    return ScanReport(
        status=TrackingStatus(scan.status),
        occur_time=_moment(scan.occur_time),
        record=scan.SerializeToString(),
        incident_reason=IncidentReason(scan.incident_reason),
        description=scan.description,
        signed_by=scan.signed_by,
        dedupe_key=scan.dedupe_key,
        carrier_status_code=scan.carrier_status_code,
        carrier_incident_code=scan.carrier_incident_code,
    )


def scans_of(update: carrier_events_pb2.TrackingUpdated) -> list[ScanReport]:
    """The update's scans in scan-time order (exact to the nanosecond, stable for ties)."""
    events = update.events
    if len(events) == 1:  # most updates carry one scan: nothing to sort
        return [scan_of(events[0])]
    in_order = sorted(events, key=lambda e: (e.occur_time.seconds, e.occur_time.nanos))
    return [scan_of(scan) for scan in in_order]


def final_charge_of(update: carrier_events_pb2.TrackingUpdated) -> Money | None:
    return _money_or_none(update, "final_charge")


def scan_to_proto(record: bytes) -> tracking_pb2.TrackingEvent:
    return tracking_pb2.TrackingEvent.FromString(record)


# -- inbound: inventory and carrier-adapter answers -------------------------------------------


def item_spec(item: inventory_pb2.Item) -> ItemSpec:
    """One unit of an item in kilograms and centimetres, whatever units the master uses."""
    cm = _CM_PER.get(item.dimensions.unit, 1.0)
    return ItemSpec(
        item.sku,
        item.weight.value * _KG_PER.get(item.weight.unit, 1.0),
        item.dimensions.length * cm,
        item.dimensions.width * cm,
        item.dimensions.height * cm,
    )


def rate_to_domain(rate: carrier_pb2.Rate) -> Rate:
    return Rate(
        rate_id=rate.rate_id,
        carrier=rate.carrier,
        service_level=ServiceLevel(rate.service_level),
        total_charge=_money_or_none(rate, "total_charge"),
        carrier_account_id=rate.carrier_account_id,
        service_code=rate.service_code,
        service_name=rate.service_name,
        estimated_transit_days=rate.estimated_transit_days,
        estimated_delivery_time=(
            _moment(rate.estimated_delivery_time)
            if rate.HasField("estimated_delivery_time")
            else None
        ),
        expire_time=_moment(rate.expire_time) if rate.HasField("expire_time") else None,
    )


def rate_to_proto(rate: Rate) -> carrier_pb2.Rate:
    return carrier_pb2.Rate(
        rate_id=rate.rate_id,
        carrier=rate.carrier,
        carrier_account_id=rate.carrier_account_id,
        service_code=rate.service_code,
        service_name=rate.service_name,
        service_level=int(rate.service_level),  # type: ignore[arg-type]
        total_charge=money_to_proto(rate.total_charge) if rate.total_charge else None,
        estimated_transit_days=rate.estimated_transit_days,
        estimated_delivery_time=timestamp(rate.estimated_delivery_time),
        expire_time=timestamp(rate.expire_time),
    )


def label_of(label: carrier_pb2.Label) -> Label:
    return Label(
        label_id=label.label_id,
        carrier=label.carrier,
        tracking_number=label.tracking_number,
        package_tracking_numbers=tuple(label.package_tracking_numbers),
        quoted_charge=_money_or_none(label, "quoted_charge"),
    )


def parcels_of(shipment: Shipment) -> list[carrier_pb2.Parcel]:
    return [
        carrier_pb2.Parcel(
            weight=weight_to_proto(p.weight),
            dimensions=dimensions_to_proto(p.dimensions),
            reference=p.package_id,
        )
        for p in shipment.packages
    ]


# -- the shipment <-> crossdock.shipment.v1.Shipment ------------------------------------------


def items_to_proto(items: tuple[PickedUnits, ...]) -> list[shipment_pb2.PackageItem]:
    return [
        shipment_pb2.PackageItem(
            order_line_number=u.order_line_number, sku=u.sku, quantity=u.quantity, lot=u.lot
        )
        for u in items
    ]


def package_to_proto(package: Package) -> shipment_pb2.Package:
    return shipment_pb2.Package(
        package_id=package.package_id,
        tracking_number=package.tracking_number,
        weight=weight_to_proto(package.weight),
        dimensions=dimensions_to_proto(package.dimensions),
        items=items_to_proto(package.items),
    )


def package_to_domain(package: shipment_pb2.Package) -> Package:
    return Package(
        package_id=package.package_id,
        weight=weight_to_domain(package.weight),
        dimensions=dimensions_to_domain(package.dimensions),
        items=tuple(
            PickedUnits(i.order_line_number, i.sku, i.quantity, i.lot) for i in package.items
        ),
        tracking_number=package.tracking_number,
    )


class _Interned(Generic[V, P]):
    """Frozen parts of shipments (packages, addresses, the rate), converted once per encoding.

    Why: a shipment is decoded and encoded again at every step of its life (rate, label, each
    milestone, each lease), and these parts, which rarely change, were most of that CPU. The
    domain values are frozen, so one instance can be shared by every shipment decoded from the
    same bytes; and a value this map made (or encoded) is encoded again by parsing its bytes.
    Bounded: past `limit` entries it starts over (a miss only costs the conversion).
    """

    def __init__(
        self,
        message_class: type[P],
        to_domain: Callable[[P], V],
        to_proto: Callable[[V], P],
        limit: int = 4096,
    ) -> None:
        self._message_class = message_class
        self._to_domain = to_domain
        self._to_proto = to_proto
        self._limit = limit
        self._by_encoding: dict[bytes, V] = {}
        # id(value) -> (value, its encoding); holding the value keeps its id from being reused.
        self._encoding_of: dict[int, tuple[V, bytes]] = {}

    def domain(self, message: P) -> V:
        encoding = message.SerializeToString()
        value = self._by_encoding.get(encoding)
        if value is None:
            value = self._to_domain(message)
            self._remember(value, encoding)
        return value

    def proto(self, value: V) -> P:
        known = self._encoding_of.get(id(value))
        if known is not None and known[0] is value:
            return self._message_class.FromString(known[1])
        message = self._to_proto(value)
        self._remember(value, message.SerializeToString())
        return message

    def _remember(self, value: V, encoding: bytes) -> None:
        if len(self._encoding_of) >= self._limit:
            self._by_encoding.clear()
            self._encoding_of.clear()
        self._by_encoding[encoding] = value
        self._encoding_of[id(value)] = (value, encoding)


_packages = _Interned(shipment_pb2.Package, package_to_domain, package_to_proto)
_addresses = _Interned(common_pb2.Address, address_to_domain, address_to_proto)
_rates = _Interned(carrier_pb2.Rate, rate_to_domain, rate_to_proto)


def shipment_to_proto(shipment: Shipment) -> shipment_pb2.Shipment:
    message = shipment_pb2.Shipment(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        partner_id=shipment.partner_id,
        pick_id=shipment.pick_id,
        location_id=shipment.location_id,
        status=int(shipment.status),  # type: ignore[arg-type]
        ship_from=_addresses.proto(shipment.ship_from) if shipment.ship_from else None,
        ship_to=_addresses.proto(shipment.ship_to) if shipment.ship_to else None,
        packages=[_packages.proto(p) for p in shipment.packages],
        service_level=int(shipment.service_level),  # type: ignore[arg-type]
        rate=_rates.proto(shipment.rate) if shipment.rate else None,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        label_id=shipment.label_id,
        last_tracking_status=int(shipment.last_tracking_status),  # type: ignore[arg-type]
        failure_reason=shipment.failure_reason,
        create_time=timestamp(shipment.create_time),
        update_time=timestamp(shipment.update_time),
        cancel_reason=shipment.cancel_reason,
        label_void=int(shipment.label_void),  # type: ignore[arg-type]
        kind=int(shipment.kind),  # type: ignore[arg-type]
        return_id=shipment.return_id,
        last_scan_time=timestamp(shipment.progress.latest_scan_at),
    )
    pod = shipment.proof_of_delivery
    if pod is not None:
        message.proof_of_delivery.CopyFrom(proof_of_delivery_to_proto(pod))
    return message


def proof_of_delivery_to_proto(pod: ProofOfDelivery) -> shipment_pb2.ProofOfDelivery:
    return shipment_pb2.ProofOfDelivery(
        deliver_time=timestamp(pod.deliver_time), signed_by=pod.signed_by, location=pod.location
    )


def shipment_message(shipment: Shipment | ShipmentDocument) -> shipment_pb2.Shipment:
    """The shipment an event carries: the aggregate encoded, or as the store encoded it."""
    if isinstance(shipment, ShipmentDocument):
        return shipment_pb2.Shipment.FromString(shipment.encoded)
    return shipment_to_proto(shipment)


def shipment_to_domain(
    message: shipment_pb2.Shipment,
    *,
    progress: Progress,
    correlation_id: str,
    label_attempts: int,
    final_charge: Money | None,
    version: int,
) -> Shipment:
    """The aggregate from its contract message and what the store keeps beside it."""
    pod = None
    if message.HasField("proof_of_delivery"):
        p = message.proof_of_delivery
        pod = ProofOfDelivery(
            _moment(p.deliver_time) if p.HasField("deliver_time") else None,
            signed_by=p.signed_by,
            location=p.location,
        )
    return Shipment(
        shipment_id=message.shipment_id,
        order_id=message.order_id,
        partner_id=message.partner_id,
        pick_id=message.pick_id,
        location_id=message.location_id,
        status=ShipmentStatus(message.status),
        progress=progress,
        correlation_id=correlation_id,
        ship_from=_addresses.domain(message.ship_from) if message.HasField("ship_from") else None,
        ship_to=_addresses.domain(message.ship_to) if message.HasField("ship_to") else None,
        packages=[_packages.domain(p) for p in message.packages],
        service_level=ServiceLevel(message.service_level),
        rate=_rates.domain(message.rate) if message.HasField("rate") else None,
        carrier=message.carrier,
        tracking_number=message.tracking_number,
        label_id=message.label_id,
        proof_of_delivery=pod,
        last_tracking_status=TrackingStatus(message.last_tracking_status),
        failure_reason=message.failure_reason,
        create_time=_moment(message.create_time) if message.HasField("create_time") else None,
        update_time=_moment(message.update_time) if message.HasField("update_time") else None,
        label_attempts=label_attempts,
        final_charge=final_charge,
        cancel_reason=message.cancel_reason,
        label_void=LabelVoid(message.label_void),
        # Documents stored before kinds existed have none: they are all outbound.
        kind=ShipmentKind(message.kind or ShipmentKind.OUTBOUND),
        return_id=message.return_id,
        version=version,
    )


def ref_to_proto(ref: ShipmentRef) -> events_pb.ShipmentRef:
    return events_pb.ShipmentRef(
        shipment_id=ref.shipment_id,
        order_id=ref.order_id,
        partner_id=ref.partner_id,
        carrier=ref.carrier,
        tracking_number=ref.tracking_number,
        return_id=ref.return_id,
    )


# -- domain events -> crossdock.events.v1 -----------------------------------------------------


@mapper.maps(ShipmentCreated)
def _created(event: ShipmentCreated) -> Mapped:
    message = events_pb.ShipmentCreated(
        shipment=shipment_to_proto(event.shipment), occur_time=timestamp(event.occurred_at)
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentManifested)
def _manifested(event: ShipmentManifested) -> Mapped:
    message = events_pb.ShipmentManifested(
        shipment=shipment_to_proto(event.shipment),
        quoted_charge=money_to_proto(event.quoted_charge) if event.quoted_charge else None,
        service_level=int(event.service_level),  # type: ignore[arg-type]
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentPickedUp)
def _picked_up(event: ShipmentPickedUp) -> Mapped:
    message = events_pb.ShipmentPickedUp(
        shipment=ref_to_proto(event.shipment), occur_time=timestamp(event.occurred_at)
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentOutForDelivery)
def _out_for_delivery(event: ShipmentOutForDelivery) -> Mapped:
    message = events_pb.ShipmentOutForDelivery(
        shipment=ref_to_proto(event.shipment), occur_time=timestamp(event.occurred_at)
    )
    return message, event.shipment.shipment_id


# The outbox subject of ShipmentDelivered: ReemitDelivered finds the original row by it.
DELIVERED_SUBJECT = event_spec(events_pb.ShipmentDelivered).subject


@mapper.maps(ShipmentDelivered)
def _delivered(event: ShipmentDelivered) -> Mapped:
    message = events_pb.ShipmentDelivered(
        shipment=shipment_message(event.shipment),
        final_charge=money_to_proto(event.final_charge) if event.final_charge else None,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentDeliveryException)
def _delivery_exception(event: ShipmentDeliveryException) -> Mapped:
    message = events_pb.ShipmentDeliveryException(
        shipment=ref_to_proto(event.shipment),
        status=int(event.status),  # type: ignore[arg-type]
        incident_reason=int(event.incident_reason),  # type: ignore[arg-type]
        description=event.description,
        occur_time=timestamp(event.occurred_at),
        failure_code=event.failure_code,
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentReturnedToSender)
def _returned_to_sender(event: ShipmentReturnedToSender) -> Mapped:
    message = events_pb.ShipmentReturnedToSender(
        shipment=ref_to_proto(event.shipment),
        incident_reason=int(event.incident_reason),  # type: ignore[arg-type]
        occur_time=timestamp(event.occurred_at),
        location_id=event.location_id,
        items=items_to_proto(event.items),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentCancelled)
def _cancelled(event: ShipmentCancelled) -> Mapped:
    message = events_pb.ShipmentCancelled(
        shipment=shipment_to_proto(event.shipment),
        items=items_to_proto(event.items),
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentLabelVoided)
def _label_voided(event: ShipmentLabelVoided) -> Mapped:
    message = events_pb.ShipmentLabelVoided(
        shipment=ref_to_proto(event.shipment),
        label_id=event.label_id,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ShipmentLabelVoidFailed)
def _label_void_failed(event: ShipmentLabelVoidFailed) -> Mapped:
    message = events_pb.ShipmentLabelVoidFailed(
        shipment=ref_to_proto(event.shipment),
        label_id=event.label_id,
        reason=event.reason,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


# -- return parcels: their own subjects ------------------------------------------------------


@mapper.maps(ReturnParcelManifested)
def _return_manifested(event: ReturnParcelManifested) -> Mapped:
    message = events_pb.ReturnParcelManifested(
        shipment=shipment_to_proto(event.shipment),
        quoted_charge=money_to_proto(event.quoted_charge) if event.quoted_charge else None,
        service_level=int(event.service_level),  # type: ignore[arg-type]
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ReturnParcelPickedUp)
def _return_picked_up(event: ReturnParcelPickedUp) -> Mapped:
    message = events_pb.ReturnParcelPickedUp(
        shipment=ref_to_proto(event.shipment), occur_time=timestamp(event.occurred_at)
    )
    return message, event.shipment.shipment_id


@mapper.maps(ReturnParcelDelivered)
def _return_delivered(event: ReturnParcelDelivered) -> Mapped:
    message = events_pb.ReturnParcelDelivered(
        shipment=shipment_message(event.shipment),
        final_charge=money_to_proto(event.final_charge) if event.final_charge else None,
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.shipment.shipment_id


@mapper.maps(ReturnParcelException)
def _return_exception(event: ReturnParcelException) -> Mapped:
    message = events_pb.ReturnParcelException(
        shipment=ref_to_proto(event.shipment),
        status=int(event.status),  # type: ignore[arg-type]
        incident_reason=int(event.incident_reason),  # type: ignore[arg-type]
        description=event.description,
        occur_time=timestamp(event.occurred_at),
        failure_code=event.failure_code,
    )
    return message, event.shipment.shipment_id
