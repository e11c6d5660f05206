"""The tower's pure rules: the state an event moved, causal order, reference resolution, and what
the reference-carrying event types link."""

from __future__ import annotations

import pytest
from crossdock.events.v1 import return_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.control_tower.adapters import contracts
from services.control_tower.domain.exceptions import (
    ExceptionKind,
    ExceptionView,
    order_exception_subject,
    require_retryable,
)
from services.control_tower.domain.references import Link, ReferenceKind, keyed_by_order, resolve
from services.control_tower.domain.timeline import RecordedEvent, causal_order, state_change
from services.kit.catalog import load_catalog
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.handlers import PermanentError

ORDER = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


def recorded(event_id: str, subject: str, at: float) -> RecordedEvent:
    return RecordedEvent(event_id, subject, "order", ORDER, at, "", "", 0)


def test_state_changes_name_the_entity_and_its_new_state_for_any_version() -> None:
    assert state_change("crossdock.order.released.v1") == "order → RELEASED"
    assert state_change("crossdock.order.released.v2") == "order → RELEASED"
    assert state_change("crossdock.shipment.delivered.v1") == "shipment → DELIVERED"
    assert state_change("crossdock.billing.invoice_posted.v1") == "invoice → POSTED"
    assert state_change("crossdock.carrier.tracking_updated.v1") == ""


def test_every_catalog_event_that_moves_a_state_has_one() -> None:
    # A finding's own state (opened, answered, closed) travels in its payload, not its subject.
    silent = {
        "crossdock.carrier.tracking_updated.v1",
        "crossdock.carrier.code_unmapped.v1",
        "crossdock.reconciliation.finding.v1",
    }
    missing = [e.subject for e in load_catalog() if not state_change(e.subject)]
    assert sorted(missing) == sorted(silent & {e.subject for e in load_catalog()})


def test_causal_order_is_time_then_flow_step_then_event_id_and_drops_repeats() -> None:
    released = recorded("b", "crossdock.order.released.v1", 10.0)
    allocated = recorded("z", "crossdock.order.allocated.v1", 10.0)  # same instant, earlier step
    placed = recorded("c", "crossdock.order.placed.v1", 9.0)
    cancelled = recorded("a", "crossdock.order.cancelled.v1", 10.0)  # off the path: last
    late = recorded("d", "crossdock.order.completed.v1", 11.0)
    events = [late, released, cancelled, allocated, placed, released]
    assert causal_order(events) == [placed, allocated, released, cancelled, late]
    assert causal_order(reversed(events)) == causal_order(events)


def test_a_reference_resolves_to_its_one_order_naming_the_most_specific_kind() -> None:
    links = [
        Link(ReferenceKind.CORRELATION_ID, "x", ORDER),
        Link(ReferenceKind.TRACKING_NUMBER, "x", ORDER),
        Link(ReferenceKind.AGGREGATE, "x", ORDER),
    ]
    resolved = resolve("x", links)
    assert (resolved.order_id, resolved.matched) == (ORDER, ReferenceKind.TRACKING_NUMBER)


def test_aggregate_links_alone_are_not_a_lookup_key() -> None:
    with pytest.raises(NotFound, match="no order is known by reference 'rsv_1'"):
        resolve("rsv_1", [Link(ReferenceKind.AGGREGATE, "rsv_1", ORDER)])


def test_a_shared_external_id_needs_the_partner_and_the_partner_picks_one() -> None:
    links = [
        Link(ReferenceKind.EXTERNAL_ORDER_ID, "PO-1", "ord_A", "ptn_A"),
        Link(ReferenceKind.EXTERNAL_ORDER_ID, "PO-1", "ord_B", "ptn_B"),
    ]
    with pytest.raises(FailedPrecondition, match="'PO-1' is used by 2 partners") as caught:
        resolve("PO-1", links)
    assert caught.value.reason == "AMBIGUOUS_REFERENCE"
    assert [v.subject for v in caught.value.violations] == ["partner_id"]
    assert resolve("PO-1", links, "ptn_B").order_id == "ord_B"
    with pytest.raises(NotFound, match="for partner ptn_C"):
        resolve("PO-1", links, "ptn_C")


def test_a_correlation_id_naming_several_orders_is_refused() -> None:
    links = [
        Link(ReferenceKind.CORRELATION_ID, "c", "ord_A"),
        Link(ReferenceKind.CORRELATION_ID, "c", "ord_B"),
    ]
    with pytest.raises(FailedPrecondition, match="names 2 orders"):
        resolve("c", links)


