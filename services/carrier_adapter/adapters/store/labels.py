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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from services.carrier_adapter.adapters.store.codec import (
    epoch,
    from_epoch,
    insert_new_by_dialect,
    money_or_none,
)
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.adapters.store.tables import labels
from services.carrier_adapter.domain.model import BookedLabel, LabelFormat
from services.kit.ids import resource_id
from services.kit.paging import keyset, next_page
from services.kit.statements import prepared

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
    "list_labels",
    "live_labels",
    "mark_cancelled",
    "release_booking",
    "release_unknown",
    "settle_unknown",
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
    # When the key was first claimed (None only for rows built by hand).
    created_at: datetime | None = None


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"  # the caller must book and then complete or release
    BOOKED = "booked"  # already booked: replay it
    IN_FLIGHT = "in_flight"  # someone else holds a live claim: wait
    UNKNOWN = "unknown"  # outcome unknown at a non-idempotent carrier: reconcile


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    stored: StoredLabel


# Statements built once (building one per call cost more CPU than running it); values bind at
# execute time. They run on the kit's prepared path (the raw DBAPI cursor, in the unit of work's
# transaction): SQLAlchemy's execution path cost several times what the statement did.
_THIS_KEY = labels.c.idempotency_key == bindparam("key")
_HELD = _THIS_KEY & (labels.c.claim_token == bindparam("token"))
# The claim's INSERT, returning every column of the row when it inserted one.
_NEW_LABEL = prepared(insert_new_by_dialect(labels, "idempotency_key", whole_row=True))
_BY_KEY = prepared(select(labels).where(_THIS_KEY))
_BY_ID = prepared(select(labels).where(labels.c.label_id == bindparam("label_id")))
_BY_TRACKING = prepared(
    select(labels).where(labels.c.tracking_number == bindparam("tracking_number"))
)
_MARK_UNKNOWN = prepared(update(labels).where(_HELD).values(status=LabelStatus.UNKNOWN.value))
_TAKE_OVER = prepared(
    update(labels)
    .where(_HELD)
    .values(claim_token=bindparam("new_token"), claimed_at=bindparam("new_claimed_at"))
)
_RENEW = prepared(
    update(labels)
    .where(_HELD, labels.c.status == LabelStatus.BOOKING.value)
    .values(claimed_at=bindparam("renewed_at"))
)
_GIVE_UP = prepared(delete(labels).where(_HELD, labels.c.status == LabelStatus.BOOKING.value))
# The carrier's label, as both a completed booking and a resolved unknown outcome store it.
_BOOKED_VALUES = {
    "status": LabelStatus.BOOKED.value,
    **{
        column: bindparam(f"booked_{column}")
        for column in (
            "service_code",
            "tracking_number",
            "package_tracking_numbers",
            "label_format",
            "document",
            "quoted_amount",
            "quoted_currency",
            "carrier_shipment_id",
            "is_return",
            "booked_at",
        )
    },
}
# The booked label comes back from the UPDATE itself: no second statement to read it.
_COMPLETE = prepared(
    update(labels)
    .where(_HELD, labels.c.status == LabelStatus.BOOKING.value)
    .values(**_BOOKED_VALUES)
    .returning(*labels.c)
)
# Resolving an unknown outcome: the carrier's label stored, or the key given up.
_SETTLE_UNKNOWN = prepared(
    update(labels)
    .where(_THIS_KEY, labels.c.status == LabelStatus.UNKNOWN.value)
    .values(**_BOOKED_VALUES)
    .returning(*labels.c)
)
_RELEASE_UNKNOWN = prepared(
    delete(labels).where(_THIS_KEY, labels.c.status == LabelStatus.UNKNOWN.value)
)
_MARK_CANCELLED = prepared(
    update(labels)
    .where(labels.c.label_id == bindparam("cancelled_label_id"), labels.c.cancelled_at.is_(None))
    .values(cancelled_at=bindparam("cancelled_at_"))
)


