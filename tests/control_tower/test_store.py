"""The tower's projection on SQLite and PostgreSQL: the same events in any order, in any batches,
late or twice, give the same timeline; every reference finds it; the migration matches."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.control_tower import app
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.adapters.store.tables import metadata
from services.control_tower.domain.references import ReferenceKind
from services.control_tower.entrypoints.consumers import record
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.uow import UnitsOfWork
from tests.control_tower.lifecycle import Lifecycle, Published, as_consumed


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service=SERVICE)
    yield database
    database.engine.dispose()


def apply(db: Database, events: Sequence[Published], batch_size: int) -> None:
    """Record `events` in batches, each in one transaction, as the consumer would."""
    for start in range(0, len(events), batch_size):
        batch = as_consumed(events[start : start + batch_size])
        db.run_sync(lambda conn, batch=batch: record(batch, conn))


def timeline(db: Database, reference: str, partner_id: str = "") -> app.Timeline:
    return UnitsOfWork(db).run_sync(app.get_timeline, app.TimelineQuery(reference, partner_id))


def test_migration_matches_the_tables_module(db: Database) -> None:
    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    kit = ("'outbox'", "'inbox'", "ix_outbox", "ix_inbox")
    assert [d for d in drift if not any(name in repr(d) for name in kit)] == []


def test_a_lifecycle_is_one_timeline_in_causal_order_by_every_reference(db: Database) -> None:
    order = Lifecycle().build()
    apply(db, order.events, batch_size=100)

    found = timeline(db, order.order_id)
    assert found.resolved.order_id == order.order_id
    assert found.resolved.matched is ReferenceKind.ORDER_ID
    # In causal order: the order they happened in; allocated and released share an instant
    # and keep their flow order.
    assert [e.subject for e in found.entries] == order.subjects
    assert [e.event_id for e in found.entries] == [e.event_id for e in order.events]
    first = found.entries[0]
    assert (first.producer, first.trace_id, first.correlation_id, first.stream_seq) == (
        "order",
        order.trace_id,
        f"corr-{order.order_id}",
        1,
    )
    assert {e.producer for e in found.entries} == {
        "order",
        "inventory",
        "shipment",
        "carrier-adapter",
        "billing",
    }

    by_kind = {
        ReferenceKind.EXTERNAL_ORDER_ID: order.external_order_id,
        ReferenceKind.SHIPMENT_ID: order.shipment_id,
        ReferenceKind.TRACKING_NUMBER: order.tracking_number,
        ReferenceKind.INVOICE_NUMBER: order.invoice_number,
        ReferenceKind.CORRELATION_ID: f"corr-{order.order_id}",
    }
    for kind, reference in by_kind.items():
        other = timeline(db, reference)
        assert (other.resolved.order_id, other.resolved.matched) == (order.order_id, kind)
        assert other.entries == found.entries


def test_any_arrival_order_batching_and_duplicates_give_the_same_timeline(
    db: Database,
) -> None:
    reference = Lifecycle().build()
    apply(db, reference.events, batch_size=100)
    expected = timeline(db, reference.order_id).entries

    rng = random.Random(20261207)
    for _ in range(6):
        # The same order's events under fresh ids: each permutation is its own order.
        order = Lifecycle().build()
        shuffled = order.events[:]
        rng.shuffle(shuffled)
        # Late and twice: a replay of a random part after everything else.
        replayed = rng.sample(order.events, k=5)
        apply(db, shuffled + replayed, batch_size=rng.randint(1, 7))
        got = timeline(db, order.tracking_number)
        assert got.resolved.order_id == order.order_id
        assert [e.subject for e in got.entries] == [e.subject for e in expected]
        assert [e.event_id for e in got.entries] == [e.event_id for e in order.events]


def test_the_reversed_lifecycle_links_events_that_came_before_their_reference(
    db: Database,
) -> None:
    order = Lifecycle().build()
    # The carrier's scan and the shipment's pickup arrive before the manifest that links the
    # tracking number and the creation that links the shipment.
    apply(db, list(reversed(order.events)), batch_size=1)
    got = timeline(db, order.invoice_number)
    assert [e.event_id for e in got.entries] == [e.event_id for e in order.events]


def test_unknown_references_and_shared_external_ids_are_refused_precisely(db: Database) -> None:
    first, second = Lifecycle().build(), Lifecycle().build()
    second.external_order_id = first.external_order_id
    second.build()
    apply(db, first.events + second.events, batch_size=50)

    with pytest.raises(NotFound, match="no order is known by reference 'PO-nowhere'"):
        timeline(db, "PO-nowhere")
    with pytest.raises(FailedPrecondition, match=r"used by 2 partners.*give partner_id") as caught:
        timeline(db, first.external_order_id)
    assert caught.value.violations[0].subject == "partner_id"

    mine = timeline(db, first.external_order_id, partner_id=second.partner_id)
    assert mine.resolved.order_id == second.order_id
    with pytest.raises(NotFound, match="for partner ptn_"):
        timeline(db, first.external_order_id, partner_id=Lifecycle().partner_id)


def test_an_order_is_found_by_its_id_before_its_own_events_arrive(db: Database) -> None:
    order = Lifecycle().build()
    reserved, created = order.events[1], order.events[5]
    apply(db, [created, reserved], batch_size=2)
    got = timeline(db, order.order_id)
    assert got.resolved.matched is ReferenceKind.ORDER_ID
    assert [e.event_id for e in got.entries] == [reserved.event_id, created.event_id]
