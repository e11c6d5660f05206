"""DHL Express through karrio-dhl-express (XML-PI: DCT quotes, ShipmentRequest, tracking).

DHL Express does not void waybills through this API (an unscanned waybill is not billed), so
cancel is unsupported and the service keeps the label as void on its side.

No return labels either: karrio-dhl-express's "return shipment" books an ordinary waybill from
the customer's address on our shipper account, plus special service TG (in karrio: return of
undeliverable shipments). That is not a DHL Express return product, so the connector refuses
return labels (Capabilities.return_label is False) rather than book one under a wrong name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import karrio.core.models as karrio_models
import karrio.lib as karrio_lib
import karrio.schemas.dhl_express.tracking_response as dhl_tracking

from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import UnsupportedOperation
from services.carrier_adapter.domain.model import CancelRequest, ScanLocation
from services.carrier_adapter.domain.normalize import RawScan

__all__ = ["DhlExpressConnector"]


class DhlExpressConnector(KarrioConnector):
    carrier = "dhl_express"
    units = "metric"
    capabilities = Capabilities(
        push_tracking=False, idempotent_booking=False, cancel_label=False, return_label=False
    )

    def karrio_settings(self) -> dict[str, Any]:
        return {
            "site_id": self.account.get("site_id"),
            "password": self.account.get("password"),
            "account_number": self.account.get("account_number"),
            "test_mode": self.account.test_mode,
        }

    async def cancel_label(self, request: CancelRequest) -> None:
        raise UnsupportedOperation(self.carrier, "voiding labels")

    def raw_scans(self, details: karrio_models.TrackingDetails, answer: Any) -> list[RawScan]:
        for node in karrio_lib.find_element("AWBInfo", answer):
            if (node.findtext("AWBNumber") or "").strip() != details.tracking_number:
                continue
            events: list[dhl_tracking.ShipmentEvent] = karrio_lib.find_element(
                "ShipmentEvent", node, dhl_tracking.ShipmentEvent
            )
            return [_scan(event) for event in events]
        return []


def _scan(event: dhl_tracking.ShipmentEvent) -> RawScan:
    service = event.ServiceEvent
    code = (service.EventCode or "") if service else ""
    return RawScan(
        status_code=code,
        description=(service.Description or "") if service else "",
        # XML-PI gives the service area's local time with no offset; read as UTC, the least
        # wrong choice without a time zone per service area.
        occurred_at=datetime.fromisoformat(f"{event.Date}T{event.Time}").replace(tzinfo=UTC),
        location=_location(event.ServiceArea),
        signed_by=(event.Signatory or "").strip() if code == "OK" else "",
    )


def _location(area: Any) -> ScanLocation | None:
    description = (getattr(area, "Description", None) or "").strip()
    if not description:
        return None
    # "BERLIN - GERMANY": the city comes first; DHL gives no country code here.
    return ScanLocation(city=description.split(" - ")[0].strip().title())
