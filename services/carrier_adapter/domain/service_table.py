"""Carrier service tables: a carrier's service codes → canonical service level and display name.

Data (`carriers/<code>/services.json`), like the status tables:

    {"carrier": "ups", "services": {"ups_ground": {"level": "STANDARD", "name": "UPS Ground"}}}

A quote for a service missing from the table keeps `service_level=None`: it can still be booked
by its code, but never satisfies a level the customer paid for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.carrier_adapter.domain.model import ServiceLevel

__all__ = ["ServiceInfo", "ServiceTable", "ServiceTableError"]


class ServiceTableError(ValueError):
    pass


@dataclass(frozen=True)
class ServiceInfo:
    code: str
    level: ServiceLevel
    name: str


@dataclass(frozen=True)
class ServiceTable:
    carrier: str
    services: Mapping[str, ServiceInfo]

    @classmethod
    def load(cls, path: Path) -> ServiceTable:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ServiceTableError(f"{path}: {error}") from error
        return cls.from_mapping(raw, origin=str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, origin: str = "<table>") -> ServiceTable:
        carrier = raw.get("carrier")
        entries = raw.get("services")
        if not isinstance(carrier, str) or not carrier:
            raise ServiceTableError(f"{origin}: 'carrier' must be a non-empty string")
        if not isinstance(entries, Mapping) or not entries:
            raise ServiceTableError(f"{origin}: 'services' must be a non-empty object")
        services: dict[str, ServiceInfo] = {}
        for code, entry in entries.items():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise ServiceTableError(f"{origin}: service {code!r} needs a 'name'")
            try:
                level = ServiceLevel(str(entry.get("level")))
            except ValueError:
                raise ServiceTableError(
                    f"{origin}: service {code!r} has level {entry.get('level')!r}"
                ) from None
            services[code] = ServiceInfo(code, level, entry["name"])
        return cls(carrier, services)

    def level_of(self, service_code: str) -> ServiceLevel | None:
        info = self.services.get(service_code)
        return info.level if info else None

    def name_of(self, service_code: str, default: str = "") -> str:
        info = self.services.get(service_code)
        return info.name if info else (default or service_code)
