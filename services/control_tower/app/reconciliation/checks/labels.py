"""labels: every label carrier-adapter holds is settled and owned by its shipment.

carrier-adapter owns labels (keyed by the caller's idempotency key; shipment books under its
shipment id), shipment owns which label a shipment travels on. Two kinds of drift, both judged
only for labels claimed more than the grace ago (a booking of moments ago may still be on its
way to its shipment):
- `label:<key>`: a label whose outcome is unknown (a carrier that does not dedupe by our key
  timed out after the request left), or a booked label whose shipment failed its label and is
  waiting for someone. Correction: carrier-adapter's ResolveLabel (it asks the carrier: booked
  there, the label is stored; not, the key is released), then, when the shipment failed its
  label, shipment's RetryLabel: it books again under the same key and gets that very label (or
  a new one when the carrier had none), and the order proceeds. Its label exception closes on
  shipment's events as before.
- `orphan:<label_id>`: a booked, live label that no shipment owns: no shipment has its key, or
  the shipment under its key travels on another label (its label id and tracking number
  differ) or was cancelled without it. Correction: carrier-adapter's CancelLabel, which voids
  it at the carrier (no charge for a label never used).
A shipment "owns" a label when its label id is the label's id or its tracking number is the
label's (a shipment records both when its booking answers).

Scan: carrier-adapter's ListLabels (500 a page) of UNKNOWN labels claimed before the grace, then
of BOOKED live labels claimed in the last LOOKBACK (a carrier voids only recent labels; older
ones have moved or expired) and before the grace, with one GetShipment per shipment key of a
page (16 in flight).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage
from services.control_tower.domain.reconciliation import Drift
from services.kit.grpc_errors import details_of, status_from_error

PAGE_SIZE = 500
LABEL = "label:"
ORPHAN = "orphan:"
# Booked labels older than this are not judged orphans any more: carriers void labels only for
# a while after booking.
LOOKBACK_SECONDS = 7 * 24 * 3600.0
_LOOKUPS = 16
# shipment's ids: a key of another shape was never a shipment's.
_SHIPMENT_ID = re.compile(r"^shp_[0-9A-HJKMNP-TV-Z]{26}$")
_UNKNOWN = carrier_svc.LABEL_STATUS_UNKNOWN
_BOOKED = carrier_svc.LABEL_STATUS_BOOKED
_LABEL_FAILED = shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED
_CANCELLED = shipment_pb2.SHIPMENT_STATUS_CANCELLED


def _stamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _label_text(label: carrier_svc.LabelSummary) -> str:
    number = f" {label.tracking_number}" if label.tracking_number else ""
    return f"label {label.label_id} ({label.carrier}{number}, key {label.idempotency_key})"


@dataclass(frozen=True)
class Owner:
    """The shipment under a label's key, as far as the check needs it."""

    shipment_id: str
    order_id: str
    status: int
    label_id: str
    tracking_number: str

    def owns(self, label: carrier_svc.LabelSummary) -> bool:
        if self.label_id:
            return self.label_id == label.label_id
        return bool(self.tracking_number) and self.tracking_number == label.tracking_number


def judge(label: carrier_svc.LabelSummary, owner: Owner | None) -> Drift | None:
    """One listed label's drift, given the shipment under its key (None: no such shipment)."""
    order_id = owner.order_id if owner else ""
    if label.status == _UNKNOWN:
        where = f", shipment {owner.shipment_id}" if owner else ", no shipment has its key"
        return Drift(
            f"{LABEL}{label.idempotency_key}",
            order_id,
            f"{_label_text(label)}: booking outcome unknown at the carrier{where}",
        )
    if label.status != _BOOKED or label.cancelled:
        return None
    if owner is not None and owner.owns(label):
        return None
    if owner is not None and owner.status == _LABEL_FAILED and not owner.label_id:
        return Drift(
            f"{LABEL}{label.idempotency_key}",
            order_id,
            f"{_label_text(label)}: booked, but shipment {owner.shipment_id} failed its label",
        )
    if owner is not None and not owner.label_id and owner.status != _CANCELLED:
        # Its shipment is still booking (a retry will replay this label): not an orphan.
        return None
    if owner is None:
        why = "no shipment has its key"
    elif owner.status == _CANCELLED and not owner.label_id:
        why = f"shipment {owner.shipment_id} was cancelled without it"
    else:
        why = f"shipment {owner.shipment_id} travels on label {owner.label_id}"
    return Drift(f"{ORPHAN}{label.label_id}", order_id, f"{_label_text(label)}: orphan, {why}")


