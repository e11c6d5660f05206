"""The seeder writes the same histories into PostgreSQL databases (`--db-url service=URL`):
the services' store code runs unchanged there, and reads them back consistent across owners."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest

from bench.seed_orders import SEEDED_SERVICES, seed
from services.billing.adapters.store import repository as billing_store
from services.carrier_adapter.adapters.store import labels as label_store
from services.kit.db import Database
from services.order.adapters.store import repository as order_store
from services.order.domain.model import OrderStatus
from services.shipment.adapters.store import shipments as shipment_store
from services.shipment.domain.model import ShipmentStatus
from tests.fixtures.postgres import PostgresCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ORDERS = 150
PAGE = 500


@pytest.fixture
def urls(postgres_cluster: PostgresCluster) -> Iterator[dict[str, str]]:
    names = {spec.name: postgres_cluster.create_database() for spec in SEEDED_SERVICES}
    yield {service: postgres_cluster.url(name) for service, name in names.items()}
    for name in names.values():
        postgres_cluster.drop_database(name)


async def test_seeded_histories_agree_across_the_owners_databases(urls: dict[str, str]) -> None:
    report = await seed(urls, orders=ORDERS, seed_value=11, days=3, batch_size=64)
    assert report.orders == ORDERS
    dbs = {name: Database(url, service=name) for name, url in urls.items()}
    try:
        orders, _ = await dbs["order"].run(
            order_store.list_orders, None, OrderStatus.COMPLETED, "", PAGE
        )
        shipments, _ = await dbs["shipment"].run(
            shipment_store.list_shipments, "", "", int(ShipmentStatus.DELIVERED), "", PAGE
        )
        invoices, _ = await dbs["billing"].run(billing_store.list_invoices, "", "", "", PAGE)
        labels, _ = await dbs["carrier-adapter"].run(
            label_store.list_labels, label_store.LabelStatus.BOOKED, None, None, False, "", PAGE
        )
    finally:
        for db in dbs.values():
            await db.close()

    assert len(orders) == ORDERS
    by_order = {loaded.order.order_id: loaded.order for loaded in orders}
    assert {s.order_id for s in shipments} == set(by_order)
    # Each order's one shipment, invoice and label name each other.
    assert {
        order.order_id: (set(order.shipments), set(order.invoices)) for order in by_order.values()
    } == {
        s.order_id: ({s.shipment_id}, {i.invoice_id for i in invoices if i.order_id == s.order_id})
        for s in shipments
    }
    assert {(s.shipment_id, s.label_id, s.tracking_number) for s in shipments} == {
        (stored.idempotency_key, stored.label_id, stored.label.tracking_number)
        for stored, _ in labels
        if stored.label is not None
    }
    # Invoice numbers are gapless per series, in posting order.
    numbers: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for invoice in invoices:
        numbers[invoice.series].append(
            (invoice.posted_at.timestamp(), int(invoice.invoice_number.rsplit("-", 1)[1]))
        )
    for posted in numbers.values():
        assert [number for _, number in sorted(posted)] == list(range(1, len(posted) + 1))
