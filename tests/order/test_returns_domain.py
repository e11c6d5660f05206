"""The return (RMA) rules and lifecycle, pure: orders are delivered by the in-memory mesh (the real
saga and inventory domain), returns are authorized, received and credited by the domain alone."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.contract_docs import comments_by_name, load_descriptor_set
from services.kit.config import ConfigError
from services.order.config import OrderConfig, partner_return_windows
from services.order.domain import Order
from services.order.domain.errors import (
    InvalidArgument,
    ReturnNotAllowed,
    ReturnReplayMismatch,
)
from services.order.domain.return_rules import (
    REASONS_FILE,
    ReasonCodesError,
    ReturnLineRequest,
    ReturnPolicy,
    ReturnRequest,
    authorize,
    ensure_same_request,
    load_reason_codes,
    parse_reason_codes,
    returnable_units,
)
from services.order.domain.returns import (
    ReceivedCondition,
    ReceivedUnits,
    Return,
    ReturnDisposition,
    ReturnReceipt,
    ReturnReceived,
    ReturnStatus,
    credit,
    disposition_for,
    receive,
    record_returned_units,
    returned_units,
)
from tests.order.mesh import Mesh
from tests.order.support import EAST, PARTNER, WEST, order_input

RESTOCK = ReturnDisposition.RESTOCK
POLICY = ReturnPolicy(load_reason_codes())


def delivered(mesh: Mesh, *lines: tuple[str, int], order_id: str = "ord_1") -> Order:
    """An order the warehouse, the carrier and billing have finished (COMPLETED)."""
    mesh.place(order_id, order_input(*lines))
    mesh.fulfil_everything()
    return mesh.orders[order_id]


@pytest.fixture
def mesh() -> Mesh:
    stocked = Mesh()
    for sku in ("WIDGET", "GADGET"):
        stocked.receive(sku, EAST, 50)
    return stocked


def asking(*lines: tuple[int, int], location: str = "") -> ReturnRequest:
    """(order line number, quantity) per line, restocked, because it arrived damaged."""
    return ReturnRequest(
        tuple(ReturnLineRequest(n, q, RESTOCK, "DAMAGED") for n, q in lines), location
    )


def authorized(
    order: Order,
    earlier: list[Return],
    request: ReturnRequest,
    *,
    days_after: float = 1,
    policy: ReturnPolicy = POLICY,
) -> Return:
    now = order.updated_at + timedelta(days=days_after)
    made, event = authorize(
        order, earlier, request, policy, return_id=f"rma_{len(earlier) + 1}", now=now
    )
    assert event.order_return == made and event.occurred_at == now
    earlier.append(made)
    return made


def refusal(
    order: Order, earlier: list[Return], request: ReturnRequest, **kwargs: object
) -> ReturnNotAllowed:
    with pytest.raises(ReturnNotAllowed) as refused:
        authorized(order, earlier, request, **kwargs)  # type: ignore[arg-type]
    assert refused.value.reason == "RETURN_NOT_ALLOWED"
    return refused.value


# -- how many units may come back --------------------------------------------------------------


def test_two_returns_up_to_the_remainder_then_one_past_it_names_the_line_and_limit(
    mesh: Mesh,
) -> None:
    order = delivered(mesh, ("WIDGET", 5), ("GADGET", 2))
    returns: list[Return] = []
    first = authorized(order, returns, asking((1, 2)))
    assert first.status is ReturnStatus.AUTHORIZED
    assert [(x.order_line_number, x.sku, x.quantity_authorized) for x in first.lines] == [
        (1, "WIDGET", 2)
    ]
    authorized(order, returns, asking((1, 3), (2, 2)))  # exactly what is left of both lines
    assert returnable_units(order, returns) == {1: 0, 2: 0}

    error = refusal(order, returns, asking((2, 1), (1, 1)))
    assert [(v.type, v.subject, v.description) for v in error.violations] == [
        (
            "RETURN_QUANTITY_EXCEEDED",
            "order_return.lines[0].quantity",
            "line 2: 0 returnable, 1 requested",
        ),
        (
            "RETURN_QUANTITY_EXCEEDED",
            "order_return.lines[1].quantity",
            "line 1: 0 returnable, 1 requested",
        ),
    ]
    assert len(returns) == 2


def test_more_than_the_remainder_says_how_many_are_left(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 5))
    returns: list[Return] = []
    authorized(order, returns, asking((1, 3)))
    error = refusal(order, returns, asking((1, 3)))
    (violation,) = error.violations
    assert violation.description == "line 1: 2 returnable, 3 requested"
    assert "line 1: 2 returnable, 3 requested" in error.message


def test_cancelled_returns_give_their_units_back(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 4))
    returns: list[Return] = []
    authorized(order, returns, asking((1, 4)))
    refusal(order, returns, asking((1, 1)))
    returns[0] = replace(returns[0], cancelled=True)
    assert returns[0].status is ReturnStatus.CANCELLED
    assert authorized(order, returns, asking((1, 4))).lines[0].quantity_authorized == 4


def test_only_delivered_units_come_back(mesh: Mesh) -> None:
    mesh.place("ord_open", order_input(("WIDGET", 3)))
    mesh.drain()  # reserved and released, never picked or shipped
    error = refusal(mesh.orders["ord_open"], [], asking((1, 1)))
    (violation,) = error.violations
    assert violation.type == "RETURN_NOT_DELIVERED"
    assert violation.description == "line 1: 0 returnable, 1 requested (nothing delivered yet)"


def test_a_partly_delivered_line_returns_only_its_delivered_units() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    mesh.receive("WIDGET", WEST, 3)
    mesh.place("ord_split", order_input(("WIDGET", 5)))
    mesh.drain()
    for task in mesh.open_picks():
        mesh.confirm_pick(task)
    mesh.drain()
    shipments = [mesh.ship(pick) for pick in mesh.shippable()]
    assert len(shipments) == 2
    west = next(s for s in shipments if mesh.shipments[s].location_id == WEST)
    mesh.deliver_shipment(west)
    mesh.drain()
    order = mesh.orders["ord_split"]
    assert order.lines[0].quantity_delivered == 3
    error = refusal(order, [], asking((1, 4)))
    assert error.violations[0].description == "line 1: 3 returnable, 4 requested"
    # The goods go back to the warehouse that shipped them.
    assert authorized(order, [], asking((1, 3))).return_location_id == WEST


def test_the_return_goes_to_the_warehouse_that_shipped_most_units_unless_one_is_named() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    mesh.receive("WIDGET", WEST, 4)
    order = delivered(mesh, ("WIDGET", 6), order_id="ord_two_sites")
    assert {s.location_id for s in order.shipments.values()} == {EAST, WEST}
    assert authorized(order, [], asking((1, 1))).return_location_id == WEST
    named = authorized(order, [], asking((1, 1), location="RETURNS-DC"))
    assert named.return_location_id == "RETURNS-DC"


# -- the return window -------------------------------------------------------------------------


def test_the_window_closes_after_the_default_days(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 2))
    assert authorized(order, [], asking((1, 1)), days_after=29.9)
    error = refusal(order, [], asking((1, 1)), days_after=30.1)
    (violation,) = error.violations
    assert violation.type == "RETURN_WINDOW_CLOSED"
    assert violation.subject == "order_return.lines[0]"
    assert violation.description.startswith("line 1: the 30-day return window closed on ")


def test_a_partner_override_widens_or_narrows_the_window(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 2))
    generous = replace(POLICY, partner_windows={PARTNER: timedelta(days=60)})
    assert authorized(order, [], asking((1, 1)), days_after=45, policy=generous)
    strict = replace(POLICY, partner_windows={PARTNER: timedelta(days=7)})
    error = refusal(order, [], asking((1, 1)), days_after=8, policy=strict)
    assert "7-day return window" in error.violations[0].description
    other = replace(POLICY, partner_windows={"ptn_SOMEONE_ELSE": timedelta(days=1)})
    assert authorized(order, [], asking((1, 1)), days_after=20, policy=other)


def test_config_reads_the_default_and_per_partner_windows() -> None:
    env = {
        "CROSSDOCK_ORDER_INVENTORY_TARGET": "inventory:50051",
        "CROSSDOCK_ORDER_SHIPMENT_TARGET": "shipment:50051",
        "CROSSDOCK_ORDER_GRPC_PORT": "0",
        "CROSSDOCK_ORDER_METRICS_PORT": "0",
        "CROSSDOCK_ORDER_DB_URL": "sqlite://",
    }
    default = OrderConfig.from_env(env).return_policy()
    assert default.window == timedelta(days=30)
    assert default.window_for(PARTNER) == timedelta(days=30)
    assert default.reason_codes == load_reason_codes()
    configured = OrderConfig.from_env(
        {
            **env,
            "CROSSDOCK_ORDER_RETURN_WINDOW_DAYS": "14",
            "CROSSDOCK_ORDER_RETURN_WINDOW_DAYS_BY_PARTNER": f" {PARTNER}=60 ,",
        }
    ).return_policy()
    assert configured.window_for(PARTNER) == timedelta(days=60)
    assert configured.window_for("ptn_other") == timedelta(days=14)
    for bad in ("ptn_x=5", f"{PARTNER}=many", f"{PARTNER}=1,{PARTNER}=2", f"{PARTNER}=9999"):
        with pytest.raises(ConfigError) as error:
            OrderConfig.from_env({**env, "CROSSDOCK_ORDER_RETURN_WINDOW_DAYS_BY_PARTNER": bad})
        assert "CROSSDOCK_ORDER_RETURN_WINDOW_DAYS_BY_PARTNER" in str(error.value)
    assert partner_return_windows("") == {}


# -- malformed requests ------------------------------------------------------------------------


def test_unknown_lines_reasons_and_repeated_lines_are_invalid_arguments(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 2))
    request = ReturnRequest(
        (
            ReturnLineRequest(9, 1, RESTOCK, "DAMAGED"),
            ReturnLineRequest(1, 1, RESTOCK, "BORED"),
            ReturnLineRequest(1, 1, RESTOCK, "OTHER"),
        )
    )
    with pytest.raises(InvalidArgument) as error:
        authorized(order, [], request)
    assert {v.field: v.description for v in error.value.violations} == {
        "order_return.lines[0].order_line_number": "the order has no line 9",
        "order_return.lines[1].reason": "'BORED' is not a return reason code (one of "
        "ARRIVED_LATE, DAMAGED, DEFECTIVE, NOT_AS_DESCRIBED, NO_LONGER_NEEDED, OTHER, WRONG_ITEM)",
        "order_return.lines[2].order_line_number": "line 1 is on another return line",
    }


def test_a_replay_must_ask_for_the_same_return(mesh: Mesh) -> None:
    order = delivered(mesh, ("WIDGET", 3))
    first = authorized(order, [], asking((1, 2)))
    ensure_same_request(first, asking((1, 2)))
    scrapped = ReturnRequest((ReturnLineRequest(1, 2, ReturnDisposition.SCRAP, "DAMAGED"),))
    for other in (asking((1, 1)), asking((1, 2), location="EAST"), scrapped):
        with pytest.raises(ReturnReplayMismatch) as error:
            ensure_same_request(replace(first, idempotency_key="k-1"), other)
        assert error.value.metadata == {"return_id": first.return_id}


# -- reason codes are data -----------------------------------------------------------------------


def test_reason_codes_are_checked_when_loaded(tmp_path: Path) -> None:
    assert "DAMAGED" in load_reason_codes()
    for document, complaint in (
        ({"reasons": []}, "non-empty"),
        ({"reasons": [{"code": "damaged", "description": "x"}]}, "UPPER_SNAKE_CASE"),
        ({"reasons": [{"code": "DAMAGED"}]}, "no description"),
        (
            {"reasons": [{"code": "A_B", "description": "x"}, {"code": "A_B", "description": "y"}]},
            "twice",
        ),
    ):
        with pytest.raises(ReasonCodesError, match=complaint):
            parse_reason_codes(document)
    broken = tmp_path / "reasons.json"
    broken.write_text("{not json")
    with pytest.raises(ReasonCodesError, match="cannot read"):
        load_reason_codes(broken)


def test_the_contract_lists_exactly_the_reason_codes() -> None:
    comment = comments_by_name(load_descriptor_set())["crossdock.order.v1.ReturnLineInput.reason"]
    codes = parse_reason_codes(json.loads(REASONS_FILE.read_text()))
    assert set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", comment)) == codes


# -- receiving and crediting -------------------------------------------------------------------


def returned(mesh: Mesh) -> tuple[Order, Return]:
    order = delivered(mesh, ("WIDGET", 5), ("GADGET", 2))
    return order, authorized(order, [], asking((1, 3), (2, 2)))


def receipt(receipt_id: str = "rcp_1", *units: ReceivedUnits) -> ReturnReceipt:
    return ReturnReceipt(
        receipt_id, "rma_1", EAST, units or (ReceivedUnits("WIDGET", 3), ReceivedUnits("GADGET", 2))
    )


def test_a_receipt_receives_the_return_once(mesh: Mesh) -> None:
    order, authorized_return = returned(mesh)
    now = order.updated_at + timedelta(days=3)
    got = receive(
        authorized_return,
        receipt(
            "rcp_1",
            ReceivedUnits("WIDGET", 2),
            ReceivedUnits("WIDGET", 2, ReceivedCondition.DAMAGED),  # one more than authorized
            ReceivedUnits("GADGET", 1, ReceivedCondition.SCRAP),
            ReceivedUnits("KETTLE", 9),  # not on the return
        ),
        now,
    )
    assert got.changed
    received = got.order_return
    assert received.status is ReturnStatus.RECEIVED
    assert received.receipt_id == "rcp_1" and received.received_at == now
    assert [(x.quantity_received, x.disposition) for x in received.lines] == [
        (3, ReturnDisposition.REFURBISH),  # capped at 3; 2 and 2: the worse condition decides
        (1, ReturnDisposition.SCRAP),
    ]
    assert got.events == (ReturnReceived(received, "rcp_1", now),)

    again = receive(received, receipt("rcp_1"), now)
    assert not again.changed and again.events == ()
    later = receive(received, receipt("rcp_2"), now)
    assert later.changed and later.events == ()
    assert later.order_return.later_receipt_ids == ("rcp_2",)
    assert later.order_return.lines == received.lines  # the second parcel is not credited again


@pytest.mark.parametrize(
    ("authorized_as", "conditions", "expected"),
    [
        (ReturnDisposition.RETURN_TO_VENDOR, [ReceivedCondition.SELLABLE], RESTOCK),
        (RESTOCK, [ReceivedCondition.DAMAGED], ReturnDisposition.REFURBISH),
        (ReturnDisposition.SCRAP, [ReceivedCondition.DAMAGED], ReturnDisposition.SCRAP),
        (
            ReturnDisposition.RETURN_TO_VENDOR,
            [ReceivedCondition.DAMAGED],
            ReturnDisposition.RETURN_TO_VENDOR,
        ),
        (RESTOCK, [ReceivedCondition.SCRAP], ReturnDisposition.SCRAP),
        (ReturnDisposition.REFURBISH, [ReceivedCondition.QUARANTINE], ReturnDisposition.REFURBISH),
        (RESTOCK, [ReceivedCondition.SELLABLE] * 2 + [ReceivedCondition.SCRAP], RESTOCK),
        (ReturnDisposition.REFURBISH, [], ReturnDisposition.REFURBISH),
    ],
)
def test_the_condition_most_units_arrived_in_decides_the_disposition(
    authorized_as: ReturnDisposition,
    conditions: list[ReceivedCondition],
    expected: ReturnDisposition,
) -> None:
    units = [ReceivedUnits("WIDGET", 1, condition) for condition in conditions]
    assert disposition_for(authorized_as, units) is expected


def test_a_credit_note_credits_a_received_return_and_waits_for_one_that_is_not(
    mesh: Mesh,
) -> None:
    order, authorized_return = returned(mesh)
    now = order.updated_at
    early = credit(authorized_return, "crn_1", now)
    assert early.changed and early.order_return.status is ReturnStatus.AUTHORIZED
    received = receive(early.order_return, receipt(), now)
    assert received.order_return.status is ReturnStatus.CREDITED
    assert len(received.events) == 1  # ReturnReceived is still raised, once
    assert not credit(received.order_return, "crn_1", now).changed
    second = credit(received.order_return, "crn_2", now).order_return
    assert second.credit_note_ids == ("crn_1", "crn_2")


def test_every_order_of_receipts_and_credit_notes_ends_the_same(mesh: Mesh) -> None:
    order, authorized_return = returned(mesh)
    now = order.updated_at
    facts = [("receipt", "rcp_1"), ("receipt", "rcp_1"), ("credit", "crn_1"), ("credit", "crn_1")]
    endings = set()
    for ordering in itertools.permutations(facts):
        current, received_events = authorized_return, 0
        for kind, fact_id in ordering:
            change = (
                receive(current, receipt(fact_id), now)
                if kind == "receipt"
                else credit(current, fact_id, now)
            )
            current = change.order_return
            received_events += sum(isinstance(e, ReturnReceived) for e in change.events)
        assert received_events == 1
        endings.add((current.status, current.lines, current.credit_note_ids, current.receipt_id))
    assert endings == {
        (
            ReturnStatus.CREDITED,
            tuple(
                replace(x, quantity_received=x.quantity_authorized) for x in authorized_return.lines
            ),
            ("crn_1",),
            "rcp_1",
        )
    }


def test_a_cancelled_return_takes_no_receipt_or_credit(mesh: Mesh) -> None:
    _, authorized_return = returned(mesh)
    cancelled = replace(authorized_return, cancelled=True)
    assert not receive(cancelled, receipt(), cancelled.updated_at).changed
    assert not credit(cancelled, "crn_1", cancelled.updated_at).changed


def test_the_order_lines_count_received_units_only_and_recount_idempotently(mesh: Mesh) -> None:
    order, first = returned(mesh)
    second = authorized(order, [first], asking((1, 2)))
    now = order.updated_at
    received = receive(first, receipt(), now).order_return
    returns = [received, second, replace(received, return_id="rma_x", cancelled=True)]
    assert returned_units(returns) == {1: 3, 2: 2}
    assert record_returned_units(order, returned_units(returns), now)
    assert [line.quantity_returned for line in order.lines] == [3, 2]
    assert not record_returned_units(order, returned_units(reversed(returns)), now)