class Labels:
    name = "labels"
    owner = "carrier-adapter"
    action = "carrier-adapter.ResolveLabel"
    default_interval_seconds = 900.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        carrier, shipments = ctx.carrier, ctx.shipment
        if carrier is None or shipments is None:
            raise RuntimeError(f"{self.name} needs the carrier-adapter and shipment targets")
        now = ctx.clock()
        before = _stamp(now - ctx.labels_grace_seconds)
        queries = [
            carrier_svc.ListLabelsRequest(status=_UNKNOWN, created_before=before),
            carrier_svc.ListLabelsRequest(
                status=_BOOKED, created_after=_stamp(now - LOOKBACK_SECONDS), created_before=before
            ),
        ]
        for query in queries:
            query.page_size = PAGE_SIZE
            while True:
                try:
                    page = await carrier.ListLabels(query)
                except grpc.aio.AioRpcError as error:
                    raise OwnerRefused.of("carrier-adapter.ListLabels", error) from error
                owners = await _owners(shipments, (label.idempotency_key for label in page.labels))
                drifts = [
                    drift
                    for label in page.labels
                    if (drift := judge(label, owners.get(label.idempotency_key))) is not None
                ]
                yield ScanPage(len(page.labels), drifts)
                if not page.next_page_token:
                    break
                query.page_token = page.next_page_token

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        carrier, shipments = ctx.carrier, ctx.shipment
        if carrier is None or shipments is None:
            raise OwnerRefused(
                self.action, "UNIMPLEMENTED", "the tower has no target for carrier or shipment"
            )
        if drift.subject_id.startswith(ORPHAN):
            return await _void(carrier, drift.subject_id.removeprefix(ORPHAN))
        if not drift.subject_id.startswith(LABEL):
            raise OwnerRefused(
                self.action, "INVALID_ARGUMENT", f"not a subject of {self.name}: {drift.subject_id}"
            )
        key = drift.subject_id.removeprefix(LABEL)
        outcome = await _resolve(carrier, key)
        owner = (await _owners(shipments, [key])).get(key)
        if owner is None or owner.status != _LABEL_FAILED:
            return outcome
        try:
            await shipments.RetryLabel(shipment_svc.RetryLabelRequest(shipment_id=key))
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of("shipment.RetryLabel", error) from error
        return f"{outcome}; shipment {key} retries its label"


async def _resolve(carrier: carrier_grpc.CarrierAdapterServiceAsyncStub, key: str) -> str:
    """ResolveLabel's answer as a finding's result; a label no longer unknown (resolved by an
    earlier correction whose retry failed) goes on to the retry."""
    try:
        answer = await carrier.ResolveLabel(carrier_svc.ResolveLabelRequest(idempotency_key=key))
    except grpc.aio.AioRpcError as error:
        if _reason(error) == "LABEL_OUTCOME_KNOWN":
            return f"label {key} already settled"
        raise OwnerRefused.of("carrier-adapter.ResolveLabel", error) from error
    if answer.booked:
        return (
            f"carrier had booked {key}: label {answer.label.label_id} "
            f"({answer.label.tracking_number}) stored"
        )
    return f"carrier had not booked {key}: key released for a new booking"


def _reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed call's rich status, "" when it has none."""
    status = status_from_error(error)
    infos = [] if status is None else details_of(status, error_details_pb2.ErrorInfo)
    return infos[0].reason if infos else ""


async def _void(carrier: carrier_grpc.CarrierAdapterServiceAsyncStub, label_id: str) -> str:
    try:
        answer = await carrier.CancelLabel(carrier_svc.CancelLabelRequest(label_id=label_id))
    except grpc.aio.AioRpcError as error:
        raise OwnerRefused.of("carrier-adapter.CancelLabel", error) from error
    return f"orphan label {label_id} ({answer.label.tracking_number}) voided at the carrier"


async def _owners(
    shipments: shipment_grpc.ShipmentServiceAsyncStub, keys: Iterable[str]
) -> dict[str, Owner]:
    """key → the shipment whose id it is; keys that are no shipment's are absent."""
    gate = asyncio.Semaphore(_LOOKUPS)

    async def lookup(shipment_id: str) -> Owner | None:
        async with gate:
            try:
                answer = await shipments.GetShipment(
                    shipment_svc.GetShipmentRequest(shipment_id=shipment_id)
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    return None
                raise OwnerRefused.of("shipment.GetShipment", error) from error
        found = answer.shipment
        return Owner(
            found.shipment_id, found.order_id, found.status, found.label_id, found.tracking_number
        )

    wanted = sorted({key for key in keys if _SHIPMENT_ID.match(key)})
    found = await asyncio.gather(*(lookup(key) for key in wanted))
    return {owner.shipment_id: owner for owner in found if owner is not None}
