"""How shipment's Text and binary columns spell domain values (the stored formats never change).

- shipments.progress: tracking Progress as JSON (statuses as ints, instants as epoch seconds;
  written compact by orjson, once with spaces by the stdlib: both read the same);
- shipments.final_charge: `[currency_code, units, nanos]` as JSON;
- shipments.document: the contract message (adapters/contracts.py), proto3 binary;
- pending_picks.lines: `[{"line", "sku", "quantity", "lot"}, ...]` as JSON;
- order_refs.ship_to: crossdock.common.v1.Address, proto3 binary.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
from crossdock.common.v1 import common_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.kit.proto_values import address_to_domain, address_to_proto, timestamp
from services.kit.values import Address, Money, to_decimal, to_units_nanos
from services.shipment.adapters.contracts import (
    proof_of_delivery_to_proto,
    shipment_to_domain,
    shipment_to_proto,
)
from services.shipment.domain.events import ShipmentRef
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import Shipment
from services.shipment.domain.tracking import Progress, ProofOfDelivery


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


# Enum members by value: a dict lookup is several times cheaper than calling the enum class,
# and progress is read and written with every scan.
_SHIPMENT_STATUS = {int(status): status for status in ShipmentStatus}
_TRACKING_STATUS = {int(status): status for status in TrackingStatus}


def progress_json(p: Progress) -> str:
    # orjson: the same JSON (compact, no spaces after separators) at a fraction of the stdlib's
    # CPU; both forms read back the same.
    return orjson.dumps(
        {
            "status": int(p.status),
            "reached": int(p.reached),
            "reached_at": _epoch(p.reached_at),
            "exception_at": _epoch(p.exception_at),
            "latest_scan_at": _epoch(p.latest_scan_at),
            "latest_tracking_status": int(p.latest_tracking_status),
        }
    ).decode()


def parse_progress(raw: str) -> Progress:
    d = orjson.loads(raw)
    return Progress(
        _SHIPMENT_STATUS[d["status"]],
        _SHIPMENT_STATUS[d["reached"]],
        _moment(d["reached_at"]),
        _moment(d["exception_at"]),
        _moment(d["latest_scan_at"]),
        _TRACKING_STATUS[d["latest_tracking_status"]],
    )


def final_charge_json(charge: Money | None) -> str | None:
    if charge is None:
        return None
    units, nanos = to_units_nanos(charge.amount)
    return json.dumps([charge.currency_code, units, nanos])


def parse_final_charge(raw: str | None) -> Money | None:
    if raw is None:
        return None
    currency_code, units, nanos = json.loads(raw)
    return Money(currency_code, to_decimal(units, nanos))


def lines_json(lines: tuple[PickedUnits, ...]) -> str:
    return json.dumps(
        [
            {"line": u.order_line_number, "sku": u.sku, "quantity": u.quantity, "lot": u.lot}
            for u in lines
        ]
    )


def parse_lines(raw: str) -> tuple[PickedUnits, ...]:
    return tuple(
        PickedUnits(int(str(x["line"])), str(x["sku"]), int(str(x["quantity"])), str(x["lot"]))
        for x in json.loads(raw)
    )


def address_bytes(address: Address) -> bytes:
    return address_to_proto(address).SerializeToString()


def parse_address(raw: bytes) -> Address:
    return address_to_domain(common_pb2.Address.FromString(raw))


def shipment_document(shipment: Shipment) -> bytes:
    return shipment_to_proto(shipment).SerializeToString()


def document_with_timeline(
    document: bytes,
    status: ShipmentStatus,
    last_tracking_status: TrackingStatus,
    update_time: datetime | None,
    proof_of_delivery: ProofOfDelivery | None = None,
    last_scan_time: datetime | None = None,
) -> bytes:
    """The stored document with only what timeline scans change set anew (the update time,
    proof of delivery and last scan time each kept when None): the shipment's document after
    them, or the shipment a delivery's milestone carries.

    Why: patching these fields on the protobuf message costs a few µs, where decoding the
    whole shipment to the aggregate and encoding it back cost most of a scan's CPU.
    """
    message = shipment_pb2.Shipment.FromString(document)
    message.status = int(status)  # type: ignore[assignment]
    message.last_tracking_status = int(last_tracking_status)  # type: ignore[assignment]
    if not message.kind:  # stored before kinds existed: outbound, as shipment_to_domain reads it
        message.kind = shipment_pb2.SHIPMENT_KIND_OUTBOUND
    if update_time is not None:
        stamp = timestamp(update_time)  # the kit's: a quarter of Timestamp.FromDatetime's CPU
        assert stamp is not None
        message.update_time.CopyFrom(stamp)
    if proof_of_delivery is not None:
        message.proof_of_delivery.CopyFrom(proof_of_delivery_to_proto(proof_of_delivery))
    if last_scan_time is not None:
        scanned = timestamp(last_scan_time)
        assert scanned is not None
        message.last_scan_time.CopyFrom(scanned)
    return message.SerializeToString()


def parse_ref(document: bytes) -> tuple[ShipmentRef, bool]:
    """Who a stored shipment is (as `Shipment.ref()` of it decoded), and whether it is a
    return parcel, without decoding the rest."""
    message = shipment_pb2.Shipment.FromString(document)
    ref = ShipmentRef(
        message.shipment_id,
        message.order_id,
        message.partner_id,
        message.carrier,
        message.tracking_number,
        message.return_id,
    )
    return ref, message.kind == shipment_pb2.SHIPMENT_KIND_RETURN


def parse_shipment(row: object) -> Shipment:
    """A shipments row (document and the columns beside it) as the aggregate."""
    return shipment_to_domain(
        shipment_pb2.Shipment.FromString(row.document),  # type: ignore[attr-defined]
        progress=parse_progress(row.progress),  # type: ignore[attr-defined]
        correlation_id=row.correlation_id,  # type: ignore[attr-defined]
        label_attempts=row.label_attempts,  # type: ignore[attr-defined]
        final_charge=parse_final_charge(row.final_charge),  # type: ignore[attr-defined]
        version=row.version,  # type: ignore[attr-defined]
    )
