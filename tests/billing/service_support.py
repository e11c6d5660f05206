"""Running billing for the integration tests, and the events it consumes.

`running_billing` builds the service exactly as `services.billing.main` does (same `setup`) on a
kit ServiceServer with a free port; tests talk to it through gRPC and JetStream only.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import order_events_pb2, shipment_events_pb2
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2
from nats.aio.client import Client as NATS

from services.billing.domain.ids import new_id
from services.billing.main import BillingConfig, setup
from services.kit.client import open_channel
from services.kit.events import dataschema_for, event_spec
from services.kit.ids import new_event_id
from services.kit.outbox import build_headers
from services.kit.server import ServiceServer

FAST = {
    "RELAY_POLL_INTERVAL_SECONDS": "0.2",
    "CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
    "CONSUMER_NAK_BASE_DELAY_SECONDS": "0.05",
    "CONSUMER_ACK_WAIT_SECONDS": "2",
    "CONSUMER_MAX_DELIVER": "50",
}


def billing_env(db_url: str, nats_url: str, **extra: str) -> dict[str, str]:
    values = {
        "DB_URL": db_url,
        "NATS_URL": nats_url,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "BIND_HOST": "127.0.0.1",
        **FAST,
        **extra,
    }
    return {f"CROSSDOCK_BILLING_{k}": v for k, v in values.items()}


@contextlib.asynccontextmanager
async def running_billing(
    db_url: str, nats_url: str, **extra: str
) -> AsyncIterator[svc_grpc.BillingServiceStub]:
    config = BillingConfig.from_env(billing_env(db_url, nats_url, **extra))
    server = ServiceServer.from_config(config)
    try:
        await setup(server, config)
        port = await server.start()
        channel = open_channel(f"127.0.0.1:{port}", default_timeout_seconds=10.0)
        try:
            yield svc_grpc.BillingServiceStub(channel)
        finally:
            await channel.close()
    finally:
        await server.shutdown()


def subprocess_env(db_url: str, nats_url: str) -> dict[str, str]:
    return {**os.environ, **billing_env(db_url, nats_url, CONSUMER_BATCH_SIZE="5")}


async def publish(nc: NATS, event: Any, aggregate_id: str, event_id: str | None = None) -> str:
    """Publish as the producer's relay would (CloudEvents headers, Nats-Msg-Id = ce-id)."""
    spec = event_spec(type(event))
    event_id = event_id or new_event_id()
    headers = build_headers(
        event_id=event_id,
        subject=spec.subject,
        source=f"crossdock/{spec.producer}",
        aggregate_id=aggregate_id,
        dataschema=dataschema_for(event.DESCRIPTOR.full_name),
        correlation_id=f"corr-{aggregate_id}",
        created_at=time.time(),
    )
    headers["Nats-Msg-Id"] = event_id
    await nc.jetstream().publish(spec.subject, event.SerializeToString(), headers=headers)
    return event_id


def eur(units: int, nanos: int = 0) -> common_pb2.Money:
    return common_pb2.Money(currency_code="EUR", units=units, nanos=nanos)


def order_placed(order_id: str, partner_id: str) -> order_events_pb2.OrderPlaced:
    """Two lines: SKU-A at 12.50, SKU-B at 0.10."""
    order = order_pb2.Order(
        order_id=order_id,
        partner_id=partner_id,
        customer=common_pb2.PartyRef(party_id="CUST-1", name="Ada"),
        currency_code="EUR",
        lines=[
            order_pb2.OrderLine(
                line_number=1, sku="SKU-A", quantity_ordered=4, unit_price=eur(12, 500_000_000)
            ),
            order_pb2.OrderLine(
                line_number=2, sku="SKU-B", quantity_ordered=10, unit_price=eur(0, 100_000_000)
            ),
        ],
    )
    return order_events_pb2.OrderPlaced(order=order)


def shipment(shipment_id: str, order_id: str, partner_id: str) -> shipment_pb2.Shipment:
    """Ships 2 x SKU-A and 3 x SKU-B in two packages."""
    return shipment_pb2.Shipment(
        shipment_id=shipment_id,
        order_id=order_id,
        partner_id=partner_id,
        carrier="dhl",
        packages=[
            shipment_pb2.Package(
                package_id="pkg-1",
                items=[
                    shipment_pb2.PackageItem(order_line_number=1, sku="SKU-A", quantity=2),
                    shipment_pb2.PackageItem(order_line_number=2, sku="SKU-B", quantity=1),
                ],
            ),
            shipment_pb2.Package(
                package_id="pkg-2",
                items=[shipment_pb2.PackageItem(order_line_number=2, sku="SKU-B", quantity=2)],
            ),
        ],
    )


def manifested(ship: shipment_pb2.Shipment, quote: common_pb2.Money) -> Any:
    return shipment_events_pb2.ShipmentManifested(shipment=ship, quoted_charge=quote)


def delivered(ship: shipment_pb2.Shipment, final: common_pb2.Money | None) -> Any:
    event = shipment_events_pb2.ShipmentDelivered(shipment=ship)
    if final is not None:
        event.final_charge.CopyFrom(final)
    return event


def ids(prefix: str) -> str:
    return new_id(prefix)
