"""The flow projection on SQLite and PostgreSQL: items held at every step are counted where a
hand count puts them, whatever order, batching or duplication the events arrive in; the
drill-down pages through a flow's items with their orders."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest
from crossdock.events.v1 import shipment_events_pb2

from services.control_tower import app
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.domain.flows import AGE_BUCKETS, DAY, FLOWS
from services.control_tower.entrypoints.consumers import record
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.uow import UnitsOfWork
from tests.control_tower.flow_scenarios import (
    LATE,
    PICKED_UP,
    RELEASED,
    Scenario,
    held_order,
    mixed,
)
from tests.control_tower.lifecycle import T0, Published, as_consumed, published

SETTINGS = app.FlowSettings()


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


def counts(db: Database, now: float = LATE) -> dict[str, int]:
    summaries = UnitsOfWork(db).run_sync(app.list_flows, SETTINGS, now)
    return {summary.flow.name: summary.items for summary in summaries}


def members(db: Database, flow: str, now: float = LATE, size: int = 100) -> set[str]:
    query = app.FlowItemsQuery(flow, page_size=size)
    items, token = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, now)
    assert token == ""
    return {item.item_id for item in items}


def hand_count(scenario: Scenario) -> dict[str, int]:
    return {flow.name: len(scenario.expected.get(flow.name, set())) for flow in FLOWS}


def test_items_held_at_every_step_are_in_the_flow_a_hand_count_puts_them(db: Database) -> None:
    scenario = mixed()
    apply(db, scenario.events, batch_size=20)
    assert counts(db) == hand_count(scenario)
    for flow in FLOWS:
        assert members(db, flow.name) == scenario.expected.get(flow.name, set()), flow.name


def test_any_arrival_order_batching_and_duplicates_give_the_same_flows(db: Database) -> None:
    rng = random.Random(20261207)
    totals = {flow.name: 0 for flow in FLOWS}
    for _ in range(4):
        scenario = mixed()
        shuffled = scenario.events[:]
        rng.shuffle(shuffled)
        replayed = rng.sample(scenario.events, k=10)  # late and twice
        apply(db, shuffled + replayed, batch_size=rng.randint(1, 9))
        for name, count in hand_count(scenario).items():
            totals[name] += count
        assert counts(db) == totals
    # Reversed one event per batch: every item's end or later step arrives before its start.
    scenario = mixed()
    apply(db, list(reversed(scenario.events)), batch_size=1)
    for name, count in hand_count(scenario).items():
        totals[name] += count
    assert counts(db) == totals


def test_ages_breaches_and_the_distribution_follow_the_clock(db: Database) -> None:
    old, young = held_order(RELEASED), held_order(RELEASED, start=T0 + 5 * 3600)
    apply(db, old.events + young.events, batch_size=50)
    # Released at T0 + 2 and T0 + 5 h + 2; four hours is the default SLA.
    now = T0 + 6 * 3600 + 2
    by_name = {s.flow.name: s for s in UnitsOfWork(db).run_sync(app.list_flows, SETTINGS, now)}
    released = by_name["released_not_picked"]
    assert (released.items, released.breaches, released.sla_seconds) == (2, 1, 4 * 3600)
    assert released.oldest_age_seconds == pytest.approx(6 * 3600)
    # Cumulative: one item at most an hour old, both at most a day.
    assert dict(zip(AGE_BUCKETS, released.at_most, strict=True))[3600] == 1
    assert dict(zip(AGE_BUCKETS, released.at_most, strict=True))[DAY] == 2
    assert dict(released.per_bucket())[float("inf")] == 0
    assert sum(count for _, count in released.per_bucket()) == 2
    # Before the order was released it is in no flow of its kind: the clock never counts ahead.
    assert counts(db, now=T0 + 1)["released_not_picked"] == 0
    query = app.FlowItemsQuery("released_not_picked")
    items, _ = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, now)
    breached = {item.order_id: item.breached for item in items}
    assert breached == {old.order_id: True, young.order_id: False}


def test_configured_slas_and_transit_allowance_move_breaches(db: Database) -> None:
    scenario = mixed()
    apply(db, scenario.events, batch_size=30)
    # Ten days after the start: the allowance of 5 days has passed for the order without a
    # promise, and the promise (one day) has too.
    ten_days = T0 + 10 * DAY
    strict = app.FlowSettings(slas={"in_transit_past_promise": 60.0}, transit_allowance=20 * DAY)
    found = UnitsOfWork(db).run_sync(app.list_flows, strict, ten_days)
    late = next(s for s in found if s.flow.name == "in_transit_past_promise")
    # With a 20-day allowance only the shipment with a carrier promise is late; 60 s SLA.
    assert (late.items, late.breaches, late.sla_seconds) == (1, 1, 60.0)


def test_the_drill_down_pages_and_names_each_items_order(db: Database) -> None:
    orders = [held_order(RELEASED) for _ in range(5)]
    apply(db, [event for order in orders for event in order.events], batch_size=7)
    seen: list[str] = []
    token = ""
    while True:
        query = app.FlowItemsQuery("released_not_picked", page_size=2, page_token=token)
        items, token = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, LATE)
        assert len(items) <= 2
        seen += [item.item_id for item in items]
        assert all(item.order_id == item.item_id for item in items)
        if not token:
            break
    assert seen == sorted(order.order_id for order in orders)

    scenario = mixed()
    apply(db, scenario.events, batch_size=50)
    query = app.FlowItemsQuery("labelled_not_picked_up")
    (item,), _ = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, LATE)
    assert item.order_id.startswith("ord_") and item.item_id.startswith("shp_")


def test_an_unknown_flow_or_a_foreign_page_token_is_refused_naming_the_field(
    db: Database,
) -> None:
    units = UnitsOfWork(db)
    with pytest.raises(InvalidArgument, match="unknown flow 'nope'") as caught:
        units.run_sync(app.list_flow_items, SETTINGS, app.FlowItemsQuery("nope"), LATE)
    assert caught.value.violations[0].field == "flow"
    with pytest.raises(InvalidArgument) as caught:
        query = app.FlowItemsQuery("released_not_picked", page_token="not-a-token")
        units.run_sync(app.list_flow_items, SETTINGS, query, LATE)
    assert caught.value.violations[0].field == "page_token"


def test_the_earliest_event_of_a_milestone_sets_the_clock_whichever_arrives_first(
    db: Database,
) -> None:
    order = held_order(PICKED_UP)
    ref = shipment_events_pb2.ShipmentRef(shipment_id=order.shipment_id, order_id=order.order_id)
    # Out for delivery an hour after pickup: both mark "in transit"; the later one arrives first.
    out = published(
        shipment_events_pb2.ShipmentOutForDelivery(shipment=ref),
        order.shipment_id,
        T0 + 7 + 3600,
        f"corr-{order.order_id}",
    )
    apply(db, [out, *reversed(order.events)], batch_size=1)
    query = app.FlowItemsQuery("in_transit_past_promise")
    (item,), _ = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, LATE)
    # Picked up at T0 + 7; due the default allowance later.
    assert item.entered_at == T0 + 7 + SETTINGS.transit_allowance
    apply(db, [out], batch_size=1)  # and a late redelivery moves nothing
    (again,), _ = UnitsOfWork(db).run_sync(app.list_flow_items, SETTINGS, query, LATE)
    assert again.entered_at == item.entered_at