def claim_booking(
    conn: Connection,
    key: str,
    quote: StoredQuote,
    label_format: LabelFormat,
    is_return: bool,
    request: bytes,
    now: datetime,
    lease: timedelta,
    may_take_over: bool | Callable[[str], bool],
    *,
    new_id: Callable[[str], str] = resource_id,
) -> Claim:
    """Claim `key` for booking `quote`. A stale claim (older than `lease`) is taken over when
    `may_take_over` allows it; as a function it is asked about the claim's own carrier account
    (the one that may have booked), which a retry quoting anew need not share. `new_id` mints
    the claim token and label id (a seeder passes a seeded source, for repeatable ids)."""
    token = new_id("clm")  # who may finish this booking
    # The inserted row comes back from the INSERT (RETURNING every column): a new key, the
    # common case, takes one statement.
    inserted = (
        _NEW_LABEL.run(
            conn,
            {
                "label_id": new_id("lbl"),
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
        )
        .mappings()
        .first()
    )
    if inserted is not None:
        return Claim(ClaimOutcome.CLAIMED, _stored(inserted))
    stored = get_label_by_key(conn, key)
    assert stored is not None
    if stored.status is LabelStatus.BOOKED:
        return Claim(ClaimOutcome.BOOKED, stored)
    if stored.status is LabelStatus.UNKNOWN:
        return Claim(ClaimOutcome.UNKNOWN, stored)
    if stored.claimed_at + lease > now:
        return Claim(ClaimOutcome.IN_FLIGHT, stored)
    held = {"key": key, "token": stored.claim_token}
    if callable(may_take_over):
        may_take_over = may_take_over(stored.carrier_account_id)
    if not may_take_over:
        _MARK_UNKNOWN.run(conn, held)
        return Claim(ClaimOutcome.UNKNOWN, stored)
    taken = _TAKE_OVER.run(
        conn, {**held, "new_token": token, "new_claimed_at": epoch(now)}
    ).rowcount
    refreshed = get_label_by_key(conn, key)
    assert refreshed is not None
    return Claim(ClaimOutcome.CLAIMED if taken == 1 else ClaimOutcome.IN_FLIGHT, refreshed)


def complete_booking(
    conn: Connection, key: str, token: str, label: BookedLabel, now: datetime
) -> StoredLabel | None:
    """Store the carrier's label under our claim; None when the claim was lost meanwhile."""
    row = _COMPLETE.run(conn, {"key": key, "token": token, **_booked(label, now)})
    return _one(row.mappings().first())


def settle_unknown(
    conn: Connection, key: str, label: BookedLabel, now: datetime
) -> StoredLabel | None:
    """Store the label the carrier says it booked under `key`, whose outcome was unknown;
    None when the key is no longer unknown (settled meanwhile)."""
    row = _SETTLE_UNKNOWN.run(conn, {"key": key, **_booked(label, now)})
    return _one(row.mappings().first())


def release_unknown(conn: Connection, key: str) -> bool:
    """Give up `key`, whose outcome was unknown and which the carrier never booked, so a new
    booking may claim it; False when the key is no longer unknown."""
    return bool(_RELEASE_UNKNOWN.run(conn, {"key": key}).rowcount == 1)


def list_labels(
    conn: Connection,
    status: LabelStatus | None,
    created_after: datetime | None,
    created_before: datetime | None,
    include_cancelled: bool,
    page_token: str,
    size: int,
) -> tuple[list[tuple[StoredLabel, bytes]], str]:
    """A page of labels oldest first (keyset on seq), each with its BookLabel request record,
    and the next page's token."""
    query = select(labels)
    if status is not None:
        query = query.where(labels.c.status == status.value)
    if created_after is not None:
        query = query.where(labels.c.created_at >= epoch(created_after))
    if created_before is not None:
        query = query.where(labels.c.created_at < epoch(created_before))
    if not include_cancelled:
        query = query.where(labels.c.cancelled_at.is_(None))
    rows = conn.execute(keyset(query, labels.c.seq, page_token, size)).mappings().all()
    page, token = next_page(rows, size, key=lambda row: int(row["seq"]))
    return [(_stored(dict(row)), bytes(row["request"])) for row in page], token


def _booked(label: BookedLabel, now: datetime) -> dict[str, Any]:
    """The booked label's columns, as the statements bind them."""
    charge = label.quoted_charge
    return {
        "booked_service_code": label.service_code,
        "booked_tracking_number": label.tracking_number,
        "booked_package_tracking_numbers": json.dumps(list(label.package_tracking_numbers)),
        "booked_label_format": label.label_format.value,
        "booked_document": label.document,
        "booked_quoted_amount": str(charge.amount) if charge else None,
        "booked_quoted_currency": charge.currency_code if charge else None,
        "booked_carrier_shipment_id": label.carrier_shipment_id,
        "booked_is_return": label.is_return,
        "booked_booked_at": epoch(label.created_at or now),
    }


def renew_booking(conn: Connection, key: str, token: str, now: datetime) -> bool:
    """Restart the lease of a booking still running under `token`; False when the claim is no
    longer this booking's (taken over, or finished)."""
    return bool(_RENEW.run(conn, {"key": key, "token": token, "renewed_at": epoch(now)}).rowcount)


def release_booking(conn: Connection, key: str, token: str, outcome_unknown: bool) -> None:
    held = {"key": key, "token": token}
    (_MARK_UNKNOWN if outcome_unknown else _GIVE_UP).run(conn, held)


def mark_cancelled(conn: Connection, label_id: str, now: datetime) -> None:
    _MARK_CANCELLED.run(conn, {"cancelled_label_id": label_id, "cancelled_at_": epoch(now)})


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
    return _one(_BY_KEY.run(conn, {"key": key}).mappings().first())


def get_label(conn: Connection, label_id: str) -> StoredLabel | None:
    return _one(_BY_ID.run(conn, {"label_id": label_id}).mappings().first())


def get_label_by_tracking(conn: Connection, tracking_number: str) -> StoredLabel | None:
    query = _BY_TRACKING.run(conn, {"tracking_number": tracking_number})
    return _one(query.mappings().first())


def _one(row: Mapping[str, Any] | None) -> StoredLabel | None:
    return None if row is None else _stored(row)


def _stored(row: Mapping[str, Any]) -> StoredLabel:
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
        created_at=from_epoch(row["created_at"]),
    )
