"""Billing's document ids (`inv_`, `crn_`, `frt_` + 26 Crockford base32 characters)."""

from __future__ import annotations

from services.kit.ids import resource_id


def new_id(prefix: str) -> str:
    """ULID-shaped, so ids roughly sort by creation (services.kit.ids.resource_id)."""
    return resource_id(prefix)
