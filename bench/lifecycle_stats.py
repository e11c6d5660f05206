"""The pure half of `make bench-lifecycle`: the arrival schedule, percentiles, the backlog trend
test, per-hop latencies from event times, and the report and its tables.

No I/O here (bench_lifecycle.py and lifecycle_probes.py do that), so tests/bench checks every
number the benchmark prints from synthetic inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BacklogSample",
    "EventTimes",
    "Trend",
    "cpu_ms_per_lifecycle",
    "hop_latencies",
    "percentile",
    "planned_instants",
    "render_report",
    "slope_per_second",
    "summarize",
    "trend",
]

# The three backlogs whose growth over the window says "not sustained": a least-squares slope
# above the limit below and above two standard errors (Trend.grows).
BACKLOGS = ("consumer_lag", "outbox", "in_flight")
# A backlog may grow by at most this many items per second per order/s offered (0.02: at
# 100 orders/s, 2 items/s, i.e. 120 over a 60 s window)...
GROWTH_PER_OFFERED = 0.02
# ...or this many items per second, whichever is larger (noise at low rates).
GROWTH_FLOOR = 0.5
# Fewer samples in the window than this and no verdict is given (a smoke run's short window).
MIN_SAMPLES = 10
# The hops the report shows, in lifecycle order: (key, label).
HOPS = (
    ("placed_to_reserved", "placed→reserved"),
    ("picked_to_label", "picked→label booked"),
    ("delivered_to_invoice", "delivered→invoice"),
    ("own_time", "lifecycle net of waits"),
    ("lifecycle", "placed→completed"),
)


def planned_instants(rate: float, duration: float, start: float = 0.0) -> list[float]:
    """Open-loop arrivals: one every 1/rate s from `start`, for `duration` s (end excluded).

    The driver fires each at its instant whatever the mesh has answered so far, so a slow mesh
    meets the same load (no coordinated omission); latency counts from the planned instant.
    """
    if rate <= 0 or duration <= 0:
        return []
    count = math.floor(rate * duration + 1e-9)
    return [start + index / rate for index in range(count)]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default); None if
    there are no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be within 0..100")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def slope_per_second(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t seconds, value) points; 0 with fewer than two distinct t."""
    return fit_slope(points)[0]


def fit_slope(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(least-squares slope, its standard error); the error is 0 with fewer than three points
    (nothing to estimate the scatter from) and the slope 0 with fewer than two distinct t."""
    if len(points) < 2:
        return 0.0, 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0, 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    if len(points) < 3:
        return slope, 0.0
    residuals = sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points)
    return slope, math.sqrt(residuals / (len(points) - 2) / spread)


@dataclass(frozen=True)
class BacklogSample:
    """One look at the mesh's queues, `at` seconds (wall clock) since the epoch."""

    at: float
    consumer_lag: int  # every durable consumer's num_pending + num_ack_pending
    outbox: int  # every service's outbox rows not yet published
    in_flight: int  # orders accepted at this rate and not completed yet


@dataclass(frozen=True)
class Trend:
    series: str
    slope: float  # items per second (least squares over the window's samples)
    slope_error: float  # the slope's standard error
    limit: float
    first: int
    last: int
    samples: tuple[int, ...]

    @property
    def grows(self) -> bool:
        """Faster than the limit, and clearly (two standard errors) rising: one spike at the
        end of a window of flat samples is noise, a steady climb is not."""
        return self.slope > self.limit and self.slope > 2 * self.slope_error


def growth_limit(offered_rate: float) -> float:
    return max(GROWTH_FLOOR, GROWTH_PER_OFFERED * offered_rate)


def trend(
    samples: Sequence[BacklogSample], series: str, offered_rate: float, start: float, end: float
) -> Trend:
    """The series' trend over the window [start, end] (wall clock seconds)."""
    inside = [s for s in samples if start <= s.at <= end]
    values = [int(getattr(s, series)) for s in inside]
    points = [(s.at - start, float(v)) for s, v in zip(inside, values, strict=True)]
    slope, error = fit_slope(points)
    return Trend(
        series=series,
        slope=slope,
        slope_error=error,
        limit=growth_limit(offered_rate),
        first=values[0] if values else 0,
        last=values[-1] if values else 0,
        samples=tuple(values),
    )


@dataclass
class EventTimes:
    """When each milestone of the lifecycle was committed, from the events' `ce-time`.

    Keys are the ids the events carry: order, reservation, pick and shipment ids.
    """

    placed: dict[str, float] = field(default_factory=dict)  # order → OrderPlaced
    released: dict[str, float] = field(default_factory=dict)  # order → first OrderReleased
    reserved: dict[str, tuple[str, float]] = field(default_factory=dict)  # rsv → (order, t)
    picked: dict[str, tuple[str, float]] = field(default_factory=dict)  # pick → (order, t)
    # shipment → (order, pick, t) of ShipmentManifested (its label was booked)
    manifested: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    delivered: dict[str, float] = field(default_factory=dict)  # shipment → ShipmentDelivered
    invoiced: dict[str, float] = field(default_factory=dict)  # shipment → first InvoicePosted
    completed: dict[str, float] = field(default_factory=dict)  # order → OrderCompleted

    def completed_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.completed.values() if start <= at < end)


