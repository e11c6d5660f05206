"""What carrier-adapter announces: new scans of a parcel, carrier codes it could not map, and
codes an operator mapped.

`adapters.contracts` maps each to its contract message (TrackingUpdated, CarrierCodeUnmapped,
CarrierCodeMapped);
a use case announces one with `uow.publish(event)`. An `UnmappedCode` (domain.model) is itself
the domain event behind CarrierCodeUnmapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.carrier_adapter.domain.code_mapping import CodeMapping
from services.carrier_adapter.domain.model import (
    TrackingScan,
    UnmappedCode,
)
from services.kit.values import Money

__all__ = ["CodeMapped", "TrackingUpdated", "UnmappedCode"]


@dataclass(frozen=True)
class TrackingUpdated:
    """Scans of one parcel not published before, oldest first (one push or poll's news)."""

    carrier: str
    tracking_number: str
    scans: tuple[TrackingScan, ...]
    received_at: datetime
    # The carrier's final freight charge, when the push carried one.
    final_charge: Money | None = None


@dataclass(frozen=True)
class CodeMapped:
    """An operator made a new version of a code's mapping; the scans the code had left UNKNOWN
    were normalized again and published."""

    mapping: CodeMapping
    renormalized_scans: int
