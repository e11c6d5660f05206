"""The sandbox carrier's own webhook format, its HMAC-SHA256 signature and the verifier.

Wire format (JSON body):

    {"id": "evt_sbx_…", "type": "tracking.updated", "created_at": "2026-01-05T10:00:00Z",
     "data": {"tracking_number": "SBX…",
              "scans": [{"code": "PKP", "reason": "", "description": "…",
                         "occurred_at": "…Z", "signed_by": "",
                         "location": {"city": "…", "region": "…", "postal_code": "…",
                                      "country": "US"}}],
              "final_charge": {"amount": "12.34", "currency": "USD"}}}

Headers (names lower-case, as IngestWebhookRequest.signature_headers carries them):

    x-sandbox-event-id:  evt_sbx_…
    x-sandbox-timestamp: 1767607200            (unix seconds when signed)
    x-sandbox-signature: v1=<hex>[,v1=<hex>]   (one per active secret, for rotation)

v1 = HMAC-SHA256(secret, f"{timestamp}." + body). Signing the timestamp with the body and
refusing old timestamps stops a captured push from being replayed later; comparing in constant
time stops the signature from leaking byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.carrier_adapter.domain.errors import WebhookMalformed, WebhookSignatureInvalid
from services.carrier_adapter.domain.model import (
    ScanLocation,
)
from services.carrier_adapter.domain.normalize import RawScan
from services.kit.values import Money

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DecodedPush",
    "decode_push",
    "encode_push",
    "scans_from_json",
    "scans_to_json",
    "sign",
    "verify",
]

EVENT_ID_HEADER = "x-sandbox-event-id"
TIMESTAMP_HEADER = "x-sandbox-timestamp"
SIGNATURE_HEADER = "x-sandbox-signature"
DEFAULT_TOLERANCE = timedelta(minutes=5)
_CARRIER = "sandbox"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], event_id: str, now: datetime) -> dict[str, str]:
    """Headers for one push of `body`; every secret signs, so receivers may rotate."""
    if not secrets:
        raise ValueError("at least one webhook secret is required")
    timestamp = str(int(now.timestamp()))
    signatures = ",".join(f"v1={_digest(secret, timestamp, body)}" for secret in secrets)
    return {
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signatures,
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Raise WebhookSignatureInvalid unless one v1 signature matches one secret, in time."""
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp, signature = lowered.get(TIMESTAMP_HEADER), lowered.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise WebhookSignatureInvalid(_CARRIER, "signature or timestamp header missing")
    if not timestamp.isdigit():
        raise WebhookSignatureInvalid(_CARRIER, "timestamp is not unix seconds")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs(now - signed_at) > tolerance:
        raise WebhookSignatureInvalid(_CARRIER, "timestamp outside the tolerance window")
    offered = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    expected = [_digest(secret, timestamp, body) for secret in secrets if secret]
    # Compare every pair, so timing does not reveal which secret or signature nearly matched.
    matched = False
    for candidate in offered:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise WebhookSignatureInvalid(_CARRIER, "no signature matches")


@dataclass(frozen=True)
class DecodedPush:
    event_id: str
    tracking_number: str
    scans: tuple[RawScan, ...]
    final_charge: Money | None


def encode_push(
    event_id: str,
    tracking_number: str,
    scans: Sequence[RawScan],
    created_at: datetime,
    final_charge: Money | None = None,
) -> bytes:
    data: dict[str, Any] = {"tracking_number": tracking_number, "scans": scans_to_json(scans)}
    if final_charge is not None:
        data["final_charge"] = {
            "amount": str(final_charge.amount),
            "currency": final_charge.currency_code,
        }
    envelope = {
        "id": event_id,
        "type": "tracking.updated",
        "created_at": _iso(created_at),
        "data": data,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode("utf-8")


def decode_push(body: bytes) -> DecodedPush:
    """Parse a verified body; any shape problem is WebhookMalformed (a 400, not a retry)."""
    try:
        envelope = json.loads(body)
        if envelope["type"] != "tracking.updated":
            raise WebhookMalformed(_CARRIER, f"unknown type {envelope['type']!r}")
        data = envelope["data"]
        scans = scans_from_json(data["scans"])
        charge = data.get("final_charge")
        return DecodedPush(
            event_id=str(envelope["id"]),
            tracking_number=str(data["tracking_number"]),
            scans=scans,
            final_charge=Money.of(charge["amount"], charge["currency"]) if charge else None,
        )
    except WebhookMalformed:
        raise
    except (ValueError, KeyError, TypeError, ArithmeticError) as error:
        raise WebhookMalformed(_CARRIER, f"{type(error).__name__}: {error}") from None


def scans_to_json(scans: Sequence[RawScan]) -> list[dict[str, Any]]:
    """Scans in the sandbox's wire shape (pushes, and its tracking API's answers)."""
    return [
        {
            "code": scan.status_code,
            "reason": scan.incident_code,
            "description": scan.description,
            "occurred_at": _iso(scan.occurred_at),
            "signed_by": scan.signed_by,
            "location": _location_json(scan.location),
        }
        for scan in scans
    ]


def scans_from_json(raw: Sequence[Any]) -> tuple[RawScan, ...]:
    """Parse scans_to_json's shape; a missing or bad field raises KeyError/ValueError/TypeError."""
    return tuple(
        RawScan(
            status_code=str(scan["code"]),
            incident_code=str(scan.get("reason") or ""),
            description=str(scan.get("description") or ""),
            occurred_at=_parse_instant(scan["occurred_at"]),
            location=_location(scan.get("location")),
            signed_by=str(scan.get("signed_by") or ""),
        )
        for scan in raw
    )


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("occurred_at must carry an offset")
    return parsed.astimezone(UTC)


def _location_json(location: ScanLocation | None) -> dict[str, str] | None:
    if location is None:
        return None
    return {
        "city": location.city,
        "region": location.region,
        "postal_code": location.postal_code,
        "country": location.country_code,
    }


def _location(raw: Any) -> ScanLocation | None:
    if not raw:
        return None
    return ScanLocation(
        city=str(raw.get("city") or ""),
        region=str(raw.get("region") or ""),
        postal_code=str(raw.get("postal_code") or ""),
        country_code=str(raw.get("country") or ""),
    )