def hop_latencies(events: EventTimes, orders: Iterable[str]) -> dict[str, list[float]]:
    """Seconds per hop for the given orders (those placed in the measured window).

    - placed_to_reserved: OrderPlaced → each StockReserved of the order;
    - picked_to_label: PickCompleted → the ShipmentManifested of the shipment built from that
      pick (the label is booked when the shipment is manifested);
    - delivered_to_invoice: ShipmentDelivered → the first InvoicePosted for that shipment;
    - lifecycle: OrderPlaced → OrderCompleted;
    - own_time: the lifecycle minus the two waits crossdock does not control: the warehouse
      (OrderReleased → the first PickCompleted) and the carrier's simulated transit
      (ShipmentManifested → ShipmentDelivered); for orders with one shipment only.

    None of the first three spans the carrier's transit or the warehouse's pick delay, so they
    are net of the sandbox and the simulator by construction.
    """
    wanted = set(orders)
    hops: dict[str, list[float]] = {key: [] for key, _ in HOPS}
    for order, at in events.reserved.values():
        if order in wanted and order in events.placed:
            hops["placed_to_reserved"].append(at - events.placed[order])
    shipments_of: dict[str, list[str]] = {}
    for shipment, (order, pick, at) in events.manifested.items():
        shipments_of.setdefault(order, []).append(shipment)
        if order in wanted and pick in events.picked:
            hops["picked_to_label"].append(at - events.picked[pick][1])
    for shipment, at in events.invoiced.items():
        manifest = events.manifested.get(shipment)
        if manifest and manifest[0] in wanted and shipment in events.delivered:
            hops["delivered_to_invoice"].append(at - events.delivered[shipment])
    first_pick: dict[str, float] = {}
    for order, at in events.picked.values():
        first_pick[order] = min(at, first_pick.get(order, at))
    for order in wanted:
        if order not in events.placed or order not in events.completed:
            continue
        lifecycle = events.completed[order] - events.placed[order]
        hops["lifecycle"].append(lifecycle)
        shipments = shipments_of.get(order, [])
        if len(shipments) != 1 or order not in events.released or order not in first_pick:
            continue
        shipment = shipments[0]
        if shipment not in events.delivered:
            continue
        warehouse = first_pick[order] - events.released[order]
        transit = events.delivered[shipment] - events.manifested[shipment][2]
        hops["own_time"].append(lifecycle - warehouse - transit)
    return hops


def cpu_ms_per_lifecycle(cpu_seconds: Mapping[str, float], lifecycles: int) -> dict[str, float]:
    """CPU milliseconds each process spent per lifecycle completed in the window."""
    if lifecycles <= 0:
        return {name: math.nan for name in cpu_seconds}
    return {name: 1000.0 * seconds / lifecycles for name, seconds in cpu_seconds.items()}


def _stats(values: Sequence[float], scale: float = 1000.0) -> dict[str, Any]:
    """p50/p99 (in ms by default) and the count."""
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return {
        "n": len(values),
        "p50": None if p50 is None else p50 * scale,
        "p99": None if p99 is None else p99 * scale,
    }


