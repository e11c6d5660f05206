"""FedEx through karrio-fedex (OAuth; Rate, Ship, Cancel and Track APIs).

Return labels are FedEx return shipments: the Ship API with the RETURN_SHIPMENT special service
and a PRINT_RETURN_LABEL return detail (karrio sets both), billed to our account.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import karrio.core.models as karrio_models
import karrio.lib as karrio_lib
import karrio.schemas.fedex.tracking_response as fedex_tracking

from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.model import ScanLocation
from services.carrier_adapter.domain.normalize import RawScan

__all__ = ["FedexConnector"]


class FedexConnector(KarrioConnector):
    carrier = "fedex"
    units = "imperial"
    capabilities = Capabilities(push_tracking=False, idempotent_booking=False, return_label=True)

    def karrio_settings(self) -> dict[str, Any]:
        return {
            "api_key": self.account.get("api_key"),
            "secret_key": self.account.get("secret_key"),
            "account_number": self.account.get("account_number"),
            # FedEx projects often carry the Track API under the shipping key; separate Track
            # credentials, when configured, win.
            "track_api_key": self.account.get("track_api_key") or self.account.get("api_key"),
            "track_secret_key": (
                self.account.get("track_secret_key") or self.account.get("secret_key")
            ),
            "test_mode": self.account.test_mode,
        }

    def raw_scans(self, details: karrio_models.TrackingDetails, answer: Any) -> list[RawScan]:
        response = karrio_lib.to_object(fedex_tracking.TrackingResponseType, answer)
        results = [
            result
            for complete in (response.output.completeTrackResults if response.output else [])
            if complete.trackingNumber == details.tracking_number
            for result in complete.trackResults or []
            if result.scanEvents
        ]
        if not results:
            return []
        # FedEx reuses numbers over the years and may answer with several shipments: keep the
        # one with the latest scan, which is the one just booked.
        result = max(results, key=lambda r: max(_instant(e.date) for e in r.scanEvents))
        delivery = result.deliveryDetails
        signer = (delivery.signedByName or delivery.receivedByName or "") if delivery else ""
        return [
            RawScan(
                status_code=event.eventType or "",
                incident_code=event.exceptionCode or "",
                description=event.exceptionDescription or event.eventDescription or "",
                occurred_at=_instant(event.date),
                location=_location(event.scanLocation),
                signed_by=signer if event.eventType == "DL" else "",
            )
            for event in result.scanEvents
        ]


def _instant(value: str | None) -> datetime:
    """FedEx scan dates carry the local offset, e.g. 2026-01-08T14:23:00-08:00."""
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _location(address: fedex_tracking.LastUpdatedDestinationAddressType | None) -> ScanLocation:
    if address is None:
        return ScanLocation()
    return ScanLocation(
        city=(address.city or "").title(),
        region=address.stateOrProvinceCode or "",
        postal_code=str(address.postalCode or ""),
        country_code=address.countryCode or "",
    )
