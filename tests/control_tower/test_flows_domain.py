"""Flow membership from milestones: an item is in a flow from its entering milestone until any
later step or its end, whatever order the milestones were seen in; milestones from events."""

from __future__ import annotations

import itertools

import pytest

from services.control_tower.adapters.contracts import links_of, recorded_event
from services.control_tower.adapters.flow_contracts import milestones_of
from services.control_tower.domain.flows import (
    DAY,
    FLOWS,
    FLOWS_BY_NAME,
    FlowSummary,
    Milestone,
    MilestoneSeen,
    earliest,
    entered_at,
    flows_of,
)
from tests.control_tower.flow_scenarios import promised_manifest, return_events
from tests.control_tower.lifecycle import T0, Lifecycle

M = Milestone
NOW = T0 + 100 * DAY


@pytest.mark.parametrize(
    ("seen", "flows"),
    [
        ({M.ORDER_PLACED}, ["awaiting_allocation"]),
        ({M.ORDER_PLACED, M.ORDER_ALLOCATED}, []),
        ({M.ORDER_PLACED, M.ORDER_ALLOCATED, M.ORDER_RELEASED}, ["released_not_picked"]),
        # A pick that arrives before the release: past both.
        ({M.ORDER_PLACED, M.ORDER_PICKED}, ["picked_no_label"]),
        ({M.ORDER_RELEASED, M.ORDER_PICKED, M.ORDER_LABELLED}, []),
        ({M.ORDER_PLACED, M.ORDER_RELEASED, M.ORDER_ENDED}, []),
        ({M.SHIPMENT_LABELLED}, ["labelled_not_picked_up"]),
        ({M.SHIPMENT_LABELLED, M.SHIPMENT_ENDED}, []),
        # Returned to sender while in transit: it left, however late it was.
        ({M.SHIPMENT_LABELLED, M.SHIPMENT_IN_TRANSIT, M.SHIPMENT_ENDED}, []),
        ({M.ORDER_PLACED, M.ORDER_ALLOCATED, M.ORDER_RELEASED, M.ORDER_PICKED, M.ORDER_ENDED}, []),
        ({M.SHIPMENT_LABELLED, M.SHIPMENT_IN_TRANSIT}, ["in_transit_past_promise"]),
        ({M.SHIPMENT_LABELLED, M.SHIPMENT_DELIVERED}, ["delivered_not_invoiced"]),
        ({M.SHIPMENT_DELIVERED, M.SHIPMENT_INVOICED}, []),
        ({M.RETURN_AUTHORIZED}, ["return_authorized_not_received"]),
        ({M.RETURN_AUTHORIZED, M.RETURN_RECEIVED}, ["return_received_not_credited"]),
        ({M.RETURN_RECEIVED, M.RETURN_CREDITED}, []),
    ],
)
def test_an_item_is_in_the_flows_its_milestones_say(seen: set[Milestone], flows: list[str]) -> None:
    assert flows_of(dict.fromkeys(seen, T0), NOW) == flows


def test_the_earliest_sighting_wins_whatever_the_order() -> None:
    marks = [
        MilestoneSeen("ord_1", M.ORDER_PLACED, T0 + 5),
        MilestoneSeen("ord_1", M.ORDER_PLACED, T0),
        MilestoneSeen("ord_1", M.ORDER_PLACED, T0 + 9),
        MilestoneSeen("ord_1", M.ORDER_RELEASED, T0 + 7),
    ]
    results = {tuple(sorted(earliest(p).items())) for p in itertools.permutations(marks)}
    assert results == {((("ord_1", M.ORDER_PLACED), T0), (("ord_1", M.ORDER_RELEASED), T0 + 7))}


def test_a_late_shipment_is_due_at_its_promise_or_after_the_transit_allowance() -> None:
    flow = FLOWS_BY_NAME["in_transit_past_promise"]
    picked_up = {M.SHIPMENT_IN_TRANSIT: T0}
    assert entered_at(flow, picked_up, transit_allowance=3 * DAY) == T0 + 3 * DAY
    promised = {**picked_up, M.SHIPMENT_PROMISED: T0 + DAY}
    assert entered_at(flow, promised, transit_allowance=3 * DAY) == T0 + DAY
    # Not late yet: not in the flow before the promise falls due.
    assert flows_of(promised, T0 + DAY - 1) == []
    assert flows_of(promised, T0 + DAY) == ["in_transit_past_promise"]


def test_every_flow_leaves_on_its_items_end_and_every_later_step() -> None:
    for flow in FLOWS:
        assert flow.enters not in flow.leaves, flow.name
        assert flows_of({flow.enters: T0, **dict.fromkeys(flow.leaves, T0)}, NOW) == [], flow.name


def test_the_age_distribution_per_bucket_adds_up_to_the_items() -> None:
    summary = FlowSummary(
        FLOWS[0],
        300.0,
        items=7,
        oldest_age_seconds=40 * DAY,
        at_most=(1, 2, 2, 3, 3, 3, 4, 4, 4, 5),
        breaches=6,
    )
    per_bucket = summary.per_bucket()
    assert [count for _, count in per_bucket] == [1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 2]
    assert per_bucket[-1][0] == float("inf")


def test_events_mark_milestones_on_their_order_shipment_or_return() -> None:
    order = Lifecycle().build()
    seen: list[MilestoneSeen] = []
    for event in order.events:
        recorded = recorded_event(event.headers, event.stream_seq)
        body = event.message.SerializeToString()
        links = links_of(recorded.subject, recorded.aggregate_id, body)
        seen += milestones_of(recorded, links, body)
    got = {(mark.item_id, mark.milestone) for mark in seen}
    o, s = order.order_id, order.shipment_id
    assert got == {
        (o, M.ORDER_PLACED),
        (o, M.ORDER_ALLOCATED),
        (o, M.ORDER_RELEASED),
        (o, M.ORDER_PICKED),
        (o, M.ORDER_LABELLED),
        (o, M.ORDER_ENDED),
        (s, M.SHIPMENT_LABELLED),
        (s, M.SHIPMENT_IN_TRANSIT),
        (s, M.SHIPMENT_DELIVERED),
        (s, M.SHIPMENT_INVOICED),
    }

    manifest = promised_manifest(order, T0 + 2 * DAY)
    recorded = recorded_event(manifest.headers, 0)
    body = manifest.message.SerializeToString()
    marks = milestones_of(recorded, links_of(recorded.subject, recorded.aggregate_id, body), body)
    assert MilestoneSeen(s, M.SHIPMENT_PROMISED, T0 + 2 * DAY) in marks

    return_id, events = return_events(3)
    marks = []
    for event in events:
        recorded = recorded_event(event.headers, 0)
        body = event.message.SerializeToString()
        marks += milestones_of(
            recorded, links_of(recorded.subject, recorded.aggregate_id, body), body
        )
    assert {(m.item_id, m.milestone) for m in marks} == {
        (return_id, M.RETURN_AUTHORIZED),
        (return_id, M.RETURN_RECEIVED),
        (return_id, M.RETURN_CREDITED),
    }
