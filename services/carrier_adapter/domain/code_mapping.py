"""Operators' code mappings: a carrier status code mapped to a canonical status, versioned.

A carrier's packaged table (`status_map.json`) stays the default; an operator who maps a code
the table lacks (or maps wrongly) adds a new version of that code's mapping, and the effective
table is the packaged one with each code's latest version laid over it (`StatusTable.overlaid`).
A mapping is data, never code: no deploy, and every version (who, when, why) is kept.

Scans a code left UNKNOWN are normalized again once it is mapped: the same scan with the mapped
status, under a new dedupe key derived from the old one and the mapping's version, because
shipment stores each dedupe key once and already holds the UNKNOWN scan under the old one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from services.carrier_adapter.domain.model import TrackingScan, TrackingStatus

__all__ = [
    "PACKAGED_VERSION",
    "CodeMapping",
    "MapCode",
    "next_version",
    "renormalized",
    "renormalized_key",
]

# The version a packaged table's own entry is reported under: no operator has changed it.
PACKAGED_VERSION = 0


@dataclass(frozen=True)
class MapCode:
    """An operator's request to map one carrier status code."""

    carrier: str
    carrier_status_code: str
    status: TrackingStatus
    operator: str
    note: str


@dataclass(frozen=True)
class CodeMapping:
    """One version of a code's mapping; version 0 (no operator, no time) is the packaged one."""

    carrier: str
    carrier_status_code: str
    status: TrackingStatus
    version: int
    operator: str = ""
    note: str = ""
    mapped_at: datetime | None = None


def next_version(
    latest: CodeMapping | None, packaged: TrackingStatus | None, wanted: TrackingStatus
) -> int | None:
    """The version a request for `wanted` creates, or None when the code already maps to it
    (the latest operator version, or else the packaged table, decides what is in force)."""
    if wanted is TrackingStatus.UNKNOWN:
        raise ValueError("a code cannot be mapped to UNKNOWN: that is what unmapped means")
    in_force = latest.status if latest is not None else packaged
    if in_force is wanted:
        return None
    return (latest.version if latest is not None else PACKAGED_VERSION) + 1


def renormalized_key(dedupe_key: str, version: int) -> str:
    """The dedupe key of a scan normalized again under mapping `version`: stable, so a retry
    of the same re-normalization is the same scan to shipment, and distinct from the UNKNOWN
    scan's key, which shipment has already stored."""
    material = f"{dedupe_key}|mapped|{version}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def renormalized(scan: TrackingScan, mapping: CodeMapping) -> TrackingScan:
    """`scan`, left UNKNOWN by its status code, normalized with `mapping`. The carrier's codes,
    text, time and place stay as received; an incident reason its incident code gave stays."""
    if scan.carrier_status_code != mapping.carrier_status_code or scan.carrier != mapping.carrier:
        raise ValueError(f"mapping of {mapping.carrier_status_code!r} does not apply to {scan}")
    return replace(
        scan,
        status=mapping.status,
        dedupe_key=renormalized_key(scan.dedupe_key, mapping.version),
    )
