"""The business-flow gauges on the tower's /metrics, recomputed by a polling worker.

Every `interval` seconds (never per event: the projection stays one statement per batch):
- from the tower's database, each flow's items, oldest age, age distribution, SLA and breaches
  (app.list_flows), and the open exceptions by kind and owner with the oldest one's age
  (workbench.open_exceptions);
- from the tower's database, each reconciliation check's open findings and its latest run's
  time and duration (whichever replica ran it); `crossdock_reconciliation_runs_total` counts
  the runs this replica made (`count_run`, the reconciler's callback);
- once, at start: each exception kind's configured SLA (`crossdock_exceptions_sla_seconds`), so
  the alert compares every kind's oldest age with the SLA this tower applies, not a copy;
- from JetStream, read-only: every durable's pending count on every domain stream (consumer
  list), and the DLQ's depth per consumer (its per-subject counts; a consumer's dead letters go
  to `crossdock.dlq.<durable>`).

Outbox backlog age is not here: each service exports its own `crossdock_outbox_oldest_age_seconds`
from its own database, which the tower cannot read; the dashboard's flows row shows that gauge.
A series whose label disappears (a durable deleted) is removed rather than left stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.control_tower import app
from services.control_tower.app import reconcile, workbench
from services.control_tower.domain.exceptions import KINDS, ExceptionKind
from services.control_tower.domain.flows import AGE_BUCKETS, FlowSummary
from services.control_tower.domain.reconciliation import RunRecord
from services.kit.streams import DLQ_STREAM, DLQ_SUBJECT_PREFIX, DOMAIN_STREAMS
from services.kit.uow import UnitsOfWork
from services.kit.workers import PollingWorker

log = logging.getLogger(__name__)

_LE = [*(f"{bound:g}" for bound in AGE_BUCKETS), "+Inf"]


class FlowGauges:
    """The gauges, registered once on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.items = Gauge(
            "crossdock_flow_items",
            "Items (orders, shipments, returns) in the flow.",
            ["flow"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "crossdock_flow_oldest_age_seconds",
            "How long the oldest item has been in the flow (0 when it is empty).",
            ["flow"],
            registry=r,
        )
        self.by_age = Gauge(
            "crossdock_flow_items_by_age",
            "Items in the flow whose age is at most `le` seconds (cumulative, like a histogram).",
            ["flow", "le"],
            registry=r,
        )
        self.sla = Gauge(
            "crossdock_flow_sla_seconds",
            "How long an item may stay in the flow before it is an SLA breach.",
            ["flow"],
            registry=r,
        )
        self.breaches = Gauge(
            "crossdock_flow_sla_breaches",
            "Items in the flow for longer than its SLA.",
            ["flow"],
            registry=r,
        )
        self.dlq_depth = Gauge(
            "crossdock_dlq_depth",
            "Dead letters waiting in the DLQ stream, by the durable consumer that wrote them.",
            ["consumer"],
            registry=r,
        )
        self.consumer_pending = Gauge(
            "crossdock_consumer_pending",
            "Stream messages not yet delivered to each durable consumer of the mesh.",
            ["consumer", "stream"],
            registry=r,
        )
        self.exceptions_open = Gauge(
            "crossdock_exceptions_open",
            "Open exceptions in the workbench, by kind and owner service.",
            ["kind", "owner"],
            registry=r,
        )
        self.exceptions_oldest_age = Gauge(
            "crossdock_exceptions_oldest_age_seconds",
            "How long the oldest open exception of the kind has been open (0 when none).",
            ["kind"],
            registry=r,
        )
        self.exceptions_sla = Gauge(
            "crossdock_exceptions_sla_seconds",
            "How long an exception of the kind may stay open before it is past its SLA (the "
            "tower's configured SLA).",
            ["kind"],
            registry=r,
        )
        self.findings_open = Gauge(
            "crossdock_reconciliation_findings_open",
            "Open reconciliation findings (drifts between owners), by check.",
            ["check"],
            registry=r,
        )
        self.last_run = Gauge(
            "crossdock_reconciliation_last_run_timestamp_seconds",
            "When the check's latest run finished (epoch seconds; absent before its first run).",
            ["check"],
            registry=r,
        )
        self.last_run_duration = Gauge(
            "crossdock_reconciliation_last_run_duration_seconds",
            "How long the check's latest run took.",
            ["check"],
            registry=r,
        )
        self.runs = Counter(
            "crossdock_reconciliation_runs",
            "Reconciliation runs this replica made, by check and outcome (ok, failed).",
            ["check", "outcome"],
            registry=r,
        )
        self._exception_labels: set[tuple[str, str]] = set()
        self._pending_labels: set[tuple[str, str]] = set()
        self._dlq_labels: set[str] = set()

    def set_flows(self, summaries: Iterable[FlowSummary]) -> None:
        for summary in summaries:
            name = summary.flow.name
            self.items.labels(name).set(summary.items)
            self.oldest_age.labels(name).set(summary.oldest_age_seconds)
            self.sla.labels(name).set(summary.sla_seconds)
            self.breaches.labels(name).set(summary.breaches)
            for le, count in zip(_LE, [*summary.at_most, summary.items], strict=True):
                self.by_age.labels(name, le).set(count)

    def set_exceptions(self, found: workbench.OpenExceptions) -> None:
        """Every kind's series (each fixed owner's too), 0 when none is open, so an alert sees
        the fall to zero; a dead letter's owner series stays once seen, at 0 when none."""
        counts = {(kind.label, owner): n for (kind, owner), n in found.counts.items()}
        fixed = {(kind.label, KINDS[kind].owner) for kind in ExceptionKind if KINDS[kind].owner}
        for labels in fixed | self._exception_labels | counts.keys():
            self.exceptions_open.labels(*labels).set(counts.get(labels, 0))
        self._exception_labels |= counts.keys()
        for kind in ExceptionKind:
            self.exceptions_oldest_age.labels(kind.label).set(found.oldest_age.get(kind, 0.0))

    def set_reconciliation(self, state: reconcile.GaugeState, checks: Iterable[str]) -> None:
        """Every check's open findings (0 when none); a run's time once it has one."""
        for check in {*checks, *state.open_findings}:
            self.findings_open.labels(check).set(state.open_findings.get(check, 0))
        for check, run in state.last_runs.items():
            self.last_run.labels(check).set(run.finished_at)
            self.last_run_duration.labels(check).set(run.duration)

    def count_run(self, run: RunRecord) -> None:
        self.runs.labels(run.check, "ok" if run.ok else "failed").inc()

    def set_exception_slas(self, settings: workbench.ExceptionSettings) -> None:
        """Every kind's SLA, also of kinds with nothing open: without it the alert on the kind's
        oldest age has nothing to compare with."""
        for kind in ExceptionKind:
            self.exceptions_sla.labels(kind.label).set(settings.sla_of(kind))

    def set_pending(self, pending: dict[tuple[str, str], int]) -> None:
        for consumer, stream in self._pending_labels - pending.keys():
            self.consumer_pending.remove(consumer, stream)
        for (consumer, stream), count in pending.items():
            self.consumer_pending.labels(consumer, stream).set(count)
        self._pending_labels = set(pending)

    def set_dlq(self, depth: dict[str, int]) -> None:
        for consumer in self._dlq_labels - depth.keys():
            self.dlq_depth.remove(consumer)
        for consumer, count in depth.items():
            self.dlq_depth.labels(consumer).set(count)
        self._dlq_labels = set(depth)


async def jetstream_state(
    js: JetStreamContext,
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """(durable, stream) → pending, and durable → dead letters (0 for every durable without)."""
    pending: dict[tuple[str, str], int] = {}
    for stream in sorted(DOMAIN_STREAMS.values()):
        for info in await js.consumers_info(stream):
            if info.name:
                pending[(info.name, stream)] = int(info.num_pending or 0)
    depth = {consumer: 0 for consumer, _ in pending}
    prefix = DLQ_SUBJECT_PREFIX + "."
    dlq = await js.stream_info(DLQ_STREAM, subjects_filter=prefix + ">")
    for subject, count in (dlq.state.subjects or {}).items():
        depth[subject.removeprefix(prefix)] = int(count)
    return pending, depth


class FlowGaugeWorker:
    """Recomputes the gauges every `interval` seconds (a kit PollingWorker)."""

    def __init__(
        self,
        units: UnitsOfWork,
        js: JetStreamContext,
        gauges: FlowGauges,
        settings: app.FlowSettings,
        *,
        interval: float,
        exception_settings: workbench.ExceptionSettings | None = None,
        reconcile_checks: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The SLAs are read once at start: set now, before the first refresh.
        gauges.set_exception_slas(exception_settings or workbench.ExceptionSettings())
        self._units = units
        self._js = js
        self._gauges = gauges
        self._settings = settings
        self._clock = clock
        self._checks = sorted(reconcile_checks)
        self.worker = PollingWorker("control-tower-flow-gauges", self.run_once, interval=interval)

    async def run_once(self) -> int:
        """One refresh; 0, so the worker sleeps its interval between refreshes."""
        summaries = await self._units.run(app.list_flows, self._settings, self._clock())
        self._gauges.set_flows(summaries)
        self._gauges.set_exceptions(await self._units.run(workbench.open_exceptions, self._clock()))
        state = await self._units.run(reconcile.gauge_state)
        self._gauges.set_reconciliation(state, self._checks)
        pending, depth = await jetstream_state(self._js)
        self._gauges.set_pending(pending)
        self._gauges.set_dlq(depth)
        return 0

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
