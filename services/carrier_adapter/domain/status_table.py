"""Carrier code tables: a carrier's own status and incident codes → canonical status and reason.

The tables are data (`carriers/<code>/status_map.json`), so adding a code a carrier started
sending is a data change with a test, not a code change. File shape:

    {
      "carrier": "fedex",
      "source": "where the codes come from (API field names)",
      "status_codes": {
        "PU": {"status": "PICKED_UP", "text": "Picked up"},
        "DE": {"status": "DELIVERY_FAILED", "text": "Delivery exception"},
        "DY": {"status": "DELIVERY_DELAYED", "incident": "CARRIER_DELAY", "text": "Delay"}
      },
      "incident_codes": {"07": {"incident": "REFUSED", "text": "Refused by recipient"}}
    }

`status_codes[code].incident` is the reason implied by the status code itself (DHL's "NH" means
"not home"); `incident_codes` holds carriers' separate exception codes (FedEx exceptionCode).
A status code missing from the table resolves to UNKNOWN and is reported, never guessed: a silent
"in transit" would hide a stuck or failed delivery.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from services.carrier_adapter.domain.model import IncidentReason, TrackingStatus

__all__ = ["CodeResolution", "CodeTable", "LiveStatusTable", "StatusTable", "StatusTableError"]

_E = TypeVar("_E", TrackingStatus, IncidentReason)

# UNKNOWN is what an unmapped code becomes; a table mapping to it would hide the gap.
_MAPPABLE_STATUSES = frozenset(TrackingStatus) - {TrackingStatus.UNKNOWN}


class StatusTableError(ValueError):
    """A table file is malformed; raised at load so a bad deploy fails at start."""


@dataclass(frozen=True)
class CodeResolution:
    status: TrackingStatus
    incident: IncidentReason | None
    status_mapped: bool
    # False only when the carrier sent an incident code the table does not know.
    incident_mapped: bool


@dataclass(frozen=True)
class _StatusEntry:
    status: TrackingStatus
    incident: IncidentReason | None
    text: str


@dataclass(frozen=True)
class StatusTable:
    carrier: str
    status_codes: Mapping[str, _StatusEntry]
    incident_codes: Mapping[str, IncidentReason]
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> StatusTable:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StatusTableError(f"{path}: {error}") from error
        return cls.from_mapping(raw, origin=str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, origin: str = "<table>") -> StatusTable:
        carrier = raw.get("carrier")
        if not isinstance(carrier, str) or not carrier:
            raise StatusTableError(f"{origin}: 'carrier' must be a non-empty string")
        statuses: dict[str, _StatusEntry] = {}
        for code, entry in _section(raw, "status_codes", origin).items():
            if not isinstance(entry, Mapping):
                raise StatusTableError(f"{origin}: status code {code!r} must map to an object")
            status = _enum(TrackingStatus, entry.get("status"), origin, code)
            if status not in _MAPPABLE_STATUSES:
                raise StatusTableError(f"{origin}: status code {code!r} may not map to {status}")
            incident = entry.get("incident")
            statuses[_key(code, origin)] = _StatusEntry(
                status=status,
                incident=None
                if incident is None
                else _enum(IncidentReason, incident, origin, code),
                text=str(entry.get("text", "")),
            )
        incidents: dict[str, IncidentReason] = {}
        for code, entry in _section(raw, "incident_codes", origin).items():
            if not isinstance(entry, Mapping):
                raise StatusTableError(f"{origin}: incident code {code!r} must map to an object")
            incidents[_key(code, origin)] = _enum(
                IncidentReason, entry.get("incident"), origin, code
            )
        if not statuses:
            raise StatusTableError(f"{origin}: 'status_codes' is empty")
        return cls(carrier, statuses, incidents, str(raw.get("source", "")))

    def status_of(self, status_code: str) -> TrackingStatus | None:
        """The status the table maps `status_code` to, or None when it has no entry."""
        entry = self.status_codes.get(status_code)
        return None if entry is None else entry.status

    def overlaid(self, statuses: Mapping[str, TrackingStatus]) -> StatusTable:
        """This table with `statuses` (code → status, operators' mappings) laid over its status
        codes. An overlaid entry implies no incident: the operator named only a status."""
        merged = dict(self.status_codes)
        for code, status in statuses.items():
            if status not in _MAPPABLE_STATUSES:
                raise StatusTableError(f"{self.carrier}: code {code!r} may not map to {status}")
            merged[code] = _StatusEntry(status, None, "")
        return StatusTable(self.carrier, merged, self.incident_codes, self.source)

    def resolve(self, status_code: str, incident_code: str = "") -> CodeResolution:
        """Map one scan's codes. Codes compare exactly after trimming whitespace."""
        entry = self.status_codes.get(status_code.strip())
        status = entry.status if entry else TrackingStatus.UNKNOWN
        incident = entry.incident if entry else None
        incident_mapped = True
        if incident_code.strip():
            found = self.incident_codes.get(incident_code.strip())
            if found is None:
                # The carrier gave a reason we cannot name: keep the status, say OTHER, report.
                incident, incident_mapped = IncidentReason.OTHER, False
            else:
                incident = found
        return CodeResolution(status, incident, entry is not None, incident_mapped)


class CodeTable(Protocol):
    """What normalizing a scan needs of a carrier's table (StatusTable, LiveStatusTable)."""

    @property
    def carrier(self) -> str: ...

    def resolve(self, status_code: str, incident_code: str = "") -> CodeResolution: ...


class LiveStatusTable:
    """A carrier's packaged table with the operators' latest mappings laid over it.

    Connectors normalize through it while the service swaps the overlay (`overlay`) when a
    mapping is made here or seen in the database, so a new mapping applies to the next scan
    without a restart or a read per scan. The swap replaces one reference, so a scan being
    normalized sees either the old table or the new one, never half of each.
    """

    def __init__(self, packaged: StatusTable) -> None:
        self.packaged = packaged
        self._effective = packaged

    @property
    def carrier(self) -> str:
        return self.packaged.carrier

    @property
    def effective(self) -> StatusTable:
        return self._effective

    def overlay(self, statuses: Mapping[str, TrackingStatus]) -> None:
        """Lay `statuses` (every operator-mapped code's latest status) over the packaged table."""
        self._effective = self.packaged.overlaid(statuses)

    def resolve(self, status_code: str, incident_code: str = "") -> CodeResolution:
        return self._effective.resolve(status_code, incident_code)


def _section(raw: Mapping[str, Any], name: str, origin: str) -> Mapping[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, Mapping):
        raise StatusTableError(f"{origin}: {name!r} must be an object")
    return section


def _key(code: object, origin: str) -> str:
    if not isinstance(code, str) or not code.strip() or code != code.strip():
        raise StatusTableError(f"{origin}: code {code!r} must be a trimmed non-empty string")
    return code


def _enum(kind: type[_E], value: object, origin: str, code: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        raise StatusTableError(
            f"{origin}: code {code!r} maps to {value!r}, not a {kind.__name__}"
        ) from None
