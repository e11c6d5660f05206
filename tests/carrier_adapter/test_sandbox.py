"""The sandbox carrier: pricing, real label documents, idempotent booking, seeded lifecycles."""

from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal

import PyPDF2
import pytest

from services.carrier_adapter.adapters.carriers.sandbox import pricing
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.errors import CarrierRejected, UnknownService
from services.carrier_adapter.domain.model import (
    CancelRequest,
    IncidentReason,
    LabelFormat,
    LabelRequest,
    Parcel,
    RateRequest,
    ServiceLevel,
    TrackingStatus,
)
from services.kit.values import Address, Dimensions, DimensionUnit, Weight, WeightUnit
from tests.carrier_adapter.conftest import unmapped_count
from tests.carrier_adapter.fakes import ManualClock

FAST = 3600.0  # an hour of carrier time per second: a 3-day lifecycle takes ~72 s of clock
LIFECYCLE_END = 20 * 24 * 3600 / FAST  # comfortably past any path's last scan


def sandbox(
    clock: ManualClock,
    metrics: CarrierMetrics | None = None,
    *,
    seed: int = 7,
    rates: LifecycleRates | None = None,
) -> SandboxConnector:
    settings = SandboxSettings(
        webhook_secrets=("whsec_test",),
        seed=seed,
        time_scale=FAST,
        rates=rates or LifecycleRates(exception=0.0, return_to_sender=0.0, weather_delay=0.0),
    )
    return SandboxConnector(
        "sandbox",
        settings,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=clock,
        on_unmapped=metrics.count_unmapped if metrics else None,
    )


def label_request(
    origin: Address, destination: Address, parcel: Parcel, key: str = "shp_0001", **kw: object
) -> LabelRequest:
    return LabelRequest(key, "sandbox_standard", origin, destination, (parcel,), **kw)  # type: ignore[arg-type]


