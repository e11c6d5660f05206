"""Pushes the sandbox's new scans as signed webhooks, like a carrier's notification service.

Each tick collects, per live parcel, the scans that have happened since the last push, encodes
them in the sandbox format, signs them at send time and hands them to `deliver` (an HTTP POST
to the service's webhook endpoint, or a direct call; see sandbox.wiring, which ticks
`run_once` on a kit PollingWorker). A failed delivery is kept and retried on the next tick:
at-least-once, as real carriers do. For e2e realism a push can be sent twice (duplicate) or
held back behind the parcel's next push (out of order).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.carrier_adapter.adapters.carriers.sandbox import webhooks
from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxConnector
from services.carrier_adapter.adapters.reliability.clock import Clock

__all__ = ["Push", "PushDelivery", "SandboxPusher"]

log = logging.getLogger(__name__)

# (headers, body) → delivered; raise to have the push retried on the next tick.
PushDelivery = Callable[[dict[str, str], bytes], Awaitable[None]]


@dataclass(frozen=True)
class Push:
    event_id: str
    tracking_number: str
    body: bytes


class SandboxPusher:
    def __init__(
        self,
        connector: SandboxConnector,
        deliver: PushDelivery,
        clock: Clock,
        *,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._connector = connector
        self._deliver = deliver
        self._clock = clock
        # Deliveries in flight at once; 1 sends in order, one after another.
        self._concurrency = concurrency
        self._rng = random.Random(f"{connector.settings.seed}:pusher")
        self._pushed_count: dict[str, int] = {}
        # Parcels whose whole story is pushed: skipped, so a tick costs what is still moving,
        # not every parcel ever booked.
        self._finished: set[str] = set()
        self._outbox: list[Push] = []
        self._held: list[Push] = []

    def collect(self) -> list[Push]:
        """New pushes for every scan that has happened since the last collect."""
        now = self._clock.now()
        pushes = []
        for number in self._connector.live_tracking_numbers():
            if number in self._finished:
                continue
            settled = self._connector.settled(number, now)
            scans = self._connector.scans_due(number, now)
            already = self._pushed_count.get(number, 0)
            if settled:
                self._finished.add(number)  # this collect pushes its last scans, if any
            if len(scans) <= already:
                continue
            fresh = scans[already:]
            self._pushed_count[number] = len(scans)
            final = (
                self._connector.final_charge(number)
                if any(s.status_code == "DLV" for s in fresh)
                else None
            )
            event_id = (
                "evt_sbx_"
                + hashlib.sha256(f"{number}:{already}:{len(scans)}".encode()).hexdigest()[:24]
            )
            body = webhooks.encode_push(event_id, number, fresh, now, final)
            pushes.append(Push(event_id, number, body))
        return pushes

    async def run_once(self) -> int:
        """Collect and deliver; returns how many deliveries succeeded."""
        settings = self._connector.settings
        released, self._held = self._held, []
        for push in self.collect():
            if self._rng.random() < settings.late_webhook_rate:
                self._held.append(push)  # goes out after this tick's newer pushes
                continue
            self._outbox.append(push)
            if self._rng.random() < settings.duplicate_webhook_rate:
                self._outbox.append(push)
        self._outbox.extend(released)
        pending, self._outbox = self._outbox, []
        if self._concurrency == 1:
            return sum([await self._send(push) for push in pending])
        slots = asyncio.Semaphore(self._concurrency)

        async def send(push: Push) -> int:
            async with slots:
                return await self._send(push)

        return sum(await asyncio.gather(*(send(push) for push in pending)))

    async def _send(self, push: Push) -> int:
        """Sign at send time and deliver; 1 if delivered, else 0 and kept for the next tick."""
        headers = webhooks.sign(
            push.body,
            self._connector.settings.webhook_secrets[:1],
            push.event_id,
            self._clock.now(),
        )
        try:
            await self._deliver(headers, push.body)
        except asyncio.CancelledError:
            # A tick cut short (its time limit, a shutdown, a client library's timeout that
            # surfaces as a cancellation): the push is not known delivered, so it is kept, or
            # that parcel's story would stop here for good.
            self._outbox.append(push)
            raise
        except Exception:
            log.warning("sandbox push %s failed; retrying next tick", push.event_id)
            self._outbox.append(push)
            return 0
        return 1
