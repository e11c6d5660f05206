"""Protobuf contracts ↔ carrier domain dataclasses, and the service's one EventMapper.

The servicer translates requests and answers here; `mapper` turns the domain events use cases
publish (`uow.publish`) into their contract messages, keyed by tracking number.

Enums map by name (proto `TRACKING_STATUS_DELIVERED` ↔ domain `TrackingStatus.DELIVERED`), so
adding a value on one side without the other fails the mapping test, not a customer's scan.
crossdock ids (rte_…, lbl_…) are the service's: the caller passes them in. Money, addresses,
weights, dimensions and instants convert through services.kit.proto_values (money with more
than nine decimals is refused there, never cut).
"""

from __future__ import annotations

import functools
from datetime import datetime

from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2, tracking_pb2
from crossdock.events.v1 import carrier_events_pb2

from services.carrier_adapter.domain.code_mapping import CodeMapping
from services.carrier_adapter.domain.events import CodeMapped, TrackingUpdated
from services.carrier_adapter.domain.model import (
    BookedLabel,
    InboundWebhook,
    IncidentReason,
    LabelFormat,
    LabelRequest,
    Parcel,
    RateQuote,
    RateRequest,
    ScanLocation,
    ServiceLevel,
    TrackingScan,
    TrackingStatus,
    UnmappedCode,
)
from services.kit.proto_values import address_to_domain as address_from_proto
from services.kit.proto_values import dimensions_to_domain, money_to_proto, weight_to_domain
from services.kit.proto_values import money_to_domain as money_from_proto
from services.kit.proto_values import timestamp as _timestamp
from services.kit.uow import EventMapper, Mapped
from services.kit.values import Money

__all__ = [
    "address_from_proto",
    "code_mapping_to_proto",
    "label_format_from_proto",
    "label_request_from_proto",
    "label_to_proto",
    "mapper",
    "money_from_proto",
    "money_to_proto",
    "rate_request_from_proto",
    "rate_to_proto",
    "scan_to_proto",
    "service_level_from_proto",
    "service_level_to_proto",
    "status_from_proto",
    "tracking_updated_event",
    "unmapped_event",
    "webhook_from_proto",
]


def _enum_value(enum_type: object, prefix: str, name: str) -> int:
    return int(enum_type.Value(f"{prefix}_{name}"))  # type: ignore[attr-defined]


def _enum_name(enum_type: object, prefix: str, value: int) -> str:
    return str(enum_type.Name(value)).removeprefix(f"{prefix}_")  # type: ignore[attr-defined]


def service_level_from_proto(value: int) -> ServiceLevel | None:
    if value == carrier_pb2.SERVICE_LEVEL_UNSPECIFIED:
        return None
    return ServiceLevel(_enum_name(carrier_pb2.ServiceLevel, "SERVICE_LEVEL", value))


def service_level_to_proto(level: ServiceLevel | None) -> int:
    if level is None:
        return carrier_pb2.SERVICE_LEVEL_UNSPECIFIED
    return _enum_value(carrier_pb2.ServiceLevel, "SERVICE_LEVEL", level.value)


def _parcel_from_proto(parcel: carrier_pb2.Parcel) -> Parcel:
    dimensions = dimensions_to_domain(parcel.dimensions) if parcel.HasField("dimensions") else None
    return Parcel(weight_to_domain(parcel.weight), dimensions, parcel.reference)


def rate_request_from_proto(request: carrier_service_pb2.GetRatesRequest) -> RateRequest:
    return RateRequest(
        ship_from=address_from_proto(request.ship_from),
        ship_to=address_from_proto(request.ship_to),
        parcels=tuple(_parcel_from_proto(p) for p in request.parcels),
        service_level=service_level_from_proto(request.service_level),
    )


def label_format_from_proto(value: int) -> LabelFormat:
    """The document format a BookLabelRequest asks for; PDF when it names none."""
    if value == carrier_pb2.LABEL_FORMAT_UNSPECIFIED:
        return LabelFormat.PDF
    return LabelFormat(_enum_name(carrier_pb2.LabelFormat, "LABEL_FORMAT", value))


def label_request_from_proto(
    request: carrier_service_pb2.BookLabelRequest, service_code: str
) -> LabelRequest:
    """`service_code` comes from the stored quote that `request.rate_id` names."""
    return LabelRequest(
        idempotency_key=request.idempotency_key,
        service_code=service_code,
        ship_from=address_from_proto(request.ship_from),
        ship_to=address_from_proto(request.ship_to),
        parcels=tuple(_parcel_from_proto(p) for p in request.parcels),
        label_format=label_format_from_proto(request.label_format),
        reference=request.reference,
        is_return=request.is_return,
    )


def rate_to_proto(quote: RateQuote, rate_id: str) -> carrier_pb2.Rate:
    return carrier_pb2.Rate(
        rate_id=rate_id,
        carrier=quote.carrier,
        carrier_account_id=quote.carrier_account_id,
        service_code=quote.service_code,
        service_name=quote.service_name,
        service_level=service_level_to_proto(quote.service_level),  # type: ignore[arg-type]
        total_charge=money_to_proto(quote.total_charge),
        estimated_transit_days=quote.transit_days or 0,
        estimated_delivery_time=_timestamp(quote.estimated_delivery),
        expire_time=_timestamp(quote.expires_at),
    )