async def test_rates_are_deterministic_per_level_and_cheapest_first(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    connector = sandbox(ManualClock())

    quotes = await connector.rate(RateRequest(us_origin, us_destination, (box,)))
    again = await connector.rate(RateRequest(us_origin, us_destination, (box,)))

    assert quotes == again
    assert [q.service_level for q in quotes] == [
        ServiceLevel.ECONOMY,
        ServiceLevel.STANDARD,
        ServiceLevel.EXPEDITED,
        ServiceLevel.OVERNIGHT,
    ]
    amounts = [q.total_charge.amount for q in quotes]
    assert amounts == sorted(amounts)
    # Standard, zone 6 (prefixes 303 and 902 are 599 apart), 2.5 kg billable (actual 2.5 beats
    # dimensional 1.8), residential: (6.90 + 0.80 * 2.5) * (1 + 0.08 * 5) + 1.25.
    assert quotes[1].total_charge.amount == Decimal("13.71")
    only_overnight = await connector.rate(
        RateRequest(us_origin, us_destination, (box,), ServiceLevel.OVERNIGHT)
    )
    assert [q.service_code for q in only_overnight] == ["sandbox_overnight"]


def test_billable_weight_uses_dimensional_weight_for_light_bulky_parcels() -> None:
    pillow = Parcel(
        Weight(Decimal("0.3"), WeightUnit.KILOGRAM),
        Dimensions(Decimal(60), Decimal(40), Decimal(40), DimensionUnit.CENTIMETER),
    )
    assert pricing.billable_kg(pillow) == Decimal("19.5")  # 96000 / 5000 = 19.2 → 19.5


def test_zones_grow_with_distance_and_cross_border_is_zone_nine(
    us_origin: Address, us_destination: Address
) -> None:
    near = replace(us_destination, postal_code="30309")
    abroad = replace(us_destination, country_code="CA", postal_code="M5V 2T6")
    assert pricing.zone(us_origin, near) == 1
    assert pricing.zone(us_origin, us_destination) == 6
    assert pricing.zone(us_origin, abroad) == 9


async def test_pdf_label_is_a_real_pdf_with_the_tracking_number(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    connector = sandbox(ManualClock())

    label = await connector.book_label(
        label_request(us_origin, us_destination, box, reference="ord-9")
    )

    assert label.document.startswith(b"%PDF-")
    reader = PyPDF2.PdfReader(io.BytesIO(label.document), strict=True)
    text = reader.pages[0].extract_text()
    assert label.tracking_number in text
    assert "Jane Doe" in text and "ord-9" in text
    assert "RETURN" not in text and label.is_return is False
    assert label.tracking_number.startswith("SBX") and len(label.tracking_number) == 15
    assert label.quoted_charge is not None and label.quoted_charge.amount == Decimal("13.71")


async def test_zpl_label_is_one_zpl_format(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    connector = sandbox(ManualClock())

    label = await connector.book_label(
        label_request(us_origin, us_destination, box, label_format=LabelFormat.ZPL)
    )

    zpl = label.document.decode()
    assert zpl.startswith("^XA") and zpl.rstrip().endswith("^XZ")
    assert zpl.count("^XA") == zpl.count("^XZ") == 1
    assert f"^BCN,200,Y,N,N^FD{label.tracking_number}^FS" in zpl
    assert label.label_format is LabelFormat.ZPL


async def test_booking_is_idempotent_by_key(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock)
    first = await connector.book_label(label_request(us_origin, us_destination, box))
    clock.advance(30)

    again = await connector.book_label(label_request(us_origin, us_destination, box))
    other = await connector.book_label(
        label_request(us_origin, us_destination, box, key="shp_0002")
    )

    assert again == first
    assert other.tracking_number != first.tracking_number
    with pytest.raises(CarrierRejected, match="idempotency key"):
        await connector.book_label(
            replace(label_request(us_origin, us_destination, box), service_code="sandbox_overnight")
        )
    with pytest.raises(UnknownService):
        await connector.book_label(
            replace(label_request(us_origin, us_destination, box, key="k3"), service_code="nope")
        )


async def test_fast_lifecycle_ends_delivered_with_proof_of_delivery(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock)
    label = await connector.book_label(label_request(us_origin, us_destination, box))

    clock.advance(LIFECYCLE_END)
    result = await connector.track(label.tracking_number)

    statuses = [s.status for s in result.scans]
    assert statuses[0] is TrackingStatus.PENDING
    assert statuses[1] is TrackingStatus.PICKED_UP
    assert TrackingStatus.IN_TRANSIT in statuses
    assert statuses[-2:] == [TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED]
    assert result.scans[-1].signed_by == "DOE"
    assert [s.occurred_at for s in result.scans] == sorted(s.occurred_at for s in result.scans)
    assert result.scans[-1].occurred_at <= clock.now()
    assert result.unmapped == ()


async def test_tracking_shows_only_scans_whose_time_has_come(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock)
    label = await connector.book_label(label_request(us_origin, us_destination, box))

    early = await connector.track(label.tracking_number)
    clock.advance(2 * 60 / FAST + 1)  # past the label scan, long before pickup
    pending = await connector.track(label.tracking_number)

    assert early.scans == ()
    assert [s.status for s in pending.scans] == [TrackingStatus.PENDING]


async def test_return_label_travels_from_the_customer_to_the_warehouse(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock)
    customer, warehouse = us_destination, us_origin

    label = await connector.book_label(
        label_request(customer, warehouse, box, key="rma_0001", is_return=True)
    )
    clock.advance(LIFECYCLE_END)
    scans = (await connector.track(label.tracking_number)).scans
    again = (await connector.track(label.tracking_number)).scans

    assert label.is_return is True
    text = PyPDF2.PdfReader(io.BytesIO(label.document)).pages[0].extract_text()
    assert "RETURN" in text and label.tracking_number in text
    statuses = [s.status for s in scans]
    assert statuses[:2] == [TrackingStatus.PENDING, TrackingStatus.PICKED_UP]
    assert statuses[-1] is TrackingStatus.DELIVERED
    assert [s.location.city for s in scans[:2] if s.location] == ["Beverly Hills"] * 2
    assert scans[-1].location is not None and scans[-1].location.city == "Atlanta"
    assert scans[-1].signed_by == "DC"  # the warehouse signs for it
    # The same tracking path as any parcel: oldest first, and stable dedupe keys.
    assert [s.occurred_at for s in scans] == sorted(s.occurred_at for s in scans)
    assert [s.dedupe_key for s in again] == [s.dedupe_key for s in scans]
    assert len({s.dedupe_key for s in scans}) == len(scans)


async def test_return_label_zpl_is_marked_and_a_key_books_one_kind_of_label(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    connector = sandbox(ManualClock())
    customer, warehouse = us_destination, us_origin
    request = label_request(
        customer, warehouse, box, key="rma_0002", is_return=True, label_format=LabelFormat.ZPL
    )

    label = await connector.book_label(request)

    assert "RETURN^FS" in label.document.decode()
    assert await connector.book_label(request) == label
    with pytest.raises(CarrierRejected, match="idempotency key"):
        await connector.book_label(replace(request, is_return=False))


async def test_exception_then_delivered_path(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock, rates=LifecycleRates(exception=1.0, return_to_sender=0.0))
    label = await connector.book_label(label_request(us_origin, us_destination, box))

    clock.advance(LIFECYCLE_END)
    scans = (await connector.track(label.tracking_number)).scans

    tail = [s.status for s in scans][-4:]
    assert tail == [
        TrackingStatus.OUT_FOR_DELIVERY,
        TrackingStatus.DELIVERY_FAILED,
        TrackingStatus.OUT_FOR_DELIVERY,
        TrackingStatus.DELIVERED,
    ]
    failed = scans[-3]
    assert failed.incident_reason in {
        IncidentReason.RECIPIENT_ABSENT,
        IncidentReason.ADDRESS_PROBLEM,
    }
    assert failed.carrier_incident_code in {"NA", "CL", "AD"}


async def test_return_to_sender_path(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock, rates=LifecycleRates(exception=0.0, return_to_sender=1.0))
    label = await connector.book_label(label_request(us_origin, us_destination, box))

    clock.advance(LIFECYCLE_END)
    scans = (await connector.track(label.tracking_number)).scans

    statuses = [s.status for s in scans]
    assert statuses.count(TrackingStatus.DELIVERY_FAILED) == 2
    assert TrackingStatus.DELIVERED not in statuses
    assert statuses[-1] is TrackingStatus.RETURNED_TO_SENDER
    assert scans[-1].carrier_status_code == "RTD"
    assert scans[-1].location is not None and scans[-1].location.city == "Atlanta"


async def test_same_seed_same_story_different_seed_different_story(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    async def story(seed: int) -> list[tuple[str, object]]:
        clock = ManualClock()
        connector = sandbox(clock, seed=seed, rates=LifecycleRates(exception=0.5))
        label = await connector.book_label(label_request(us_origin, us_destination, box))
        clock.advance(LIFECYCLE_END)
        scans = (await connector.track(label.tracking_number)).scans
        return [(s.carrier_status_code, s.occurred_at) for s in scans]

    assert await story(1) == await story(1)
    assert await story(1) != await story(2)


async def test_void_before_pickup_cancels_and_after_pickup_is_refused(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    clock = ManualClock()
    connector = sandbox(clock)
    early = await connector.book_label(label_request(us_origin, us_destination, box))
    late = await connector.book_label(label_request(us_origin, us_destination, box, key="late1"))

    await connector.cancel_label(CancelRequest(early.tracking_number))
    clock.advance(LIFECYCLE_END)

    voided = await connector.track(early.tracking_number)
    assert [s.status for s in voided.scans] == [TrackingStatus.CANCELLED]
    with pytest.raises(CarrierRejected, match="picked up"):
        await connector.cancel_label(CancelRequest(late.tracking_number))


async def test_unmapped_demo_code_surfaces_as_unknown(
    us_origin: Address, us_destination: Address, box: Parcel, metrics: CarrierMetrics
) -> None:
    clock = ManualClock()
    connector = sandbox(clock, metrics, rates=LifecycleRates(exception=0.0, unmapped_code=1.0))
    label = await connector.book_label(label_request(us_origin, us_destination, box))

    clock.advance(LIFECYCLE_END)
    result = await connector.track(label.tracking_number)

    unknown = [s for s in result.scans if s.status is TrackingStatus.UNKNOWN]
    assert [s.carrier_status_code for s in unknown] == ["XSC"]
    assert [u.carrier_status_code for u in result.unmapped] == ["XSC"]
    assert unmapped_count(metrics, "sandbox", "status") == 1
    assert result.scans[-1].status is TrackingStatus.DELIVERED


async def test_unknown_tracking_number_is_rejected() -> None:
    with pytest.raises(CarrierRejected):
        await sandbox(ManualClock()).track("SBX000000000000")


def test_time_scale_below_real_time_is_refused() -> None:
    with pytest.raises(ValueError):
        SandboxSettings(webhook_secrets=("s",), time_scale=0.5)
    with pytest.raises(ValueError):
        SandboxSettings(webhook_secrets=("",))
