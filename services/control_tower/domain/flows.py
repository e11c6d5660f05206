"""Business flows: where orders, shipments and returns wait between two steps of the spine.

An item (an order, a shipment or a return) has milestones, each kept at the earliest time any
event that marks it was seen. A flow is "milestone `enters` seen, none of `leaves` seen": the
same set of milestones gives the same flows whatever order, late or twice, the events arrived in.
Every flow's `leaves` hold every later milestone of its item and the item's end (cancelled,
completed, returned to sender), so an item whose middle event is late still leaves on time.

"In transit past the promised date" is the one flow with a clock of its own: its item entered
when its promise fell due (`due_by`: the carrier's estimated delivery on the manifested
shipment; without one, pickup plus the configured transit allowance) and is only counted once
that instant has passed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from services.kit.errors import InvalidArgument

HOUR = 3600.0
DAY = 24 * HOUR

# Without a carrier promise, a shipment is due this long after pickup (config overrides it).
DEFAULT_TRANSIT_ALLOWANCE_SECONDS = 5 * DAY

# Upper bounds of the age distribution (seconds): a minute up to a month, then +Inf.
AGE_BUCKETS: tuple[float, ...] = (
    60.0,
    300.0,
    900.0,
    HOUR,
    4 * HOUR,
    DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
)


class ItemKind(enum.Enum):
    """What a flow counts; the item id is that aggregate's id."""

    ORDER = "order"
    SHIPMENT = "shipment"
    RETURN = "return"


class Milestone(enum.StrEnum):
    """A step an item reached, as stored (namespaced by item kind)."""

    ORDER_PLACED = "order.placed"
    ORDER_ALLOCATED = "order.allocated"
    ORDER_RELEASED = "order.released"
    ORDER_PICKED = "order.picked"
    ORDER_LABELLED = "order.labelled"
    ORDER_ENDED = "order.ended"
    SHIPMENT_LABELLED = "shipment.labelled"
    SHIPMENT_PROMISED = "shipment.promised"
    SHIPMENT_IN_TRANSIT = "shipment.in_transit"
    SHIPMENT_DELIVERED = "shipment.delivered"
    SHIPMENT_INVOICED = "shipment.invoiced"
    SHIPMENT_ENDED = "shipment.ended"
    RETURN_AUTHORIZED = "return.authorized"
    RETURN_RECEIVED = "return.received"
    RETURN_CREDITED = "return.credited"


M = Milestone


@dataclass(frozen=True, slots=True)
class Flow:
    """Items that reached `enters` and none of `leaves`; past `default_sla` seconds is a breach."""

    name: str
    item: ItemKind
    enters: Milestone
    leaves: frozenset[Milestone]
    default_sla: float
    description: str
    # When set, the item entered at this milestone's time, or `enters` plus the transit
    # allowance without it, and is counted only once that instant has passed.
    due_by: Milestone | None = None


FLOWS: tuple[Flow, ...] = (
    Flow(
        "awaiting_allocation",
        ItemKind.ORDER,
        M.ORDER_PLACED,
        frozenset({M.ORDER_ALLOCATED, M.ORDER_RELEASED, M.ORDER_PICKED, M.ORDER_LABELLED}),
        5 * 60.0,
        "orders placed, not allocated yet (backordered ones included)",
    ),
    Flow(
        "released_not_picked",
        ItemKind.ORDER,
        M.ORDER_RELEASED,
        frozenset({M.ORDER_PICKED, M.ORDER_LABELLED}),
        4 * HOUR,
        "orders released to the warehouse, not picked",
    ),
    Flow(
        "picked_no_label",
        ItemKind.ORDER,
        M.ORDER_PICKED,
        frozenset({M.ORDER_LABELLED}),
        30 * 60.0,
        "orders picked, no shipment manifested (no label) yet",
    ),
    Flow(
        "labelled_not_picked_up",
        ItemKind.SHIPMENT,
        M.SHIPMENT_LABELLED,
        frozenset({M.SHIPMENT_IN_TRANSIT, M.SHIPMENT_DELIVERED, M.SHIPMENT_INVOICED}),
        DAY,
        "shipments manifested, not picked up by the carrier",
    ),
    Flow(
        "in_transit_past_promise",
        ItemKind.SHIPMENT,
        M.SHIPMENT_IN_TRANSIT,
        frozenset({M.SHIPMENT_DELIVERED, M.SHIPMENT_INVOICED}),
        DAY,
        "shipments in transit past their promised delivery (age: time past the promise)",
        due_by=M.SHIPMENT_PROMISED,
    ),
    Flow(
        "delivered_not_invoiced",
        ItemKind.SHIPMENT,
        M.SHIPMENT_DELIVERED,
        frozenset({M.SHIPMENT_INVOICED}),
        HOUR,
        "shipments delivered, not invoiced",
    ),
    Flow(
        "return_authorized_not_received",
        ItemKind.RETURN,
        M.RETURN_AUTHORIZED,
        frozenset({M.RETURN_RECEIVED, M.RETURN_CREDITED}),
        14 * DAY,
        "returns authorized, not received at the warehouse",
    ),
    Flow(
        "return_received_not_credited",
        ItemKind.RETURN,
        M.RETURN_RECEIVED,
        frozenset({M.RETURN_CREDITED}),
        DAY,
        "returns received, no credit note posted",
    ),
)