def summarize(
    *,
    offered_rate: float,
    window: tuple[float, float],
    attempts: Sequence[Mapping[str, Any]],
    events: EventTimes,
    window_orders: Sequence[str],
    samples: Sequence[BacklogSample],
    cpu_seconds: Mapping[str, float],
    crossdock_processes: Sequence[str],
    peak_rss_bytes: Mapping[str, int],
    events_published: int,
    cores: int,
    accepted_share_required: float = 0.99,
    min_samples: int = MIN_SAMPLES,
) -> dict[str, Any]:
    """One rate's report (JSON-ready).

    attempts: one per planned request, with "planned_at" (wall s), "latency" (s from the
    planned instant to the answer; None if none came), "lag" (s from planned to sent) and
    "status" (HTTP status, 0 for a transport error).
    Sustained: every backlog's slope within its limit and ≥ 99% of requests accepted (201);
    None (no verdict) when the window holds fewer than `min_samples` backlog samples.
    """
    start, end = window
    seconds = end - start
    in_window = [a for a in attempts if start <= a["planned_at"] < end]
    accepted = [a for a in in_window if a["status"] == 201]
    statuses: dict[str, int] = {}
    for attempt in in_window:
        statuses[str(attempt["status"])] = statuses.get(str(attempt["status"]), 0) + 1
    completed = events.completed_between(start, end)
    trends = {name: trend(samples, name, offered_rate, start, end) for name in BACKLOGS}
    accepted_share = len(accepted) / len(in_window) if in_window else 0.0
    sustained: bool | None = accepted_share >= accepted_share_required and not any(
        t.grows for t in trends.values()
    )
    if min(len(t.samples) for t in trends.values()) < min_samples:
        sustained = None
    hops = hop_latencies(events, window_orders)
    per_process = cpu_ms_per_lifecycle(cpu_seconds, completed)
    crossdock_total = sum(cpu_seconds.get(name, 0.0) for name in crossdock_processes)
    return {
        "offered_per_s": offered_rate,
        "window_s": seconds,
        "requests": len(in_window),
        "accepted_per_s": len(accepted) / seconds if seconds else 0.0,
        "statuses": statuses,
        "completed_in_window": completed,
        "completed_per_s": completed / seconds if seconds else 0.0,
        "sustained": sustained,
        "accepted_share": accepted_share,
        "backlog": {
            name: {
                "slope_per_s": t.slope,
                "slope_error_per_s": t.slope_error,
                "limit_per_s": t.limit,
                "grows": t.grows,
                "first": t.first,
                "last": t.last,
                "samples": list(t.samples),
            }
            for name, t in trends.items()
        },
        "rest_accept_ms": _stats([a["latency"] for a in accepted if a["latency"] is not None]),
        "driver_lag_ms": _stats([a["lag"] for a in in_window if a.get("lag") is not None]),
        "hops_ms": {key: _stats(values) for key, values in hops.items()},
        "cpu_ms_per_lifecycle": per_process,
        "crossdock_cpu_ms_per_lifecycle": 1000.0 * crossdock_total / completed
        if completed
        else math.nan,
        # Every measured process's CPU over the window, as a share of all cores.
        "cpu_share_of_machine": sum(cpu_seconds.values()) / (seconds * cores) if seconds else 0.0,
        "peak_rss_mb": {name: rss / 2**20 for name, rss in peak_rss_bytes.items()},
        "events_published": events_published,
        "events_per_lifecycle": events_published / completed if completed else math.nan,
    }


# ---- tables --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _pair(stats: Mapping[str, Any]) -> str:
    return f"{_ms(stats.get('p50'))}/{_ms(stats.get('p99'))}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _sum_of(rate: Mapping[str, Any], counter: str) -> float:
    """One counter's total per lifecycle over every service (and label)."""
    found: Mapping[str, float] = rate.get("operations_per_lifecycle", {})
    return round(sum(v for k, v in found.items() if k.split(" ")[1] == counter), 2)


