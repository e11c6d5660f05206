"""Load a carrier's data tables (status_map.json, services.json) from its folder, and hold each
carrier's live status table (the packaged one with operators' mappings laid over it)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources

from services.carrier_adapter.domain.code_mapping import CodeMapping
from services.carrier_adapter.domain.model import TrackingStatus
from services.carrier_adapter.domain.service_table import ServiceTable
from services.carrier_adapter.domain.status_table import LiveStatusTable, StatusTable

__all__ = ["CARRIER_CODES", "CodeTables", "load_service_table", "load_status_table"]

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


class CodeTables:
    """Each carrier's LiveStatusTable, one per carrier whatever its number of accounts, so one
    overlay reaches every connector of the carrier. `stamp` is the mappings' stamp
    (store.code_mappings.mappings_stamp) the overlay was last built from."""

    def __init__(self) -> None:
        self._tables: dict[str, LiveStatusTable] = {}
        self._mapped: dict[str, dict[str, TrackingStatus]] = defaultdict(dict)
        self.stamp = -1  # never loaded

    def table(self, carrier: str) -> LiveStatusTable:
        """The carrier's live table (KeyError for a carrier with no tables)."""
        live = self._tables.get(carrier)
        if live is None:
            live = self._tables[carrier] = LiveStatusTable(load_status_table(carrier))
            live.overlay(self._mapped[carrier])
        return live

    def packaged_status(self, carrier: str, code: str) -> TrackingStatus | None:
        return self.table(carrier).packaged.status_of(code)

    def status_of(self, carrier: str, code: str) -> TrackingStatus | None:
        """What the code maps to now: the latest operator mapping, else the packaged table."""
        return self.table(carrier).effective.status_of(code)

    def apply(self, mappings: Iterable[CodeMapping]) -> None:
        """Lay these latest versions over the tables (later versions of a code replace earlier
        ones; codes not named keep theirs)."""
        touched: set[str] = set()
        for mapping in mappings:
            self._mapped[mapping.carrier][mapping.carrier_status_code] = mapping.status
            touched.add(mapping.carrier)
        for carrier in touched:
            if carrier in self._tables:
                self._tables[carrier].overlay(self._mapped[carrier])
