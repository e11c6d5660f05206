"""The compiled document codec writes exactly what the reflective one wrote, and reads it back.

Stored orders, returns and queued saga commands must keep decoding, and new documents must be
byte for byte what the old code wrote. The oracle below is the reflective codec as it was before
it was compiled (services/order/adapters/store/codec.py), kept verbatim in logic.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from services.order.adapters.store import codec
from services.order.adapters.store.repository import _COMMANDS
from services.order.domain import (
    CancelPickTask,
    HeldLine,
    Order,
    OrderStatus,
    ReleaseReservation,
    RequestAvailability,
    ReserveStock,
    RestockPicked,
    RetryShipment,
    ReturnedShipmentResolution,
    SagaCommand,
)
from services.order.domain.returns import Return
from tests.order.mesh import Mesh
from tests.order.support import EAST, WEST, order_input

# -- the oracle: the reflective codec before compilation ---------------------------------------


def old_to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: old_to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return [[old_to_plain(k), old_to_plain(v)] for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [old_to_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(old_to_plain(v) for v in value)
    return value


def old_from_plain(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return old_from_plain(inner[0], data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(old_from_plain(args[0], v) for v in data)
        return tuple(old_from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin is list:
        return [old_from_plain(args[0], v) for v in data]
    if origin in (set, frozenset):
        return origin(old_from_plain(args[0], v) for v in data)
    if origin is dict or origin is typing.Mapping:
        return {old_from_plain(args[0], k): old_from_plain(args[1], v) for k, v in data}
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            hints = _old_hints(hint)
            return hint(
                **{name: old_from_plain(hints[name], value) for name, value in data.items()}
            )
        if issubclass(hint, enum.Enum):
            return hint[data]
        if hint is Decimal:
            return Decimal(data)
        if hint is datetime:
            return datetime.fromtimestamp(data, UTC)
        if hint in (int, str, float, bool):
            return hint(data)
    if hint is Any:
        return data
    raise TypeError(f"cannot decode {hint!r}")


@cache
def _old_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def old_dumps(value: Any) -> str:
    # The stored text is orjson's: the stdlib's compact form with non-ASCII written as UTF-8.
    return json.dumps(old_to_plain(value), separators=(",", ":"), ensure_ascii=False)


def stdlib_dumps(value: Any) -> str:
    """How documents were written before orjson (non-ASCII as backslash-u escapes)."""
    return json.dumps(old_to_plain(value), separators=(",", ":"))


# -- realistic values, built through the order domain ------------------------------------------


def completed_split_order() -> tuple[Order, list[SagaCommand]]:
    """Split over two warehouses, picked, shipped, delivered, invoiced."""
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 3)
    mesh.receive("GADGET", EAST, 10)
    mesh.receive("WIDGET", WEST, 10)
    mesh.receive("GIZMO", WEST, 10)
    order = mesh.place("ord_1", order_input(("WIDGET", 5), ("GADGET", 2), ("GIZMO", 1)))
    mesh.drain()
    mesh.fulfil_everything()
    assert order.status is OrderStatus.COMPLETED and len(order.shipments) == 2
    return order, mesh.run_commands


def backordered_then_cancelled_order() -> tuple[Order, list[SagaCommand]]:
    """Part reserved, part backordered, then cancelled: releases, an exception-free end."""
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    order = mesh.place("ord_2", order_input(("WIDGET", 5), ("GADGET", 1)))
    mesh.drain()
    assert order.backordered
    mesh.cancel("ord_2", "customer changed their mind")
    mesh.drain()
    assert order.status is OrderStatus.CANCELLED
    return order, mesh.run_commands


def returned_parcel_order() -> Order:
    """A parcel back from the carrier, cancelled and credited (an Optional enum is set)."""
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.receive("GADGET", WEST, 10)
    mesh.place("ord_3", order_input(("WIDGET", 2), ("GADGET", 1)))
    mesh.drain()
    for task in mesh.open_picks():
        mesh.confirm_pick(task)
    mesh.drain()
    for pick in mesh.shippable():
        mesh.ship(pick)
    mesh.drain()
    (returned,) = [sid for sid, s in mesh.shipments.items() if "WIDGET" in s.skus]
    mesh.return_to_sender(returned)
    mesh.drain()
    mesh.resolve("ord_3", returned, ReturnedShipmentResolution.CANCEL_AND_CREDIT)
    mesh.drain()
    order = mesh.orders["ord_3"]
    assert order.shipments[returned].resolution is ReturnedShipmentResolution.CANCEL_AND_CREDIT
    return order


def every_command_kind() -> list[SagaCommand]:
    lines = (HeldLine(1, "WIDGET", 2), HeldLine(2, "GADGET", 1))
    return [
        RequestAvailability("ord_1", 3, ("WIDGET", "GADGET")),
        ReserveStock("ord_1", EAST, lines, "ord_1/r1/WH-EAST"),
        ReleaseReservation("ord_1", "res_1", "order cancelled: \u00e9t\u00e9 \U0001f4e6"),
        CancelPickTask("ord_1", "res_1"),
        RestockPicked("ord_1", WEST, lines, "ord_1/restock/1"),
        RetryShipment("ord_1", "shp_1"),
    ]


ORDERS = {
    "completed": lambda: completed_split_order()[0],
    "cancelled": lambda: backordered_then_cancelled_order()[0],
    "returned to sender": returned_parcel_order,
}


@pytest.mark.parametrize("build", ORDERS.values(), ids=ORDERS.keys())
def test_an_order_document_is_byte_identical_and_round_trips(
    build: typing.Callable[[], Order],
) -> None:
    order = build()

    text = codec.dumps(order)

    assert text == old_dumps(order)
    assert codec.to_plain(order) == old_to_plain(order)
    assert codec.loads(Order, text) == order
    assert codec.loads(Order, text) == old_from_plain(Order, json.loads(text))
    assert codec.dumps(codec.loads(Order, text)) == text


@pytest.mark.parametrize("build", ORDERS.values(), ids=ORDERS.keys())
def test_a_lazily_loaded_timeline_reads_and_writes_as_the_decoded_one(
    build: typing.Callable[[], Order],
) -> None:
    text = codec.dumps(build())
    lazy = codec.loads(Order, text, lazy=("timeline",))
    # Written back untouched, and after an append, exactly as the decoded order would be.
    assert codec.dumps(lazy) == text
    eager = codec.loads(Order, text)
    extra = dataclasses.replace(eager.timeline[-1], detail="one more")
    lazy.timeline.append(extra)
    eager.timeline.append(extra)
    assert codec.dumps(lazy) == codec.dumps(eager)
    assert lazy == eager
    assert list(reversed(lazy.timeline)) == list(reversed(eager.timeline))


def test_saga_commands_are_byte_identical_and_round_trip() -> None:
    ran = completed_split_order()[1] + backordered_then_cancelled_order()[1]
    commands = ran + every_command_kind()
    assert {type(c) for c in commands} == set(_COMMANDS.values())

    for command in commands:
        text = codec.dumps(command)
        assert text == old_dumps(command)
        # Decoded through the queue's table of kinds, as the store does.
        decoded = codec.loads(_COMMANDS[type(command).__name__], text)
        assert decoded == command
        assert type(decoded) is type(command)
        # A command queued before orjson (escaped non-ASCII) reads back the same.
        assert codec.loads(_COMMANDS[type(command).__name__], stdlib_dumps(command)) == command


def test_a_return_document_is_byte_identical_and_round_trips() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    mesh.fulfil_everything()
    order_return = mesh.authorize_return("ord_1", {1: 2})
    mesh.receive_return(order_return.return_id)
    order_return = mesh.returns[order_return.return_id]

    text = codec.dumps(order_return)

    assert text == old_dumps(order_return)
    assert codec.loads(Return, text) == order_return


# -- the corners the old algorithm had, pinned so compilation keeps them -----------------------


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    SMALL = 1


@dataclass(frozen=True)
class Leaf:
    name: str
    weight: float = 0.0


@dataclass(frozen=True)
class Tree:
    """Declared types and runtime values that disagree, and a self-reference."""

    label: str
    size: int
    ratio: float
    leaves: tuple[Leaf, ...] = ()
    pair: tuple[int, str] = (0, "")
    tags: frozenset[str] = frozenset()
    by_id: dict[int, Leaf] = field(default_factory=dict)
    child: Tree | None = None
    anything: Any = None
    amounts: list[Decimal] = field(default_factory=list)
    when: datetime | None = None


def test_values_that_do_not_match_their_hints_encode_as_before() -> None:
    odd = Tree(
        label=Colour.RED,  # a StrEnum where a str is declared: its name, as before
        size=Size.SMALL,  # an IntEnum where an int is declared
        ratio=3,  # an int where a float is declared
        leaves=[Leaf("a", 1.5)],  # type: ignore[arg-type]  # a list where a tuple is declared
        anything=(1, Colour.RED, None, {"k": {2, 1}}),
    )

    assert codec.dumps(odd) == old_dumps(odd)


def test_every_shape_round_trips_as_before() -> None:
    tree = Tree(
        label="outer",
        size=2,
        ratio=3,  # decoded as float(3), as before
        leaves=(Leaf("a", 1.5), Leaf("b")),
        pair=(7, "seven"),
        tags=frozenset({"b", "a", "c"}),
        by_id={2: Leaf("x"), 1: Leaf("y")},
        child=Tree("inner", 1, 0.5, anything=["k", [1, None]]),
        anything=[1, "two", None],
        amounts=[Decimal("1.10"), Decimal("-0"), Decimal("1E+3")],
        when=datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC),
    )

    text = codec.dumps(tree)

    assert text == old_dumps(tree)
    decoded = codec.loads(Tree, text)
    assert decoded == tree == old_from_plain(Tree, json.loads(text))
    assert type(decoded.ratio) is float and type(decoded.leaves) is tuple
    assert [str(a) for a in decoded.amounts] == ["1.10", "-0", "1E+3"]


def test_none_and_missing_fields_decode_as_before() -> None:
    # None decodes to None whatever the hint; a missing field takes its default.
    data = {"label": None, "size": 1, "ratio": 1.0, "leaves": [None, {"name": "n"}]}
    assert codec.from_plain(Tree, data) == old_from_plain(Tree, data)
    assert codec.from_plain(Tree, data).leaves == (None, Leaf("n"))
    assert codec.from_plain(Order, None) is None


def test_bad_documents_fail_as_before() -> None:
    with pytest.raises(KeyError):
        codec.from_plain(Leaf, {"name": "n", "colour": "red"})  # an unknown field
    with pytest.raises(KeyError):
        codec.from_plain(OrderStatus, "SHIPPED_TWICE")  # an unknown enum name
    with pytest.raises(ValueError):
        codec.from_plain(tuple[int, str], [1, "a", 2])  # a fixed tuple of another length
    with pytest.raises(TypeError, match="cannot decode"):
        codec.from_plain(complex, 1)
    assert codec.from_plain(complex, None) is None  # None never reaches the hint


# -- stored forms kept: a decoded record that did not change is written back as it was read ---


@pytest.mark.parametrize("build", ORDERS.values(), ids=ORDERS.keys())
def test_records_replaced_after_a_load_are_written_as_they_now_are(
    build: typing.Callable[[], Order],
) -> None:
    built = build()
    loaded = codec.loads(Order, codec.dumps(built), lazy=("timeline",))
    # Each kind of record replaced, as the saga does (`replace`, a new line, a new entry).
    for orders in (built, loaded):
        key, record = next(iter(orders.reservations.items()))
        orders.reservations[key] = dataclasses.replace(record, idempotency_key="changed")
        orders.lines[0] = dataclasses.replace(orders.lines[0], quantity_returned=7)
        orders.customer = dataclasses.replace(orders.customer, name="Someone Else")

    assert codec.dumps(loaded) == codec.dumps(built) == old_dumps(built)
    assert loaded == built
    assert repr(loaded.lines[1]) == repr(built.lines[1])  # what is kept is no field


@dataclass(frozen=True)
class Basket:
    """Frozen, but holding a list: it can change after it was decoded."""

    items: list[str]
    leaf: Leaf


def test_a_value_that_can_change_inside_is_encoded_again() -> None:
    basket = codec.from_plain(Basket, {"items": ["a"], "leaf": {"name": "n", "weight": 1.5}})
    basket.items.append("b")

    assert codec.to_plain(basket) == {"items": ["a", "b"], "leaf": {"name": "n", "weight": 1.5}}


def test_a_document_written_before_a_field_existed_loads_and_writes_the_default() -> None:
    order = returned_parcel_order()
    plain = codec.to_plain(order)
    # ShipmentRecord.returned / resolution and OrderLine.quantity_returned came later.
    for _, shipment in plain["shipments"]:
        del shipment["returned"], shipment["resolution"]
    for line in plain["lines"]:
        del line["quantity_returned"]
    text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)

    loaded = codec.loads(Order, text, lazy=("timeline",))

    assert all(not s.returned and s.resolution is None for s in loaded.shipments.values())
    assert [line.quantity_returned for line in loaded.lines] == [0] * len(order.lines)
    rewritten = json.loads(codec.dumps(loaded))
    assert all(s["returned"] is False for _, s in rewritten["shipments"])
    assert all(line["quantity_returned"] == 0 for line in rewritten["lines"])
