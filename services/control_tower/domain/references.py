"""References: the identifiers a timeline can be looked up by, and how a look-up resolves.

A reference is recorded as a link `(kind, value) → order id` when an event that carries it is
projected. Links are first-writer-wins and never change: every service's ids are immutable, so
the same link can arrive in any order, late or twice, and the table ends the same.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from services.kit.errors import FailedPrecondition, NotFound, PreconditionViolation


class ReferenceKind(enum.Enum):
    """What a reference is. Values are the contract's ReferenceKind numbers, except AGGREGATE."""

    ORDER_ID = 1
    EXTERNAL_ORDER_ID = 2
    SHIPMENT_ID = 3
    TRACKING_NUMBER = 4
    INVOICE_NUMBER = 5
    RETURN_ID = 6
    CORRELATION_ID = 7
    # Another aggregate of the order whose events join its timeline (a reservation, an invoice
    # id, a credit note): linked, never answered as what a look-up matched.
    AGGREGATE = 100


# Kinds whose values are also events' aggregate ids (ce-subject): an order's timeline is the
# events of the order itself plus those of every aggregate linked to it with these kinds.
JOINING_KINDS = frozenset(
    {
        ReferenceKind.SHIPMENT_ID,
        ReferenceKind.TRACKING_NUMBER,
        ReferenceKind.RETURN_ID,
        ReferenceKind.AGGREGATE,
    }
)

# Events whose aggregate id (ce-subject) is their order's id: the order's own events and a
# completed pick (inventory keys it by order). Names without the version.
_ORDER_KEYED_DOMAINS = ("crossdock.order.",)
_ORDER_KEYED_EVENTS = frozenset({"crossdock.inventory.pick_completed"})


def keyed_by_order(subject: str) -> bool:
    """True when an event of `subject` has its order's id as its aggregate id."""
    return subject.startswith(_ORDER_KEYED_DOMAINS) or subject.rsplit(".", 1)[0] in (
        _ORDER_KEYED_EVENTS
    )


# When one value matches several kinds of the same order, the answer names the first of these.
_PRIORITY = (
    ReferenceKind.ORDER_ID,
    ReferenceKind.EXTERNAL_ORDER_ID,
    ReferenceKind.SHIPMENT_ID,
    ReferenceKind.TRACKING_NUMBER,
    ReferenceKind.INVOICE_NUMBER,
    ReferenceKind.RETURN_ID,
    ReferenceKind.CORRELATION_ID,
    ReferenceKind.AGGREGATE,
)


@dataclass(frozen=True, slots=True)
class Link:
    """`value` of `kind` belongs to `order_id`; `partner_id` scopes external order ids only."""

    kind: ReferenceKind
    value: str
    order_id: str
    partner_id: str = ""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The order a reference resolved to, and what the reference was."""

    order_id: str
    matched: ReferenceKind


def resolve(reference: str, matches: Iterable[Link], partner_id: str = "") -> Resolved:
    """The one order `matches` (every link whose value is `reference`) point to.

    `partner_id` keeps only that partner's external order ids. An external order id used by
    several partners without one, or a reference that names several orders, is refused with a
    FailedPrecondition naming the field that would settle it.
    """
    found = [
        link
        for link in matches
        # Aggregate links join timelines; they are not look-up keys.
        if link.kind is not ReferenceKind.AGGREGATE
        and not (
            partner_id
            and link.kind is ReferenceKind.EXTERNAL_ORDER_ID
            and link.partner_id != partner_id
        )
    ]
    orders = {link.order_id for link in found}
    if not orders:
        raise NotFound(
            f"no order is known by reference {reference!r}"
            + (f" for partner {partner_id}" if partner_id else ""),
            resource_type="timeline",
            resource_name=reference,
            reason="REFERENCE_NOT_FOUND",
        )
    if len(orders) > 1:
        if all(link.kind is ReferenceKind.EXTERNAL_ORDER_ID for link in found):
            partners = sorted({link.partner_id for link in found})
            raise FailedPrecondition(
                f"external order id {reference!r} is used by {len(partners)} partners "
                f"({', '.join(partners)}): give partner_id to pick one",
                violations=[
                    PreconditionViolation(
                        "PARTNER_ID_REQUIRED", "partner_id", "the external order id is ambiguous"
                    )
                ],
                reason="AMBIGUOUS_REFERENCE",
            )
        raise FailedPrecondition(
            f"reference {reference!r} names {len(orders)} orders ({', '.join(sorted(orders))}): "
            "look up by one of those order ids instead",
            violations=[
                PreconditionViolation("AMBIGUOUS_REFERENCE", "reference", "names several orders")
            ],
            reason="AMBIGUOUS_REFERENCE",
        )
    kinds = {link.kind for link in found}
    matched = next(kind for kind in _PRIORITY if kind in kinds)
    return Resolved(orders.pop(), matched)
