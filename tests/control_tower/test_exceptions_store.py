"""The exceptions projection on SQLite and PostgreSQL: the owners' events in any order, in any
batches, late or twice, open and close the same exceptions; a fix that arrives first means the
exception never shows as open; resolving by hand is audited in the same transaction."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest

from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import workbench
from services.control_tower.domain.exceptions import Action, ExceptionKind, ExceptionView
from services.control_tower.entrypoints.consumers import record
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.uow import UnitsOfWork
from tests.control_tower.exception_scenarios import (
    Scenario,
    code_mapped,
    code_unmapped,
    label_failed,
    manifested,
    mixed,
    order_exception_cleared,
    order_exception_raised,
)
from tests.control_tower.lifecycle import T0, Published, as_consumed


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service=SERVICE)
    yield database
    database.engine.dispose()


def apply(db: Database, events: Sequence[Published], batch_size: int) -> None:
    for start in range(0, len(events), batch_size):
        batch = as_consumed(events[start : start + batch_size])
        db.run_sync(lambda conn, batch=batch: record(batch, conn))


def every_exception(db: Database, **filters: object) -> list[ExceptionView]:
    found: list[ExceptionView] = []
    token = ""
    while True:
        query = workbench.ListQuery(page_size=2, page_token=token, **filters)  # type: ignore[arg-type]
        page, token = UnitsOfWork(db).run_sync(workbench.list_exceptions, query)
        found += page
        if not token:
            return found


def shown(views: Sequence[ExceptionView]) -> set[tuple[object, ...]]:
    """What the workbench shows, without the ids (assigned in arrival order)."""
    return {
        (
            v.kind,
            v.subject_id,
            v.order_id,
            v.opened_at,
            v.occurrences,
            v.detail,
            v.closed_at,
            v.closed_by,
        )
        for v in views
    }


def expected(scenario: Scenario) -> set[tuple[object, ...]]:
    return {
        (
            e.kind,
            e.subject_id,
            e.order_id,
            e.opened_at,
            e.occurrences,
            e.detail,
            None if e.closed_by is None else _at(e.closed_by),
            "" if e.closed_by is None else f"event {e.closed_by.subject} {e.closed_by.event_id}",
        )
        for e in scenario.expected
    }


def _at(event: Published) -> float:
    return datetime.fromisoformat(event.headers["ce-time"]).timestamp()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_order_any_batches_and_replays_give_the_same_exceptions(
    db: Database, seed: int
) -> None:
    scenario = mixed()
    rng = random.Random(seed)
    events = list(scenario.events)
    rng.shuffle(events)
    # Every event again, later, in other batches (a replay past the inbox's memory).
    replayed = events + rng.sample(events, len(events))
    apply(db, replayed, batch_size=rng.choice([1, 3, 100]))

    assert shown(every_exception(db)) == expected(scenario)
    still_open = {(v.kind, v.subject_id) for v in every_exception(db, open_only=True)}
    assert still_open == {(e.kind, e.subject_id) for e in scenario.expected if e.closed_by is None}
    closed = every_exception(db, open_only=False, kind=ExceptionKind.LABEL_FAILED)
    assert {v.subject_id for v in closed} == {
        e.subject_id
        for e in scenario.expected
        if e.closed_by is not None and e.kind is ExceptionKind.LABEL_FAILED
    }


def test_a_fix_that_arrives_first_means_the_exception_never_opens(db: Database) -> None:
    order = "ord_01JAAAAAAAAAAAAAAAAAAAAAAA"
    shipment = "shp_01JAAAAAAAAAAAAAAAAAAAAAAA"
    # The mapping's event, then (from another stream) the scan's unmapped code.
    apply(db, [code_mapped("sandbox", "Z1", T0 + 5)], batch_size=1)
    assert every_exception(db) == []
    apply(db, [code_unmapped("sandbox", "Z1", "1Z1", T0 + 1)], batch_size=1)
    # The manifest and the failure in one batch, the fix first.
    apply(
        db,
        [manifested(shipment, order, T0 + 9), label_failed(shipment, order, T0 + 2, "x")],
        batch_size=10,
    )
    # An order's exception cleared (one batch), then the raise of that episode (the next).
    shown_before = every_exception(db)
    apply(db, [order_exception_cleared(order, 1, T0 + 8)], batch_size=1)
    assert every_exception(db) == shown_before  # a fix alone shows nothing
    apply(db, [order_exception_raised(order, 1, T0 + 3, "AWAIT_PICK not done")], batch_size=1)
    assert every_exception(db, open_only=True) == []
    assert {(v.kind, v.closed_by.split()[1]) for v in every_exception(db)} == {
        (ExceptionKind.CARRIER_CODE_UNMAPPED, "crossdock.carrier.code_mapped.v1"),
        (ExceptionKind.LABEL_FAILED, "crossdock.shipment.manifested.v1"),
        (ExceptionKind.ORDER_EXCEPTION, "crossdock.order.exception_cleared.v1"),
    }
    (episode,) = every_exception(db, kind=ExceptionKind.ORDER_EXCEPTION)
    assert (episode.subject_id, episode.order_id, episode.opened_at, episode.closed_at) == (
        f"{order}:1",
        order,
        T0 + 3,
        T0 + 8,
    )
    assert (episode.occurrences, episode.spec.owner, episode.retry_subject) == (1, "order", order)


def test_resolve_closes_with_an_audit_row_and_refuses_a_closed_or_unknown_one(
    db: Database,
) -> None:
    order = "ord_01JBBBBBBBBBBBBBBBBBBBBBBB"
    apply(db, [label_failed("shp_01JBBBBBBBBBBBBBBBBBBBBBBB", order, T0, "x")], batch_size=1)
    (found,) = every_exception(db)
    bench = workbench.Workbench(UnitsOfWork(db), owners=None, clock=lambda: T0 + 60)  # type: ignore[arg-type]
    act = workbench.Act(found.exception_id, "alice", "booked by phone")

    closed, entry = asyncio.run(bench.resolve(act))
    assert (closed.is_open, closed.closed_at) == (False, T0 + 60)
    assert closed.closed_by == "operator alice"
    assert (entry.action, entry.operator, entry.reason, entry.succeeded, entry.order_id) == (
        Action.RESOLVE,
        "alice",
        "booked by phone",
        True,
        order,
    )
    with pytest.raises(FailedPrecondition) as refused:
        asyncio.run(bench.resolve(act))
    assert refused.value.violations[0].subject == "exception_id"
    _, audit = UnitsOfWork(db).run_sync(workbench.get_exception, found.exception_id)
    assert [(a.action, a.operator) for a in audit] == [(Action.RESOLVE, "alice")]
    with pytest.raises(NotFound):
        UnitsOfWork(db).run_sync(workbench.get_exception, found.exception_id + 1000)
    # A later fix keeps the operator's earlier close.
    apply(db, [manifested("shp_01JBBBBBBBBBBBBBBBBBBBBBBB", order, T0 + 90)], batch_size=1)
    (after,) = every_exception(db)
    assert after.closed_by == "operator alice"