# An item's end: it leaves every flow of its kind.
_ENDS = {ItemKind.ORDER: M.ORDER_ENDED, ItemKind.SHIPMENT: M.SHIPMENT_ENDED}

FLOWS_BY_NAME: dict[str, Flow] = {flow.name: flow for flow in FLOWS}


def flow_named(name: str) -> Flow:
    """The flow called `name`; an unknown name is INVALID_ARGUMENT naming the `flow` field."""
    flow = FLOWS_BY_NAME.get(name)
    if flow is None:
        raise InvalidArgument.for_field(
            "flow", f"unknown flow {name!r}; flows are: {', '.join(FLOWS_BY_NAME)}", "UNKNOWN_FLOW"
        )
    return flow


def leaving(flow: Flow) -> frozenset[Milestone]:
    """Every milestone that takes an item out of `flow` (its later steps and its end)."""
    end = _ENDS.get(flow.item)
    return flow.leaves | {end} if end is not None else flow.leaves


def entered_at(
    flow: Flow,
    seen: Mapping[Milestone, float],
    transit_allowance: float = DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
) -> float | None:
    """When the item with milestones `seen` entered `flow`, or None when it is not in it
    (ignoring the clock: see `in_flow`)."""
    if flow.enters not in seen or any(milestone in seen for milestone in leaving(flow)):
        return None
    if flow.due_by is None:
        return seen[flow.enters]
    return seen.get(flow.due_by, seen[flow.enters] + transit_allowance)


def in_flow(
    flow: Flow,
    seen: Mapping[Milestone, float],
    now: float,
    transit_allowance: float = DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
) -> bool:
    """True when the item is in `flow` at `now` (it entered at or before now)."""
    since = entered_at(flow, seen, transit_allowance)
    return since is not None and since <= now


def flows_of(
    seen: Mapping[Milestone, float],
    now: float,
    transit_allowance: float = DEFAULT_TRANSIT_ALLOWANCE_SECONDS,
) -> list[str]:
    """The names of every flow an item with milestones `seen` is in at `now`."""
    return [flow.name for flow in FLOWS if in_flow(flow, seen, now, transit_allowance)]


@dataclass(frozen=True, slots=True)
class MilestoneSeen:
    """An event says `item_id` reached `milestone` at `seen_at` (epoch seconds)."""

    item_id: str
    milestone: Milestone
    seen_at: float


def earliest(seen: Iterable[MilestoneSeen]) -> dict[tuple[str, Milestone], float]:
    """(item, milestone) → the earliest time it was seen: what the store keeps."""
    kept: dict[tuple[str, Milestone], float] = {}
    for mark in seen:
        key = (mark.item_id, mark.milestone)
        kept[key] = min(kept.get(key, mark.seen_at), mark.seen_at)
    return kept


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """One flow now: how many items, the oldest's age, the age distribution, the breaches."""

    flow: Flow
    sla_seconds: float
    items: int
    oldest_age_seconds: float
    # Items with age <= each of AGE_BUCKETS (cumulative, like a Prometheus histogram).
    at_most: tuple[int, ...]
    breaches: int

    def per_bucket(self) -> list[tuple[float, int]]:
        """(upper bound, items in (previous bound, bound]) for each bucket, then +Inf."""
        bounds = [*AGE_BUCKETS, float("inf")]
        cumulative = [*self.at_most, self.items]
        counts = [cumulative[0]] + [b - a for a, b in pairwise(cumulative)]
        return list(zip(bounds, counts, strict=True))


@dataclass(frozen=True, slots=True)
class FlowItem:
    """One item in a flow, for the drill-down."""

    item_id: str
    order_id: str
    entered_at: float
    age_seconds: float
    breached: bool
