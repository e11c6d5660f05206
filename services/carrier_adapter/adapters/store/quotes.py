"""Quotes handed out by GetRates, so BookLabel books exactly what was quoted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select

from services.carrier_adapter.adapters.store.codec import epoch, from_epoch, money
from services.carrier_adapter.adapters.store.tables import quotes
from services.carrier_adapter.domain.model import RateQuote, ServiceLevel
from services.kit.statements import prepared

__all__ = ["StoredQuote", "get_quote", "purge_expired_quotes", "save_quotes"]


# Built once (building a statement per call cost more CPU than running it), and run on the kit's
# prepared path (the raw DBAPI cursor, in the unit of work's transaction).
_NEW_QUOTES = prepared(insert(quotes))
_QUOTE = prepared(select(quotes).where(quotes.c.rate_id == bindparam("quoted_rate_id")))


@dataclass(frozen=True)
class StoredQuote:
    rate_id: str
    quote: RateQuote
    expires_at: datetime


def save_quotes(
    conn: Connection,
    quoted: Sequence[tuple[str, RateQuote]],
    now: datetime,
    default_expiry: datetime,
) -> None:
    if not quoted:
        return
    _NEW_QUOTES.run_many(
        conn,
        [
            {
                "rate_id": rate_id,
                "carrier": quote.carrier,
                "carrier_account_id": quote.carrier_account_id,
                "service_code": quote.service_code,
                "service_name": quote.service_name,
                "service_level": quote.service_level.value if quote.service_level else None,
                "amount": str(quote.total_charge.amount),
                "currency": quote.total_charge.currency_code,
                "transit_days": quote.transit_days,
                "estimated_delivery": (
                    epoch(quote.estimated_delivery) if quote.estimated_delivery else None
                ),
                # A carrier that states no expiry gets ours, so no quote is bookable forever.
                "expires_at": epoch(quote.expires_at or default_expiry),
                "created_at": epoch(now),
            }
            for rate_id, quote in quoted
        ],
    )


def get_quote(conn: Connection, rate_id: str) -> StoredQuote | None:
    row = _QUOTE.run(conn, {"quoted_rate_id": rate_id}).mappings().first()
    if row is None:
        return None
    expires_at = from_epoch(row["expires_at"])
    assert expires_at is not None
    quote = RateQuote(
        carrier=row["carrier"],
        carrier_account_id=row["carrier_account_id"],
        service_code=row["service_code"],
        service_name=row["service_name"],
        service_level=ServiceLevel(row["service_level"]) if row["service_level"] else None,
        total_charge=money(row["amount"], row["currency"]),
        transit_days=row["transit_days"],
        estimated_delivery=from_epoch(row["estimated_delivery"]),
        expires_at=expires_at,
    )
    return StoredQuote(rate_id, quote, expires_at)


def purge_expired_quotes(conn: Connection, before: datetime) -> int:
    """Quotes that expired before `before` can never be booked again."""
    return int(conn.execute(delete(quotes).where(quotes.c.expires_at < epoch(before))).rowcount)
