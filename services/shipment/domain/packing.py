"""Packing a warehouse pick into boxes, using the item master's weights and measures.

Greedy and deterministic: units go into the current box, line by line, until the next unit
would push it over the carrier-friendly weight limit; then a new box starts. A unit heavier than
the limit travels alone. Box measures are the largest footprint of its items with their heights
stacked, which over-states volume rather than under-stating it (carriers re-bill short measures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ItemSpec:
    """One unit of a SKU as the item master describes it, in kilograms and centimetres."""

    sku: str
    weight_kg: float
    length_cm: float
    width_cm: float
    height_cm: float


@dataclass(frozen=True)
class PickedUnits:
    """Units of one order line that left the shelf."""

    order_line_number: int
    sku: str
    quantity: int
    lot: str = ""


@dataclass(frozen=True)
class Box:
    """One package: what it holds and its gross measures."""

    items: tuple[PickedUnits, ...]
    weight_kg: float
    length_cm: float
    width_cm: float
    height_cm: float


class UnknownItem(Exception):
    """A picked SKU is missing from the item master."""


@dataclass
class _Open:
    counts: dict[tuple[int, str, str], int]
    weight: float = 0.0

    def add(self, units: PickedUnits, quantity: int, unit_weight: float) -> None:
        key = (units.order_line_number, units.sku, units.lot)
        self.counts[key] = self.counts.get(key, 0) + quantity
        self.weight += quantity * unit_weight


def pack(
    lines: Sequence[PickedUnits], items: Mapping[str, ItemSpec], max_box_weight_kg: float
) -> tuple[Box, ...]:
    """The boxes for `lines`; lines with no units are ignored. Raises UnknownItem."""
    if max_box_weight_kg <= 0:
        raise ValueError("max_box_weight_kg must be positive")
    boxes: list[_Open] = []
    current = _Open({})
    for line in lines:
        if line.quantity <= 0:
            continue
        spec = items.get(line.sku)
        if spec is None:
            raise UnknownItem(line.sku)
        remaining = line.quantity
        while remaining:
            room = max_box_weight_kg - current.weight
            fits = remaining if spec.weight_kg <= 0 else int(room // spec.weight_kg)
            if fits <= 0:
                if current.counts:
                    boxes.append(current)
                    current = _Open({})
                    continue
                fits = 1  # heavier than a whole box: it ships alone
            take = min(fits, remaining)
            current.add(line, take, spec.weight_kg)
            remaining -= take
    if current.counts:
        boxes.append(current)
    return tuple(_close(box, items) for box in boxes)


def _close(box: _Open, items: Mapping[str, ItemSpec]) -> Box:
    held = tuple(PickedUnits(n, sku, q, lot) for (n, sku, lot), q in box.counts.items())
    specs = [(items[u.sku], u.quantity) for u in held]
    return Box(
        items=held,
        weight_kg=round(box.weight, 3),
        length_cm=max(s.length_cm for s, _ in specs),
        width_cm=max(s.width_cm for s, _ in specs),
        height_cm=round(sum(s.height_cm * q for s, q in specs), 2),
    )
