"""Every carrier's code tables: valid data, exact lookups, and unknown codes never hidden."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import pytest

from services.carrier_adapter.adapters.carriers import tables
from services.carrier_adapter.adapters.carriers.sandbox import pricing
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import UNMAPPED_DEMO_CODE
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.model import IncidentReason, ServiceLevel, TrackingStatus
from services.carrier_adapter.domain.normalize import RawScan, ScanNormalizer
from services.carrier_adapter.domain.service_table import ServiceTable, ServiceTableError
from services.carrier_adapter.domain.status_table import StatusTable, StatusTableError
from tests.carrier_adapter.conftest import unmapped_count
from tests.carrier_adapter.fakes import Recorder

CARRIERS = tables.CARRIER_CODES
WHEN = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)
# What each carrier's raw table file says, read independently of the loader under test.
RAW = {
    carrier: json.loads(
        (
            resources.files("services.carrier_adapter.adapters.carriers")
            / carrier
            / "status_map.json"
        ).read_text(encoding="utf-8")
    )
    for carrier in CARRIERS
}


@pytest.mark.parametrize("carrier", CARRIERS)
def test_every_mapped_status_code_maps_to_a_defined_status(carrier: str) -> None:
    table = tables.load_status_table(carrier)
    raw_codes = RAW[carrier]["status_codes"]
    assert set(table.status_codes) == set(raw_codes)
    for code, entry in raw_codes.items():
        resolution = table.resolve(code)
        assert resolution.status_mapped
        assert resolution.status is TrackingStatus(entry["status"])
        assert resolution.status is not TrackingStatus.UNKNOWN
        expected_incident = IncidentReason(entry["incident"]) if "incident" in entry else None
        assert resolution.incident is expected_incident


@pytest.mark.parametrize("carrier", CARRIERS)
def test_every_mapped_incident_code_maps_to_a_defined_reason(carrier: str) -> None:
    table = tables.load_status_table(carrier)
    any_status = next(iter(table.status_codes))
    for code, entry in RAW[carrier]["incident_codes"].items():
        resolution = table.resolve(any_status, code)
        assert resolution.incident_mapped
        assert resolution.incident is IncidentReason(entry["incident"])


@pytest.mark.parametrize("carrier", CARRIERS)
def test_tables_cover_the_milestones_shipment_relies_on(carrier: str) -> None:
    statuses = {entry.status for entry in tables.load_status_table(carrier).status_codes.values()}
    assert {TrackingStatus.IN_TRANSIT, TrackingStatus.DELIVERED} <= statuses
    assert TrackingStatus.OUT_FOR_DELIVERY in statuses
    assert TrackingStatus.DELIVERY_FAILED in statuses


@pytest.mark.parametrize("carrier", CARRIERS)
def test_unknown_status_code_becomes_unknown_is_counted_and_reported(
    carrier: str, metrics: CarrierMetrics
) -> None:
    seen = Recorder()

    def sink(code: object) -> None:
        metrics.count_unmapped(code)  # type: ignore[arg-type]
        seen(code)

    normalizer = ScanNormalizer(tables.load_status_table(carrier), sink)
    known = next(iter(tables.load_status_table(carrier).status_codes))
    result = normalizer.normalize(
        "TRK1",
        [
            RawScan(known, "known scan", WHEN),
            RawScan("ZZ-NEVER-SEEN", "odd scan", WHEN.replace(hour=13)),
        ],
    )

    statuses = [scan.status for scan in result.scans]
    assert statuses[1] is TrackingStatus.UNKNOWN  # never silently IN_TRANSIT
    assert statuses[0] is not TrackingStatus.UNKNOWN
    assert unmapped_count(metrics, carrier, "status") == 1
    assert [(u.kind, u.carrier_status_code) for u in result.unmapped] == [
        ("status", "ZZ-NEVER-SEEN")
    ]
    assert seen.unmapped() == list(result.unmapped)
    assert result.unmapped[0].tracking_number == "TRK1"
    assert result.unmapped[0].description == "odd scan"


@pytest.mark.parametrize("carrier", CARRIERS)
def test_unknown_incident_code_keeps_status_says_other_and_is_reported(
    carrier: str, metrics: CarrierMetrics
) -> None:
    table = tables.load_status_table(carrier)
    failed = next(
        code for code, e in table.status_codes.items() if e.status is TrackingStatus.DELIVERY_FAILED
    )
    normalizer = ScanNormalizer(table, metrics.count_unmapped)

    result = normalizer.normalize("TRK2", [RawScan(failed, "attempt", WHEN, incident_code="Q9")])

    assert result.scans[0].status is TrackingStatus.DELIVERY_FAILED
    assert result.scans[0].incident_reason is IncidentReason.OTHER
    assert result.scans[0].carrier_incident_code == "Q9"
    assert [(u.kind, u.carrier_status_code, u.carrier_incident_code) for u in result.unmapped] == [
        ("incident", failed, "Q9")
    ]
    assert unmapped_count(metrics, carrier, "incident") == 1
    assert unmapped_count(metrics, carrier, "status") == 0


def test_sandbox_demo_code_is_deliberately_unmapped() -> None:
    assert UNMAPPED_DEMO_CODE not in tables.load_status_table("sandbox").status_codes


def test_lookup_is_exact_after_trimming() -> None:
    table = tables.load_status_table("dhl_express")
    assert table.resolve(" OK ").status is TrackingStatus.DELIVERED
    assert table.resolve("ok").status is TrackingStatus.UNKNOWN


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ({"carrier": "x", "status_codes": {"A": {"status": "IN_TRANZIT"}}}, "IN_TRANZIT"),
        ({"carrier": "x", "status_codes": {"A": {"status": "UNKNOWN"}}}, "may not map"),
        ({"carrier": "x", "status_codes": {"A": {"status": "DELIVERED", "incident": "X"}}}, "X"),
        ({"carrier": "x", "status_codes": {" A": {"status": "DELIVERED"}}}, "trimmed"),
        ({"carrier": "x", "status_codes": {}}, "empty"),
        ({"status_codes": {"A": {"status": "DELIVERED"}}}, "carrier"),
        (
            {
                "carrier": "x",
                "status_codes": {"A": {"status": "DELIVERED"}},
                "incident_codes": {"1": {"incident": "SNOW"}},
            },
            "SNOW",
        ),
    ],
)
def test_malformed_status_tables_are_refused_at_load(
    raw: dict[str, object], complaint: str
) -> None:
    with pytest.raises(StatusTableError, match=complaint):
        StatusTable.from_mapping(raw)


@pytest.mark.parametrize("carrier", CARRIERS)
def test_service_tables_load_with_defined_levels(carrier: str) -> None:
    table = tables.load_service_table(carrier)
    assert table.carrier == carrier
    assert table.services
    for info in table.services.values():
        assert isinstance(info.level, ServiceLevel)
        assert info.name


def test_sandbox_service_table_agrees_with_its_pricing() -> None:
    table = tables.load_service_table("sandbox")
    assert set(table.services) == set(pricing.SERVICES)
    for code, service in pricing.SERVICES.items():
        assert table.level_of(code) is service.level


def test_service_table_rejects_unknown_level() -> None:
    with pytest.raises(ServiceTableError, match="SUPERSONIC"):
        ServiceTable.from_mapping(
            {"carrier": "x", "services": {"x_fast": {"level": "SUPERSONIC", "name": "Fast"}}}
        )
