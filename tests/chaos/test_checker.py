"""The chaos checker's properties, each shown to pass a healthy history and to catch its fault."""

from __future__ import annotations

from dataclasses import replace

import pytest

from localmesh.chaos import checker
from localmesh.chaos.checker import Report, check
from localmesh.chaos.history import (
    AcceptedOrder,
    CreditNoteRecord,
    DeadLetterRecord,
    History,
    HistoryFormatError,
    InboxRecord,
    InvoiceRecord,
    LabelRecord,
    OrderRecord,
    OutboxAudit,
    OutboxRow,
    PositionRecord,
    ShipmentRecord,
    StockMovement,
    StreamRecord,
    UnsentRow,
)

T0 = 1_800_000_000.0


def healthy() -> History:
    """Three orders (two delivered and invoiced, one cancelled with its label voided), a return
    credited, stock that adds up, every sent event in its stream, every inbox id once."""
    return History(
        orders=(
            OrderRecord("ord_1", "COMPLETED", "ptn_a"),
            OrderRecord("ord_2", "CANCELLED", "ptn_a"),
            OrderRecord("ord_3", "COMPLETED", "ptn_b"),
        ),
        shipments=(
            ShipmentRecord("shp_1", "DELIVERED", "ord_1", "OUTBOUND", "lbl_1"),
            ShipmentRecord("shp_2", "CANCELLED", "ord_2", "OUTBOUND", "lbl_2"),
            ShipmentRecord("shp_3", "DELIVERED", "ord_3", "OUTBOUND", "lbl_3"),
            ShipmentRecord("shp_r", "DELIVERED", "ord_1", "RETURN", "lbl_r"),
        ),
        labels=(
            LabelRecord("lbl_1", "shp_1"),
            LabelRecord("lbl_2", "shp_2", voided=True),
            LabelRecord("lbl_3", "shp_3"),
            LabelRecord("lbl_r", "shp_r"),
        ),
        invoices=(
            InvoiceRecord("inv_1", "INV-2026-000001", "shp_1", "ord_1"),
            InvoiceRecord("inv_3", "INV-2026-000002", "shp_3", "ord_3"),
        ),
        credit_notes=(CreditNoteRecord("crn_1", "CRN-2026-000001", "inv_1", "rma_1"),),
        positions=(
            PositionRecord("SKU-A", "loc_1", on_hand=8, reserved=1),
            PositionRecord("SKU-B", "loc_1", on_hand=5),
        ),
        movements=(
            StockMovement("ev_seed_a", "SKU-A", "loc_1", "initial", 10),
            StockMovement("ev_pick_1", "SKU-A", "loc_1", "picked", -1),
            StockMovement("ev_pick_3", "SKU-A", "loc_1", "picked", -1),
            StockMovement("ev_return", "SKU-A", "loc_1", "received", 1),
            StockMovement("ev_adjust", "SKU-A", "loc_1", "adjusted", -1),
            # The same pick recorded twice (a redelivery) changes stock once.
            StockMovement("ev_pick_1", "SKU-A", "loc_1", "picked", -1),
            StockMovement("ev_seed_b", "SKU-B", "loc_1", "initial", 5),
        ),
        streams=(
            StreamRecord("ORDER", ("crossdock.order.>",), 1, T0, ("ev_o1", "ev_o2")),
            StreamRecord("BILLING", ("crossdock.billing.>",), 1, T0, ("ev_b1",)),
        ),
        outboxes=(
            OutboxAudit(
                "order",
                (
                    OutboxRow("ev_o1", "crossdock.order.placed.v1", "ORDER", T0 + 1),
                    OutboxRow("ev_o2", "crossdock.order.completed.v1", "ORDER", T0 + 2),
                ),
            ),
            OutboxAudit(
                "billing",
                (OutboxRow("ev_b1", "crossdock.billing.invoice_posted.v1", "BILLING", T0),),
            ),
        ),
        inboxes=(
            InboxRecord("billing", "billing-events", {"ev_o1": 1}),
            InboxRecord("order", "order-events", {"ev_b1": 1}),
        ),
        accepted=(
            AcceptedOrder("ord_1", "key-1"),
            AcceptedOrder("ord_2", "key-2"),
            AcceptedOrder("ord_3", "key-3"),
        ),
    )


def only(report: Report, prop: str) -> list[checker.Violation]:
    """The violations, after asserting every one is of `prop` (a planted fault trips one rule)."""
    assert not report.ok
    assert {v.property for v in report.violations} == {prop}, report.summary()
    return list(report.violations)


