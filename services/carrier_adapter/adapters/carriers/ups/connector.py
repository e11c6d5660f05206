"""UPS through karrio-ups (OAuth client credentials; Rating, Shipping, Void and Track APIs).

Return labels are UPS Return Service shipments: the same Shipping API call with a ReturnService
code, billed to our account. We ask for Print Return Label (code 9), which answers the label
document for us to hand the customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import karrio.core.models as karrio_models
import karrio.lib as karrio_lib
import karrio.schemas.ups.tracking_response as ups_tracking

from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.adapters.carriers.karrio_mapping import utc_offset
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.model import ScanLocation
from services.carrier_adapter.domain.normalize import RawScan

__all__ = ["UpsConnector"]


class UpsConnector(KarrioConnector):
    carrier = "ups"
    units = "imperial"
    capabilities = Capabilities(push_tracking=False, idempotent_booking=False, return_label=True)
    # karrio defaults to Return Service 3-Attempt, whose label the UPS driver brings to the
    # customer; Print Return Label answers the label for us to hand over.
    return_options: ClassVar[Mapping[str, Any]] = {"ups_return_service": "ups_print_return_label"}

    def karrio_settings(self) -> dict[str, Any]:
        return {
            "client_id": self.account.get("client_id"),
            "client_secret": self.account.get("client_secret"),
            "account_number": self.account.get("account_number"),
            "test_mode": self.account.test_mode,
        }

    def raw_scans(self, details: karrio_models.TrackingDetails, answer: Any) -> list[RawScan]:
        activities: list[dict[str, Any]] = []
        for number, body in answer:
            shipments = (body.get("trackResponse") or {}).get("shipment") or []
            for shipment in shipments:
                for package in shipment.get("package") or []:
                    if package.get("trackingNumber") in (number, details.tracking_number):
                        activities.extend(package.get("activity") or [])
        signed_by = (details.info.signed_by if details.info else None) or ""
        scans = []
        for raw in activities:
            activity = karrio_lib.to_object(ups_tracking.ActivityType, raw)
            status = activity.status or ups_tracking.StatusType()
            address = activity.location.address if activity.location else None
            scans.append(
                RawScan(
                    status_code=status.code or "",
                    description=status.description or "",
                    occurred_at=_activity_time(raw),
                    location=_location(address),
                    # UPS marks delivery activities with type "D"; only those carry the signer.
                    signed_by=str(signed_by) if status.type == "D" else "",
                )
            )
        return scans


def _activity_time(raw: dict[str, Any]) -> datetime:
    """UPS gives local date/time plus gmtDate/gmtTime/gmtOffset; prefer the GMT pair."""
    gmt_date, gmt_time = str(raw.get("gmtDate") or ""), str(raw.get("gmtTime") or "")
    if gmt_date and gmt_time:
        return datetime.strptime(f"{gmt_date} {gmt_time}", "%Y%m%d %H:%M:%S").replace(tzinfo=UTC)
    local = datetime.strptime(f"{raw.get('date')} {str(raw.get('time')).zfill(6)}", "%Y%m%d %H%M%S")
    # No offset at all: UTC is the least-wrong reading.
    return local.replace(tzinfo=utc_offset(raw.get("gmtOffset")) or UTC).astimezone(UTC)


def _location(address: ups_tracking.AddressType | None) -> ScanLocation | None:
    if address is None:
        return None
    return ScanLocation(
        city=(address.city or "").title(),
        region=address.stateProvince or "",
        postal_code=address.postalCode or "",
        country_code=address.countryCode or address.country or "",
    )
