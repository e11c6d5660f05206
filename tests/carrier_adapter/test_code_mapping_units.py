"""Operators' code mappings, without I/O: which request makes a new version, how a scan left
UNKNOWN is normalized again, and that a mapping laid over a carrier's table reaches the
normalizer of every account of that carrier at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.carrier_adapter.adapters.carriers.connectors import ConnectorDeps, build_connector
from services.carrier_adapter.adapters.carriers.tables import CodeTables, load_status_table
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.carrier_adapter.config import CarrierAccount
from services.carrier_adapter.domain.code_mapping import (
    CodeMapping,
    next_version,
    renormalized,
    renormalized_key,
)
from services.carrier_adapter.domain.model import IncidentReason, TrackingStatus
from services.carrier_adapter.domain.normalize import ScanNormalizer
from services.carrier_adapter.domain.status_table import StatusTableError
from tests.carrier_adapter.service_support import scan

NOW = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)


def mapping(code: str, status: TrackingStatus, version: int) -> CodeMapping:
    return CodeMapping("sandbox", code, status, version, "ops@example.com", "carrier docs", NOW)


def test_the_first_mapping_of_an_unmapped_code_is_version_one() -> None:
    assert next_version(None, None, TrackingStatus.DELIVERED) == 1


def test_mapping_a_code_to_the_status_in_force_makes_no_version() -> None:
    latest = mapping("XSC", TrackingStatus.DELIVERED, 3)
    assert next_version(latest, None, TrackingStatus.DELIVERED) is None
    # The packaged table decides while no operator has mapped the code.
    assert next_version(None, TrackingStatus.PICKED_UP, TrackingStatus.PICKED_UP) is None


def test_a_different_status_makes_the_next_version() -> None:
    latest = mapping("XSC", TrackingStatus.DELIVERED, 3)
    assert next_version(latest, None, TrackingStatus.IN_TRANSIT) == 4
    # Overriding a packaged entry starts at 1; the operator's version then decides, not the table.
    assert next_version(None, TrackingStatus.PICKED_UP, TrackingStatus.IN_TRANSIT) == 1
    overridden = mapping("PKP", TrackingStatus.IN_TRANSIT, 1)
    assert next_version(overridden, TrackingStatus.PICKED_UP, TrackingStatus.PICKED_UP) == 2


def test_nothing_maps_to_unknown() -> None:
    with pytest.raises(ValueError):
        next_version(None, None, TrackingStatus.UNKNOWN)


def test_a_renormalized_scan_keeps_the_carrier_facts_under_a_new_stable_key() -> None:
    normalizer = ScanNormalizer(load_status_table("sandbox"))
    (left,) = normalizer.normalize("SBX1", [scan("XSC", 20, reason="NA")]).scans
    assert left.status is TrackingStatus.UNKNOWN

    again = renormalized(left, mapping("XSC", TrackingStatus.DELIVERY_FAILED, 2))

    assert again.status is TrackingStatus.DELIVERY_FAILED
    assert again.incident_reason is IncidentReason.RECIPIENT_ABSENT  # its incident code's
    assert (again.occurred_at, again.carrier_status_code, again.description) == (
        left.occurred_at,
        "XSC",
        left.description,
    )
    # Shipment stores each key once and holds the UNKNOWN scan already: the key must differ,
    # and be the same on a retry of the same version.
    assert again.dedupe_key != left.dedupe_key
    assert again.dedupe_key == renormalized_key(left.dedupe_key, 2)
    assert renormalized_key(left.dedupe_key, 3) != again.dedupe_key


def test_a_mapping_of_another_code_does_not_apply() -> None:
    (left,) = ScanNormalizer(load_status_table("sandbox")).normalize("SBX1", [scan("XSC", 1)]).scans
    with pytest.raises(ValueError):
        renormalized(left, mapping("ZZZ", TrackingStatus.DELIVERED, 1))


def test_an_overlay_may_not_map_to_unknown() -> None:
    with pytest.raises(StatusTableError):
        load_status_table("sandbox").overlaid({"XSC": TrackingStatus.UNKNOWN})


def test_a_mapping_reaches_every_connector_of_the_carrier_at_once() -> None:
    tables = CodeTables()
    deps = ConnectorDeps(clock=SystemClock(), code_tables=tables)
    accounts = [
        CarrierAccount(name, "sandbox", settings={"webhook_secret": "s3cret"})
        for name in ("sandbox", "sandbox_eu")
    ]
    connectors = [build_connector(account, deps) for account in accounts]

    def statuses() -> list[TrackingStatus]:
        return [
            c.normalizer.normalize("SBX1", [scan("XSC", 1)]).scans[0].status  # type: ignore[attr-defined]
            for c in connectors
        ]

    assert statuses() == [TrackingStatus.UNKNOWN] * 2
    tables.apply([mapping("XSC", TrackingStatus.OUT_FOR_DELIVERY, 1)])
    assert statuses() == [TrackingStatus.OUT_FOR_DELIVERY] * 2
    tables.apply([mapping("XSC", TrackingStatus.DELIVERED, 2)])
    assert statuses() == [TrackingStatus.DELIVERED] * 2
    # The packaged entries stay; a mapped code no longer reports itself unmapped.
    result = connectors[0].normalizer.normalize("SBX1", [scan("PKP", 0), scan("XSC", 1)])  # type: ignore[attr-defined]
    assert [s.status for s in result.scans] == [TrackingStatus.PICKED_UP, TrackingStatus.DELIVERED]
    assert result.unmapped == ()
    assert tables.packaged_status("sandbox", "XSC") is None
    assert tables.status_of("sandbox", "XSC") is TrackingStatus.DELIVERED
