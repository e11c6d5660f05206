"""Labels keyed by idempotency key: the store half of "book exactly once".

Booking is three units of work around one carrier call:
1. `claim_booking` inserts the key as `booking` (or finds it). Only the caller holding the claim
   token calls the carrier; everyone else waits for the row to become `booked`.
2. the carrier call, outside any transaction (it can take seconds);
3. `complete_booking` stores the label under the same token; `release_booking` gives the key up
   after a failure that certainly booked nothing, or marks it `unknown` when the carrier may have
   booked and cannot be asked again safely.
A claim older than the lease (its holder crashed) may be taken over, but only for carriers that
dedupe bookings by our key; for the others a human must reconcile first.

The claim token is an exactly-once guard on one idempotency key (a compare-and-set on the row
the caller named), not a polling lease over due rows, so it is not the kit's `lease_due`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from services.carrier_adapter.adapters.store.codec import (
    epoch,
    from_epoch,
    insert_ignoring_duplicates,
    money_or_none,
)
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.adapters.store.tables import labels
from services.carrier_adapter.domain.model import BookedLabel, LabelFormat
from services.kit.ids import resource_id

__all__ = [
    "Claim",
    "ClaimOutcome",
    "LabelStatus",
    "StoredLabel",
    "claim_booking",
    "complete_booking",
    "get_label",
    "get_label_by_key",
    "get_label_by_tracking",
    "live_labels",
    "mark_cancelled",
    "release_booking",
]


class LabelStatus(enum.StrEnum):
    BOOKING = "booking"
    BOOKED = "booked"
    # A non-idempotent carrier may have booked before the call failed: never re-send blindly.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoredLabel:
    label_id: str
    idempotency_key: str
    status: LabelStatus
    rate_id: str
    carrier: str
    carrier_account_id: str
    claim_token: str
    claimed_at: datetime
    label: BookedLabel | None  # set once booked
    cancelled: bool


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"  # the caller must book and then complete or release
    BOOKED = "booked"  # already booked: replay it
    IN_FLIGHT = "in_flight"  # someone else holds a live claim: wait
    UNKNOWN = "unknown"  # outcome unknown at a non-idempotent carrier: reconcile


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    stored: StoredLabel


def claim_booking(
    conn: Connection,
    key: str,
    quote: StoredQuote,
    label_format: LabelFormat,
    is_return: bool,
    request: bytes,
    now: datetime,
    lease: timedelta,
    may_take_over: bool,
) -> Claim:
    token = resource_id("clm")  # who may finish this booking
    inserted = insert_ignoring_duplicates(
        conn,
        labels,
        {
            "label_id": resource_id("lbl"),
            "idempotency_key": key,
            "status": LabelStatus.BOOKING.value,
            "claim_token": token,
            "claimed_at": epoch(now),
            "rate_id": quote.rate_id,
            "carrier": quote.quote.carrier,
            "carrier_account_id": quote.quote.carrier_account_id,
            "service_code": quote.quote.service_code,
            "package_tracking_numbers": "[]",
            "label_format": label_format.value,
            "is_return": is_return,
            "carrier_shipment_id": "",
            "request": request,
            "created_at": epoch(now),
        },
        "idempotency_key",
    )
    stored = get_label_by_key(conn, key)
    assert stored is not None
    if inserted:
        return Claim(ClaimOutcome.CLAIMED, stored)
    if stored.status is LabelStatus.BOOKED:
        return Claim(ClaimOutcome.BOOKED, stored)
    if stored.status is LabelStatus.UNKNOWN:
        return Claim(ClaimOutcome.UNKNOWN, stored)
    if stored.claimed_at + lease > now:
        return Claim(ClaimOutcome.IN_FLIGHT, stored)
    if not may_take_over:
        conn.execute(
            update(labels)
            .where(labels.c.idempotency_key == key, labels.c.claim_token == stored.claim_token)
            .values(status=LabelStatus.UNKNOWN.value)
        )
        return Claim(ClaimOutcome.UNKNOWN, stored)
    taken = conn.execute(
        update(labels)
        .where(labels.c.idempotency_key == key, labels.c.claim_token == stored.claim_token)
        .values(claim_token=token, claimed_at=epoch(now))
    ).rowcount
    refreshed = get_label_by_key(conn, key)
    assert refreshed is not None
    return Claim(ClaimOutcome.CLAIMED if taken == 1 else ClaimOutcome.IN_FLIGHT, refreshed)


def complete_booking(
    conn: Connection, key: str, token: str, label: BookedLabel, now: datetime
) -> StoredLabel | None:
    """Store the carrier's label under our claim; None when the claim was lost meanwhile."""
    changed = conn.execute(
        update(labels)
        .where(
            labels.c.idempotency_key == key,
            labels.c.claim_token == token,
            labels.c.status == LabelStatus.BOOKING.value,
        )
        .values(
            status=LabelStatus.BOOKED.value,
            service_code=label.service_code,
            tracking_number=label.tracking_number,
            package_tracking_numbers=json.dumps(list(label.package_tracking_numbers)),
            label_format=label.label_format.value,
            document=label.document,
            quoted_amount=str(label.quoted_charge.amount) if label.quoted_charge else None,
            quoted_currency=label.quoted_charge.currency_code if label.quoted_charge else None,
            carrier_shipment_id=label.carrier_shipment_id,
            is_return=label.is_return,
            booked_at=epoch(label.created_at or now),
        )
    ).rowcount
    return get_label_by_key(conn, key) if changed == 1 else None