def test_a_healthy_history_passes_every_property() -> None:
    report = check(healthy())

    assert report.ok, report.summary()
    assert report.violations == ()
    assert set(report.checked) == set(checker.PROPERTIES)
    # Each property judged something: an empty pass would prove nothing.
    assert all(n > 0 for n in report.checked.values()), report.checked
    assert report.summary().startswith("chaos check: OK")


def test_an_order_left_in_exception_is_not_terminal() -> None:
    history = healthy()
    stuck = OrderRecord("ord_9", "EXCEPTION", "ptn_a", "shipment failed: LABEL_FAILED")
    history = replace(history, orders=(*history.orders, stuck))

    (violation,) = only(check(history), checker.ORDERS_TERMINAL)

    assert violation.subjects == ("ord_9",)
    # The evidence names the reason, so a run's report says why the order is stuck.
    assert "EXCEPTION (shipment failed: LABEL_FAILED)" in violation.evidence


@pytest.mark.parametrize("status", ["PLACED", "SHIPPED", "DELIVERED", "BACKORDERED"])
def test_an_order_still_on_its_way_is_not_terminal(status: str) -> None:
    history = healthy()
    history = replace(history, orders=(OrderRecord("ord_1", status), *history.orders[1:]))

    (violation,) = only(check(history), checker.ORDERS_TERMINAL)

    assert violation.subjects == ("ord_1",)


def test_two_live_labels_on_one_shipment_are_reported() -> None:
    history = healthy()
    history = replace(history, labels=(*history.labels, LabelRecord("lbl_1b", "shp_1")))

    (violation,) = only(check(history), checker.ONE_LABEL)

    assert violation.subjects == ("shp_1", "lbl_1", "lbl_1b")


def test_a_voided_second_label_is_accounted_for() -> None:
    history = healthy()
    extra = LabelRecord("lbl_1b", "shp_1", voided=True)
    history = replace(history, labels=(*history.labels, extra))

    assert check(history).ok


def test_a_delivered_shipment_with_its_only_label_voided_is_reported() -> None:
    history = healthy()
    labels = tuple(replace(x, voided=True) if x.label_id == "lbl_3" else x for x in history.labels)

    (violation,) = only(check(replace(history, labels=labels)), checker.ONE_LABEL)

    assert violation.subjects == ("shp_3",)
    assert "DELIVERED" in violation.evidence


def test_a_duplicate_invoice_for_one_shipment_is_reported() -> None:
    history = healthy()
    duplicate = InvoiceRecord("inv_1b", "INV-2026-000003", "shp_1", "ord_1")
    history = replace(history, invoices=(*history.invoices, duplicate))

    (violation,) = only(check(history), checker.ONE_INVOICE)

    assert violation.subjects == ("shp_1", "INV-2026-000001", "INV-2026-000003")


def test_a_delivered_outbound_shipment_with_no_invoice_is_reported() -> None:
    history = healthy()
    history = replace(history, invoices=history.invoices[:1])  # drop shp_3's, the highest number

    (violation,) = only(check(history), checker.ONE_INVOICE)

    assert violation.subjects == ("shp_3",)


def test_a_delivered_return_parcel_needs_no_invoice() -> None:
    history = healthy()
    assert not any(i.shipment_id == "shp_r" for i in history.invoices)
    assert check(history).ok


def test_two_credit_notes_for_one_return_of_one_invoice_are_reported() -> None:
    history = healthy()
    twice = CreditNoteRecord("crn_2", "CRN-2026-000002", "inv_1", "rma_1")
    history = replace(history, credit_notes=(*history.credit_notes, twice))

    (violation,) = only(check(history), checker.ONE_INVOICE)

    assert violation.subjects[:2] == ("rma_1", "inv_1")


def test_a_gap_in_invoice_numbers_is_reported() -> None:
    history = healthy()
    late = InvoiceRecord("inv_5", "INV-2026-000005", "shp_5", "ord_5")
    history = replace(history, invoices=(*history.invoices, late))

    (violation,) = only(check(history), checker.GAPLESS)

    assert violation.subjects == ("INV-2026",)
    assert "missing numbers 3-4" in violation.evidence


