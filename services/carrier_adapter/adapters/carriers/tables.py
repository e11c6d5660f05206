"""Load a carrier's data tables (status_map.json, services.json) from its folder."""

from __future__ import annotations

import json
from importlib import resources

from services.carrier_adapter.domain.service_table import ServiceTable
from services.carrier_adapter.domain.status_table import StatusTable

__all__ = ["CARRIER_CODES", "load_service_table", "load_status_table"]

CARRIER_CODES = ("ups", "fedex", "dhl_express", "usps", "sandbox")


def _text(carrier: str, name: str) -> str:
    if carrier not in CARRIER_CODES:
        raise KeyError(f"no tables for carrier {carrier!r}")
    return (
        resources.files("services.carrier_adapter.adapters.carriers") / carrier / name
    ).read_text(encoding="utf-8")


def load_status_table(carrier: str) -> StatusTable:

    table = StatusTable.from_mapping(
        json.loads(_text(carrier, "status_map.json")), origin=f"{carrier}/status_map.json"
    )
    if table.carrier != carrier:
        raise ValueError(f"{carrier}/status_map.json declares carrier {table.carrier!r}")
    return table


def load_service_table(carrier: str) -> ServiceTable:

    table = ServiceTable.from_mapping(
        json.loads(_text(carrier, "services.json")), origin=f"{carrier}/services.json"
    )
    if table.carrier != carrier:
        raise ValueError(f"{carrier}/services.json declares carrier {table.carrier!r}")
    return table
