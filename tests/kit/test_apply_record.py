"""What a consumed batch leaves in the metrics and the log (services.kit.apply.OutcomeRecorder)."""

from __future__ import annotations

import logging
from types import ModuleType

import pytest
from nats.aio.msg import Msg

from services.kit.apply import Item, Outcome, OutcomeRecorder
from services.kit.handlers import Route
from services.kit.metrics import ServiceMetrics

CONSUMER = "kittest-effects"


def item(
    route: Route,
    seq: int,
    outcome: Outcome | None,
    *,
    delivered: int = 1,
    latency: float | None = None,
    kind: str = "",
) -> Item:
    msg = Msg(_client=None, subject=route.subject, data=b"", headers={})  # type: ignore[arg-type]
    return Item(
        msg=msg,
        headers={},
        stream_seq=seq,
        num_delivered=delivered,
        final=False,
        event_id=f"ev-{seq}",
        route=route,
        outcome=outcome,
        reason=f"reason {seq}",
        dlq_kind=kind,
        latency=latency,
    )


def test_a_batch_is_counted_by_outcome_kind_redelivery_and_latency(
    pb: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    route = Route("crossdock.order.thing_happened.v1", pb.ThingHappened, handler=print)
    metrics = ServiceMetrics("kittest")
    record = OutcomeRecorder(CONSUMER, metrics)
    batch = [
        item(route, 1, Outcome.APPLIED, latency=0.0003),
        item(route, 2, Outcome.APPLIED, delivered=2, latency=0.002),
        item(route, 3, Outcome.DUPLICATE),
        item(route, 4, Outcome.DEAD, kind="undecodable"),
        item(route, 5, Outcome.DEAD),
        item(route, 6, Outcome.RETRY, delivered=3),
        item(route, 7, None),
    ]
    with caplog.at_level(logging.WARNING, logger="services.kit.apply"):
        record(batch)
        record([item(route, 8, Outcome.APPLIED, latency=0.0001)])  # the same children again

    sample = metrics.registry.get_sample_value
    events = "crossdock_consumer_events_total"
    assert sample(events, {"consumer": CONSUMER, "outcome": "applied"}) == 3
    assert sample(events, {"consumer": CONSUMER, "outcome": "duplicate"}) == 1
    assert sample(events, {"consumer": CONSUMER, "outcome": "dead_lettered"}) == 2
    assert sample(events, {"consumer": CONSUMER, "outcome": "retried"}) == 2
    batches = {"consumer": CONSUMER}
    assert sample("crossdock_consumer_batch_size_count", batches) == 2
    assert sample("crossdock_consumer_batch_size_sum", batches) == 8
    assert sample("crossdock_consumer_redeliveries_total", batches) == 2
    dlq = "crossdock_dlq_events_total"
    assert sample(dlq, {"consumer": CONSUMER, "reason": "undecodable"}) == 1
    assert sample(dlq, {"consumer": CONSUMER, "reason": "handler"}) == 1
    latency = {"consumer": CONSUMER, "type": route.type_name}
    assert sample("crossdock_handler_latency_seconds_count", latency) == 3
    assert sample("crossdock_handler_latency_seconds_sum", latency) == pytest.approx(0.0024)
    bucket = {**latency, "le": "0.0005"}
    assert sample("crossdock_handler_latency_seconds_bucket", bucket) == 2

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert errors == [
        f"dead-lettered ev-4 ({route.subject} seq 4) for {CONSUMER}: reason 4",
        f"dead-lettered ev-5 ({route.subject} seq 5) for {CONSUMER}: reason 5",
    ]
    assert warnings == [f"will retry ev-6 for {CONSUMER}: reason 6"]


def test_without_metrics_a_batch_is_only_logged(
    pb: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    route = Route("crossdock.order.thing_happened.v1", pb.ThingHappened, handler=print)
    with caplog.at_level(logging.WARNING, logger="services.kit.apply"):
        OutcomeRecorder(CONSUMER, None)([item(route, 1, Outcome.RETRY)])
    assert [r.getMessage() for r in caplog.records] == [f"will retry ev-1 for {CONSUMER}: reason 1"]