def test_a_gap_at_the_start_of_a_credit_note_series_is_reported() -> None:
    history = healthy()
    notes = (CreditNoteRecord("crn_1", "CRN-2026-000002", "inv_1", "rma_1"),)

    (violation,) = only(check(replace(history, credit_notes=notes)), checker.GAPLESS)

    assert violation.subjects == ("CRN-2026",)
    assert "missing numbers 1 " in violation.evidence


def test_a_number_used_twice_is_reported() -> None:
    history = healthy()
    # Two invoices with one number, on a shipment that had none: only the number is wrong.
    twin = InvoiceRecord("inv_x", "INV-2026-000002", "shp_x", "ord_x")
    history = replace(history, invoices=(*history.invoices, twin))

    (violation,) = only(check(history), checker.GAPLESS)

    assert violation.subjects == ("INV-2026",)
    assert "more than once: 2" in violation.evidence


def test_series_are_judged_apart() -> None:
    history = healthy()
    other_year = InvoiceRecord("inv_y", "INV-2027-000001", "shp_y", "ord_y")

    assert check(replace(history, invoices=(*history.invoices, other_year))).ok


def test_stock_not_conserved_is_reported_with_its_terms() -> None:
    history = healthy()
    positions = (PositionRecord("SKU-A", "loc_1", on_hand=9, reserved=1), history.positions[1])

    (violation,) = only(check(replace(history, positions=positions)), checker.STOCK)

    assert violation.subjects == ("SKU-A@loc_1",)
    assert "on hand 9 but movements sum to 8" in violation.evidence
    assert "picked -2" in violation.evidence


def test_a_movement_with_no_position_is_reported() -> None:
    history = healthy()
    stray = StockMovement("ev_recv_c", "SKU-C", "loc_2", "received", 4)

    (violation,) = only(
        check(replace(history, movements=(*history.movements, stray))), checker.STOCK
    )

    assert violation.subjects == ("SKU-C@loc_2",)


def test_a_negative_position_is_reported() -> None:
    history = healthy()
    negative = (
        history.positions[0],
        PositionRecord("SKU-B", "loc_1", on_hand=-1),
    )
    movements = (*history.movements, StockMovement("ev_pick_b", "SKU-B", "loc_1", "picked", -6))

    found = only(check(replace(history, positions=negative, movements=movements)), checker.STOCK)

    assert [v.subjects for v in found] == [("SKU-B@loc_1",), ("SKU-B@loc_1",)]
    assert any("on hand is negative: -1" in v.evidence for v in found)


def test_more_reserved_than_on_hand_is_reported() -> None:
    history = healthy()
    positions = (PositionRecord("SKU-A", "loc_1", on_hand=8, reserved=9), history.positions[1])

    (violation,) = only(check(replace(history, positions=positions)), checker.STOCK)

    assert violation.evidence == "available is negative: -1"


def test_a_sent_event_missing_from_its_stream_is_reported() -> None:
    history = healthy()
    lost = OutboxRow("ev_o3", "crossdock.order.cancelled.v1", "ORDER", T0 + 3)
    outboxes = (replace(history.outboxes[0], rows=(*history.outboxes[0].rows, lost)),)

    found = only(
        check(replace(history, outboxes=(*outboxes, history.outboxes[1]))), checker.NO_LOST_EVENTS
    )

    assert [v.subjects for v in found] == [("ev_o3", "order")]


def test_a_sent_event_to_an_unknown_stream_is_reported() -> None:
    history = healthy()
    stray = OutboxAudit(
        "shipment", (OutboxRow("ev_s1", "crossdock.shipment.created.v1", "SHIPMENT", T0),)
    )

    (violation,) = only(
        check(replace(history, outboxes=(*history.outboxes, stray))), checker.NO_LOST_EVENTS
    )

    assert violation.subjects == ("ev_s1",)


def test_events_older_than_what_retention_kept_are_not_judged() -> None:
    history = healthy()
    # The stream dropped its first 40 messages; its oldest kept one is from T0 + 100.
    streams = (replace(history.streams[0], first_seq=41, first_time=T0 + 100), history.streams[1])
    old = OutboxRow("ev_old", "crossdock.order.placed.v1", "ORDER", T0 + 50)
    new = OutboxRow("ev_new", "crossdock.order.placed.v1", "ORDER", T0 + 200)
    audit = replace(history.outboxes[0], rows=(*history.outboxes[0].rows, old, new))
    history = replace(history, streams=streams, outboxes=(audit, history.outboxes[1]))

    (violation,) = only(check(history), checker.NO_LOST_EVENTS)

    assert violation.subjects == ("ev_new", "order")


