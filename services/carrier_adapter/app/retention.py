"""Bounded retention: the raw payload log and expired quotes are swept on a timer."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.carrier_adapter.adapters.store.retention import sweep
from services.carrier_adapter.domain.payload_log import RetentionPolicy
from services.kit.uow import UnitOfWork

__all__ = ["QUOTE_GRACE", "sweep_retention"]

# How long past its expiry a quote stays in the store before a sweep deletes it.
QUOTE_GRACE = timedelta(days=1)


def sweep_retention(uow: UnitOfWork, policy: RetentionPolicy, now: datetime) -> int:
    """One pass; returns how many payload records were deleted."""
    return sweep(uow.conn, policy, now, QUOTE_GRACE)
