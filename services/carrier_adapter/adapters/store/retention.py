"""The retention sweep: the payload log's bounds, and quotes long past their expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from services.carrier_adapter.adapters.store.payloads import sweep_payloads
from services.carrier_adapter.adapters.store.quotes import purge_expired_quotes
from services.carrier_adapter.domain.payload_log import RetentionPolicy

__all__ = ["sweep"]


def sweep(conn: Connection, policy: RetentionPolicy, now: datetime, quote_grace: timedelta) -> int:
    """One retention pass; returns how many payload records went."""
    purge_expired_quotes(conn, now - quote_grace)
    return sweep_payloads(conn, policy, now)