def render_report(report: Mapping[str, Any]) -> str:
    """The tables the benchmark prints (markdown, so they paste into docs as they are)."""
    rates: Sequence[Mapping[str, Any]] = report["rates"]
    out = []
    ceilings = report.get("ceilings", {})
    if ceilings:
        out.append(
            _table(
                ["ceiling (same run)", "per s"],
                [[name, f"{value:,.0f}"] for name, value in ceilings.items() if value],
            )
        )
    if not rates:
        return "\n\n".join(out)
    headers = [
        "offered/s",
        "accepted/s",
        "completed/s",
        "sustained",
        "REST p50/p99 ms",
        *(f"{label} p50/p99 ms" for _, label in HOPS[:3]),
        "CPU ms/lc",
        "machine CPU %",
        "max RSS MB",
    ]
    rows = []
    for rate in rates:
        rss = rate["peak_rss_mb"]
        rows.append(
            [
                f"{rate['offered_per_s']:g}",
                f"{rate['accepted_per_s']:.1f}",
                f"{rate['completed_per_s']:.1f}",
                {True: "yes", False: "NO", None: "n/a"}[rate["sustained"]],
                _pair(rate["rest_accept_ms"]),
                *(_pair(rate["hops_ms"][key]) for key, _ in HOPS[:3]),
                _ms(rate["crossdock_cpu_ms_per_lifecycle"]),
                f"{100 * rate['cpu_share_of_machine']:.0f}",
                f"{max(rss.values()):.0f}" if rss else "-",
            ]
        )
    out.append(_table(headers, rows))
    out.append(
        _table(
            ["offered/s", *(f"{label} p50/p99 ms" for _, label in HOPS[3:]), "events/lc"],
            [
                [
                    f"{r['offered_per_s']:g}",
                    *(_pair(r["hops_ms"][key]) for key, _ in HOPS[3:]),
                    _ms(r["events_per_lifecycle"]),
                ]
                for r in rates
            ],
        )
    )
    trend_rows = []
    for rate in rates:
        for name in BACKLOGS:
            backlog = rate["backlog"][name]
            samples = backlog["samples"]
            shown = " ".join(str(v) for v in samples[:: max(1, len(samples) // 8)][:8])
            trend_rows.append(
                [
                    f"{rate['offered_per_s']:g}",
                    name,
                    f"{backlog['first']} → {backlog['last']}",
                    f"{backlog['slope_per_s']:+.2f} ± {backlog['slope_error_per_s']:.2f}",
                    f"{backlog['limit_per_s']:.2f}",
                    "GROWS" if backlog["grows"] else "flat",
                    shown,
                ]
            )
    out.append(
        _table(
            ["offered/s", "backlog", "first → last", "slope/s ± se", "limit/s", "trend", "samples"],
            trend_rows,
        )
    )
    processes = sorted({p for r in rates for p in r["cpu_ms_per_lifecycle"]})
    offered = [f"{r['offered_per_s']:g}/s" for r in rates]
    idle: Mapping[str, float] = report.get("idle_cpu_ms_per_s", {})
    out.append(
        _table(
            ["CPU ms per lifecycle", *offered, "idle ms/s"],
            [
                [p, *(_ms(r["cpu_ms_per_lifecycle"].get(p)) for r in rates), _ms(idle.get(p))]
                for p in processes
            ]
            + [
                [
                    "crossdock total",
                    *(_ms(r["crossdock_cpu_ms_per_lifecycle"]) for r in rates),
                    "",
                ]
            ],
        )
    )
    operations = sorted({k for r in rates for k in r.get("operations_per_lifecycle", {})})
    if operations:
        totals = [
            ("gRPC calls served", "crossdock_grpc_requests_total"),
            ("consumer transactions", "crossdock_consumer_batch_size_count"),
            ("relay batches", "crossdock_relay_batch_size_count"),
            ("HTTP requests served", "crossdock_http_requests_total"),
        ]
        out.append(
            _table(
                ["operations per lifecycle", *offered],
                [[label, *(_ms(_sum_of(r, counter)) for r in rates)] for label, counter in totals]
                + [
                    [key, *(_ms(r.get("operations_per_lifecycle", {}).get(key)) for r in rates)]
                    for key in operations
                ],
            )
        )
    out.append(
        _table(
            ["peak RSS MB", *offered],
            [
                [p, *(_ms(r["peak_rss_mb"].get(p)) for r in rates)]
                for p in sorted({p for r in rates for p in r["peak_rss_mb"]})
            ],
        )
    )
    sustained = [r["offered_per_s"] for r in rates if r["sustained"]]
    out.append(
        f"highest sustained rate: {max(sustained):g}/s" if sustained else "no rate was sustained"
    )
    if any(r["sustained"] is None for r in rates):
        out.append(
            f"n/a: fewer than {MIN_SAMPLES} backlog samples in the window, too few to judge a "
            "trend (a longer --window or a shorter --sample-interval gives a verdict)"
        )
    return "\n\n".join(out)
