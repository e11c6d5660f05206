"""Running the real carrier-adapter service in-process for the service tests.

`running_carrier_adapter` builds it exactly as `services.carrier_adapter.main` does (same
`setup`) on a kit ServiceServer bound to a free port, against a real database and nats-server,
with the sandbox carrier as its one account. Tests talk to it through gRPC and read its events
from JetStream; its metrics registry says how often the carrier was really asked to book.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from crossdock.carrier.v1 import carrier_pb2, carrier_service_pb2
from crossdock.carrier.v1 import carrier_service_pb2_grpc as svc_grpc
from crossdock.common.v1 import common_pb2
from google.api import httpbody_pb2
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from services.carrier_adapter.carriers.sandbox import webhooks
from services.carrier_adapter.domain.normalize import RawScan
from services.carrier_adapter.main import CarrierAdapterConfig, setup
from services.kit.client import open_channel
from services.kit.metrics import ServiceMetrics
from services.kit.server import ServiceServer

T = TypeVar("T")

PREFIX = "CROSSDOCK_CARRIER_ADAPTER_"
WEBHOOK_SECRET = "whsec-sandbox-test-secret"
TRACKING_UPDATED = "crossdock.carrier.tracking_updated.v1"
CODE_UNMAPPED = "crossdock.carrier.code_unmapped.v1"


@dataclass
class CarrierAdapter:
    stub: svc_grpc.CarrierAdapterServiceStub
    server: ServiceServer
    metrics: ServiceMetrics

    def label_bookings(self) -> float:
        """Successful book_label calls this replica made to the carrier."""
        value = self.metrics.registry.get_sample_value(
            "crossdock_carrier_calls_total",
            {"carrier": "sandbox", "operation": "book_label", "outcome": "ok"},
        )
        return value or 0.0


def service_env(db_url: str, nats_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "DB_URL": db_url,
        "NATS_URL": nats_url,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "BIND_HOST": "127.0.0.1",
        "RELAY_POLL_INTERVAL_SECONDS": "0.2",
        "PAYLOAD_FLUSH_INTERVAL_SECONDS": "0.1",
        "SANDBOX_PUSH": "off",
        "CARRIER_ACCOUNTS": "sandbox",
        "ACCOUNT_SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ACCOUNT_SANDBOX_SEED": "7",
        "ACCOUNT_SANDBOX_EXCEPTION_RATE": "0",
        "ACCOUNT_SANDBOX_RETURN_RATE": "0",
    }
    env.update(overrides)
    return {f"{PREFIX}{name}": value for name, value in env.items()}


@contextlib.asynccontextmanager
async def running_carrier_adapter(env: Mapping[str, str]) -> AsyncIterator[CarrierAdapter]:
    config = CarrierAdapterConfig.from_env(env)
    metrics = ServiceMetrics(config.service)
    server = ServiceServer.from_config(config, metrics=metrics)
    try:
        await setup(server, config, env)
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield CarrierAdapter(svc_grpc.CarrierAdapterServiceStub(channel), server, metrics)
        finally:
            await channel.close()
    finally:
        await server.shutdown()


def address(city: str, postal_code: str, region: str) -> common_pb2.Address:
    return common_pb2.Address(
        name="Dock 1",
        lines=["1 Dock Rd"],
        city=city,
        postal_code=postal_code,
        region=region,
        country_code="US",
    )


ORIGIN = address("Atlanta", "30301", "GA")
DESTINATION = address("Beverly Hills", "90210", "CA")
BOX = carrier_pb2.Parcel(
    weight=common_pb2.Weight(value=2.5, unit=common_pb2.WEIGHT_UNIT_KILOGRAM),
    dimensions=common_pb2.Dimensions(
        length=30, width=20, height=15, unit=common_pb2.DIMENSION_UNIT_CENTIMETER
    ),
    reference="pkg_1",
)


def rates_request(**fields: Any) -> carrier_service_pb2.GetRatesRequest:
    return carrier_service_pb2.GetRatesRequest(
        ship_from=ORIGIN, ship_to=DESTINATION, parcels=[BOX], **fields
    )


def book_request(key: str, rate_id: str) -> carrier_service_pb2.BookLabelRequest:
    return carrier_service_pb2.BookLabelRequest(
        idempotency_key=key,
        rate_id=rate_id,
        ship_from=ORIGIN,
        ship_to=DESTINATION,
        parcels=[BOX],
        label_format=carrier_pb2.LABEL_FORMAT_PDF,
        reference="ORD-1",
    )


def scan(code: str, minutes: int, reason: str = "") -> RawScan:
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return RawScan(code, f"scan {code}", at, incident_code=reason)


def sandbox_webhook(
    tracking_number: str, scans: list[RawScan], *, secret: str = WEBHOOK_SECRET
) -> carrier_service_pb2.IngestWebhookRequest:
    """A push in the sandbox carrier's own signed format, as its notification service sends it."""
    now = datetime.now(UTC)
    event_id = f"evt_sbx_{tracking_number}_{len(scans)}_{scans[-1].status_code}"
    body = webhooks.encode_push(event_id, tracking_number, scans, now)
    headers = webhooks.sign(body, [secret], event_id, now)
    return carrier_service_pb2.IngestWebhookRequest(
        carrier="sandbox",
        body=httpbody_pb2.HttpBody(content_type="application/json", data=body),
        signature_headers=headers,
    )


async def wait_for(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 20.0
) -> T:
    """Poll until `done(value)`: a bounded wait for an asynchronous effect (the relay), not a
    timing assertion; the timeout only stops a broken flow from hanging."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def stream_messages(nc: NATS, subject: str, stream: str = "CARRIER") -> list[Any]:
    """Every stored message of `subject` in `stream`, in stream order."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    found: list[Any] = []
    seq = info.state.first_seq
    while seq and seq <= info.state.last_seq:
        with contextlib.suppress(NotFoundError):
            message = await js.get_msg(stream, seq)
            if message.subject == subject:
                found.append(message)
        seq += 1
    return found