def label_to_proto(label: BookedLabel, label_id: str, cancelled: bool = False) -> carrier_pb2.Label:
    return carrier_pb2.Label(
        label_id=label_id,
        carrier=label.carrier,
        service_code=label.service_code,
        tracking_number=label.tracking_number,
        package_tracking_numbers=list(label.package_tracking_numbers),
        format=_enum_value(carrier_pb2.LabelFormat, "LABEL_FORMAT", label.label_format.value),  # type: ignore[arg-type]
        document=label.document,
        quoted_charge=money_to_proto(label.quoted_charge) if label.quoted_charge else None,
        idempotency_key=label.idempotency_key,
        create_time=_timestamp(label.created_at),
        cancelled=cancelled,
        is_return=label.is_return,
    )


def _location_to_proto(location: ScanLocation | None) -> tracking_pb2.ScanLocation | None:
    if location is None:
        return None
    return tracking_pb2.ScanLocation(
        city=location.city,
        region=location.region,
        postal_code=location.postal_code,
        country_code=location.country_code,
    )


# Cached per member: scan_to_proto runs for every published scan, and the lookup by formatted
# name cost more than building the rest of the message. A value the contract lacks still fails
# on its first use (nothing is cached for it).
@functools.cache
def _status_to_proto(status: TrackingStatus) -> int:
    return _enum_value(tracking_pb2.TrackingStatus, "TRACKING_STATUS", status.value)


@functools.cache
def _incident_to_proto(reason: IncidentReason | None) -> int:
    if reason is None:
        return tracking_pb2.INCIDENT_REASON_UNSPECIFIED
    return _enum_value(tracking_pb2.IncidentReason, "INCIDENT_REASON", reason.value)


def status_from_proto(value: int) -> TrackingStatus:
    """A request's canonical status (protovalidate has refused UNSPECIFIED and unknown values)."""
    return TrackingStatus(_enum_name(tracking_pb2.TrackingStatus, "TRACKING_STATUS", value))


def code_mapping_to_proto(mapping: CodeMapping) -> carrier_service_pb2.CodeMapping:
    return carrier_service_pb2.CodeMapping(
        carrier=mapping.carrier,
        carrier_status_code=mapping.carrier_status_code,
        status=_status_to_proto(mapping.status),  # type: ignore[arg-type]
        version=mapping.version,
        operator=mapping.operator,
        note=mapping.note,
        create_time=_timestamp(mapping.mapped_at),
    )


def scan_to_proto(scan: TrackingScan) -> tracking_pb2.TrackingEvent:
    return tracking_pb2.TrackingEvent(
        tracking_number=scan.tracking_number,
        carrier=scan.carrier,
        status=_status_to_proto(scan.status),  # type: ignore[arg-type]
        incident_reason=_incident_to_proto(scan.incident_reason),  # type: ignore[arg-type]
        carrier_status_code=scan.carrier_status_code,
        carrier_incident_code=scan.carrier_incident_code,
        description=scan.description,
        occur_time=_timestamp(scan.occurred_at),
        location=_location_to_proto(scan.location),
        signed_by=scan.signed_by,
        dedupe_key=scan.dedupe_key,
    )


def unmapped_event(code: UnmappedCode) -> carrier_events_pb2.CarrierCodeUnmapped:
    return carrier_events_pb2.CarrierCodeUnmapped(
        carrier=code.carrier,
        tracking_number=code.tracking_number,
        carrier_status_code=code.carrier_status_code,
        carrier_incident_code=code.carrier_incident_code,
        description=code.description,
        occur_time=_timestamp(code.occurred_at),
    )


def tracking_updated_event(
    carrier: str,
    tracking_number: str,
    scans: tuple[TrackingScan, ...],
    received_at: datetime,
    final_charge: Money | None = None,
) -> carrier_events_pb2.TrackingUpdated:
    return carrier_events_pb2.TrackingUpdated(
        carrier=carrier,
        tracking_number=tracking_number,
        events=[scan_to_proto(scan) for scan in scans],
        final_charge=money_to_proto(final_charge) if final_charge else None,
        occur_time=_timestamp(received_at),
    )


def webhook_from_proto(request: carrier_service_pb2.IngestWebhookRequest) -> InboundWebhook:
    return InboundWebhook(
        body=bytes(request.body.data),
        headers={name.lower(): value for name, value in request.signature_headers.items()},
        content_type=request.body.content_type or "application/json",
    )


mapper = EventMapper("carrier-adapter")


@mapper.maps(TrackingUpdated)
def _tracking_updated(event: TrackingUpdated) -> Mapped:
    message = tracking_updated_event(
        event.carrier, event.tracking_number, event.scans, event.received_at, event.final_charge
    )
    return message, event.tracking_number


@mapper.maps(UnmappedCode)
def _code_unmapped(code: UnmappedCode) -> Mapped:
    return unmapped_event(code), code.tracking_number


@mapper.maps(CodeMapped)
def _code_mapped(event: CodeMapped) -> Mapped:
    mapping = event.mapping
    message = carrier_events_pb2.CarrierCodeMapped(
        carrier=mapping.carrier,
        carrier_status_code=mapping.carrier_status_code,
        status=_status_to_proto(mapping.status),  # type: ignore[arg-type]
        version=mapping.version,
        operator=mapping.operator,
        note=mapping.note,
        renormalized_scans=event.renormalized_scans,
        occur_time=_timestamp(mapping.mapped_at),
    )
    # Keyed by the code: its versions stay in order.
    return message, f"{mapping.carrier}:{mapping.carrier_status_code}"
