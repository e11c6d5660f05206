"""Judge a chaos run's History against the properties the mesh promises under faults.

Each property is one function returning its violations; `check` runs them all. The checker is
pure: everything it needs is in the history, so a saved history can be judged again.

1. `orders_terminal`: every accepted order ends COMPLETED or CANCELLED (EXCEPTION is not an end);
2. `one_label_per_shipment`: at most one booked, unvoided label per shipment, exactly one once
   the carrier has the parcels;
3. `one_invoice_per_delivered_shipment`: a delivered outbound shipment has exactly one invoice,
   no shipment has two, and a return credits an invoice at most once;
4. `gapless_numbers`: invoice and credit-note numbers run 1..n with no gap or repeat per series;
5. `stock_conserved`: on hand = Σ movements per SKU and location, and nothing is negative;
6. `no_lost_events`: every outbox row sent (publish acknowledged) is in its stream, unless
   retention may have removed it, and no row is left unsent once the mesh is quiet;
7. `no_double_apply`: every inbox holds an event id at most once per consumer;
8. `accepted_orders_kept`: every order the gateway accepted over REST exists in the order
   service, and one Idempotency-Key never made two orders;
9. `no_dead_letters`: no consumer gave up on an event. The workload sends only valid input,
   so a dead letter after faults means a fault was taken for a bad event (an outage burnt its
   deliveries): its effect is missing until an operator redrives it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from localmesh.chaos.history import History
from services.kit.streams import DLQ_STREAM

ORDERS_TERMINAL = "orders_terminal"
ONE_LABEL = "one_label_per_shipment"
ONE_INVOICE = "one_invoice_per_delivered_shipment"
GAPLESS = "gapless_numbers"
STOCK = "stock_conserved"
NO_LOST_EVENTS = "no_lost_events"
NO_DOUBLE_APPLY = "no_double_apply"
ACCEPTED_KEPT = "accepted_orders_kept"
NO_DEAD_LETTERS = "no_dead_letters"

# services/order/domain/model.py TERMINAL_STATUSES.
TERMINAL_ORDER_STATUSES = frozenset({"COMPLETED", "CANCELLED"})
# Statuses where the carrier has (or had) the parcels, so their label was used: exactly one.
CARRIED_STATUSES = frozenset(
    {"PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "RETURNED_TO_SENDER"}
)
# An event sent this little before the stream's first kept message may still have been removed
# by retention: the relay stamps sent_at after the ack, a little after the stream's timestamp.
RETENTION_GRACE_SECONDS = 5.0
# services/billing/domain/invoicing.py format_number: `INV-2026-000001` is series `INV-2026`, 1.
_NUMBER = re.compile(r"^(?P<series>.+)-(?P<value>\d+)$")


@dataclass(frozen=True)
class Violation:
    property: str
    subjects: tuple[str, ...]
    evidence: str


@dataclass(frozen=True)
class Report:
    violations: tuple[Violation, ...]
    # How many subjects each property judged (orders, shipments, numbers, positions, events...),
    # so "no violation" is told apart from "nothing checked".
    checked: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_property(self) -> dict[str, list[Violation]]:
        grouped: dict[str, list[Violation]] = {name: [] for name in self.checked}
        for violation in self.violations:
            grouped.setdefault(violation.property, []).append(violation)
        return grouped

    def to_json(self) -> str:
        body = {
            "ok": self.ok,
            "checked": self.checked,
            "violations": [asdict(v) for v in self.violations],
            "notes": list(self.notes),
        }
        return json.dumps(body, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """A saved report back; raises ValueError naming what is missing or malformed."""
        try:
            body = json.loads(text)
            violations = tuple(
                Violation(v["property"], tuple(v["subjects"]), v["evidence"])
                for v in body["violations"]
            )
            checked = {str(k): int(n) for k, n in body["checked"].items()}
            notes = tuple(str(n) for n in body["notes"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"report: not a chaos report: {error!r}") from error
        return cls(violations, checked, notes)

    def summary(self) -> str:
        lines = [f"chaos check: {'OK' if self.ok else 'VIOLATED'}"]
        for name, found in self.by_property().items():
            verdict = "ok" if not found else f"{len(found)} violation(s)"
            lines.append(f"  {name}: {self.checked.get(name, 0)} checked, {verdict}")
            lines.extend(f"    - {', '.join(v.subjects)}: {v.evidence}" for v in found)
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# A property: the violations it finds and how many subjects it judged.
Property = Callable[[History], tuple[list[Violation], int]]


def orders_terminal(history: History) -> tuple[list[Violation], int]:
    ends = ", ".join(sorted(TERMINAL_ORDER_STATUSES))
    found = [
        Violation(
            ORDERS_TERMINAL,
            (order.order_id,),
            f"order is {order.status}"
            + (f" ({order.exception_reason})" if order.exception_reason else "")
            + f", not one of {ends}",
        )
        for order in history.orders
        if order.status not in TERMINAL_ORDER_STATUSES
    ]
    return found, len(history.orders)


def one_label_per_shipment(history: History) -> tuple[list[Violation], int]:
    live: dict[str, set[str]] = defaultdict(set)
    for label in history.labels:
        if not label.voided:
            live[label.shipment_id].add(label.label_id)
    found: list[Violation] = []
    statuses = {s.shipment_id: s.status for s in history.shipments}
    for shipment_id in sorted(set(statuses) | set(live)):
        labels = sorted(live.get(shipment_id, ()))
        status = statuses.get(shipment_id, "unknown to the shipment service")
        if len(labels) > 1:
            evidence = f"{len(labels)} live labels ({', '.join(labels)}) on a {status} shipment"
            found.append(Violation(ONE_LABEL, (shipment_id, *labels), evidence))
        elif not labels and status in CARRIED_STATUSES:
            evidence = f"shipment is {status} but has no live label"
            found.append(Violation(ONE_LABEL, (shipment_id,), evidence))
    return found, len(statuses)


def one_invoice_per_delivered_shipment(history: History) -> tuple[list[Violation], int]:
    invoices: dict[str, list[str]] = defaultdict(list)
    for invoice in history.invoices:
        invoices[invoice.shipment_id].append(invoice.invoice_number)
    found: list[Violation] = []
    delivered = [s for s in history.shipments if s.status == "DELIVERED" and s.kind != "RETURN"]
    for shipment in delivered:
        if not invoices.get(shipment.shipment_id):
            evidence = "delivered outbound shipment has no invoice"
            found.append(Violation(ONE_INVOICE, (shipment.shipment_id,), evidence))
    for shipment_id, numbers in sorted(invoices.items()):
        if len(numbers) > 1:
            evidence = f"{len(numbers)} invoices for one shipment: {', '.join(sorted(numbers))}"
            found.append(Violation(ONE_INVOICE, (shipment_id, *sorted(numbers)), evidence))
    # Returns produce credit notes, one per return receipt and invoice (billing README).
    credits: dict[tuple[str, str], list[str]] = defaultdict(list)
    for note in history.credit_notes:
        credits[(note.return_id, note.invoice_id)].append(note.credit_note_number)
    for (return_id, invoice_id), numbers in sorted(credits.items()):
        if len(numbers) > 1:
            evidence = (
                f"{len(numbers)} credit notes for one return of one invoice: "
                f"{', '.join(sorted(numbers))}"
            )
            found.append(Violation(ONE_INVOICE, (return_id, invoice_id, *numbers), evidence))
    return found, len(delivered) + len(invoices) + len(credits)


def gapless_numbers(history: History) -> tuple[list[Violation], int]:
    numbers = [i.invoice_number for i in history.invoices]
    numbers += [n.credit_note_number for n in history.credit_notes]
    series: dict[str, list[int]] = defaultdict(list)
    found: list[Violation] = []
    for number in numbers:
        match = _NUMBER.match(number)
        if match is None:
            evidence = "number is not SERIES-NNNNNN"
            found.append(Violation(GAPLESS, (number,), evidence))
            continue
        series[match["series"]].append(int(match["value"]))
    for name, values in sorted(series.items()):
        repeated = sorted(v for v, n in Counter(values).items() if n > 1)
        if repeated:
            evidence = f"numbers used more than once: {_ranges(repeated)}"
            found.append(Violation(GAPLESS, (name,), evidence))
        # Series start at 1 (billing numbers from 1 each year), so a gap may be at the start.
        missing = sorted(set(range(1, max(values) + 1)) - set(values))
        if missing:
            evidence = f"missing numbers {_ranges(missing)} (highest is {max(values)})"
            found.append(Violation(GAPLESS, (name,), evidence))
    return found, len(numbers)


def stock_conserved(history: History) -> tuple[list[Violation], int]:
    expected: dict[tuple[str, str], int] = defaultdict(int)
    terms: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    seen: set[str] = set()
    for move in history.movements:
        if move.event_id in seen:
            continue  # a redelivered event changes stock once
        seen.add(move.event_id)
        key = (move.sku, move.location_id)
        expected[key] += move.quantity
        terms[key][move.kind] += move.quantity
    found: list[Violation] = []
    positions = {(p.sku, p.location_id): p for p in history.positions}
    for key in sorted(set(expected) | set(positions)):
        sku, location = key
        subject = f"{sku}@{location}"
        position = positions.get(key)
        on_hand = position.on_hand if position else 0
        if on_hand != expected.get(key, 0):
            parts = ", ".join(f"{kind} {qty:+d}" for kind, qty in sorted(terms[key].items()))
            evidence = (
                f"on hand {on_hand} but movements sum to {expected.get(key, 0)} "
                f"({parts or 'no movements'})"
            )
            found.append(Violation(STOCK, (subject,), evidence))
        if position is None:
            continue
        negative = {
            "on hand": position.on_hand,
            "reserved": position.reserved,
            "available": position.on_hand - position.reserved,
        }
        for name, value in negative.items():
            if value < 0:
                found.append(Violation(STOCK, (subject,), f"{name} is negative: {value}"))
    return found, len(set(expected) | set(positions))


def no_lost_events(history: History) -> tuple[list[Violation], int]:
    streams = {s.name: s for s in history.streams}
    present = {s.name: frozenset(s.event_ids) for s in history.streams}
    found: list[Violation] = []
    judged = 0
    for audit in history.outboxes:
        for unsent in audit.unsent:
            judged += 1
            evidence = f"{audit.service} still holds {unsent.subject} unsent in its outbox"
            found.append(Violation(NO_LOST_EVENTS, (unsent.event_id, audit.service), evidence))
        for row in audit.rows:
            stream = streams.get(row.stream)
            if stream is None:
                evidence = f"{audit.service} sent {row.subject} to stream {row.stream}, not found"
                found.append(Violation(NO_LOST_EVENTS, (row.event_id,), evidence))
                judged += 1
                continue
            if row.event_id in present[row.stream]:
                judged += 1
                continue
            if _maybe_retained_out(row.sent_at, stream.first_seq, stream.first_time):
                continue
            judged += 1
            evidence = (
                f"{audit.service} marked {row.subject} sent at {row.sent_at:.3f}, but stream "
                f"{row.stream} (first seq {stream.first_seq}) does not hold it"
            )
            found.append(Violation(NO_LOST_EVENTS, (row.event_id, audit.service), evidence))
    return found, judged


def _maybe_retained_out(sent_at: float, first_seq: int, first_time: float | None) -> bool:
    if first_seq <= 1:
        return False  # the stream never dropped a message
    if first_time is None:
        return True  # it dropped some, and we can't tell which: don't judge
    return sent_at < first_time + RETENTION_GRACE_SECONDS


def no_double_apply(history: History) -> tuple[list[Violation], int]:
    found: list[Violation] = []
    judged = 0
    for inbox in history.inboxes:
        judged += len(inbox.counts)
        for event_id, count in sorted(inbox.counts.items()):
            if count > 1:
                evidence = f"{inbox.service} consumer {inbox.consumer} applied it {count} times"
                found.append(Violation(NO_DOUBLE_APPLY, (event_id, inbox.consumer), evidence))
    return found, judged


def accepted_orders_kept(history: History) -> tuple[list[Violation], int]:
    known = {order.order_id for order in history.orders}
    found = [
        Violation(ACCEPTED_KEPT, (accepted.order_id,), "accepted over REST, unknown to order")
        for accepted in history.accepted
        if accepted.order_id not in known
    ]
    by_key: defaultdict[str, set[str]] = defaultdict(set)
    for accepted in history.accepted:
        by_key[accepted.idempotency_key].add(accepted.order_id)
    for key, ids in sorted(by_key.items()):
        if len(ids) > 1:
            evidence = f"Idempotency-Key {key} was answered with {len(ids)} different orders"
            found.append(Violation(ACCEPTED_KEPT, tuple(sorted(ids)), evidence))
    return found, len(history.accepted)


def no_dead_letters(history: History) -> tuple[list[Violation], int]:
    found = [
        Violation(
            NO_DEAD_LETTERS,
            (letter.event_id, letter.consumer),
            f"{letter.consumer} dead-lettered {letter.subject}: {letter.reason}",
        )
        for letter in history.dead_letters
    ]
    # Judged: every event the streams hold could have been dead-lettered.
    return found, sum(len(s.event_ids) for s in history.streams if s.name != DLQ_STREAM)


PROPERTIES: dict[str, Property] = {
    ORDERS_TERMINAL: orders_terminal,
    ONE_LABEL: one_label_per_shipment,
    ONE_INVOICE: one_invoice_per_delivered_shipment,
    GAPLESS: gapless_numbers,
    STOCK: stock_conserved,
    NO_LOST_EVENTS: no_lost_events,
    NO_DOUBLE_APPLY: no_double_apply,
    ACCEPTED_KEPT: accepted_orders_kept,
    NO_DEAD_LETTERS: no_dead_letters,
}


def check(history: History) -> Report:
    violations: list[Violation] = []
    checked: dict[str, int] = {}
    for name, prop in PROPERTIES.items():
        found, judged = prop(history)
        violations.extend(found)
        checked[name] = judged
    return Report(tuple(violations), checked, history.notes)


def _ranges(values: Iterable[int]) -> str:
    """[1, 2, 3, 7] → `1-3, 7`."""
    spans: list[list[int]] = []
    for value in sorted(values):
        if spans and value == spans[-1][1] + 1:
            spans[-1][1] = value
        else:
            spans.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
