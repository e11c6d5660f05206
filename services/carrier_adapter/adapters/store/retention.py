"""The retention sweep: the payload log's bounds, quotes long past their expiry, and scans a
code mapping published again long ago."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from services.carrier_adapter.adapters.store.payloads import sweep_payloads
from services.carrier_adapter.adapters.store.quotes import purge_expired_quotes
from services.carrier_adapter.adapters.store.unmapped import purge_renormalized
from services.carrier_adapter.domain.payload_log import RetentionPolicy

__all__ = ["RENORMALIZED_KEEP", "sweep"]

# How long a scan published again under a mapping stays (for whoever audits the mapping).
RENORMALIZED_KEEP = timedelta(days=30)


def sweep(conn: Connection, policy: RetentionPolicy, now: datetime, quote_grace: timedelta) -> int:
    """One retention pass; returns how many payload records went."""
    purge_expired_quotes(conn, now - quote_grace)
    purge_renormalized(conn, now - RENORMALIZED_KEEP)
    return sweep_payloads(conn, policy, now)
