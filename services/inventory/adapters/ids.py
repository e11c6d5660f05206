"""The service's id source: the domain's `IdSource` port on the kit's monotonic ULIDs."""

from __future__ import annotations

from services.kit.ids import resource_id


class UlidIds:
    """`<prefix>_` + a monotonic ULID (services.kit.ids), e.g. `rsv_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P`."""

    def new_id(self, prefix: str) -> str:
        return resource_id(prefix)
