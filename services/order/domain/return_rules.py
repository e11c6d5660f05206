"""Which units a return may authorize: the rules of CreateReturn. Pure; no I/O but reading the
reason codes file at start.

- Only delivered units come back, and across an order's returns the units authorized for a line
  never exceed the units delivered on it (cancelled returns free theirs again).
- Each partner has a return window, in days after the order's last delivery (a default and
  per-partner overrides, from config).
- Reason codes are data (return_reasons.json); an unknown code is a malformed request.

A malformed request (no such order line, unknown reason, a line twice) is InvalidArgument naming
each bad field. A well-formed request the order cannot satisfy is ReturnNotAllowed with one
violation per line, naming the line and its limit ("line 1: 2 returnable, 3 requested").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from services.order.domain.errors import (
    FieldViolation,
    InvalidArgument,
    PreconditionViolation,
    ReturnNotAllowed,
    ReturnReplayMismatch,
)
from services.order.domain.model import Order, TimelineEntryKind
from services.order.domain.returns import (
    Return,
    ReturnAuthorized,
    ReturnDisposition,
    ReturnLine,
)

REASONS_FILE = Path(__file__).with_name("return_reasons.json")
DEFAULT_WINDOW = timedelta(days=30)
# How the order's timeline names a consumed delivery (the event's ce-type, or the input's name).
DELIVERED_EVENT_TYPES = frozenset({"crossdock.shipment.delivered.v1", "ShipmentDelivered"})
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")


class ReasonCodesError(ValueError):
    """return_reasons.json is not a valid list of reason codes."""


def parse_reason_codes(document: object) -> frozenset[str]:
    """The codes of a reason codes document; every code is UPPER_SNAKE_CASE, unique, described."""
    reasons = document.get("reasons") if isinstance(document, dict) else None
    if not isinstance(reasons, list) or not reasons:
        raise ReasonCodesError("'reasons' must be a non-empty list")
    codes: set[str] = set()
    for entry in reasons:
        code = entry.get("code") if isinstance(entry, dict) else None
        description = entry.get("description") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise ReasonCodesError(f"bad reason code in {entry!r}: expected UPPER_SNAKE_CASE")
        if not isinstance(description, str) or not description.strip():
            raise ReasonCodesError(f"reason code {code} has no description")
        if code in codes:
            raise ReasonCodesError(f"reason code {code} is listed twice")
        codes.add(code)
    return frozenset(codes)


def load_reason_codes(path: Path = REASONS_FILE) -> frozenset[str]:
    """Read and check the reason codes file (at start: a bad file stops the service)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReasonCodesError(f"cannot read {path.name}: {error}") from error
    return parse_reason_codes(document)


@dataclass(frozen=True)
class ReturnPolicy:
    """The return rules' settings: reason codes and the return window, per partner."""

    reason_codes: frozenset[str]
    window: timedelta = DEFAULT_WINDOW
    partner_windows: Mapping[str, timedelta] = field(default_factory=dict)

    def window_for(self, partner_id: str) -> timedelta:
        return self.partner_windows.get(partner_id, self.window)


@dataclass(frozen=True)
class ReturnLineRequest:
    """One line of a CreateReturn: which order line, how many units, what to do with them."""

    order_line_number: int
    quantity: int
    disposition: ReturnDisposition
    reason: str


