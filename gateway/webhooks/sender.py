"""The sender: claim due deliveries, sign and POST them, record every attempt.

One loop per gateway replica, a kit PollingWorker; replicas share the work through the claim leases
(delivery_store.claim_due, on the kit's lease_due). A POST has a timeout, follows no redirects and
never reads more of the answer than its status line. Destinations on private, loopback or link-local
addresses are refused unless `allow_private_networks` (local runs, tests): a partner must not be
able to make the gateway call into the cluster (OWASP API7, SSRF). The check resolves the host
before the POST; a DNS answer that changes between the check and the connect is not covered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from gateway.webhooks.delivery_store import AttemptResult, Due, RetryPolicy, claim_due, record
from gateway.webhooks.payload import (
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)
from services.kit.db import Database
from services.kit.workers import PollingWorker

USER_AGENT = "crossdock-webhooks/1"


class DestinationRefused(Exception):
    """The endpoint resolves to an address deliveries may not go to."""


@dataclass(frozen=True)
class SenderSettings:
    timeout_seconds: float = 10.0
    poll_interval_seconds: float = 1.0
    batch_size: int = 50
    concurrency: int = 16
    allow_private_networks: bool = False

    @property
    def lease_seconds(self) -> float:
        # Longer than any POST of a batch can take, so a live claim is never taken over.
        return self.timeout_seconds * 2 + 30.0


async def check_destination(url: str) -> None:
    """Raise DestinationRefused unless every address of the URL's host is public."""
    try:
        # yarl is the parser aiohttp connects with: the check sees the host the POST will.
        parsed = URL(url)
        host, port = parsed.host, parsed.port
    except ValueError as error:  # e.g. a port that is not a number
        raise DestinationRefused(f"invalid URL: {error}") from None
    if not host:
        raise DestinationRefused("the URL names no host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        port = port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parsed.raw_host, port)
        except OSError as error:
            raise DestinationRefused(f"cannot resolve {host}: {error.strerror}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not address.is_global:
            raise DestinationRefused(f"{host} resolves to a non-public address ({address})")


class WebhookSender:
    def __init__(
        self,
        db: Database,
        policy: RetryPolicy,
        settings: SenderSettings | None = None,
    ) -> None:
        self._db = db
        self._policy = policy
        self._settings = settings or SenderSettings()
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(self._settings.concurrency)
        self.worker = PollingWorker(
            "webhook-sender", self._pass, interval=self._settings.poll_interval_seconds
        )

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        """Finish the batch in hand (its attempts are recorded), then close the HTTP session."""
        await self.worker.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        # Opened on the first POST, inside the running loop, and kept for the sender's life.
        # The timeout bounds the connect (the wait for a free pooled connection included) and
        # each read; there is no total (aiohttp's default is 300 s).
        seconds = self._settings.timeout_seconds
        timeout = aiohttp.ClientTimeout(
            total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
        )
        # No cookie jar: a partner's endpoint must not be able to set state that later POSTs
        # carry back.
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def _pass(self) -> int:
        sent = await self.run_once()
        # A short batch took every due delivery: wait the poll interval before claiming again.
        return sent if sent >= self._settings.batch_size else 0

    async def run_once(self) -> int:
        """Claim, POST and record one batch; returns how many deliveries were attempted."""
        settings = self._settings
        claimed = await self._db.run(
            claim_due, time.time(), settings.batch_size, settings.lease_seconds
        )
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._send(due) for due in claimed))
        await self._db.run(record, results, self._policy, time.time())
        return len(claimed)

    async def _send(self, due: Due) -> AttemptResult:
        async with self._limit:
            attempted_at = time.time()
            started = time.perf_counter()
            status_code, error = 0, ""
            try:
                if not self._settings.allow_private_networks:
                    await check_destination(due.url)
                timestamp = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature_header(due.secrets, timestamp, due.body),
                    DELIVERY_ID_HEADER: due.delivery_id,
                    EVENT_TYPE_HEADER: due.event_type,
                }
                session = self._session or self._open_session()
                # Leaving the block without reading the body closes the connection if the body
                # has not fully arrived: only the status line and headers are waited for.
                async with session.post(
                    due.url, data=due.body, headers=headers, allow_redirects=False
                ) as response:
                    status_code = response.status
                if not 200 <= status_code < 300:
                    error = f"the endpoint answered HTTP {status_code}"
            except DestinationRefused as refused:
                error = str(refused)
            except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors too
                error = f"no answer within {self._settings.timeout_seconds:g} s"
            except aiohttp.ClientError as failure:
                error = f"{type(failure).__name__}: {failure}"[:500]
            return AttemptResult(
                due.delivery_id,
                due.subscription_id,
                due.attempt_number,
                attempted_at,
                status_code,
                error,
                time.perf_counter() - started,
            )