def release_booking(conn: Connection, key: str, token: str, outcome_unknown: bool) -> None:
    mine = (labels.c.idempotency_key == key) & (labels.c.claim_token == token)
    if outcome_unknown:
        conn.execute(update(labels).where(mine).values(status=LabelStatus.UNKNOWN.value))
    else:
        conn.execute(delete(labels).where(mine, labels.c.status == LabelStatus.BOOKING.value))


def mark_cancelled(conn: Connection, label_id: str, now: datetime) -> None:
    conn.execute(
        update(labels)
        .where(labels.c.label_id == label_id, labels.c.cancelled_at.is_(None))
        .values(cancelled_at=epoch(now))
    )


def live_labels(
    conn: Connection, account_ids: Sequence[str], since: datetime
) -> list[tuple[StoredLabel, bytes]]:
    """Booked, uncancelled labels of these accounts since `since`, with their requests."""
    keys = conn.execute(
        select(labels.c.idempotency_key, labels.c.request)
        .where(
            labels.c.carrier_account_id.in_(account_ids),
            labels.c.status == LabelStatus.BOOKED.value,
            labels.c.cancelled_at.is_(None),
            labels.c.booked_at >= epoch(since),
        )
        .order_by(labels.c.seq)
    ).all()
    found = []
    for key, request in keys:
        stored = get_label_by_key(conn, key)
        if stored is not None:
            found.append((stored, bytes(request)))
    return found


def get_label_by_key(conn: Connection, key: str) -> StoredLabel | None:
    return _one(conn, labels.c.idempotency_key == key)


def get_label(conn: Connection, label_id: str) -> StoredLabel | None:
    return _one(conn, labels.c.label_id == label_id)


def get_label_by_tracking(conn: Connection, tracking_number: str) -> StoredLabel | None:
    return _one(conn, labels.c.tracking_number == tracking_number)


def _one(conn: Connection, where: object) -> StoredLabel | None:
    row = conn.execute(select(labels).where(where)).mappings().first()  # type: ignore[arg-type]
    if row is None:
        return None
    status = LabelStatus(row["status"])
    booked_at = from_epoch(row["booked_at"])
    claimed_at = from_epoch(row["claimed_at"])
    assert claimed_at is not None
    label = None
    if status is LabelStatus.BOOKED and booked_at is not None:
        label = BookedLabel(
            carrier=row["carrier"],
            carrier_account_id=row["carrier_account_id"],
            service_code=row["service_code"],
            tracking_number=row["tracking_number"] or "",
            package_tracking_numbers=tuple(json.loads(row["package_tracking_numbers"])),
            label_format=LabelFormat(row["label_format"]),
            document=bytes(row["document"] or b""),
            idempotency_key=row["idempotency_key"],
            created_at=booked_at,
            quoted_charge=money_or_none(row["quoted_amount"], row["quoted_currency"]),
            carrier_shipment_id=row["carrier_shipment_id"],
            is_return=bool(row["is_return"]),
        )
    return StoredLabel(
        label_id=row["label_id"],
        idempotency_key=row["idempotency_key"],
        status=status,
        rate_id=row["rate_id"],
        carrier=row["carrier"],
        carrier_account_id=row["carrier_account_id"],
        claim_token=row["claim_token"],
        claimed_at=claimed_at,
        label=label,
        cancelled=row["cancelled_at"] is not None,
    )
