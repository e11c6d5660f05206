"""The sandbox carrier as its own process: a stand-in for a remote carrier's API and its webhooks.

    python -m tools.sandbox_carrier --port 8086 --push-url http://127.0.0.1:8080/v1/carriers/sandbox/webhooks
        [--time-scale 14400] [--push-interval 0.5] [--seed 0] [--exception-rate 0.05]
        [--return-rate 0.01] [--duplicate-webhook-rate 0] [--late-webhook-rate 0]
        [--label-delay 0] [--no-dedupe] [--push-concurrency 16] [--journal sandbox-carrier.jsonl]
        (the webhook secret comes from $CROSSDOCK_SANDBOX_CARRIER_WEBHOOK_SECRET)

It lives in tools/, like the warehouse simulator, because it plays someone else's system: its
scan generation, label rendering and pushes are what a real carrier spends, so running it in its
own process keeps that CPU out of carrier-adapter's. It serves the sandbox simulation
(`SandboxConnector`) over the HTTP API of `sandbox.api`, and its pusher (`SandboxPusher`) POSTs
each parcel's new scans as signed webhooks to --push-url (the gateway's carrier route, the path
a real carrier's pushes take), several at a time like a carrier's notification service; a failed
push is retried on the next tick. carrier-adapter reaches it through a sandbox account whose
ENDPOINT names this server (`crossdock run --sandbox-process`, and `make bench-lifecycle`).

Like a carrier's database, its parcels outlive a restart: each booking and void is appended to
--journal and replayed at start (labels are deterministic from the key, so replaying restores
the same stories at the same times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.carrier_adapter.adapters.carriers.sandbox import api, webhooks
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.sandbox.pusher import SandboxPusher
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.reliability.clock import Clock, SystemClock
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    UnknownService,
    UnsupportedOperation,
)
from services.carrier_adapter.domain.model import BookedLabel, CancelRequest
from services.kit import event_loop, gc_policy
from services.kit.http_server import HttpServer

log = logging.getLogger("sandbox_carrier")

SECRET_ENV = "CROSSDOCK_SANDBOX_CARRIER_WEBHOOK_SECRET"
Handler = Callable[[Request], Awaitable[JSONResponse]]


class Journal:
    """Bookings and voids, one JSON object a line, so a restart replays the same parcels."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def replay(self, connector: SandboxConnector) -> int:
        if self._path is None or not self._path.exists():
            return 0
        bookings: list[dict[str, Any]] = []
        voided: dict[str, datetime] = {}
        for line in self._path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry["op"] == "book":
                bookings.append(entry)
            else:
                voided[entry["tracking_number"]] = datetime.fromisoformat(entry["at"])
        for entry in bookings:
            label = api.label_from_json(entry["label"])
            request = api.label_request_from_json(entry["request"])
            connector.restore(label, request, voided.get(label.tracking_number))
        return len(bookings)

    def append(self, entry: dict[str, Any]) -> None:
        if self._path is None:
            return
        with self._path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")


