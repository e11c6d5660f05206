"""stale_tracking: a parcel with the carrier gets a scan at least every `stale_hours`.

Shipment owns the tracking timeline, carrier-adapter talks to the carriers: it takes their
webhooks and polls the ones that do not push, and shipment consumes the scans it publishes. A
lost webhook, a poll schedule that gave up or a scan event never applied leaves a shipment with
the carrier whose last scan grows old while the parcel moves on.

Scan: shipment's ListShipments page by page (500) for each status that means "with the carrier,
not delivered" (picked up, in transit, out for delivery, exception; a MANIFESTED parcel may
not have been handed over yet, so its silence is no tracking gap). A shipment whose last scan
(Shipment.last_scan_time, its update time when it has none) is older than `stale_hours` is a
drift. Correction: carrier-adapter's PollTracking, which asks the carrier now and publishes the
scans not seen before; the drift goes away once shipment has applied a later scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage
from services.control_tower.domain.reconciliation import Drift

PAGE_SIZE = 500
# The statuses of a parcel the carrier has and has not delivered, as the evidence names them.
WITH_CARRIER = {
    shipment_pb2.SHIPMENT_STATUS_PICKED_UP: "picked up",
    shipment_pb2.SHIPMENT_STATUS_IN_TRANSIT: "in transit",
    shipment_pb2.SHIPMENT_STATUS_OUT_FOR_DELIVERY: "out for delivery",
    shipment_pb2.SHIPMENT_STATUS_EXCEPTION: "in exception",
}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).isoformat().replace("+00:00", "Z")


def last_scan(shipment: shipment_pb2.Shipment) -> tuple[float, bool]:
    """When the shipment last had a scan, and whether that is a scan (False: no scan recorded,
    its update time stands in)."""
    if shipment.HasField("last_scan_time"):
        return shipment.last_scan_time.ToNanoseconds() / 1e9, True
    return shipment.update_time.ToNanoseconds() / 1e9, False


class StaleTracking:
    name = "stale_tracking"
    owner = "carrier-adapter"
    action = "carrier-adapter.PollTracking"
    default_interval_seconds = 3600.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        shipments = ctx.shipment
        if shipments is None or ctx.carrier is None:
            raise RuntimeError(f"{self.name} needs the shipment and carrier-adapter targets")
        for status in WITH_CARRIER:
            token = ""
            while True:
                try:
                    page = await shipments.ListShipments(
                        shipment_svc.ListShipmentsRequest(
                            status=status,
                            page_size=PAGE_SIZE,
                            page_token=token,
                        )
                    )
                except grpc.aio.AioRpcError as error:
                    raise OwnerRefused.of("shipment.ListShipments", error) from error
                now = ctx.clock()
                stale_after = ctx.stale_tracking.stale_hours * 3600
                yield ScanPage(len(page.shipments), self.drifts(page.shipments, now, stale_after))
                token = page.next_page_token
                if not token:
                    break

    @staticmethod
    def drifts(
        shipments: Iterable[shipment_pb2.Shipment], now: float, stale_after: float
    ) -> list[Drift]:
        """The shipments with the carrier whose last scan is more than `stale_after` seconds
        before `now`."""
        drifts: list[Drift] = []
        for shipment in shipments:
            where = WITH_CARRIER.get(shipment.status)
            if where is None:  # moved on between pages
                continue
            moment, scanned = last_scan(shipment)
            age = now - moment
            if age <= stale_after:
                continue
            seen = "last scan" if scanned else "no scan recorded, updated"
            evidence = f"{where}, {seen} at {_iso(moment)} ({age / 3600:.1f} h ago)"
            drifts.append(Drift(shipment.shipment_id, shipment.order_id, evidence))
        return drifts

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        if ctx.shipment is None or ctx.carrier is None:
            raise OwnerRefused(
                self.action, "UNIMPLEMENTED", "the tower has no target for shipment or carrier"
            )
        # The parcel's carrier and number, as shipment has them now.
        try:
            found = await ctx.shipment.GetShipment(
                shipment_svc.GetShipmentRequest(shipment_id=drift.subject_id)
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of("shipment.GetShipment", error) from error
        shipment = found.shipment
        if not shipment.tracking_number:
            raise OwnerRefused(
                self.action,
                "NOT_CORRECTABLE",
                f"shipment {drift.subject_id} has no tracking number to poll",
            )
        try:
            answer = await ctx.carrier.PollTracking(
                carrier_svc.PollTrackingRequest(
                    carrier=shipment.carrier, tracking_number=shipment.tracking_number
                )
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(self.action, error) from error
        parcel = f"{shipment.carrier} {shipment.tracking_number}"
        if not answer.new_scans:
            return f"polled {parcel}: the carrier has no new scan"
        scans = "scan" if answer.new_scans == 1 else "scans"
        return f"polled {parcel}: {answer.new_scans} new {scans} published"
