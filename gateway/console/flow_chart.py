"""The overview's chart, as geometry the template draws as inline SVG (no script, no library).

Per flow one horizontal bar, its items stacked youngest to oldest: one segment per non-empty
age bucket, each as wide as its share of the flow's items. Items are in age order along the
bar, so the flow's SLA falls at one point of it: after the (items - breaches) youngest. That
point is marked, and every part of a segment past it is drawn in the warning colour (a bucket
the SLA falls inside is split there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BAR_WIDTH = 600.0  # SVG user units; the template lays the bars out around this


@dataclass(frozen=True)
class Segment:
    """A run of one bucket's items inside or past the SLA."""

    x: float
    width: float
    bucket: int  # index into the flow's buckets, youngest first
    items: int
    past_sla: bool
    label: str  # the bucket's age range, e.g. "5m-15m"


@dataclass(frozen=True)
class ChartRow:
    segments: tuple[Segment, ...]
    sla_x: float | None  # where the SLA falls along the bar; None for an empty flow


@dataclass(frozen=True)
class LegendEntry:
    bucket: int
    label: str


def bound_label(seconds: float) -> str:
    """A bucket bound, short: 60 → 1m, 14400 → 4h, 604800 → 7d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def bucket_labels(bounds: Sequence[float]) -> list[str]:
    """Each bucket's age range: "≤1m", "1m-5m", …, ">30d" for the unbounded last one."""
    labels = []
    for index, bound in enumerate(bounds):
        if math.isinf(bound):
            previous = bounds[index - 1] if index else 0.0
            labels.append(f">{bound_label(previous)}")
        elif index == 0:
            labels.append(f"≤{bound_label(bound)}")
        else:
            labels.append(f"{bound_label(bounds[index - 1])}-{bound_label(bound)}")
    return labels


def legend(bounds: Sequence[float]) -> tuple[LegendEntry, ...]:
    return tuple(LegendEntry(i, label) for i, label in enumerate(bucket_labels(bounds)))


def chart_row(buckets: Sequence[tuple[float, int]], breaches: int) -> ChartRow:
    """The bar of one flow from its (upper bound, items) buckets, youngest first, and how
    many of its items are past the SLA."""
    # The buckets' sum, not the flow's count: the bar's parts always add up to the bar.
    total = sum(count for _, count in buckets)
    if total <= 0:
        return ChartRow((), None)
    labels = bucket_labels([bound for bound, _ in buckets])
    within = min(max(total - breaches, 0), total)  # how many of the youngest are inside
    segments: list[Segment] = []
    start = 0
    for index, (_, count) in enumerate(buckets):
        if count <= 0:
            continue
        end = start + count
        for lo, hi, past in ((start, min(end, within), False), (max(start, within), end, True)):
            if hi > lo:
                segments.append(
                    Segment(
                        x=_scaled(lo, total),
                        width=_scaled(hi, total) - _scaled(lo, total),
                        bucket=index,
                        items=hi - lo,
                        past_sla=past,
                        label=labels[index],
                    )
                )
        start = end
    return ChartRow(tuple(segments), _scaled(within, total))


def _scaled(count: int, total: int) -> float:
    return round(BAR_WIDTH * count / total, 2)
