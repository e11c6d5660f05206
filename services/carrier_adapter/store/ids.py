"""crossdock ids for quotes and labels: `rte_…` / `lbl_…` + 26 Crockford base32 characters.

ULID-shaped (services.kit.ids.resource_id), so ids sort by creation time and match the
contracts' `^rte_[0-9A-HJKMNP-TV-Z]{26}$` patterns.
"""

from __future__ import annotations

from services.kit.ids import resource_id

__all__ = ["new_label_id", "new_rate_id", "new_token"]


def new_rate_id() -> str:
    return resource_id("rte")


def new_label_id() -> str:
    return resource_id("lbl")


def new_token() -> str:
    """A booking or poll claim token: who may finish an in-flight booking or poll."""
    return resource_id("clm")
