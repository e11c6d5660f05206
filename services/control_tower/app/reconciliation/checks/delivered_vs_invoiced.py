"""delivered_vs_invoiced: every delivered outbound shipment has exactly one invoice.

Shipment owns deliveries, billing owns invoices; billing invoices a shipment when it consumes
`shipment.delivered`. A delivered event billing never applied (lost, purged, dead-lettered and
discarded) leaves a delivered shipment with no invoice. Return parcels are never invoiced (their
goods are credited), so only outbound shipments count.

Scan: shipment's ListShipments(status DELIVERED) page by page (500), and for each page billing's
ListInvoices(shipment_ids = the page's ids), itself paged. Drifts:
- no invoice: corrected by shipment's ReemitDelivered, which publishes the delivered event again
  under its original event id through its outbox, so billing's inbox applies it at most once;
- two or more invoices: no automatic correction (which one is wrong is an accounting decision),
  so correct() refuses and the finding stays for an operator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import grpc
from crossdock.billing.v1 import billing_service_pb2 as billing_svc
from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc

from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.app.reconciliation.checks import CheckContext, ScanPage
from services.control_tower.domain.reconciliation import Drift

PAGE_SIZE = 500
_NO_INVOICE = "no invoice"
_OUTBOUND = frozenset({shipment_pb2.SHIPMENT_KIND_UNSPECIFIED, shipment_pb2.SHIPMENT_KIND_OUTBOUND})


def _delivered_at(shipment: shipment_pb2.Shipment) -> str:
    pod = shipment.proof_of_delivery
    moment = pod.deliver_time if pod.HasField("deliver_time") else shipment.update_time
    return datetime.fromtimestamp(moment.seconds, UTC).isoformat().replace("+00:00", "Z")


class DeliveredVsInvoiced:
    name = "delivered_vs_invoiced"
    owner = "shipment"
    action = "shipment.ReemitDelivered"
    default_interval_seconds = 900.0

    async def scan(self, ctx: CheckContext) -> AsyncIterator[ScanPage]:
        shipments, billing = ctx.shipment, ctx.billing
        if shipments is None or billing is None:
            raise RuntimeError(f"{self.name} needs the shipment and billing targets")
        token = ""
        while True:
            try:
                page = await shipments.ListShipments(
                    shipment_svc.ListShipmentsRequest(
                        status=shipment_pb2.SHIPMENT_STATUS_DELIVERED,
                        page_size=PAGE_SIZE,
                        page_token=token,
                    )
                )
            except grpc.aio.AioRpcError as error:
                raise OwnerRefused.of("shipment.ListShipments", error) from error
            outbound = [s for s in page.shipments if s.kind in _OUTBOUND]
            invoices = await self._invoices(billing, [s.shipment_id for s in outbound])
            yield ScanPage(len(page.shipments), self._drifts(page.shipments, invoices))
            token = page.next_page_token
            if not token:
                return

    @staticmethod
    async def _invoices(
        billing: billing_grpc.BillingServiceAsyncStub, shipment_ids: list[str]
    ) -> dict[str, list[str]]:
        """shipment id → its invoices' numbers (or ids), every page of billing's answer."""
        found: dict[str, list[str]] = defaultdict(list)
        if not shipment_ids:
            return found
        token = ""
        while True:
            try:
                answer = await billing.ListInvoices(
                    billing_svc.ListInvoicesRequest(
                        shipment_ids=shipment_ids, page_size=PAGE_SIZE, page_token=token
                    )
                )
            except grpc.aio.AioRpcError as error:
                raise OwnerRefused.of("billing.ListInvoices", error) from error
            for invoice in answer.invoices:
                found[invoice.shipment_id].append(invoice.invoice_number or invoice.invoice_id)
            token = answer.next_page_token
            if not token:
                return found

    @staticmethod
    def _drifts(
        shipments: Iterable[shipment_pb2.Shipment], invoices: dict[str, list[str]]
    ) -> list[Drift]:
        """The drifts among delivered shipments, given their invoices (return parcels are
        never invoiced: skipped)."""
        drifts: list[Drift] = []
        for shipment in shipments:
            if shipment.kind not in _OUTBOUND:
                continue
            found = sorted(invoices.get(shipment.shipment_id, []))
            if len(found) == 1:
                continue
            delivered = f"delivered at {_delivered_at(shipment)}"
            evidence = (
                f"{delivered}, {_NO_INVOICE}"
                if not found
                else f"{delivered}, {len(found)} invoices: {', '.join(found)}"
            )
            drifts.append(Drift(shipment.shipment_id, shipment.order_id, evidence))
        return drifts

    async def correct(self, ctx: CheckContext, drift: Drift) -> str:
        if not drift.evidence.endswith(_NO_INVOICE):
            raise OwnerRefused(
                self.action,
                "NOT_CORRECTABLE",
                f"shipment {drift.subject_id} has more than one invoice: which to credit is an "
                "operator's decision in billing; resolve the finding once done",
            )
        if ctx.shipment is None:
            raise OwnerRefused(self.action, "UNIMPLEMENTED", "the tower has no target for shipment")
        try:
            answer = await ctx.shipment.ReemitDelivered(
                shipment_svc.ReemitDeliveredRequest(
                    shipment_id=drift.subject_id,
                    reason=f"reconciliation {self.name}: {drift.evidence}",
                )
            )
        except grpc.aio.AioRpcError as error:
            raise OwnerRefused.of(self.action, error) from error
        if not answer.reemitted:
            return f"delivered event {answer.event_id} still waiting in shipment's outbox"
        return f"delivered event {answer.event_id} re-emitted"
