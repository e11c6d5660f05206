"""labels against the real spine (inventory, order, carrier-adapter, shipment, billing on a real
nats-server, on SQLite files and on PostgreSQL) and the sandbox carrier served as its own HTTP
app: a carrier that does not dedupe bookings by our key, and books a label but answers after
carrier-adapter's booking deadline. Its label is UNKNOWN in carrier-adapter and shipment fails
it; the check raises one finding, report-only changes nothing, the correction resolves the label
with the carrier and retries the shipment, which manifests on that very label (one label at the
carrier); the next run closes the finding. A label booked for no shipment is voided at the
carrier after the grace; a healthy label is no drift."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_svc
from crossdock.shipment.v1 import shipment_pb2
from crossdock.shipment.v1 import shipment_service_pb2 as shipment_svc
from nats.aio.client import Client as NATS

from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.control_tower.adapters.clients import OwnerRefused
from services.control_tower.adapters.store import SERVICE, migrate
from services.control_tower.app import reconcile
from services.control_tower.app.reconcile import FindingsQuery, Reconciler
from services.control_tower.app.reconciliation.checks import CHECKS, CheckContext, registry
from services.control_tower.app.reconciliation.checks.labels import Labels, Owner, judge
from services.control_tower.domain.exceptions import CHECK_OWNERS
from services.control_tower.domain.reconciliation import Drift, Finding, FindingState
from services.kit.db import Database
from services.kit.uow import UnitsOfWork
from tests.carrier_adapter.service_support import book_request, rates_request
from tests.fixtures.asgi_server import serving
from tests.fixtures.databases import NewDbUrl
from tests.fixtures.nats import NatsServer
from tests.fixtures.sandbox import WEBHOOK_SECRET
from tests.fixtures.spine import EAST, Spine, order_request, running_spine, seed_catalog
from tests.fixtures.waiting import wait_for
from tools.sandbox_carrier import Journal, create_app

CHECK = "labels"
UNKNOWN = carrier_svc.LABEL_STATUS_UNKNOWN
BOOKED = carrier_svc.LABEL_STATUS_BOOKED
MANIFESTED = shipment_pb2.SHIPMENT_STATUS_MANIFESTED
LABEL_FAILED = shipment_pb2.SHIPMENT_STATUS_LABEL_FAILED
# carrier-adapter gives a booking 0.5 s; the slow carrier answers after 1.5 s (and books).
BOOKING_DEADLINE = "0.5"
SLOW = 1.5
SHIPMENT_KEY = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"


# ---- the judgement of one label ------------------------------------------------------------


def summary(status: int = BOOKED, **fields: object) -> carrier_svc.LabelSummary:
    values: dict[str, object] = {
        "label_id": "lbl_1",
        "idempotency_key": SHIPMENT_KEY,
        "carrier": "sandbox",
        "tracking_number": "SBX1",
        **fields,
    }
    return carrier_svc.LabelSummary(status=status, **values)  # type: ignore[arg-type]


def owner(status: int = MANIFESTED, label_id: str = "lbl_1", tracking: str = "SBX1") -> Owner:
    return Owner(SHIPMENT_KEY, "ord_1", status, label_id, tracking)


def test_it_is_registered_with_its_owner() -> None:
    assert isinstance(CHECKS[CHECK], Labels)
    assert CHECK_OWNERS[CHECK] == "carrier-adapter"


def test_what_is_a_drift_and_what_is_not() -> None:
    assert judge(summary(), owner()) is None  # its shipment travels on it
    assert judge(summary(), owner(label_id="", tracking="SBX1")) is None  # by tracking number
    # Its shipment is still booking (a retry will replay it): no judgement yet.
    assert judge(summary(), owner(shipment_pb2.SHIPMENT_STATUS_CREATED, "", "")) is None
    assert judge(summary(cancelled=True), None) is None  # voided already
    unknown = judge(summary(UNKNOWN, tracking_number=""), owner(LABEL_FAILED, "", ""))
    assert unknown == Drift(
        f"label:{SHIPMENT_KEY}",
        "ord_1",
        f"label lbl_1 (sandbox, key {SHIPMENT_KEY}): booking outcome unknown at the carrier, "
        f"shipment {SHIPMENT_KEY}",
    )
    waiting = judge(summary(), owner(LABEL_FAILED, "", ""))
    assert waiting is not None and waiting.subject_id == f"label:{SHIPMENT_KEY}"
    assert "failed its label" in waiting.evidence
    nobody = judge(summary(), None)
    assert nobody is not None and nobody.subject_id == "orphan:lbl_1"
    assert nobody.evidence.endswith("orphan, no shipment has its key")
    other = judge(summary(), owner(label_id="lbl_2", tracking="SBX2"))
    assert other is not None and other.evidence.endswith("travels on label lbl_2")
    dropped = judge(summary(), owner(shipment_pb2.SHIPMENT_STATUS_CANCELLED, "", ""))
    assert dropped is not None and dropped.evidence.endswith("was cancelled without it")


async def test_a_scan_or_correction_without_the_owners_targets_fails_plainly() -> None:
    with pytest.raises(RuntimeError, match="needs the carrier-adapter and shipment targets"):
        async for _ in Labels().scan(CheckContext()):
            pass
    with pytest.raises(OwnerRefused) as refused:
        await Labels().correct(CheckContext(), Drift("orphan:lbl_1", "", "orphan"))
    assert refused.value.code == "UNIMPLEMENTED"


# ---- against the real services ---------------------------------------------------------------


@pytest.fixture
def urls(new_db_url: NewDbUrl) -> dict[str, str]:
    """Every service's database, on SQLite and on PostgreSQL (two runs of each test)."""
    names = ("inventory", "order", "carrier_adapter", "shipment", "billing", "tower")
    return {name: new_db_url(name) for name in names}


