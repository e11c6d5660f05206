"""How shipment's Text and binary columns spell domain values (the stored formats never change).

- shipments.progress: tracking Progress as JSON (statuses as ints, instants as epoch seconds);
- shipments.final_charge: `[currency_code, units, nanos]` as JSON;
- shipments.document: the contract message (adapters/contracts.py), proto3 binary;
- pending_picks.lines: `[{"line", "sku", "quantity", "lot"}, ...]` as JSON;
- order_refs.ship_to: crossdock.common.v1.Address, proto3 binary.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from crossdock.common.v1 import common_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.kit.proto_values import address_to_domain, address_to_proto
from services.kit.values import Address, Money, to_decimal, to_units_nanos
from services.shipment.adapters.contracts import shipment_to_domain, shipment_to_proto
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import Shipment
from services.shipment.domain.tracking import Progress


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def progress_json(p: Progress) -> str:
    return json.dumps(
        {
            "status": int(p.status),
            "reached": int(p.reached),
            "reached_at": _epoch(p.reached_at),
            "exception_at": _epoch(p.exception_at),
            "latest_scan_at": _epoch(p.latest_scan_at),
            "latest_tracking_status": int(p.latest_tracking_status),
        }
    )


def parse_progress(raw: str) -> Progress:
    d = json.loads(raw)
    return Progress(
        ShipmentStatus(d["status"]),
        ShipmentStatus(d["reached"]),
        _moment(d["reached_at"]),
        _moment(d["exception_at"]),
        _moment(d["latest_scan_at"]),
        TrackingStatus(d["latest_tracking_status"]),
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
    document: bytes, last_tracking_status: TrackingStatus, update_time: datetime
) -> bytes:
    """The stored document with only what a plain timeline scan changes set anew.

    Why: patching the two fields on the protobuf message costs a few µs, where decoding the
    whole shipment to the aggregate and encoding it back cost most of a scan's CPU.
    """
    message = shipment_pb2.Shipment.FromString(document)
    message.last_tracking_status = int(last_tracking_status)  # type: ignore[assignment]
    message.update_time.FromDatetime(update_time)
    return message.SerializeToString()


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
