"""Shipment's pure rules: packing, the quote a label was booked at, and tracking milestones
(no I/O)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from crossdock.carrier.v1 import carrier_pb2, tracking_pb2
from crossdock.shipment.v1 import shipment_pb2

from services.kit import events as ev
from services.kit.catalog import load_catalog
from services.kit.values import Address, Money
from services.shipment.adapters.contracts import mapper, shipment_to_domain, shipment_to_proto
from services.shipment.domain.events import (
    ReturnParcelDelivered,
    ShipmentDelivered,
    ShipmentManifested,
)
from services.shipment.domain.model import (
    IncidentReason,
    LabelVoid,
    ServiceLevel,
    ShipmentKind,
    ShipmentStatus,
    TrackingStatus,
)
from services.shipment.domain.packing import ItemSpec, PickedUnits, UnknownItem, pack
from services.shipment.domain.returns import with_shipped_lots
from services.shipment.domain.shipment import (
    Label,
    OrderRef,
    Package,
    PendingPick,
    Rate,
    ScanReport,
    Shipment,
    ShipmentNotCancellable,
)
from services.shipment.domain.tracking import (
    RULES_FILE,
    Delivery,
    Kind,
    Progress,
    RulesError,
    Scan,
    Timeline,
    apply_scan,
    default_rules,
    parse_rules,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# -- the enums mirror the contracts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mirror", "enum", "prefix"),
    [
        (ShipmentStatus, shipment_pb2.ShipmentStatus, "SHIPMENT_STATUS_"),
        (ShipmentKind, shipment_pb2.ShipmentKind, "SHIPMENT_KIND_"),
        (TrackingStatus, tracking_pb2.TrackingStatus, "TRACKING_STATUS_"),
        (ServiceLevel, carrier_pb2.ServiceLevel, "SERVICE_LEVEL_"),
    ],
)
def test_domain_enums_match_the_contract(mirror: type, enum: object, prefix: str) -> None:
    contract = {name.removeprefix(prefix): value for name, value in enum.items()}  # type: ignore[attr-defined]
    assert {m.name: int(m) for m in mirror} == contract


# -- packing --------------------------------------------------------------------------------

ITEMS = {
    "MUG": ItemSpec("MUG", 0.4, 12, 10, 10),
    "ANVIL": ItemSpec("ANVIL", 45.0, 40, 30, 30),
    "BOOK": ItemSpec("BOOK", 1.0, 25, 18, 3),
}


def test_units_fill_a_box_up_to_the_weight_limit_then_a_new_box_starts() -> None:
    boxes = pack([PickedUnits(1, "BOOK", 25), PickedUnits(2, "MUG", 5)], ITEMS, 10.0)
    assert [sum(u.quantity for u in b.items) for b in boxes] == [10, 10, 10]
    assert all(b.weight_kg <= 10.0 for b in boxes)
    # Every picked unit is in exactly one box, per order line.
    per_line: dict[int, int] = {}
    for box in boxes:
        for units in box.items:
            per_line[units.order_line_number] = (
                per_line.get(units.order_line_number, 0) + units.quantity
            )
    assert per_line == {1: 25, 2: 5}
    assert boxes[2].items == (PickedUnits(1, "BOOK", 5), PickedUnits(2, "MUG", 5))
    assert boxes[2].weight_kg == pytest.approx(5 * 1.0 + 5 * 0.4)


def test_box_measures_stack_heights_on_the_largest_footprint() -> None:
    (box,) = pack([PickedUnits(1, "BOOK", 2), PickedUnits(2, "MUG", 1)], ITEMS, 30.0)
    assert (box.length_cm, box.width_cm, box.height_cm) == (25, 18, 3 * 2 + 10)


def test_a_unit_heavier_than_the_limit_ships_alone() -> None:
    boxes = pack([PickedUnits(1, "MUG", 1), PickedUnits(2, "ANVIL", 2)], ITEMS, 30.0)
    assert [b.items for b in boxes] == [
        (PickedUnits(1, "MUG", 1),),
        (PickedUnits(2, "ANVIL", 1),),
        (PickedUnits(2, "ANVIL", 1),),
    ]


def test_lines_without_units_are_ignored_and_unknown_skus_refused() -> None:
    assert pack([PickedUnits(1, "MUG", 0)], ITEMS, 30.0) == ()
    with pytest.raises(UnknownItem, match="GHOST"):
        pack([PickedUnits(1, "GHOST", 1)], ITEMS, 30.0)


# -- the quote a label was booked at ---------------------------------------------------------------


def booked_at(rate: Rate | None, quoted: Money | None = None) -> Label:
    return Label("lbl_1", "sandbox", "1Z1", ("1Z1P1",), quoted, rate)


RATE = Rate("rte_1", "sandbox", ServiceLevel.EXPEDITED, Money.of("11.50", "USD"), "sandbox", "2DAY")


def test_a_label_booked_at_a_quote_it_chose_records_that_quote_and_announces_its_level() -> None:
    """Shop and book: the quote comes with the label; the shipment keeps it as if chosen first."""
    shipment = outbound_created()
    assert shipment.manifest(booked_at(RATE), T0)
    assert shipment.rate == RATE
    (announced,) = [e for e in shipment.pull_events() if isinstance(e, ShipmentManifested)]
    assert (announced.quoted_charge, announced.service_level) == (
        Money.of("11.50", "USD"),
        ServiceLevel.EXPEDITED,
    )


def test_a_label_without_its_quote_keeps_the_quote_chosen_before_booking() -> None:
    shipment = outbound_created()
    shipment.choose_rate(RATE, T0)
    assert shipment.manifest(booked_at(None, Money.of("12.00", "USD")), T0)
    assert shipment.rate == RATE
    (announced,) = [e for e in shipment.pull_events() if isinstance(e, ShipmentManifested)]
    assert (announced.quoted_charge, announced.service_level) == (
        Money.of("12.00", "USD"),
        ServiceLevel.EXPEDITED,
    )


def test_a_label_booked_after_the_cancel_records_its_quote_with_the_void_due() -> None:
    shipment = outbound_created()
    shipment.cancel("order cancelled", T0)
    assert shipment.manifest(booked_at(RATE), T0)
    assert (shipment.rate, shipment.label_id) == (RATE, "lbl_1")
    assert shipment.label_void is LabelVoid.PENDING


def outbound_created() -> Shipment:
    pick = PendingPick("pck_1", "ord_1", "EAST", (PickedUnits(1, "MUG", 2),), "corr")
    order = OrderRef("ord_1", "ptn_1", int(ServiceLevel.STANDARD), HOME)
    shipment = Shipment.create("shp_1", pick, order, [], DOCK, T0)
    shipment.pull_events()
    return shipment


# -- tracking rules are data ----------------------------------------------------------------


def test_every_tracking_status_has_a_rule_and_only_milestone_events_are_published() -> None:
    rules = default_rules()
    assert set(rules) == set(TrackingStatus) - {TrackingStatus.UNSPECIFIED}
    milestones = {
        e.subject
        for e in load_catalog()
        if e.producer == "shipment" and e.milestone and ".return_parcel_" not in e.subject
    }
    published = {rule.event for rule in rules.values() if rule.event}
    assert published <= milestones
    # manifested comes from the label booking, cancelled and label_void_failed from a cancel.
    assert milestones - published == {
        "crossdock.shipment.manifested.v1",
        "crossdock.shipment.cancelled.v1",
        "crossdock.shipment.label_void_failed.v1",
    }
    assert rules[TrackingStatus.IN_TRANSIT].event is None  # kept in the timeline only
    assert rules[TrackingStatus.DELIVERY_FAILED].kind is Kind.EXCEPTION


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rules: rules.pop(), "no rule for"),
        (lambda rules: rules.append(dict(rules[0])), "two rules"),
        (lambda rules: rules[1].pop("shipment_status"), "progress rules"),
        (lambda rules: rules[1].update(shipment_status="EXCEPTION"), "not a milestone"),
        (lambda rules: rules[5].pop("event"), "must be published"),
        (lambda rules: rules[0].update(kind="sideways"), "bad rule"),
    ],
)
def test_a_broken_rules_file_is_refused(mutate: object, message: str) -> None:
    document = json.loads(RULES_FILE.read_text())
    mutate(document["rules"])  # type: ignore[operator]
    with pytest.raises(RulesError, match=message):
        parse_rules(document)


# -- milestones never regress ---------------------------------------------------------------


def journey(*scans: tuple[TrackingStatus, float]) -> tuple[Progress, list[str | None]]:
    progress = Progress(ShipmentStatus.MANIFESTED, ShipmentStatus.MANIFESTED, reached_at=T0)
    events = []
    for status, hours in scans:
        outcome = apply_scan(progress, Scan(status, at(hours)))
        progress = outcome.progress
        events.append(outcome.event)
    return progress, events


def test_the_happy_path_publishes_only_milestones() -> None:
    progress, events = journey(
        (TrackingStatus.PENDING, 0.1),
        (TrackingStatus.PICKED_UP, 1),
        (TrackingStatus.IN_TRANSIT, 2),
        (TrackingStatus.IN_TRANSIT, 3),
        (TrackingStatus.OUT_FOR_DELIVERY, 8),
        (TrackingStatus.DELIVERED, 10),
    )
    assert progress.status is ShipmentStatus.DELIVERED
    assert events == [
        None,
        "crossdock.shipment.picked_up.v1",
        None,
        None,
        "crossdock.shipment.out_for_delivery.v1",
        "crossdock.shipment.delivered.v1",
    ]


def test_a_late_in_transit_scan_after_delivery_changes_nothing() -> None:
    delivered, _ = journey((TrackingStatus.PICKED_UP, 1), (TrackingStatus.DELIVERED, 10))
    late = apply_scan(delivered, Scan(TrackingStatus.IN_TRANSIT, at(5)))
    assert late.event is None
    assert late.progress.status is ShipmentStatus.DELIVERED
    assert late.progress.latest_tracking_status is TrackingStatus.DELIVERED


def test_an_out_of_order_scan_before_delivery_does_not_move_backwards() -> None:
    progress, events = journey((TrackingStatus.OUT_FOR_DELIVERY, 8), (TrackingStatus.PICKED_UP, 1))
    assert progress.status is ShipmentStatus.OUT_FOR_DELIVERY
    assert events[1] is None


def test_an_exception_then_delivery() -> None:
    progress, events = journey(
        (TrackingStatus.OUT_FOR_DELIVERY, 8),
        (TrackingStatus.DELIVERY_FAILED, 12),
        (TrackingStatus.OUT_FOR_DELIVERY, 30),
    )
    assert events[1] == "crossdock.shipment.delivery_exception.v1"
    # Out for delivery again: the exception is resolved without re-announcing the milestone.
    assert (progress.status, events[2]) == (ShipmentStatus.OUT_FOR_DELIVERY, None)
    delivered = apply_scan(progress, Scan(TrackingStatus.DELIVERED, at(33)))
    assert delivered.progress.status is ShipmentStatus.DELIVERED
    assert delivered.event == "crossdock.shipment.delivered.v1"


def test_a_stale_exception_older_than_the_progress_made_is_history_only() -> None:
    progress, events = journey(
        (TrackingStatus.OUT_FOR_DELIVERY, 8), (TrackingStatus.DELIVERY_FAILED, 2)
    )
    assert (progress.status, events[1]) == (ShipmentStatus.OUT_FOR_DELIVERY, None)


def test_returned_to_sender_is_terminal() -> None:
    progress, events = journey(
        (TrackingStatus.DELIVERY_FAILED, 12),
        (TrackingStatus.RETURNED_TO_SENDER, 60),
        (TrackingStatus.DELIVERED, 70),
    )
    assert progress.status is ShipmentStatus.RETURNED_TO_SENDER
    assert events[1:] == ["crossdock.shipment.returned_to_sender.v1", None]


# -- the status table is what the code obeys ---------------------------------------------------


def test_every_move_a_scan_can_make_is_in_the_shipment_status_table() -> None:
    from services.shipment.domain.states import SHIPMENT
    from services.shipment.domain.tracking import Progress, Scan, apply_scan

    journey = [
        ShipmentStatus.MANIFESTED,
        ShipmentStatus.PICKED_UP,
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.OUT_FOR_DELIVERY,
    ]
    rules = default_rules()
    moves = set()
    for reached in journey:
        for current in (reached, ShipmentStatus.EXCEPTION):
            progress = Progress(current, reached, reached_at=T0, exception_at=T0)
            for status in rules:
                for later in (timedelta(hours=1), -timedelta(hours=1)):  # late scans too
                    outcome = apply_scan(progress, Scan(status, T0 + later), rules)
                    if outcome.progress.status != current:
                        moves.add((current, outcome.progress.status))
    assert moves, "the rules moved nothing"
    for source, target in moves:
        assert SHIPMENT.allows(source, target), (source, target)
    # Final statuses have no way out, whatever scan comes.
    finals = {ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED_TO_SENDER, ShipmentStatus.CANCELLED}
    assert not [m for m in SHIPMENT.transitions() if m.source in finals]


# -- return parcels -----------------------------------------------------------------------------


def test_return_parcels_publish_only_their_own_subjects() -> None:
    rules = default_rules()
    own = {e.subject for e in load_catalog() if ".return_parcel_" in e.subject}
    published = {rule.return_event for rule in rules.values() if rule.return_event}
    # manifested comes from the label booking; out for delivery (to a dock) stays internal.
    assert own - published == {"crossdock.shipment.return_parcel_manifested.v1"}
    assert published <= own
    assert rules[TrackingStatus.OUT_FOR_DELIVERY].return_event is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rules: rules[2].update(return_event="crossdock.x.y.v1"), "only outbound"),
        (
            lambda rules: rules[1].update(return_event="crossdock.shipment.delivered.v1"),
            "never publishes an outbound subject",
        ),
    ],
)
def test_a_rules_file_mixing_return_and_outbound_subjects_is_refused(
    mutate: object, message: str
) -> None:
    document = json.loads(RULES_FILE.read_text())
    mutate(document["rules"])  # type: ignore[operator]
    with pytest.raises(RulesError, match=message):
        parse_rules(document)


def test_returned_units_take_the_lots_their_line_shipped_in() -> None:
    shipped = [
        PickedUnits(1, "WINE", 1, "L1"),
        PickedUnits(2, "MUG", 4),
        PickedUnits(1, "WINE", 5, "L2"),
    ]
    returned = [PickedUnits(1, "WINE", 3), PickedUnits(2, "MUG", 2), PickedUnits(3, "BOOK", 1)]
    assert with_shipped_lots(returned, shipped) == (
        PickedUnits(1, "WINE", 1, "L1"),
        PickedUnits(1, "WINE", 2, "L2"),
        PickedUnits(2, "MUG", 2),
        PickedUnits(3, "BOOK", 1),
    )
    # More units than were shipped in lots: the rest keeps no lot (the warehouse decides).
    assert with_shipped_lots([PickedUnits(1, "WINE", 7)], shipped) == (
        PickedUnits(1, "WINE", 1, "L1"),
        PickedUnits(1, "WINE", 5, "L2"),
        PickedUnits(1, "WINE", 1),
    )


HOME = Address("Ada", ("1 Rodeo Dr",), "Beverly Hills", "90210", "US")
DOCK = Address("DC", ("100 Dock Rd",), "Atlanta", "30301", "US")


def return_parcel() -> Shipment:
    units = PendingPick(
        "rma_1", "ord_1", "EAST", (PickedUnits(1, "MUG", 2),), "corr", return_id="rma_1"
    )
    order = OrderRef("ord_1", "ptn_1", int(ServiceLevel.OVERNIGHT), HOME)
    parcel = Shipment.create_return("shp_1", units, order, [], DOCK, ServiceLevel.STANDARD, T0)
    assert parcel.pull_events() == []  # its label is the news
    parcel.manifest(Label("lbl_1", "sandbox", "1Z1"), T0)
    return parcel


def subjects(events: list[object]) -> list[str]:
    return [ev.event_spec(type(mapper.to_message(e)[0])).subject for e in events]


def test_a_return_parcel_announces_its_journey_under_its_own_subjects() -> None:
    parcel = return_parcel()
    assert (parcel.ship_from, parcel.ship_to, parcel.kind) == (HOME, DOCK, ShipmentKind.RETURN)
    for status, hours in (
        (TrackingStatus.PICKED_UP, 1),
        (TrackingStatus.OUT_FOR_DELIVERY, 8),
        (TrackingStatus.DELIVERY_FAILED, 9),
        (TrackingStatus.DELIVERED, 30),
        (TrackingStatus.IN_TRANSIT, 5),  # late: history only
    ):
        parcel.record_scan(ScanReport(status, at(hours), b""), None)
    assert parcel.status is ShipmentStatus.DELIVERED
    events = parcel.pull_events()
    assert subjects(events) == [
        "crossdock.shipment.return_parcel_manifested.v1",
        "crossdock.shipment.return_parcel_picked_up.v1",
        "crossdock.shipment.return_parcel_exception.v1",
        "crossdock.shipment.return_parcel_delivered.v1",
    ]
    message, aggregate_id = mapper.to_message(events[-1])
    assert aggregate_id == "shp_1"
    assert message.shipment.return_id == "rma_1"  # type: ignore[attr-defined]
    assert message.shipment.kind == shipment_pb2.SHIPMENT_KIND_RETURN  # type: ignore[attr-defined]


def test_a_return_parcel_carried_back_or_unlabelled_is_an_exception_never_cancelled() -> None:
    parcel = return_parcel()
    parcel.record_scan(ScanReport(TrackingStatus.RETURNED_TO_SENDER, at(40), b""), None)
    assert subjects(parcel.pull_events())[1:] == ["crossdock.shipment.return_parcel_exception.v1"]
    unlabelled = Shipment.create_return(
        "shp_2",
        PendingPick("rma_2", "ord_1", "EAST", (), "corr", return_id="rma_2"),
        OrderRef("ord_1", "ptn_1", 2, HOME),
        [],
        DOCK,
        ServiceLevel.STANDARD,
        T0,
    )
    assert unlabelled.fail_label("no rate", T0)
    (failed,) = unlabelled.pull_events()
    assert subjects([failed]) == ["crossdock.shipment.return_parcel_exception.v1"]
    with pytest.raises(ShipmentNotCancellable):
        unlabelled.cancel("order cancelled", T0)


# -- timeline scans: what a scan that moves nothing changes -------------------------------------


def outbound() -> Shipment:
    pick = PendingPick("pck_1", "ord_1", "EAST", (PickedUnits(1, "MUG", 2),), "corr")
    order = OrderRef("ord_1", "ptn_1", int(ServiceLevel.STANDARD), HOME)
    shipment = Shipment.create("shp_1", pick, order, [], DOCK, T0)
    shipment.manifest(Label("lbl_1", "sandbox", "1Z1"), T0)
    shipment.pull_events()
    return shipment


@pytest.mark.parametrize("make", [outbound, return_parcel])
@pytest.mark.parametrize(
    "journey",
    [
        (),
        ((TrackingStatus.PICKED_UP, 1),),
        ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.DELIVERY_FAILED, 6)),
        ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.OUT_FOR_DELIVERY, 8)),
        ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.DELIVERED, 9)),
    ],
)
def test_a_timeline_takes_exactly_the_scans_that_move_nothing_as_the_shipment_would(
    make: object, journey: tuple[tuple[TrackingStatus, float], ...]
) -> None:
    """Timeline.record must agree with Shipment.record_scan: where it takes a scan, the shipment
    would only have changed its progress and last tracking status."""
    base: Shipment = make()  # type: ignore[operator]
    for status, hours in journey:
        base.record_scan(ScanReport(status, at(hours), b""), None)
    base.pull_events()
    taken = 0
    for status in TrackingStatus:
        if status is TrackingStatus.UNSPECIFIED:
            continue
        for hours in (0.5, 7, 20):  # before, amid and after the journey
            shipment = copy.deepcopy(base)
            timeline = Timeline(shipment.status, shipment.progress)
            took = timeline.record([Scan(status, at(hours))])
            shipment.record_scan(ScanReport(status, at(hours), b""), None)
            events = shipment.pull_events()
            if took:
                taken += 1
                assert (shipment.status, events) == (base.status, []), (status, hours)
                assert timeline.progress == shipment.progress
                assert timeline.last_tracking_status is shipment.last_tracking_status
                assert shipment == replace(
                    base,
                    progress=shipment.progress,
                    last_tracking_status=shipment.last_tracking_status,
                )
            else:  # refused (the shipment takes it): the timeline changed nothing
                assert timeline.progress == base.progress
    assert taken, "no scan was a plain timeline scan"


def test_a_timeline_refuses_a_run_of_scans_when_one_of_them_moves_the_shipment() -> None:
    shipment = outbound()
    timeline = Timeline(shipment.status, shipment.progress)
    moving = [Scan(TrackingStatus.PENDING, at(1)), Scan(TrackingStatus.PICKED_UP, at(2))]
    assert not timeline.record(moving)
    assert timeline.progress == shipment.progress
    assert timeline.record([Scan(TrackingStatus.PENDING, at(1))])
    assert timeline.progress.latest_scan_at == at(1)
    assert timeline.last_tracking_status is TrackingStatus.PENDING


JOURNEYS = [
    (),
    ((TrackingStatus.PICKED_UP, 1),),
    ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.DELIVERY_FAILED, 6)),
    ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.OUT_FOR_DELIVERY, 8)),
    ((TrackingStatus.PICKED_UP, 1), (TrackingStatus.DELIVERED, 9)),
]


def as_announced(event: object, before: Shipment, after: Shipment) -> object:
    """A Timeline's event as the milestone it stands for: a Delivery completed with the shipment
    as it was `before` the update and what the delivery set anew, as the store does with the
    stored shipment (the stored form is tested in test_tracking_store.py); its progress (not
    announced) as `after`."""
    if not isinstance(event, Delivery):
        return event
    snapshot = replace(
        before,
        status=event.status,
        progress=after.progress,
        last_tracking_status=event.last_tracking_status,
        proof_of_delivery=event.proof_of_delivery,
        packages=list(before.packages),
        events=[],
    )
    announce = ReturnParcelDelivered if event.is_return else ShipmentDelivered
    return announce(snapshot, event.final_charge, event.occurred_at)


@pytest.mark.parametrize("make", [outbound, return_parcel])
@pytest.mark.parametrize("journey", JOURNEYS)
def test_a_timeline_with_its_ref_moves_and_announces_as_the_shipment_would(
    make: object, journey: tuple[tuple[TrackingStatus, float], ...]
) -> None:
    """With the shipment's ref, a Timeline takes every scan but those whose milestone carries
    more than the shipment as stored (an outbound shipment's goods returned to sender: their
    units), and leaves the status, progress, last tracking status, proof of delivery, final
    charge and events that Shipment.record_scan would."""
    base: Shipment = make()  # type: ignore[operator]
    for status, hours in journey:
        base.record_scan(ScanReport(status, at(hours), b""), None)
    base.pull_events()
    taken, announced = 0, 0
    for status in TrackingStatus:
        if status is TrackingStatus.UNSPECIFIED:
            continue
        for hours in (0.5, 7, 20):  # before, amid and after the journey
            report = ScanReport(
                status,
                at(hours),
                b"",
                incident_reason=IncidentReason.RECIPIENT_ABSENT,
                description="nobody home",
            )
            shipment = copy.deepcopy(base)
            timeline = Timeline(
                shipment.status, shipment.progress, shipment.ref(), shipment.is_return
            )
            charge = Money.of("12.40", "USD") if status is TrackingStatus.DELIVERED else None
            took = timeline.record([report], final_charge=charge)
            shipment.record_scan(report, charge)
            if charge is not None:
                shipment.record_final_charge(charge)
            events = shipment.pull_events()
            if took:
                taken += 1
                announced += len(events)
                raised = [as_announced(event, base, shipment) for event in timeline.pull_events()]
                assert raised == events, (status, hours)
                assert timeline.status is shipment.status
                assert timeline.progress == shipment.progress
                taker = copy.deepcopy(base)
                taker.take_timeline(timeline)
                assert taker == shipment, (status, hours)
            else:  # the shipment takes it: the timeline changed nothing
                assert (status, shipment.kind) == (
                    TrackingStatus.RETURNED_TO_SENDER,
                    ShipmentKind.OUTBOUND,
                )
                assert (timeline.status, timeline.progress) == (base.status, base.progress)
                assert (timeline.proof_of_delivery, timeline.final_charge) == (None, None)
                assert timeline.pull_events() == []
    assert taken and (announced or base.status is ShipmentStatus.DELIVERED)


def test_a_timeline_that_takes_a_run_of_scans_raises_their_milestones_in_order() -> None:
    shipment = outbound()
    timeline = Timeline(shipment.status, shipment.progress, shipment.ref())
    run = [
        ScanReport(TrackingStatus.PICKED_UP, at(1), b""),
        ScanReport(TrackingStatus.IN_TRANSIT, at(2), b""),
        ScanReport(TrackingStatus.OUT_FOR_DELIVERY, at(3), b""),
    ]
    assert timeline.record(run)
    assert timeline.status is ShipmentStatus.OUT_FOR_DELIVERY
    assert subjects(timeline.pull_events()) == [
        "crossdock.shipment.picked_up.v1",
        "crossdock.shipment.out_for_delivery.v1",
    ]
    # A run ending in goods returned to sender needs the whole shipment (their units): nothing
    # is taken, nothing raised.
    returned = [
        ScanReport(TrackingStatus.IN_TRANSIT, at(4), b""),
        ScanReport(TrackingStatus.RETURNED_TO_SENDER, at(5), b""),
    ]
    assert not timeline.record(returned)
    assert timeline.status is ShipmentStatus.OUT_FOR_DELIVERY
    assert timeline.progress.latest_scan_at == at(3)
    assert timeline.pull_events() == []


def test_a_shipment_encodes_as_it_decodes_and_every_change_to_its_parts_is_encoded() -> None:
    """The contract conversions share frozen parts between decodes (packages, addresses, the
    rate); what is encoded must still be the shipment as it stands."""
    shipment = outbound()
    shipment.packages = [
        Package.of_box("pkg_1", box)
        for box in pack(
            (PickedUnits(1, "MUG", 2), PickedUnits(2, "PAN", 1)),
            {"MUG": ItemSpec("MUG", 0.4, 10, 10, 12), "PAN": ItemSpec("PAN", 1.1, 30, 30, 8)},
            30.0,
        )
    ]
    extra = dict(progress=shipment.progress, correlation_id="corr", label_attempts=0)
    first = shipment_to_proto(shipment)
    again = shipment_to_domain(
        shipment_pb2.Shipment.FromString(first.SerializeToString()),
        final_charge=None,
        version=1,
        **extra,  # type: ignore[arg-type]
    )
    assert again == shipment
    assert shipment_to_proto(again) == first

    moved = replace(again.packages[0], tracking_number="1Z9")
    again.packages = [moved]
    again.ship_to = replace(HOME, city="Pasadena")
    encoded = shipment_to_proto(again)
    assert [p.tracking_number for p in encoded.packages] == ["1Z9"]
    assert encoded.ship_to.city == "Pasadena"
    assert shipment_to_proto(shipment) == first  # the original is untouched