def test_an_event_applied_twice_by_one_consumer_is_reported() -> None:
    history = healthy()
    inboxes = (InboxRecord("billing", "billing-events", {"ev_o1": 1, "ev_o2": 2}),)

    (violation,) = only(check(replace(history, inboxes=inboxes)), checker.NO_DOUBLE_APPLY)

    assert violation.subjects == ("ev_o2", "billing-events")
    assert "2 times" in violation.evidence


def test_one_event_applied_once_by_each_of_two_consumers_is_fine() -> None:
    history = healthy()
    inboxes = (
        InboxRecord("billing", "billing-events", {"ev_o1": 1}),
        InboxRecord("shipment", "shipment-events", {"ev_o1": 1}),
    )

    assert check(replace(history, inboxes=inboxes)).ok


def test_a_history_round_trips_through_json() -> None:
    history = healthy()

    again = History.from_json(history.to_json())

    assert again == history
    assert check(again) == check(history)


def test_a_report_round_trips_through_json() -> None:
    history = healthy()
    history = replace(history, orders=(*history.orders, OrderRecord("ord_9", "EXCEPTION")))
    history = replace(history, notes=("inbox of gateway not read",))
    report = check(history)

    again = Report.from_json(report.to_json())

    assert again == report
    assert not again.ok
    assert "ord_9" in again.summary()
    assert "note: inbox of gateway not read" in again.summary()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[", "history: not JSON"),
        ('{"orders": [{"status": "COMPLETED"}]}', "history.orders[0]: missing field(s) order_id"),
        ('{"orders": {}}', "history.orders: expected a list, got dict"),
        (
            '{"positions": [{"sku": "A", "location_id": "l", "on_hand": "3"}]}',
            "history.positions[0].on_hand: expected int, got str",
        ),
        (
            '{"labels": [{"label_id": "l", "shipment_id": "s", "voided": 1}]}',
            "history.labels[0].voided: expected bool, got int",
        ),
        ('{"ordres": []}', "history: unknown field(s) ordres"),
    ],
)
def test_a_malformed_history_is_refused_with_its_path(text: str, message: str) -> None:
    with pytest.raises(HistoryFormatError) as raised:
        History.from_json(text)

    assert message in str(raised.value)


def test_a_malformed_report_is_refused() -> None:
    with pytest.raises(ValueError, match="not a chaos report"):
        Report.from_json('{"violations": []}')


def test_an_order_accepted_over_rest_that_order_does_not_know_is_reported() -> None:
    history = healthy()
    lost = replace(history, accepted=(*history.accepted, AcceptedOrder("ord_9", "key-9")))

    (violation,) = only(check(lost), checker.ACCEPTED_KEPT)

    assert violation.subjects == ("ord_9",)


def test_one_idempotency_key_answered_with_two_orders_is_reported() -> None:
    history = healthy()
    doubled = replace(history, accepted=(*history.accepted, AcceptedOrder("ord_3", "key-1")))

    (violation,) = only(check(doubled), checker.ACCEPTED_KEPT)

    assert violation.subjects == ("ord_1", "ord_3")
    assert "key-1" in violation.evidence


def test_an_event_a_consumer_gave_up_on_is_reported_with_its_reason() -> None:
    history = healthy()
    letter = DeadLetterRecord(
        "ev_o2",
        "billing-events",
        "crossdock.order.completed.v1",
        "max_deliver (5) exhausted: batch failed: OperationalError('the connection is lost')",
    )
    dead = replace(history, dead_letters=(letter,))

    (violation,) = only(check(dead), checker.NO_DEAD_LETTERS)

    assert violation.subjects == ("ev_o2", "billing-events")
    assert "crossdock.order.completed.v1" in violation.evidence
    assert "the connection is lost" in violation.evidence
    assert check(history).checked[checker.NO_DEAD_LETTERS] == 3  # every event streams hold


def test_an_event_left_unsent_in_an_outbox_is_reported() -> None:
    history = healthy()
    order_outbox, billing_outbox = history.outboxes
    stuck = replace(order_outbox, unsent=(UnsentRow("ev_o3", "crossdock.order.released.v1"),))
    held = replace(history, outboxes=(stuck, billing_outbox))

    (violation,) = only(check(held), checker.NO_LOST_EVENTS)

    assert violation.subjects == ("ev_o3", "order")
    assert "crossdock.order.released.v1" in violation.evidence
