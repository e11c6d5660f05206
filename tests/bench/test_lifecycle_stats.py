"""The lifecycle benchmark's pure parts: the open-loop schedule, percentiles, the backlog trend
test, hop latencies from event times, and the report it prints and plots."""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import pytest

from bench.lifecycle_probes import operations_per_lifecycle
from bench.lifecycle_stats import (
    GROWTH_FLOOR,
    BacklogSample,
    EventTimes,
    hop_latencies,
    percentile,
    planned_instants,
    render_report,
    slope_per_second,
    summarize,
    trend,
)


def test_schedule_is_evenly_spaced_at_the_offered_rate() -> None:
    instants = planned_instants(20, 3.0, start=100.0)
    assert len(instants) == 60
    assert instants[0] == 100.0
    assert all(math.isclose(b - a, 0.05) for a, b in itertools.pairwise(instants))
    assert instants[-1] < 103.0


def test_schedule_counts_fractional_rates_and_nothing_for_no_rate() -> None:
    assert len(planned_instants(2.5, 10.0)) == 25
    assert planned_instants(0, 10.0) == []
    assert planned_instants(10, 0) == []


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_slope_is_least_squares() -> None:
    assert slope_per_second([(t, 3.0 * t + 5) for t in range(10)]) == pytest.approx(3.0)
    assert slope_per_second([(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)]) == pytest.approx(0.5)
    assert slope_per_second([(1.0, 4.0)]) == 0.0
    assert slope_per_second([(1.0, 4.0), (1.0, 9.0)]) == 0.0


def samples(lag: list[int], *, start: float = 1000.0, every: float = 2.0) -> list[BacklogSample]:
    return [BacklogSample(start + i * every, v, 0, 0) for i, v in enumerate(lag)]


def test_a_noisy_flat_backlog_does_not_grow_and_a_rising_one_does() -> None:
    flat = trend(samples([40, 55, 38, 61, 45, 50, 42, 58]), "consumer_lag", 100, 1000, 1014)
    assert not flat.grows and flat.limit == 2.0  # 0.02 x 100 orders/s
    assert (flat.first, flat.last) == (40, 58)
    rising = trend(samples([0, 10, 20, 30, 40, 50]), "consumer_lag", 100, 1000, 1010)
    assert rising.slope == pytest.approx(5.0) and rising.grows


def test_trend_only_looks_inside_the_window_and_has_a_floor() -> None:
    series = samples([500, 400, 3, 3, 4, 3, 999])  # warm-up before, drain after
    inside = trend(series, "consumer_lag", 5, 1004, 1010)
    assert inside.samples == (3, 3, 4, 3)
    assert inside.limit == GROWTH_FLOOR and not inside.grows


def lifecycle(times: EventTimes, order: str, t0: float, *, transit: float = 20.0) -> None:
    """One order's milestones at known offsets from t0."""
    times.placed[order] = t0
    times.reserved[f"rsv-{order}"] = (order, t0 + 0.040)
    times.released[order] = t0 + 0.045
    times.picked[f"pck-{order}"] = (order, t0 + 0.600)
    times.manifested[f"shp-{order}"] = (order, f"pck-{order}", t0 + 0.700)
    times.delivered[f"shp-{order}"] = t0 + 0.700 + transit
    times.invoiced[f"shp-{order}"] = t0 + 0.730 + transit
    times.completed[order] = t0 + 0.760 + transit


def test_hops_come_from_event_times_and_skip_the_waits() -> None:
    times = EventTimes()
    lifecycle(times, "ord_a", 10.0)
    lifecycle(times, "ord_b", 11.0, transit=30.0)
    lifecycle(times, "ord_warmup", 1.0)  # placed before the window: not counted
    hops = hop_latencies(times, ["ord_a", "ord_b"])
    assert hops["placed_to_reserved"] == pytest.approx([0.040, 0.040])
    assert hops["picked_to_label"] == pytest.approx([0.100, 0.100])
    assert hops["delivered_to_invoice"] == pytest.approx([0.030, 0.030])
    assert sorted(hops["lifecycle"]) == pytest.approx([20.760, 30.760])
    # placed→completed minus the warehouse (released→picked) and the carrier (label→delivered)
    assert hops["own_time"] == pytest.approx([0.760 - 0.555, 0.760 - 0.555])


def test_an_order_not_completed_has_no_lifecycle_and_split_orders_no_own_time() -> None:
    times = EventTimes()
    lifecycle(times, "ord_a", 10.0)
    times.manifested["shp-second"] = ("ord_a", "pck-other", 10.9)
    times.placed["ord_open"] = 12.0
    times.reserved["rsv-open"] = ("ord_open", 12.05)
    hops = hop_latencies(times, ["ord_a", "ord_open"])
    assert len(hops["lifecycle"]) == 1
    assert hops["own_time"] == []
    assert len(hops["placed_to_reserved"]) == 2


