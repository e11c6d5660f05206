"""The returns store on SQLite and PostgreSQL: documents round-trip, the version compare-and-set
settles concurrent writers, idempotency keys are unique per order (keyless returns never clash),
and lists filter and page newest first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.db import Database
from services.kit.errors import Conflict
from services.order.adapters.store import migrate
from services.order.adapters.store import returns as store
from services.order.domain.returns import (
    Return,
    ReturnDisposition,
    ReturnLine,
    ReturnStatus,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTNER, OTHER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N9Z"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="order")
    yield database
    database.engine.dispose()


def a_return(
    number: int, order_id: str = "ord_1", partner_id: str = PARTNER, key: str = ""
) -> Return:
    return Return(
        return_id=f"rma_{number}",
        order_id=order_id,
        partner_id=partner_id,
        lines=(ReturnLine(1, "WIDGET", 2, ReturnDisposition.RESTOCK, "DAMAGED"),),
        return_location_id="WH-EAST",
        created_at=T0 + timedelta(minutes=number),
        updated_at=T0 + timedelta(minutes=number),
        idempotency_key=key,
        request_fingerprint="f" * 64,
    )


def test_a_return_round_trips_and_stale_writes_conflict(db: Database) -> None:
    first = a_return(1, key="k-1")
    db.run_sync(store.insert_return, first)
    loaded = db.run_sync(store.get_return, "rma_1")
    assert loaded is not None and loaded.order_return == first
    assert db.run_sync(store.find_by_key, "ord_1", "k-1") == loaded
    assert db.run_sync(store.find_by_key, "ord_2", "k-1") is None

    received = replace(first, receipt_id="rcp_1", received_at=T0, credit_note_ids=("crn_1",))
    db.run_sync(store.save_return, loaded, received)
    reread = db.run_sync(store.get_return, "rma_1")
    assert reread is not None and reread.order_return == received
    assert reread.order_return.status is ReturnStatus.CREDITED
    with pytest.raises(Conflict):
        db.run_sync(store.save_return, loaded, first)  # read at the old version: someone won
    with pytest.raises(Conflict):
        db.run_sync(store.insert_return, replace(a_return(2), idempotency_key="k-1"))


def test_keyless_returns_never_clash_and_lists_filter_and_page_newest_first(db: Database) -> None:
    for number, order_id, partner_id in (
        (1, "ord_1", PARTNER),
        (2, "ord_1", PARTNER),
        (3, "ord_2", PARTNER),
        (4, "ord_3", OTHER),
    ):
        db.run_sync(store.insert_return, a_return(number, order_id, partner_id))
    loaded = db.run_sync(store.get_return, "rma_2")
    assert loaded is not None
    db.run_sync(store.save_return, loaded, replace(loaded.order_return, receipt_id="rcp_9"))

    def ids(
        partner_id: str = "", order_id: str = "", status: ReturnStatus | None = None
    ) -> list[str]:
        found, token = db.run_sync(store.list_returns, partner_id, order_id, status, "", 50)
        assert token == ""
        return [r.return_id for r in found]

    assert ids() == ["rma_4", "rma_3", "rma_2", "rma_1"]
    assert ids(partner_id=PARTNER) == ["rma_3", "rma_2", "rma_1"]
    assert ids(order_id="ord_1") == ["rma_2", "rma_1"]
    assert ids(status=ReturnStatus.RECEIVED) == ["rma_2"]
    assert ids(partner_id=OTHER, order_id="ord_1") == []
    assert [r.return_id for r in db.run_sync(store.returns_of_order, "ord_1")] == ["rma_1", "rma_2"]

    pages: list[str] = []
    token = ""
    while True:
        page, token = db.run_sync(store.list_returns, PARTNER, "", None, token, 2)
        pages += [r.return_id for r in page]
        if not token:
            break
    assert pages == ["rma_3", "rma_2", "rma_1"]
