"""The reliability guard around real connectors: HTTP stubbed at the transport, time by hand."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from services.carrier_adapter.adapters.carriers.guarded import CallPolicy, GuardedConnector
from services.carrier_adapter.adapters.carriers.karrio_http import HttpRequest, HttpResponse
from services.carrier_adapter.adapters.carriers.ups.connector import UpsConnector
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.breaker import BreakerPolicy, CircuitState
from services.carrier_adapter.adapters.reliability.retry import RetryPolicy
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import (
    CarrierRejected,
    CarrierTimeout,
    CarrierUnavailable,
    CircuitOpen,
)
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelRequest,
    Parcel,
    RateQuote,
    RateRequest,
    TrackingResult,
    WebhookBatch,
)
from services.kit.values import Address
from tests.carrier_adapter.fakes import ManualClock
from tests.carrier_adapter.karrio_support import account, build, fresh_ups_token, json_answer
from tests.carrier_adapter.stub_transport import StubTransport

NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0)
UNAVAILABLE = HttpResponse(503, b"Service Unavailable")


def calls(metrics: CarrierMetrics, operation: str, outcome: str) -> float:
    labels = {"carrier": "ups", "operation": operation, "outcome": outcome}
    return metrics.registry.get_sample_value("crossdock_carrier_calls_total", labels) or 0.0


def guarded_ups(
    metrics: CarrierMetrics, retry: RetryPolicy = NO_WAIT, **breaker: int | float
) -> tuple[GuardedConnector, ManualClock]:
    harness = build(
        UpsConnector,
        account("ups", "ups_east", client_id="id", client_secret="secret", account_number="A1"),
    )
    policy = CallPolicy(retry=retry, breaker=BreakerPolicy(**breaker))  # type: ignore[arg-type]
    clock = harness.clock
    return GuardedConnector(harness.connector, policy, clock, random.Random(0), metrics), clock


def rate_request(origin: Address, destination: Address, parcel: Parcel) -> RateRequest:
    return RateRequest(origin, destination, (parcel,))


async def test_quotes_are_retried_through_carrier_outages(
    stub: StubTransport,
    metrics: CarrierMetrics,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    stub.route("POST", r"/oauth/token$", fresh_ups_token())
    stub.route(
        "POST", r"/api/rating/", UNAVAILABLE, UNAVAILABLE, json_answer("ups", "rate_shop.json")
    )
    guarded, _ = guarded_ups(metrics)

    quotes = await guarded.rate(rate_request(us_origin, us_destination, box))

    assert len(quotes) == 3
    assert len(stub.sent("POST", "/api/rating/")) == 3
    assert calls(metrics, "rate", "ok") == 1
    assert (
        metrics.registry.get_sample_value(
            "crossdock_carrier_retries_total", {"carrier": "ups", "operation": "rate"}
        )
        == 2
    )


async def test_rejections_are_not_retried_and_do_not_trip_the_breaker(
    stub: StubTransport,
    metrics: CarrierMetrics,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    stub.route("POST", r"/oauth/token$", fresh_ups_token())
    stub.route("POST", r"/api/rating/", json_answer("ups", "error_invalid_address.json", 400))
    guarded, _ = guarded_ups(metrics, failure_threshold=2)

    for _ in range(4):
        with pytest.raises(CarrierRejected):
            await guarded.rate(rate_request(us_origin, us_destination, box))

    assert len(stub.sent("POST", "/api/rating/")) == 4
    assert guarded.breaker.state is CircuitState.CLOSED
    assert calls(metrics, "rate", "rejected") == 4


async def test_breaker_opens_fails_fast_then_recovers_through_a_probe(
    stub: StubTransport,
    metrics: CarrierMetrics,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    stub.route("POST", r"/oauth/token$", fresh_ups_token())
    stub.route(
        "POST",
        r"/api/rating/",
        UNAVAILABLE,
        UNAVAILABLE,
        UNAVAILABLE,
        json_answer("ups", "rate_shop.json"),
    )
    guarded, clock = guarded_ups(
        metrics, RetryPolicy(max_attempts=1), failure_threshold=3, open_seconds=30,
        success_threshold=1,
    )  # fmt: skip
    request = rate_request(us_origin, us_destination, box)
    for _ in range(3):
        with pytest.raises(CarrierUnavailable):
            await guarded.rate(request)

    with pytest.raises(CircuitOpen) as open_error:
        await guarded.rate(request)

    assert len(stub.sent("POST", "/api/rating/")) == 3  # the open circuit sent nothing
    assert open_error.value.retry_after_seconds == 30.0
    assert calls(metrics, "rate", "circuit_open") == 1
    state = metrics.registry.get_sample_value(
        "crossdock_carrier_circuit_state", {"carrier_account": "ups/ups_east"}
    )
    assert state == 2

    clock.advance(30)
    assert len(await guarded.rate(request)) == 3
    assert guarded.breaker.state is CircuitState.CLOSED


async def test_a_timed_out_booking_is_not_resent_to_a_carrier_without_idempotency(
    stub: StubTransport,
    metrics: CarrierMetrics,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    release = threading.Event()

    def never_answers(request: HttpRequest) -> HttpResponse:
        release.wait(10)  # holds the karrio worker thread until the test lets go
        return HttpResponse(504, b"")

    stub.route("POST", r"/oauth/token$", fresh_ups_token())
    stub.route("POST", r"/api/shipments/", never_answers)
    guarded, clock = guarded_ups(metrics)
    booking = asyncio.ensure_future(
        guarded.book_label(
            LabelRequest("shp_timeout_1", "ups_ground", us_origin, us_destination, (box,))
        )
    )
    try:
        await clock.sleepers(1)  # the deadline timer is armed
        while not stub.sent("POST", "/api/shipments/"):
            await asyncio.sleep(0.001)  # wait until the request is on the wire
        clock.advance(CallPolicy().timeout("book_label"))

        with pytest.raises(CarrierTimeout) as caught:
            await booking
    finally:
        release.set()

    assert caught.value.maybe_committed
    assert len(stub.sent("POST", "/api/shipments/")) == 1
    assert calls(metrics, "book_label", "timeout") == 1


class FlakyCarrier:
    """A fake carrier whose booking times out once; the interface is ours, the fake is here."""

    carrier = "flaky"
    account_id = "flaky_1"

    def __init__(self, idempotent: bool) -> None:
        self.capabilities = Capabilities(idempotent_booking=idempotent)
        self.bookings = 0

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        self.bookings += 1
        if self.bookings == 1:
            raise CarrierTimeout("flaky", "book_label", 1.0)
        raise CarrierRejected("flaky", ["second attempt reached the carrier"])

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        raise NotImplementedError

    async def cancel_label(self, request: CancelRequest) -> None:
        raise NotImplementedError

    async def track(self, tracking_number: str) -> TrackingResult:
        raise NotImplementedError

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        raise NotImplementedError


@pytest.mark.parametrize(("idempotent", "bookings"), [(True, 2), (False, 1)])
async def test_booking_retry_after_timeout_depends_on_carrier_idempotency(
    idempotent: bool,
    bookings: int,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    carrier = FlakyCarrier(idempotent)
    guarded = GuardedConnector(carrier, CallPolicy(retry=NO_WAIT), ManualClock(), random.Random(0))

    with pytest.raises((CarrierTimeout, CarrierRejected)):
        await guarded.book_label(
            LabelRequest("shp_flaky_01", "x", us_origin, us_destination, (box,))
        )

    assert carrier.bookings == bookings