@dataclass(frozen=True)
class ReturnRequest:
    """What a partner asks to send back; an empty location lets crossdock choose."""

    lines: tuple[ReturnLineRequest, ...]
    return_location_id: str = ""

    def fingerprint(self) -> str:
        """A digest of the request, to tell a replay from another request under the same key."""
        canonical = json.dumps(
            [
                [
                    [x.order_line_number, x.quantity, x.disposition.name, x.reason]
                    for x in self.lines
                ],
                self.return_location_id,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def authorize(
    order: Order,
    returns: Sequence[Return],
    request: ReturnRequest,
    policy: ReturnPolicy,
    *,
    return_id: str,
    now: datetime,
    idempotency_key: str = "",
) -> tuple[Return, ReturnAuthorized]:
    """The authorized return and its event; InvalidArgument or ReturnNotAllowed otherwise.

    `returns` are the order's existing returns (any status).
    """
    _check_input(order, request, policy)
    _check_rules(order, returns, request, policy.window_for(order.partner_id), now)
    lines = tuple(
        ReturnLine(
            order_line_number=x.order_line_number,
            sku=order.line(x.order_line_number).sku,
            quantity_authorized=x.quantity,
            disposition=x.disposition,
            reason=x.reason,
        )
        for x in request.lines
    )
    location = request.return_location_id or shipped_from(
        order, {x.order_line_number for x in request.lines}
    )
    authorized = Return(
        return_id=return_id,
        order_id=order.order_id,
        partner_id=order.partner_id,
        lines=lines,
        return_location_id=location,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        request_fingerprint=request.fingerprint(),
    )
    return authorized, ReturnAuthorized(authorized, now)


def ensure_same_request(existing: Return, request: ReturnRequest) -> None:
    """A replay under the same idempotency key must ask for the same return."""
    if existing.request_fingerprint != request.fingerprint():
        raise ReturnReplayMismatch(
            f"idempotency key {existing.idempotency_key!r} was used for another return request",
            resource_type="return",
            resource_name=existing.return_id,
            metadata={"return_id": existing.return_id},
        )


def returnable_units(order: Order, returns: Iterable[Return]) -> dict[int, int]:
    """Per order line: units delivered and not yet authorized on a (non-cancelled) return."""
    authorized: dict[int, int] = {}
    for order_return in returns:
        if not order_return.counts_against_order:
            continue
        for line in order_return.lines:
            number = line.order_line_number
            authorized[number] = authorized.get(number, 0) + line.quantity_authorized
    return {
        line.line_number: max(0, line.quantity_delivered - authorized.get(line.line_number, 0))
        for line in order.lines
    }


def last_delivery(order: Order) -> datetime | None:
    """When the order last had a shipment delivered, as its timeline recorded it."""
    times = [
        entry.occurred_at
        for entry in order.timeline
        if entry.kind is TimelineEntryKind.EVENT and entry.event_type in DELIVERED_EVENT_TYPES
    ]
    return max(times) if times else None


def shipped_from(order: Order, line_numbers: set[int]) -> str:
    """The warehouse that shipped most of these lines' delivered units (picks if no shipment
    says); ties go to the first location id, so the choice is stable."""
    units: dict[str, int] = {}
    for shipment in order.shipments.values():
        if shipment.delivered and shipment.location_id:
            for q in shipment.lines:
                if q.line_number in line_numbers:
                    units[shipment.location_id] = units.get(shipment.location_id, 0) + q.quantity
    if not units:
        for pick in order.picks.values():
            for p in pick.lines:
                if p.line_number in line_numbers and p.quantity_picked:
                    units[pick.location_id] = units.get(pick.location_id, 0) + p.quantity_picked
    if not units:
        return ""
    return min(units, key=lambda location: (-units[location], location))


def _check_input(order: Order, request: ReturnRequest, policy: ReturnPolicy) -> None:
    numbers = {line.line_number for line in order.lines}
    violations: list[FieldViolation] = []
    seen: set[int] = set()
    for index, line in enumerate(request.lines):
        at = f"order_return.lines[{index}]"
        if line.order_line_number not in numbers:
            violations.append(
                FieldViolation(
                    f"{at}.order_line_number",
                    "return.order_line_exists",
                    f"the order has no line {line.order_line_number}",
                )
            )
        elif line.order_line_number in seen:
            violations.append(
                FieldViolation(
                    f"{at}.order_line_number",
                    "return.order_line_unique",
                    f"line {line.order_line_number} is on another return line",
                )
            )
        seen.add(line.order_line_number)
        if line.reason not in policy.reason_codes:
            known = ", ".join(sorted(policy.reason_codes))
            violations.append(
                FieldViolation(
                    f"{at}.reason",
                    "return.reason_code",
                    f"{line.reason!r} is not a return reason code (one of {known})",
                )
            )
    if violations:
        raise InvalidArgument.for_violations(violations, "the return is invalid")


def _check_rules(
    order: Order,
    returns: Sequence[Return],
    request: ReturnRequest,
    window: timedelta,
    now: datetime,
) -> None:
    returnable = returnable_units(order, returns)
    delivered_at = last_delivery(order) or order.updated_at
    closes = delivered_at + window
    violations: list[PreconditionViolation] = []
    for index, line in enumerate(request.lines):
        number, wanted = line.order_line_number, line.quantity
        at = f"order_return.lines[{index}]"
        delivered = order.line(number).quantity_delivered
        if delivered == 0:
            violations.append(
                PreconditionViolation(
                    "RETURN_NOT_DELIVERED",
                    f"{at}.quantity",
                    f"line {number}: 0 returnable, {wanted} requested (nothing delivered yet)",
                )
            )
        elif now > closes:
            days = window.days
            violations.append(
                PreconditionViolation(
                    "RETURN_WINDOW_CLOSED",
                    at,
                    f"line {number}: the {days}-day return window closed on "
                    f"{closes.date().isoformat()}",
                )
            )
        elif wanted > returnable[number]:
            violations.append(
                PreconditionViolation(
                    "RETURN_QUANTITY_EXCEEDED",
                    f"{at}.quantity",
                    f"line {number}: {returnable[number]} returnable, {wanted} requested",
                )
            )
    if violations:
        summary = "; ".join(v.description for v in violations)
        raise ReturnNotAllowed(
            f"the return is not allowed: {summary}",
            violations=violations,
            metadata={"order_id": order.order_id},
        )
