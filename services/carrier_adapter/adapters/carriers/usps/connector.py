"""USPS through karrio-usps (OAuth; Prices/Labels v3, label void, Tracking v3).

No return labels: karrio-usps has no USPS returns-label call. Its "return shipment" sets
`imageInfo.returnLabel` on an ordinary outbound label, which buys that outbound label plus a
return label for it, so booking one return would pay for two labels, one of them in the wrong
direction. The connector refuses return labels (Capabilities.return_label is False).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import karrio.core.models as karrio_models
import karrio.lib as karrio_lib
import karrio.schemas.usps.tracking_response as usps_tracking

from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.adapters.carriers.karrio_mapping import utc_offset
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.model import ScanLocation
from services.carrier_adapter.domain.normalize import RawScan

__all__ = ["UspsConnector"]


class UspsConnector(KarrioConnector):
    carrier = "usps"
    units = "imperial"
    capabilities = Capabilities(push_tracking=False, idempotent_booking=False, return_label=False)

    def karrio_settings(self) -> dict[str, Any]:
        return {
            "client_id": self.account.get("client_id"),
            "client_secret": self.account.get("client_secret"),
            "account_number": self.account.get("account_number") or None,
            "CRID": self.account.get("crid") or None,
            "MID": self.account.get("mid") or None,
            "manifest_MID": self.account.get("manifest_mid") or None,
            "test_mode": self.account.test_mode,
        }

    def raw_scans(self, details: karrio_models.TrackingDetails, answer: Any) -> list[RawScan]:
        for number, body in answer:
            if number != details.tracking_number or "error" in body:
                continue
            response = karrio_lib.to_object(usps_tracking.TrackingResponseType, body)
            return [_scan(event) for event in response.trackingEvents or []]
        return []


def _scan(event: usps_tracking.TrackingEventType) -> RawScan:
    return RawScan(
        status_code=event.eventCode or "",
        description=event.eventType or "",
        occurred_at=_instant(event),
        location=ScanLocation(
            city=(event.eventCity or "").title(),
            region=event.eventState or "",
            postal_code=event.eventZIP or "",
            country_code=event.eventCountry or ("US" if event.eventState else ""),
        ),
        signed_by=(event.name or "") if event.eventCode == "01" else "",
    )


def _instant(event: usps_tracking.TrackingEventType) -> datetime:
    """USPS gives eventTimestamp in local time and GMTTimestamp/GMTOffset; prefer GMT."""
    if event.GMTTimestamp:
        parsed = datetime.fromisoformat(event.GMTTimestamp.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    local = datetime.fromisoformat(str(event.eventTimestamp).replace("Z", ""))
    return local.replace(tzinfo=utc_offset(event.GMTOffset) or UTC).astimezone(UTC)
