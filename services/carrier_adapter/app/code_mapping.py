"""Operators map carrier codes (MapCarrierCode); the scans the code left UNKNOWN move on.

A mapping is a versioned row laid over the packaged table (domain.code_mapping). In the unit of
work that stores it, every scan the code left UNKNOWN is claimed and published again with the
mapped status (a TrackingUpdated per parcel, under a new dedupe key), so shipment applies it as
any scan: stored once, never moving a milestone backwards.

Normalization sees a mapping at once in this process (`CodeTables.apply` after the commit) and
in the other replicas at their next `refresh`: one indexed read of the mappings' stamp per
interval, not a read per scan. A scan normalized as UNKNOWN while a mapping was being made
(here or on another replica) is kept like any other and claimed by the next `refresh`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.carrier_adapter.adapters.carriers.tables import CARRIER_CODES, CodeTables
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store import code_mappings as store
from services.carrier_adapter.adapters.store.unmapped import claim_unmapped, pending_codes
from services.carrier_adapter.domain.code_mapping import (
    PACKAGED_VERSION,
    CodeMapping,
    MapCode,
    next_version,
    renormalized,
)
from services.carrier_adapter.domain.events import CodeMapped, TrackingUpdated
from services.carrier_adapter.domain.model import TrackingScan, TrackingStatus
from services.kit.errors import InvalidArgument
from services.kit.request_context import current_correlation_id, new_correlation_id
from services.kit.uow import UnitOfWork, UnitsOfWork

__all__ = ["CodeMappings", "MapOutcome", "known_carrier"]


@dataclass(frozen=True)
class MapOutcome:
    mapping: CodeMapping  # the version in force after the call
    created: bool  # False: the code already mapped to the status, nothing changed
    renormalized_scans: int


def known_carrier(carrier: str, field: str = "carrier") -> str:
    """`carrier` if it has code tables; INVALID_ARGUMENT on `field` otherwise."""
    if carrier not in CARRIER_CODES:
        raise InvalidArgument.for_field(
            field, f"no code table for carrier {carrier!r} (known: {', '.join(CARRIER_CODES)})"
        )
    return carrier


class CodeMappings:
    def __init__(self, units: UnitsOfWork, tables: CodeTables, clock: Clock) -> None:
        self._units = units
        self._tables = tables
        self._clock = clock

    async def map_code(self, command: MapCode) -> MapOutcome:
        known_carrier(command.carrier)
        packaged = self._tables.packaged_status(command.carrier, command.carrier_status_code)
        correlation_id = current_correlation_id() or new_correlation_id()
        outcome = await self._units.run(
            map_code, command, packaged, self._clock.now(), correlation_id
        )
        if outcome.mapping.version != PACKAGED_VERSION:
            self._tables.apply([outcome.mapping])  # this replica's next scan uses it
        return outcome

    async def list_mappings(
        self, carrier: str, page_token: str, size: int
    ) -> tuple[Sequence[CodeMapping], str]:
        if carrier:
            known_carrier(carrier)
        return await self._units.db.run(store.list_mappings, carrier, page_token, size)

    async def refresh(self) -> int:
        """Take up mappings other replicas made, then normalize again the scans left UNKNOWN by
        a code that is mapped by now; returns how many scans were published again."""
        stamp = await self._units.db.run(store.mappings_stamp)
        if stamp != self._tables.stamp:
            stamp, latest = await self._units.db.run(store.latest_mappings)
            self._tables.apply(latest)
            self._tables.stamp = stamp
        published = 0
        for carrier, code in sorted(await self._units.db.run(pending_codes)):
            if carrier in CARRIER_CODES and self._tables.status_of(carrier, code) is not None:
                published += await self._units.run(
                    renormalize_pending,
                    carrier,
                    code,
                    self._tables.packaged_status(carrier, code),
                    self._clock.now(),
                    new_correlation_id(),
                )
        return published


def map_code(
    uow: UnitOfWork,
    command: MapCode,
    packaged: TrackingStatus | None,
    now: datetime,
    correlation_id: str,
) -> MapOutcome:
    """Store a new version of the code's mapping unless it already maps to the status, and
    publish again the scans the code left UNKNOWN (none are left after the first call)."""
    carrier, code = command.carrier, command.carrier_status_code
    latest = store.latest_mapping(uow.conn, carrier, code)
    version = next_version(latest, packaged, command.status)
    if version is None:
        in_force = latest or CodeMapping(carrier, code, command.status, PACKAGED_VERSION)
        count = _renormalize(uow, in_force, now, correlation_id)
        return MapOutcome(in_force, created=False, renormalized_scans=count)
    mapping = CodeMapping(
        carrier, code, command.status, version, command.operator, command.note, now
    )
    store.add_mapping(uow.conn, mapping)
    count = _renormalize(uow, mapping, now, correlation_id)
    uow.publish(CodeMapped(mapping, count), correlation_id=correlation_id)
    return MapOutcome(mapping, created=True, renormalized_scans=count)


def renormalize_pending(
    uow: UnitOfWork,
    carrier: str,
    code: str,
    packaged: TrackingStatus | None,
    now: datetime,
    correlation_id: str,
) -> int:
    """Publish again the scans `code` left UNKNOWN, under the mapping in force as this
    transaction reads it (0 when the code is still unmapped)."""
    in_force = store.latest_mapping(uow.conn, carrier, code)
    if in_force is None:
        if packaged is None:
            return 0
        in_force = CodeMapping(carrier, code, packaged, PACKAGED_VERSION)
    return _renormalize(uow, in_force, now, correlation_id)


def _renormalize(uow: UnitOfWork, mapping: CodeMapping, now: datetime, correlation_id: str) -> int:
    """Claim the code's scans still UNKNOWN and publish them with the mapped status: one
    TrackingUpdated per parcel, its scans oldest first."""
    claimed = claim_unmapped(
        uow.conn, mapping.carrier, mapping.carrier_status_code, mapping.version, now
    )
    by_parcel: dict[str, list[TrackingScan]] = defaultdict(list)
    for scan in claimed:
        by_parcel[scan.tracking_number].append(renormalized(scan, mapping))
    for tracking_number, scans in by_parcel.items():
        uow.publish(
            TrackingUpdated(mapping.carrier, tracking_number, tuple(scans), now),
            correlation_id=correlation_id,
        )
    return len(claimed)