@pytest.fixture
def units(urls: dict[str, str]) -> Iterator[UnitsOfWork]:
    migrate(urls["tower"])
    database = Database(urls["tower"], service=SERVICE)
    yield UnitsOfWork(database)
    database.engine.dispose()


@pytest.fixture
def carrier() -> SandboxConnector:
    """The carrier's own side: a sandbox that does not dedupe by key, slow to answer."""
    settings = SandboxSettings(
        webhook_secrets=(WEBHOOK_SECRET,),
        seed=7,
        rates=LifecycleRates(exception=0.0, return_to_sender=0.0, weather_delay=0.0),
        label_delay_seconds=SLOW,
        dedupe_bookings=False,
    )
    return SandboxConnector(
        "sandbox",
        settings,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=SystemClock(),
    )


@pytest.fixture
async def spine(
    urls: dict[str, str], carrier: SandboxConnector, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Spine]:
    async with (
        serving(create_app(carrier, Journal(None), SystemClock())) as endpoint,
        running_spine(
            urls,
            nats_server.url,
            nats_client,
            carrier={
                "ACCOUNT_SANDBOX_ENDPOINT": endpoint,
                "ACCOUNT_SANDBOX_DEDUPE_BOOKINGS": "false",
                "BOOK_LABEL_TIMEOUT_SECONDS": BOOKING_DEADLINE,
                "SANDBOX_PUSH": "off",
            },
        ) as running,
    ):
        yield running


def answer_fast(carrier: SandboxConnector) -> None:
    """The carrier answers within the deadline again."""
    carrier.settings = dataclasses.replace(carrier.settings, label_delay_seconds=0.0)


async def findings(units: UnitsOfWork, state: FindingState | None = None) -> list[Finding]:
    found, _ = await units.run(
        reconcile.list_findings, FindingsQuery(check=CHECK, state=state, page_size=100)
    )
    return sorted(found, key=lambda f: f.subject_id)


async def shipment_of(spine: Spine, order_id: str) -> shipment_pb2.Shipment | None:
    answer = await spine.shipments.ListShipments(
        shipment_svc.ListShipmentsRequest(order_id=order_id)
    )
    return answer.shipments[0] if len(answer.shipments) == 1 else None


async def settled(spine: Spine, order_id: str, status: int) -> shipment_pb2.Shipment:
    found = await wait_for(
        lambda: shipment_of(spine, order_id), lambda s: s is not None and s.status == status
    )
    assert found is not None and found.status == status, found
    return found


async def labels_in(spine: Spine, status: int) -> list[carrier_svc.LabelSummary]:
    answer = await spine.carrier.stub.ListLabels(carrier_svc.ListLabelsRequest(status=status))
    return list(answer.labels)


