"""The sandbox carrier as its own process: carrier-adapter's RemoteSandboxConnector against the
server's app (tools/sandbox_carrier.py) served on a loopback port, so the wire format, the
refusals and the journal are checked over a real socket. The answers must equal the in-process
sandbox's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.domain.errors import CarrierRejected, UnknownService
from services.carrier_adapter.domain.model import (
    CancelRequest,
    LabelRequest,
    Parcel,
    RateRequest,
    TrackingStatus,
)
from services.kit.values import Address
from tests.carrier_adapter.fakes import ManualClock
from tests.fixtures.asgi_server import serving
from tools.sandbox_carrier import Journal, create_app

pytestmark = pytest.mark.integration  # a socket on loopback

SETTINGS = SandboxSettings(
    webhook_secrets=("whsec_test",),
    seed=7,
    time_scale=3600.0,
    rates=LifecycleRates(exception=0.0, return_to_sender=0.0, weather_delay=0.0),
)


def simulator(clock: ManualClock) -> SandboxConnector:
    return SandboxConnector(
        "sandbox",
        SETTINGS,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
    )


@contextlib.asynccontextmanager
async def remote(app: ASGIApp, clock: ManualClock) -> AsyncIterator[RemoteSandboxConnector]:
    """The connector against `app` served on a free loopback port; closed and stopped after."""
    async with serving(app) as url:
        connector = RemoteSandboxConnector(
            "sandbox",
            url,
            SETTINGS,
            status_table=load_status_table("sandbox"),
            service_table=load_service_table("sandbox"),
            clock=clock,
        )
        try:
            yield connector
        finally:
            await connector.aclose()


def label(origin: Address, destination: Address, box: Parcel, key: str = "shp_1") -> LabelRequest:
    return LabelRequest(key, "sandbox_standard", origin, destination, (box,))


async def test_rates_and_labels_over_http_equal_the_simulation(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    server_side = simulator(clock)
    reference = simulator(ManualClock())
    async with remote(create_app(server_side, Journal(None), clock), clock) as connector:
        request = RateRequest(us_origin, us_destination, (box,))
        assert await connector.rate(request) == await reference.rate(request)

        booked = await connector.book_label(label(us_origin, us_destination, box))
        expected = await reference.book_label(label(us_origin, us_destination, box))
        assert booked == expected  # the PDF document included, byte for byte
        again = await connector.book_label(label(us_origin, us_destination, box))
        assert again == booked  # idempotent by key, over HTTP too


async def test_tracking_cancel_and_refusals(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    async with remote(create_app(simulator(clock), Journal(None), clock), clock) as connector:
        booked = await connector.book_label(label(us_origin, us_destination, box))

        clock.advance(1)  # the label scan is due (2 simulated minutes), not the pickup (3 h)
        tracked = await connector.track(booked.tracking_number)
        assert [s.status for s in tracked.scans] == [TrackingStatus.PENDING]

        await connector.cancel_label(CancelRequest(booked.tracking_number))
        tracked = await connector.track(booked.tracking_number)
        assert tracked.scans[-1].status is TrackingStatus.CANCELLED

        with pytest.raises(CarrierRejected, match="unknown tracking number"):
            await connector.track("SBX000000000000")
        unknown = label(us_origin, us_destination, box, key="shp_2")
        with pytest.raises(UnknownService):
            await connector.book_label(
                LabelRequest(
                    "shp_2", "sandbox_teleport", unknown.ship_from, unknown.ship_to, (box,)
                )
            )


async def test_the_journal_brings_parcels_back_after_a_restart(
    tmp_path: Path, us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    journal = Journal(tmp_path / "sandbox.jsonl")
    async with remote(create_app(simulator(clock), journal, clock), clock) as first:
        kept = await first.book_label(label(us_origin, us_destination, box, key="shp_kept"))
        voided = await first.book_label(label(us_origin, us_destination, box, key="shp_void"))
        await first.cancel_label(CancelRequest(voided.tracking_number))

    restarted = simulator(clock)
    assert journal.replay(restarted) == 2
    async with remote(create_app(restarted, journal, clock), clock) as second:
        assert await second.book_label(label(us_origin, us_destination, box, "shp_kept")) == kept
        clock.advance(600)
        tracked = await second.track(voided.tracking_number)
        assert tracked.scans[-1].status is TrackingStatus.CANCELLED
