"""The chaos run's workload: what a partner does over REST, open loop, whatever the mesh answers.

Orders arrive at a fixed rate through the gateway's replicas in turn (`POST /v1/orders` with an
Idempotency-Key).
A refused or unanswered POST is retried with the SAME key until it is accepted or the run ends,
as a partner would: an order the gateway accepted twice would show as two orders for one key.
A share of the accepted orders is cancelled after a random delay; a share of the completed ones
gets a return. Every outcome is logged with its time, so the report can tell what the workload
did, and the completions over time give the plot its curve.

The rate does not wait for the mesh (open loop): a fault that slows the mesh shows as a backlog
that drains afterwards, not as a workload that politely slowed down.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from localmesh.demo import STATUS_PREFIX, sample_order

# An order in EXCEPTION is not done: an operator or a retry still moves it on.
TERMINAL_STATUSES = frozenset({"COMPLETED", "CANCELLED"})

# A POST whose answer is one of these is worth retrying with the same key; anything else in
# 4xx is the workload's own mistake (or a cancel that came too late) and is logged as such.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class WorkloadSettings:
    rate_per_second: float = 5.0
    duration_seconds: float = 60.0
    # Share of accepted orders cancelled, after a delay drawn from [0, cancel_delay_max].
    cancel_share: float = 0.1
    cancel_delay_max_seconds: float = 5.0
    # Share of completed orders that get a return of their first line.
    return_share: float = 0.1
    # Each REST call's timeout, and the pause before a retry.
    request_timeout_seconds: float = 10.0
    retry_pause_seconds: float = 0.5
    # How often outstanding orders are polled for their status.
    poll_interval_seconds: float = 2.0
    seed: int = 0


@dataclass
class Outcome:
    """One REST call the workload made: when, what, and how it ended ("ok", an HTTP status,
    or the transport error's class name)."""

    at: float
    kind: str  # order | cancel | return
    result: str
    order_id: str = ""


@dataclass
class WorkloadLog:
    started: float = 0.0
    ended: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    # order id → its Idempotency-Key (one key per order the workload meant to place).
    accepted: dict[str, str] = field(default_factory=dict)
    # idempotency key → order ids the gateway answered with for it (more than one: a duplicate).
    answers: dict[str, set[str]] = field(default_factory=dict)
    # Keys never accepted before the run ended (the partner gave up): not orders of the mesh.
    abandoned: list[str] = field(default_factory=list)
    # order id → (status, when it was first seen final).
    final: dict[str, tuple[str, float]] = field(default_factory=dict)
    cancels_accepted: set[str] = field(default_factory=set)
    returns_created: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        tally = Counter((o.kind, o.result) for o in self.outcomes)
        return {
            "duration_seconds": round(self.ended - self.started, 1),
            "orders_accepted": len(self.accepted),
            "orders_abandoned": len(self.abandoned),
            "orders_final": Counter(status for status, _ in self.final.values()),
            "cancels_accepted": len(self.cancels_accepted),
            "returns_created": len(self.returns_created),
            "calls": {f"{kind} {result}": count for (kind, result), count in sorted(tally.items())},
            "keys_answered_with_two_orders": sorted(
                key for key, ids in self.answers.items() if len(ids) > 1
            ),
        }

    def completions(self) -> list[float]:
        """When each order was first seen COMPLETED (seconds since the start), sorted."""
        return sorted(
            t - self.started for status, t in self.final.values() if status == "COMPLETED"
        )


class Workload:
    """Runs `settings` against the gateway's replicas with one partner key.

    Calls go to the replicas in turn, as a partner's load balancer would send them, so a retry
    after a replica died (same Idempotency-Key) lands on another one."""

    def __init__(
        self, gateway_urls: Sequence[str], api_key: str, settings: WorkloadSettings
    ) -> None:
        if not gateway_urls:
            raise ValueError("the workload needs at least one gateway URL")
        self.urls = [url.rstrip("/") for url in gateway_urls]
        self._next_url = 0
        self.key = api_key
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.log = WorkloadLog()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def run(self) -> WorkloadLog:
        """Place orders for the configured duration; return when every call it began ended."""
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_seconds)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            self._session = session
            self.log.started = time.time()
            poller = asyncio.create_task(self._poll_forever())
            interval = 1.0 / self.settings.rate_per_second
            planned = time.monotonic()
            end = planned + self.settings.duration_seconds
            number = 0
            while planned < end:
                await asyncio.sleep(max(0.0, planned - time.monotonic()))
                number += 1
                self._spawn(self._place(number))
                planned += interval
            self._stop.set()
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            poller.cancel()
            self.log.ended = time.time()
        return self.log

    async def settle(self, timeout_seconds: float) -> None:
        """After the run: poll until every accepted order is final or the timeout passes."""
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_seconds)
        headers = {"Authorization": f"Bearer {self.key}"}
        deadline = time.monotonic() + timeout_seconds
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            self._session = session
            while time.monotonic() < deadline and self._outstanding():
                await self._poll_once()
                await asyncio.sleep(self.settings.poll_interval_seconds)

    # -- calls ------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, number: int) -> None:
        key = str(uuid.UUID(int=self.rng.getrandbits(128)))
        body = sample_order(f"CHAOS-{self.settings.seed}-{number}", self.rng)
        cancel = self.rng.random() < self.settings.cancel_share
        cancel_after = self.rng.uniform(0, self.settings.cancel_delay_max_seconds)
        while True:
            result, answer = await self._call("POST", "/v1/orders", body, key)
            self._record("order", result, answer_order_id(answer))
            if result == "ok":
                order_id = answer_order_id(answer)
                self.log.accepted[order_id] = key
                self.log.answers.setdefault(key, set()).add(order_id)
                if cancel:
                    await asyncio.sleep(cancel_after)
                    await self._cancel(order_id)
                return
            if not retryable(result) or self._stop.is_set():
                self.log.abandoned.append(key)
                return
            await asyncio.sleep(self.settings.retry_pause_seconds)

    async def _cancel(self, order_id: str) -> None:
        body = {"reason": "customer changed their mind"}
        key = str(uuid.uuid4())
        for _attempt in range(20):
            result, _ = await self._call("POST", f"/v1/orders/{order_id}:cancel", body, key)
            self._record("cancel", result, order_id)
            if result == "ok":
                self.log.cancels_accepted.add(order_id)
                return
            if not retryable(result):
                return  # e.g. 409: the order went too far to cancel; the mesh said why
            await asyncio.sleep(self.settings.retry_pause_seconds)

    async def _return(self, order_id: str, order: dict[str, Any]) -> None:
        lines = order.get("lines") or []
        if not lines:
            return
        first = lines[0]
        body = {
            "lines": [
                {
                    "orderLineNumber": first.get("lineNumber", 1),
                    "quantity": "1",
                    "disposition": "RETURN_DISPOSITION_RESTOCK",
                    "reason": "DAMAGED",
                }
            ]
        }
        key = str(uuid.uuid4())
        for _attempt in range(20):
            path = f"/v1/orders/{order_id}/returns"
            result, _ = await self._call("POST", path, body, key)
            self._record("return", result, order_id)
            if result == "ok":
                self.log.returns_created.add(order_id)
                return
            if not retryable(result):
                return
            await asyncio.sleep(self.settings.retry_pause_seconds)

    async def _call(
        self, method: str, path: str, body: Any, key: str | None
    ) -> tuple[str, dict[str, Any]]:
        headers = {"Idempotency-Key": key} if key else {}
        url = self.urls[self._next_url % len(self.urls)]
        self._next_url += 1
        try:
            request = self._session.request(method, url + path, json=body, headers=headers)
            async with request as answer:
                payload = await answer.json(content_type=None) if answer.content_length else {}
                if 200 <= answer.status < 300:
                    return "ok", payload or {}
                return str(answer.status), payload or {}
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            return type(error).__name__, {}

    def _record(self, kind: str, result: str, order_id: str) -> None:
        self.log.outcomes.append(Outcome(time.time(), kind, result, order_id))

    # -- polling ----------------------------------------------------------------------------

    def _outstanding(self) -> list[str]:
        return [order_id for order_id in self.log.accepted if order_id not in self.log.final]

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_seconds)
            await self._poll_once()

    async def _poll_once(self) -> None:
        pending = self._outstanding()
        for start in range(0, len(pending), 16):
            batch = pending[start : start + 16]
            answers = await asyncio.gather(
                *(self._call("GET", f"/v1/orders/{order_id}", None, None) for order_id in batch)
            )
            for order_id, (result, payload) in zip(batch, answers, strict=True):
                if result != "ok":
                    continue
                order = payload.get("order", {})
                status = str(order.get("status", "")).removeprefix(STATUS_PREFIX)
                if status in TERMINAL_STATUSES:
                    self.log.final[order_id] = (status, time.time())
                    wants_return = self.rng.random() < self.settings.return_share
                    if status == "COMPLETED" and wants_return and not self._stop.is_set():
                        self._spawn(self._return(order_id, order))


def answer_order_id(answer: dict[str, Any]) -> str:
    order = answer.get("order")
    return str(order.get("orderId", "")) if isinstance(order, dict) else ""


def retryable(result: str) -> bool:
    """A transport error or a status a partner retries with the same key."""
    return not result.isdigit() or int(result) in RETRYABLE_STATUSES