async def test_unknown_label_is_resolved_and_retried_and_an_orphan_is_voided(
    spine: Spine, units: UnitsOfWork, carrier: SandboxConnector
) -> None:
    ctx = CheckContext(
        # The spine's stubs are on aio channels: async stubs, typed as the sync ones.
        carrier=spine.carrier.stub,  # type: ignore[arg-type]
        shipment=spine.shipments,  # type: ignore[arg-type]
        labels_grace_seconds=0,  # the default spares the last 10 min
    )
    reconciler = Reconciler(units, registry(Labels()), ctx)
    await seed_catalog(spine.inventory, {"KETTLE": (1.5, "40.00")}, {("KETTLE", EAST): 10})

    # The carrier books but answers after the deadline: UNKNOWN here, LABEL_FAILED there.
    created = await spine.orders.CreateOrder(order_request("SLOW-1", [("KETTLE", 1, "40.00")]))
    order_id = created.order.order_id
    failed = await settled(spine, order_id, LABEL_FAILED)
    key = failed.shipment_id
    assert "the carrier may have booked" in failed.failure_reason
    (unknown,) = await labels_in(spine, UNKNOWN)
    assert (unknown.idempotency_key, unknown.reference) == (key, order_id)
    # The carrier finished the booking after our deadline: it has the label, we do not.
    booked_there = await wait_for(lambda: carrier.find_labels(key), lambda found: len(found) == 1)
    tracking = booked_there[0][0].tracking_number
    answer_fast(carrier)

    seen = (await reconciler.run([CHECK], report_only=True)).runs[0]
    assert (seen.error, seen.drifts, seen.new_findings, seen.corrected) == ("", 1, 1, 0)
    (finding,) = await findings(units, FindingState.OPEN)
    assert (finding.subject_id, finding.order_id) == (f"label:{key}", order_id)
    assert "booking outcome unknown" in finding.evidence and finding.correction is None
    # Report-only changed nothing.
    assert [label.idempotency_key for label in await labels_in(spine, UNKNOWN)] == [key]
    assert (await shipment_of(spine, order_id)).status == LABEL_FAILED  # type: ignore[union-attr]

    fixed = (await reconciler.run([CHECK])).runs[0]
    assert (fixed.error, fixed.drifts, fixed.new_findings, fixed.corrected) == ("", 1, 0, 1)
    (finding,) = await findings(units, FindingState.OPEN)
    assert finding.correction is not None and finding.correction.succeeded
    assert f"carrier had booked {key}" in finding.correction.result
    assert finding.correction.result.endswith(f"shipment {key} retries its label")
    manifested = await settled(spine, order_id, MANIFESTED)
    # The shipment travels on the label the carrier booked first: one label there, not two.
    assert manifested.tracking_number == tracking
    assert len(carrier.find_labels(key)) == 1
    assert await labels_in(spine, UNKNOWN) == []

    closed = (await reconciler.run([CHECK])).runs[0]
    assert (closed.error, closed.drifts, closed.closed, closed.open_findings) == ("", 0, 1, 0)
    assert closed.scanned == 1  # the healthy label, judged and owned

    # Orphans: labels booked straight through carrier-adapter, for no shipment (one key of a
    # shipment's shape that shipment does not know, one of no shipment's shape).
    rate_id = (await spine.carrier.stub.GetRates(rates_request())).rates[0].rate_id
    orphans = {}
    for orphan_key in ("shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Z", "manual-rebook-0001"):
        booked = await spine.carrier.stub.BookLabel(book_request(orphan_key, rate_id))
        orphans[booked.label.label_id] = booked.label.tracking_number

    spotted = (await reconciler.run([CHECK], report_only=True)).runs[0]
    assert (spotted.error, spotted.drifts, spotted.new_findings) == ("", 2, 2)
    assert [voided for _, voided in _at_carrier(carrier, orphans)] == [False, False]

    voided = (await reconciler.run([CHECK])).runs[0]
    assert (voided.error, voided.drifts, voided.corrected) == ("", 2, 2)
    open_now = await findings(units, FindingState.OPEN)
    assert sorted(f.subject_id for f in open_now) == sorted(f"orphan:{i}" for i in orphans)
    assert all(f.correction is not None and f.correction.succeeded for f in open_now)
    assert [voided for _, voided in _at_carrier(carrier, orphans)] == [True, True]
    # The shipment's own label was left alone.
    assert [voided for _, voided in carrier.find_labels(key)] == [False]

    gone = (await reconciler.run([CHECK])).runs[0]
    assert (gone.error, gone.drifts, gone.closed, gone.open_findings) == ("", 0, 2, 0)


def _at_carrier(carrier: SandboxConnector, orphans: dict[str, str]) -> list[tuple[str, bool]]:
    """Each orphan's tracking number at the carrier, with whether it is voided there."""
    ever = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    found = {label.tracking_number: voided for label, voided in carrier.labels_booked(*ever)}
    return [(number, found[number]) for number in orphans.values()]
