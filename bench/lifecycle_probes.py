"""The measuring half of `make bench-lifecycle`: the open-loop REST driver, the event recorder,
the backlog probe and the process meter. Each watches the mesh from outside, as cheaply as it
can: a plain NATS subscription, one monitoring GET, one COUNT per database, /proc reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import nats
import psutil  # type: ignore[import-untyped]
from crossdock.events.v1 import billing_events_pb2, inventory_events_pb2, shipment_events_pb2
from nats.aio.msg import Msg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bench.lifecycle_stats import BacklogSample, EventTimes, planned_instants
from localmesh.demo import sample_order

__all__ = [
    "BacklogProbe",
    "EventRecorder",
    "OrderDriver",
    "ProcessMeter",
    "cpu_delta",
    "stuck_stages",
]

ORDER_ROUTE = "/v1/orders"


class OrderDriver:
    """Places orders through the partner REST API at a fixed rate, open loop.

    Each request is fired at its planned instant by its own task, whether or not earlier ones
    have been answered (the pool allows `connections` at once, far more than a healthy mesh
    needs); its latency counts from the planned instant, so a late send is charged to the
    measurement, not hidden. Bodies are the demo's sample orders (1-3 lines of the seeded
    items), from a seeded RNG, each with its own Idempotency-Key.
    """

    def __init__(
        self, gateway_url: str, api_key: str, *, connections: int = 512, seed: int = 14
    ) -> None:
        self._orders_url = gateway_url.rstrip("/") + ORDER_ROUTE
        self._api_key = api_key
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random(seed)
        self._sequence = 0
        self.attempts: list[dict[str, Any]] = []

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        # Opened in the running loop on the first order. Up to `connections` at once, all kept
        # alive; a request may wait for a free one without limit (that wait is part of its
        # latency), then has 60 s to connect and 60 s per read.
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._api_key}"},
            # Idle 4 s at most: under the gateway's (uvicorn's) 5 s keep-alive.
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=4.0),
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=60, sock_read=60),
        )
        return self._session

    async def offer(
        self, rate: float, seconds: float, on_accepted: Callable[[str], None], start_wall: float
    ) -> None:
        """Offer `rate` orders/s for `seconds` from `start_wall` (time.time() seconds); returns
        when the last answer is in. Accepted order ids go to `on_accepted` as they come."""
        loop = asyncio.get_running_loop()
        wall_offset = time.time() - loop.time()  # the same instants on the wall clock
        instants = planned_instants(rate, seconds, start_wall - wall_offset)
        pending: set[asyncio.Task[None]] = set()
        for planned in instants:
            delay = planned - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._sequence += 1
            body = sample_order(f"BENCH-{self._sequence:07d}", self._rng)
            attempt: dict[str, Any] = {"planned_at": planned + wall_offset}
            self.attempts.append(attempt)
            task = asyncio.create_task(self._place(body, planned, attempt, on_accepted))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    async def _place(
        self,
        body: dict[str, Any],
        planned: float,
        attempt: dict[str, Any],
        on_accepted: Callable[[str], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        attempt["lag"] = loop.time() - planned
        headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        session = self._session or self._open_session()
        try:
            async with session.post(self._orders_url, data=data, headers=headers) as answer:
                status, content = answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            attempt.update(status=0, latency=None, error=type(error).__name__)
            return
        attempt["latency"] = loop.time() - planned
        attempt["status"] = status
        if status == 201:
            order_id = json.loads(content)["order"]["orderId"]
            attempt["order_id"] = order_id
            on_accepted(order_id)
        else:
            attempt["error"] = content.decode("utf-8", errors="replace")[:200]


def _ce_time(msg: Msg) -> float:
    return datetime.fromisoformat((msg.headers or {})["ce-time"]).timestamp()


def _ce_subject(msg: Msg) -> str:
    return (msg.headers or {})["ce-subject"]


class EventRecorder:
    """Records when each lifecycle milestone was committed (the event's ce-time), keyed by the
    ids it carries, from a plain NATS subscription as the unrestricted admin user: the mesh's
    consumers and streams are untouched, the server only fans each message out once more."""

    SUBJECTS = (
        "crossdock.order.placed.v1",
        "crossdock.order.released.v1",
        "crossdock.order.completed.v1",
        "crossdock.inventory.reserved.v1",
        "crossdock.inventory.pick_completed.v1",
        "crossdock.shipment.manifested.v1",
        "crossdock.shipment.delivered.v1",
        "crossdock.billing.invoice_posted.v1",
    )

    def __init__(self) -> None:
        self.times = EventTimes()
        self.undecodable = 0
        self._nc: Any = None

    async def start(self, nats_url: str) -> None:
        self._nc = await nats.connect(nats_url)
        for subject in self.SUBJECTS:
            await self._nc.subscribe(
                subject,
                cb=self._on_message,
                pending_msgs_limit=2_000_000,
                pending_bytes_limit=2**31,
            )

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def _on_message(self, msg: Msg) -> None:
        try:
            self._record(msg)
        except (KeyError, ValueError):
            self.undecodable += 1

    def _record(self, msg: Msg) -> None:
        times, at, kind = self.times, _ce_time(msg), msg.subject.split(".")[2]
        if msg.subject.startswith("crossdock.order."):
            order = _ce_subject(msg)
            store = {"placed": times.placed, "released": times.released}.get(kind)
            if kind == "completed":
                times.completed.setdefault(order, at)
            elif store is not None:
                store.setdefault(order, at)
        elif kind == "reserved":
            reservation = inventory_events_pb2.StockReserved.FromString(msg.data).reservation
            times.reserved[reservation.reservation_id] = (reservation.order_id, at)
        elif kind == "pick_completed":
            pick = inventory_events_pb2.PickCompleted.FromString(msg.data)
            times.picked[pick.pick_id] = (pick.order_id, at)
        elif kind == "manifested":
            shipment = shipment_events_pb2.ShipmentManifested.FromString(msg.data).shipment
            times.manifested[shipment.shipment_id] = (shipment.order_id, shipment.pick_id, at)
        elif kind == "delivered":
            times.delivered.setdefault(_ce_subject(msg), at)
        elif kind == "invoice_posted":
            invoice = billing_events_pb2.InvoicePosted.FromString(msg.data).invoice
            times.invoiced.setdefault(invoice.shipment_id, at)


class BacklogProbe:
    """Consumer lag from nats-server's monitoring endpoint (/jsz, one GET for every consumer)
    and outbox backlog from each service's database (a COUNT on the pending partial index)."""

    def __init__(self, monitor_url: str, db_urls: Mapping[str, str]) -> None:
        self._jsz_url = monitor_url.rstrip("/") + "/jsz"
        self._http: aiohttp.ClientSession | None = None
        self._engines: dict[str, Engine] = {
            name: create_engine(url, poolclass=NullPool) for name, url in db_urls.items()
        }
        self._no_outbox: set[str] = set()
        self.last_lag: dict[str, int] = {}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        for engine in self._engines.values():
            engine.dispose()

    async def jetstream(self) -> tuple[int, int]:
        """(every durable consumer's pending + ack-pending, every stream's message count)."""
        if self._http is None:  # opened in the running loop, on the first sample
            timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=10)
            self._http = aiohttp.ClientSession(timeout=timeout)
        params = {"accounts": "true", "consumers": "true"}
        async with self._http.get(self._jsz_url, params=params) as answer:
            answer.raise_for_status()
            found = json.loads(await answer.read())
        lag, messages, per_consumer = 0, 0, {}
        for account in found.get("account_details", []):
            for stream in account.get("stream_detail", []):
                if stream.get("name") == "DLQ":
                    continue
                messages += int(stream.get("state", {}).get("messages", 0))
                for consumer in stream.get("consumer_detail", []) or []:
                    pending = int(consumer.get("num_pending", 0))
                    pending += int(consumer.get("num_ack_pending", 0))
                    per_consumer[f"{stream['name']}/{consumer['name']}"] = pending
                    lag += pending
        self.last_lag = per_consumer
        return lag, messages

    def outbox_backlog(self) -> int:
        """Rows every service's outbox has not published yet (blocking: run it in a thread)."""
        total = 0
        for name, engine in self._engines.items():
            if name in self._no_outbox:
                continue
            try:
                with engine.connect() as conn:
                    sql = text("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
                    total += int(conn.execute(sql).scalar_one())
            except Exception:
                self._no_outbox.add(name)  # e.g. the schema registry publishes no events
        return total

    async def sample(self, in_flight: int) -> tuple[BacklogSample, int]:
        """One sample, and the streams' total message count at that moment."""
        (lag, messages), outbox = await asyncio.gather(
            self.jetstream(), asyncio.to_thread(self.outbox_backlog)
        )
        return BacklogSample(time.time(), lag, outbox, in_flight), messages


class ProcessMeter:
    """CPU seconds and resident memory of each mesh process, from /proc through psutil.

    A process's CPU is its own user + system time plus its children's, live or reaped
    (PostgreSQL's per-connection backends are the postmaster's; `buf` runs are the registry's),
    except for `alone` processes, counted by themselves: the driver is every mesh process's
    parent. Its RSS is the largest single process of its tree (summing would count shared
    memory many times).
    """

    def __init__(self, pids: Mapping[str, int], *, alone: frozenset[str] = frozenset()) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._alone = alone
        self.peak_rss: dict[str, int] = {}

    def _tree(self, name: str) -> list[Any]:
        process = self._processes[name]
        if name in self._alone:
            return [process]
        return [process, *process.children(recursive=True)]

    def cpu_seconds(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for name in self._processes:
            with contextlib.suppress(psutil.Error):
                total = 0.0
                for member in self._tree(name):
                    with contextlib.suppress(psutil.Error):
                        times = member.cpu_times()
                        total += times.user + times.system
                if name not in self._alone:  # children it has reaped
                    times = self._processes[name].cpu_times()
                    total += times.children_user + times.children_system
                found[name] = total
        return found

    def sample_rss(self) -> None:
        for name in self._processes:
            with contextlib.suppress(psutil.Error):
                rss = max(member.memory_info().rss for member in self._tree(name))
                self.peak_rss[name] = max(rss, self.peak_rss.get(name, 0))

    def reset_peaks(self) -> None:
        self.peak_rss = {}

    @staticmethod
    def high_water_rss(pid: int) -> int:
        """The kernel's peak RSS of a process since it started (VmHWM), in bytes."""
        with contextlib.suppress(OSError, ValueError):
            for line in open(f"/proc/{pid}/status", encoding="ascii"):  # noqa: SIM115
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def stuck_stages(events: EventTimes, orders: Sequence[str]) -> dict[str, int]:
    """Where orders that never completed stopped, by the last milestone seen."""
    reserved = {order for order, _ in events.reserved.values()}
    picked = {order for order, _ in events.picked.values()}
    manifested = {order for order, _, _ in events.manifested.values()}
    delivered = {events.manifested[s][0] for s in events.delivered if s in events.manifested}
    invoiced = {events.manifested[s][0] for s in events.invoiced if s in events.manifested}
    stages: dict[str, int] = {}
    for order in orders:
        if order in events.completed:
            continue
        stage = "accepted"
        for name, seen in (
            ("placed", events.placed),
            ("reserved", reserved),
            ("released", events.released),
            ("picked", picked),
            ("label booked", manifested),
            ("delivered", delivered),
            ("invoiced", invoiced),
        ):
            if order in seen:
                stage = name
        stages[stage] = stages.get(stage, 0) + 1
    return stages


# Counters read from every crossdock service's /metrics at both ends of a window, so the report
# can say how many operations a lifecycle costs: the fixed cost of each (a gRPC call, a consumer
# or relay transaction, an HTTP request) is what per-lifecycle CPU is mostly made of.
OPERATION_COUNTERS = {
    "crossdock_grpc_requests_total": "method",
    "crossdock_consumer_batch_size_count": "consumer",
    "crossdock_consumer_batch_size_sum": "consumer",
    "crossdock_relay_batch_size_count": "",
    "crossdock_relay_batch_size_sum": "",
    "crossdock_http_requests_total": "method",
}


class OperationsProbe:
    """Operation counters summed over the mesh's services, by name and one label."""

    def __init__(self, metrics_urls: Mapping[str, str]) -> None:
        self._urls = dict(metrics_urls)

    async def read(self) -> dict[str, float]:
        """`{"<service> <counter>[ <label value>]": value}` for the counters above."""
        from prometheus_client.parser import text_string_to_metric_families

        timeout = aiohttp.ClientTimeout(total=10)
        found: dict[str, float] = {}
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for service, url in self._urls.items():
                try:
                    async with http.get(url) as answer:
                        exposition = await answer.text()
                except aiohttp.ClientError:
                    continue
                for family in text_string_to_metric_families(exposition):
                    for sample in family.samples:
                        label = OPERATION_COUNTERS.get(sample.name)
                        if label is None:
                            continue
                        key = f"{service} {sample.name}"
                        if label:
                            key += f" {sample.labels.get(label, '')}"
                        found[key] = found.get(key, 0.0) + sample.value
        return found


def operations_per_lifecycle(
    before: Mapping[str, float], after: Mapping[str, float], completed: int
) -> dict[str, float]:
    """Each counter's growth over the window, per completed lifecycle (zeros left out)."""
    if completed <= 0:
        return {}
    grown = {key: after[key] - before.get(key, 0.0) for key in after}
    return {key: round(value / completed, 2) for key, value in sorted(grown.items()) if value}
