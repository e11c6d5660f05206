"""Turn a carrier's raw scans into canonical TrackingScans with one carrier's code table.

Every connector (karrio or sandbox) extracts `RawScan`s in its own way and hands them here, so
the rules are the same for all: table lookup, UNKNOWN plus a report for unmapped codes, a stable
dedupe key, and oldest-first order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from services.carrier_adapter.domain.model import (
    ScanLocation,
    TrackingResult,
    TrackingScan,
    UnmappedCode,
)
from services.carrier_adapter.domain.status_table import CodeTable

__all__ = ["RawScan", "ScanNormalizer", "UnmappedSink", "dedupe_key"]

# Called once per unmapped code as it is seen: the service passes a metrics counter here.
UnmappedSink = Callable[[UnmappedCode], None]


@dataclass(frozen=True)
class RawScan:
    """One scan as the carrier reported it, before mapping."""

    status_code: str
    description: str
    occurred_at: datetime  # must be timezone-aware
    incident_code: str = ""
    location: ScanLocation | None = None
    signed_by: str = ""


def dedupe_key(carrier: str, tracking_number: str, scan: RawScan) -> str:
    """Same scan → same key across webhook retries and polls.

    Descriptions are left out: a poll and a push may word the same scan differently.
    """
    instant = scan.occurred_at.astimezone(UTC).isoformat(timespec="seconds")
    material = "|".join(
        (carrier, tracking_number, scan.status_code.strip(), scan.incident_code.strip(), instant)
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class ScanNormalizer:
    def __init__(self, table: CodeTable, on_unmapped: UnmappedSink | None = None) -> None:
        self.table = table
        self._on_unmapped = on_unmapped

    @property
    def carrier(self) -> str:
        return self.table.carrier

    def normalize(self, tracking_number: str, raw_scans: Iterable[RawScan]) -> TrackingResult:
        scans: dict[str, TrackingScan] = {}
        unmapped: list[UnmappedCode] = []
        for raw in raw_scans:
            if raw.occurred_at.tzinfo is None:
                raise ValueError(f"{self.carrier} scan {raw.status_code!r} has a naive timestamp")
            key = dedupe_key(self.carrier, tracking_number, raw)
            if key in scans:
                continue  # the carrier repeated a scan inside one answer
            resolution = self.table.resolve(raw.status_code, raw.incident_code)
            scans[key] = TrackingScan(
                tracking_number=tracking_number,
                carrier=self.carrier,
                status=resolution.status,
                incident_reason=resolution.incident,
                carrier_status_code=raw.status_code.strip(),
                carrier_incident_code=raw.incident_code.strip(),
                description=raw.description.strip(),
                occurred_at=raw.occurred_at,
                location=raw.location,
                signed_by=raw.signed_by,
                dedupe_key=key,
            )
            if not resolution.status_mapped:
                unmapped.append(self._report("status", tracking_number, raw))
            if not resolution.incident_mapped:
                unmapped.append(self._report("incident", tracking_number, raw))
        ordered = sorted(scans.values(), key=lambda scan: scan.occurred_at)
        return TrackingResult(self.carrier, tracking_number, tuple(ordered), tuple(unmapped))

    def _report(
        self, kind: Literal["status", "incident"], tracking_number: str, raw: RawScan
    ) -> UnmappedCode:
        code = UnmappedCode(
            carrier=self.carrier,
            tracking_number=tracking_number,
            kind=kind,
            carrier_status_code=raw.status_code.strip(),
            carrier_incident_code=raw.incident_code.strip() if kind == "incident" else "",
            description=raw.description.strip(),
            occurred_at=raw.occurred_at,
        )
        if self._on_unmapped is not None:
            self._on_unmapped(code)
        return code