def test_order_events_and_completed_picks_are_keyed_by_their_order() -> None:
    assert keyed_by_order("crossdock.order.completed.v1")
    assert keyed_by_order("crossdock.inventory.pick_completed.v1")
    assert not keyed_by_order("crossdock.inventory.reserved.v1")
    assert not keyed_by_order("crossdock.shipment.created.v1")


def test_a_manifest_links_its_shipment_every_tracking_number_and_its_return() -> None:
    ship = shipment_pb2.Shipment(
        shipment_id="shp_1",
        order_id=ORDER,
        tracking_number="1Z1",
        return_id="rma_1",
        packages=[shipment_pb2.Package(tracking_number="1Z2"), shipment_pb2.Package()],
    )
    body = shipment_events_pb2.ShipmentManifested(shipment=ship).SerializeToString()
    links = contracts.links_of("crossdock.shipment.manifested.v1", "shp_1", body)
    assert {(link.kind, link.value) for link in links} == {
        (ReferenceKind.SHIPMENT_ID, "shp_1"),
        (ReferenceKind.TRACKING_NUMBER, "1Z1"),
        (ReferenceKind.TRACKING_NUMBER, "1Z2"),
        (ReferenceKind.RETURN_ID, "rma_1"),
    }
    assert {link.order_id for link in links} == {ORDER}


def test_a_return_received_under_a_shipment_id_links_that_aggregate_too() -> None:
    event = return_events_pb2.ReturnReceived(
        order_return=order_pb2.Return(return_id="rma_1", order_id=ORDER)
    )
    links = contracts.links_of("crossdock.return.received.v1", "shp_9", event.SerializeToString())
    assert set(links) == {
        Link(ReferenceKind.RETURN_ID, "rma_1", ORDER),
        Link(ReferenceKind.AGGREGATE, "shp_9", ORDER),
    }


def test_only_reference_carrying_types_are_decoded() -> None:
    assert contracts.links_of("crossdock.shipment.picked_up.v1", "shp_1", b"\xff\xff") == []
    with pytest.raises(PermanentError, match=r"undecodable crossdock\.order\.placed\.v1"):
        contracts.links_of("crossdock.order.placed.v1", ORDER, b"\xff\xff")


def test_trace_ids_come_from_well_formed_traceparents_only() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert contracts.trace_id_of(parent) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert contracts.trace_id_of("garbage") == ""
    assert contracts.trace_id_of(None) == ""


def test_headers_become_a_recorded_event_and_a_bad_time_is_permanent() -> None:
    headers = {
        "ce-id": "0193a1b2-0000-7000-8000-000000000001",
        "ce-type": "crossdock.order.released.v1",
        "ce-source": "crossdock/order",
        "ce-time": "2026-05-28T20:26:40.250000Z",
        "ce-subject": ORDER,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x-correlation-id": "corr-1",
    }
    event = contracts.recorded_event(headers, 42)
    assert event == RecordedEvent(
        "0193a1b2-0000-7000-8000-000000000001",
        "crossdock.order.released.v1",
        "order",
        ORDER,
        1_780_000_000.25,
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "corr-1",
        42,
    )
    with pytest.raises(PermanentError, match="ce-time 'yesterday' is not an RFC 3339 instant"):
        contracts.recorded_event({**headers, "ce-time": "yesterday"}, 42)


def _view(kind: ExceptionKind, subject_id: str) -> ExceptionView:
    return ExceptionView(7, kind, subject_id, ORDER, 1.0, 1.0, 1, "", "evt", None, "")


def test_an_order_exception_is_retried_on_its_order_and_an_unknown_outcome_never() -> None:
    order_exception = _view(ExceptionKind.ORDER_EXCEPTION, order_exception_subject(ORDER, 2))
    assert order_exception.subject_id == f"{ORDER}:2"
    assert require_retryable(order_exception) == "order.RetryOrderStep"
    assert (order_exception.owner, order_exception.retry_subject) == ("order", ORDER)

    unknown = _view(ExceptionKind.LABEL_OUTCOME_UNKNOWN, "shp_1")
    assert (unknown.owner, unknown.spec.subject_kind) == ("shipment", "shipment")
    with pytest.raises(FailedPrecondition) as refused:
        require_retryable(unknown)
    assert refused.value.reason == "EXCEPTION_NOT_RETRYABLE"
    assert refused.value.message == (
        "exception_id: exception 7 is label_outcome_unknown: the label's booking outcome is "
        "unknown at the carrier (a retry would book a second label or be refused): reconcile "
        "with the carrier, then resolve it"
    )
    # Its shipment is still retried by the label_failed kind's rule; only this kind refuses.
    assert require_retryable(_view(ExceptionKind.LABEL_FAILED, "shp_1")) == "shipment.RetryLabel"
