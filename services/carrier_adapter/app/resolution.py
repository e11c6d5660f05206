"""Labels for reconciliation: list what this service holds, and settle an unknown outcome.

A booking at a carrier that does not dedupe by our key is parked UNKNOWN when the call failed
after the request left (a timeout): the carrier may have booked it, and booking again could buy
a second label. `resolve_label` asks the carrier instead (its search by our key, the customer
reference): a label it booked is stored BOOKED under the key, so the caller's next BookLabel
with the key replays that very label; none booked, the key is given up and the next BookLabel
books anew. The carrier call runs outside any transaction; the answer is stored in one unit of
work, guarded on the key still being UNKNOWN (a concurrent resolution stores it once).

The control tower's `labels` check calls both: ListLabels to find unknown and orphaned labels,
ResolveLabel to settle the unknown ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store import labels as label_store
from services.carrier_adapter.adapters.store.labels import LabelStatus, StoredLabel
from services.kit.db import Database
from services.kit.errors import Conflict, FailedPrecondition, NotFound

__all__ = ["LabelFilter", "Resolution", "list_labels", "resolve_label"]


@dataclass(frozen=True)
class LabelFilter:
    status: LabelStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_cancelled: bool = False


@dataclass(frozen=True)
class Resolution:
    """The carrier's answer: the label it booked (now stored BOOKED), or None (key released)."""

    stored: StoredLabel | None

    @property
    def booked(self) -> bool:
        return self.stored is not None


async def list_labels(
    db: Database, where: LabelFilter, page_token: str, size: int
) -> tuple[list[tuple[StoredLabel, bytes]], str]:
    """A page of labels oldest first, each with its BookLabel request record."""
    return await db.run(
        label_store.list_labels,
        where.status,
        where.created_after,
        where.created_before,
        where.include_cancelled,
        page_token,
        size,
    )


async def resolve_label(
    db: Database,
    registry: ConnectorRegistry,
    clock: Clock,
    *,
    label_id: str = "",
    idempotency_key: str = "",
) -> Resolution:
    """Ask the carrier about an UNKNOWN label (named by id or key) and store its answer.

    NotFound: no such label. FailedPrecondition: its outcome is not unknown
    (LABEL_OUTCOME_KNOWN), its account is no longer configured (CARRIER_ACCOUNT_UNKNOWN) or its
    carrier cannot search by reference (CARRIER_OPERATION_UNSUPPORTED, from the connector).
    Carrier failures propagate (UNAVAILABLE, DEADLINE_EXCEEDED) and leave it UNKNOWN."""
    stored = await db.run(_find, label_id, idempotency_key)
    if stored.status is not LabelStatus.UNKNOWN:
        raise FailedPrecondition(
            f"label {stored.label_id} ({stored.idempotency_key}) is {stored.status.value}, "
            "not of unknown outcome",
            reason="LABEL_OUTCOME_KNOWN",
        )
    try:
        connector = registry.get(stored.carrier_account_id)
    except KeyError:
        raise FailedPrecondition(
            f"carrier account {stored.carrier_account_id} of label {stored.label_id} is no "
            "longer configured",
            reason="CARRIER_ACCOUNT_UNKNOWN",
        ) from None
    key = stored.idempotency_key
    found = await connector.find_label(key)
    if found is not None:
        settled = await db.run(label_store.settle_unknown, key, found, clock.now())
        if settled is not None:
            return Resolution(settled)
    elif await db.run(label_store.release_unknown, key):
        return Resolution(None)
    # Another resolution (or a new booking of the released key) got there first.
    raise Conflict(
        f"label {stored.label_id} ({key}) changed while its carrier was asked; list it again",
        reason="LABEL_CHANGED",
    )


def _find(conn: Connection, label_id: str, idempotency_key: str) -> StoredLabel:
    if label_id:
        stored = label_store.get_label(conn, label_id)
        name, kind = label_id, "label"
    else:
        stored = label_store.get_label_by_key(conn, idempotency_key)
        name, kind = idempotency_key, "label with idempotency key"
    if stored is None:
        raise NotFound(f"{kind} {name} does not exist", resource_type="label", resource_name=name)
    return stored