def rate_report(rate: float, *, growing: bool = False, every: float = 0.5) -> dict[str, Any]:
    times = EventTimes()
    start, end = 1000.0, 1010.0
    orders = []
    attempts: list[dict[str, Any]] = []
    for index in range(int(rate * 10)):
        planned = start + index / rate
        order = f"ord_{index}"
        orders.append(order)
        lifecycle(times, order, planned - 20.76)  # completes at `planned`, in the window
        attempts.append({"planned_at": planned, "lag": 0.001, "latency": 0.05, "status": 201})
    attempts.append({"planned_at": start + 1, "lag": 0.0, "latency": None, "status": 0})
    count = int(10 / every)
    lag = [i * 50 for i in range(count)] if growing else [3 + i % 3 for i in range(count)]
    backlog = [BacklogSample(start + every * i, v, 1, 40) for i, v in enumerate(lag)]
    return summarize(
        offered_rate=rate,
        window=(start, end),
        attempts=attempts,
        events=times,
        window_orders=orders,
        samples=backlog,
        cpu_seconds={"order": 1.0, "gateway": 0.5, "warehouse-sim": 0.2},
        crossdock_processes=["order", "gateway"],
        peak_rss_bytes={"order": 120 * 2**20, "gateway": 90 * 2**20},
        events_published=int(rate * 10) * 19,
        cores=2,
    )


def test_rate_report_counts_completions_cpu_and_the_verdict() -> None:
    report = rate_report(10)
    assert report["completed_in_window"] == 100
    assert report["completed_per_s"] == pytest.approx(10.0)
    assert report["accepted_per_s"] == pytest.approx(10.0)
    assert report["statuses"] == {"201": 100, "0": 1}
    assert report["sustained"]  # 100 of 101 accepted is 99%, and nothing grows
    assert report["rest_accept_ms"]["p99"] == pytest.approx(50.0)
    assert report["cpu_ms_per_lifecycle"]["order"] == pytest.approx(10.0)
    assert report["crossdock_cpu_ms_per_lifecycle"] == pytest.approx(15.0)  # not the stand-in
    assert report["cpu_share_of_machine"] == pytest.approx(1.7 / 20)
    assert report["events_per_lifecycle"] == pytest.approx(19.0)
    assert report["peak_rss_mb"] == {"order": 120.0, "gateway": 90.0}


def test_too_few_samples_give_no_verdict() -> None:
    report = rate_report(10, every=2.0)  # 5 samples in a 10 s window
    assert report["sustained"] is None
    assert "n/a" in render_report({"rates": [report]})


def test_a_growing_backlog_is_not_sustained() -> None:
    report = rate_report(10, growing=True)
    assert not report["sustained"]
    assert report["backlog"]["consumer_lag"]["grows"]
    assert not report["backlog"]["outbox"]["grows"]


def test_the_printed_tables_and_the_plot() -> None:
    report = {
        "meta": {"db": "sqlite", "cores": 2, "window_s": 10, "started": "now"},
        "ceilings": {"raw JetStream publish_async msgs": 23_000.0},
        "rates": [rate_report(10), rate_report(20, growing=True)],
    }
    text = render_report(report)
    assert "raw JetStream publish_async msgs | 23,000" in text
    assert "placed→reserved p50/p99 ms" in text
    assert " 40/40 | " in text  # placed→reserved p50/p99 in ms
    assert "GROWS" in text and "flat" in text
    assert "crossdock total" in text
    assert "highest sustained rate: 10/s" in text

    from bench.lifecycle_plot import plot_sweep

    png = io.BytesIO()
    plot_sweep(report, png)
    assert png.getvalue().startswith(b"\x89PNG")


def test_one_spike_at_the_end_is_noise_but_a_steady_climb_is_growth() -> None:
    spike = trend(samples([0, 3, 10, 2]), "consumer_lag", 5, 1000, 1006)
    assert spike.slope > spike.limit and not spike.grows  # within two standard errors of flat
    climb = trend(samples([0, 2, 4, 6, 9, 10, 12]), "consumer_lag", 5, 1000, 1012)
    assert climb.grows and climb.slope_error < climb.slope / 2


def test_operations_per_lifecycle_are_counter_growth_per_completion() -> None:
    before = {
        "order crossdock_grpc_requests_total /crossdock.order.v1.OrderService/CreateOrder": 5.0,
        "order crossdock_consumer_batch_size_count order-shipment-events": 10.0,
        "billing crossdock_relay_batch_size_count": 2.0,
    }
    after = {
        "order crossdock_grpc_requests_total /crossdock.order.v1.OrderService/CreateOrder": 25.0,
        "order crossdock_consumer_batch_size_count order-shipment-events": 70.0,
        "shipment crossdock_consumer_batch_size_count shipment-carrier-events": 30.0,
        "billing crossdock_relay_batch_size_count": 2.0,  # did nothing in the window
    }
    ops = operations_per_lifecycle(before, after, completed=20)
    assert ops == {
        "order crossdock_consumer_batch_size_count order-shipment-events": 3.0,
        "order crossdock_grpc_requests_total /crossdock.order.v1.OrderService/CreateOrder": 1.0,
        "shipment crossdock_consumer_batch_size_count shipment-carrier-events": 1.5,
    }
    assert operations_per_lifecycle(before, after, completed=0) == {}

    report = {"rates": [{**rate_report(10), "operations_per_lifecycle": ops}]}
    rows = {
        cells[0]: cells[1]
        for line in render_report(report).splitlines()
        if len(cells := [c.strip() for c in line.strip("|").split("|")]) == 2
    }
    assert rows["consumer transactions"] == "4.5"  # both consumers, summed
    assert rows["gRPC calls served"] == "1.0"
    assert rows["relay batches"] == "0.0"