def create_app(connector: SandboxConnector, journal: Journal, clock: Clock) -> Starlette:
    booked: set[str] = set(connector.live_tracking_numbers())

    async def rates(request: Request) -> JSONResponse:
        quotes = await connector.rate(api.rate_request_from_json(await request.json()))
        return JSONResponse({"quotes": [api.quote_to_json(quote) for quote in quotes]})

    async def labels(request: Request) -> JSONResponse:
        body = await request.json()
        label = await connector.book_label(api.label_request_from_json(body))
        answer = api.label_to_json(label)
        if label.tracking_number not in booked:  # a replayed key answers, and is not journaled
            booked.add(label.tracking_number)
            journal.append({"op": "book", "request": body, "label": answer})
        return JSONResponse(answer)

    async def find(request: Request) -> JSONResponse:
        """By our key (a carrier's search by customer reference), or every label booked in
        [booked_after, booked_before) a page at a time (its search by date)."""
        params = request.query_params
        key = params.get("idempotency_key")
        if key is not None:
            found = connector.find_labels(key)
            return JSONResponse({"labels": [_found(label, voided) for label, voided in found]})
        since = _instant_param(params.get("booked_after"), datetime.min.replace(tzinfo=UTC))
        until = _instant_param(params.get("booked_before"), datetime.max.replace(tzinfo=UTC))
        size = min(int(params.get("page_size") or 100), 1000)
        start = int(params.get("page_token") or 0)
        booked = connector.labels_booked(since, until)
        page = booked[start : start + size]
        more = start + size < len(booked)
        return JSONResponse(
            {
                "labels": [_found(label, voided) for label, voided in page],
                "next_page_token": str(start + size) if more else "",
            }
        )

    async def void(request: Request) -> JSONResponse:
        number = request.path_params["tracking_number"]
        await connector.cancel_label(CancelRequest(number))
        journal.append({"op": "void", "tracking_number": number, "at": clock.now().isoformat()})
        return JSONResponse({})

    async def tracking(request: Request) -> JSONResponse:
        scans = connector.scans_due(request.path_params["tracking_number"], clock.now())
        return JSONResponse({"scans": webhooks.scans_to_json(scans)})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/rates", _refusals(rates), methods=["POST"]),
            Route("/v1/labels", _refusals(labels), methods=["POST"]),
            Route("/v1/labels", _refusals(find), methods=["GET"]),
            Route("/v1/labels/{tracking_number}/void", _refusals(void), methods=["POST"]),
            Route("/v1/tracking/{tracking_number}", _refusals(tracking), methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _refusals(handler: Handler) -> Handler:
    """The carrier's refusals as 4xx {"error", "detail"} (sandbox.api), like a carrier's API."""

    async def guarded(request: Request) -> JSONResponse:
        try:
            return await handler(request)
        except UnknownService as error:
            detail = error.metadata.get("service_code", "")
            return _problem(400, api.ERROR_UNKNOWN_SERVICE, detail)
        except UnsupportedOperation as error:
            detail = error.metadata.get("operation", "")
            return _problem(400, api.ERROR_UNSUPPORTED, detail)
        except CarrierRejected as error:
            status = 404 if "unknown tracking number" in str(error) else 409
            return _problem(status, api.ERROR_REJECTED, "; ".join(error.carrier_messages))
        except (ValueError, KeyError, TypeError) as error:
            return _problem(400, api.ERROR_REJECTED, f"malformed request: {error}")

    return guarded


def _found(label: BookedLabel, voided: bool) -> dict[str, Any]:
    return {"label": api.label_to_json(label), "voided": voided}


def _instant_param(raw: str | None, default: datetime) -> datetime:
    if not raw:
        return default
    instant = datetime.fromisoformat(raw)
    if instant.tzinfo is None:
        raise ValueError("instants must carry an offset")
    return instant


def _problem(status: int, kind: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


def _post_to(session: aiohttp.ClientSession, url: str) -> Callable[[dict[str, str], bytes], Any]:
    async def deliver(headers: dict[str, str], body: bytes) -> None:
        async with session.post(
            url,
            data=body,
            headers={**headers, "content-type": "application/json"},
            allow_redirects=False,
        ) as answer:
            await answer.read()  # the whole answer, so the connection goes back to the pool
        if not 200 <= answer.status < 300:  # kept by the pusher for its next tick
            raise RuntimeError(f"the push answered HTTP {answer.status}")

    return deliver


# A tick that takes longer than this is cut short (its pushes are kept for the next tick): one
# hung delivery must not stop every parcel's webhooks.
TICK_LIMIT_SECONDS = 60.0


async def _push_forever(pusher: SandboxPusher, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with asyncio.timeout(TICK_LIMIT_SECONDS):
                await pusher.run_once()
        except TimeoutError:
            log.warning("push tick took over %.0f s; its pushes go again", TICK_LIMIT_SECONDS)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if stop.is_set() or (task is not None and task.cancelling()):
                raise  # really cancelled: shutting down
            # A cancellation nobody asked this task for (an HTTP client's timeout leaking as
            # one): the pushes were kept; pushing stops only when the process does.
            log.exception("push tick cancelled from inside; its pushes go again")
        except Exception:
            log.exception("push tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _main(args: argparse.Namespace) -> None:
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise SystemExit(f"{SECRET_ENV} is required (the sandbox account's webhook secret)")
    clock = SystemClock()
    settings = SandboxSettings(
        webhook_secrets=(secret,),
        seed=args.seed,
        time_scale=args.time_scale,
        rates=LifecycleRates(exception=args.exception_rate, return_to_sender=args.return_rate),
        duplicate_webhook_rate=args.duplicate_webhook_rate,
        late_webhook_rate=args.late_webhook_rate,
        label_delay_seconds=args.label_delay,
        dedupe_bookings=not args.no_dedupe,
    )
    connector = SandboxConnector(
        args.account_id,
        settings,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
    )
    journal = Journal(Path(args.journal) if args.journal else None)
    restored = journal.replay(connector)
    server = HttpServer(create_app(connector, journal, clock), host=args.host, port=args.port)
    port = await server.start()
    gc_policy.settle_heap()
    log.info("sandbox carrier on %s:%s (%d parcels restored)", args.host, port, restored)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Each connect and read bounded at 10 s; at most --push-concurrency connections.
    timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0, sock_read=10.0)
    # Idle 4 s at most: under the gateway's (uvicorn's) 5 s keep-alive.
    pool = aiohttp.TCPConnector(limit=args.push_concurrency, keepalive_timeout=4.0)
    async with aiohttp.ClientSession(timeout=timeout, connector=pool) as session:
        pushing = None
        if args.push_url:
            deliver = _post_to(session, args.push_url)
            pusher = SandboxPusher(connector, deliver, clock, concurrency=args.push_concurrency)
            pushing = asyncio.create_task(_push_forever(pusher, args.push_interval, stop))
        await stop.wait()
        if pushing is not None:
            await pushing
    await server.stop()


def _rate(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1 (got {raw})")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086, help="API port (0 picks one)")
    parser.add_argument("--account-id", default="sandbox", help="carrier-adapter's account id")
    parser.add_argument("--push-url", default="", help="where to POST webhooks (unset: none)")
    parser.add_argument("--push-interval", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument("--push-concurrency", type=int, default=16, help="pushes in flight")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated s per real s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exception-rate", type=_rate, default=0.05)
    parser.add_argument("--return-rate", type=_rate, default=0.01)
    parser.add_argument("--duplicate-webhook-rate", type=_rate, default=0.0)
    parser.add_argument("--late-webhook-rate", type=_rate, default=0.0)
    parser.add_argument("--label-delay", type=float, default=0.0, help="seconds per booking")
    parser.add_argument(
        "--no-dedupe",
        action="store_true",
        help="a repeated idempotency key books another label (a carrier that does not dedupe)",
    )
    parser.add_argument("--journal", default="", help="file of bookings kept across restarts")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    event_loop.run(_main(args))


if __name__ == "__main__":
    main()
