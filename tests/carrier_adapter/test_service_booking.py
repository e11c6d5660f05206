"""carrier-adapter through gRPC: rates from the sandbox, and labels booked exactly once.

The real service runs in-process (services.carrier_adapter.main.setup) with real NATS and a
SQLite file or PostgreSQL database. "Exactly once" is checked where it matters: the carrier's
own call counter (the service's crossdock_carrier_calls metric) says one booking, and every
caller got the same label.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import pytest
from crossdock.carrier.v1 import carrier_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS

from services.carrier_adapter.adapters.store.payloads import count_payloads
from services.kit.db import Database
from services.kit.grpc_errors import details_of, status_from_error
from tests.carrier_adapter.karrio_support import json_answer
from tests.carrier_adapter.service_support import (
    book_request,
    rates_request,
    return_rates_request,
    return_request,
    shop_request,
)
from tests.carrier_adapter.stub_transport import StubTransport
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.waiting import wait_for

RATE_ID = re.compile(r"^rte_[0-9A-HJKMNP-TV-Z]{26}$")
LABEL_ID = re.compile(r"^lbl_[0-9A-HJKMNP-TV-Z]{26}$")


@pytest.fixture
async def adapter(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    async with running_carrier_adapter(carrier_env(sqlite_url, nats_server.url)) as service:
        yield service


async def cheapest_rate(service: CarrierAdapter) -> carrier_pb2.Rate:
    answer = await service.stub.GetRates(rates_request())
    return answer.rates[0]


async def test_rates_come_from_the_sandbox_cheapest_first(adapter: CarrierAdapter) -> None:
    answer = await adapter.stub.GetRates(rates_request(carriers=["sandbox", "ups"]))
    assert len(answer.rates) >= 2
    assert all(RATE_ID.match(rate.rate_id) for rate in answer.rates)
    assert {rate.carrier for rate in answer.rates} == {"sandbox"}
    charges = [rate.total_charge.units + rate.total_charge.nanos / 1e9 for rate in answer.rates]
    assert charges == sorted(charges) and charges[0] > 0
    assert all(rate.HasField("expire_time") for rate in answer.rates)
    # Asked for a carrier with no account: visible as a carrier error, not a failed call.
    assert [(e.carrier, e.retryable) for e in answer.carrier_errors] == [("ups", False)]

    only_overnight = await adapter.stub.GetRates(
        rates_request(service_level=carrier_pb2.SERVICE_LEVEL_OVERNIGHT)
    )
    assert only_overnight.rates
    assert {r.service_level for r in only_overnight.rates} == {carrier_pb2.SERVICE_LEVEL_OVERNIGHT}


async def test_a_retry_with_the_same_key_replays_the_stored_label(
    adapter: CarrierAdapter, sqlite_url: str
) -> None:
    rate = await cheapest_rate(adapter)
    first = await adapter.stub.BookLabel(book_request("shp_retry_0001", rate.rate_id))
    again = await adapter.stub.BookLabel(book_request("shp_retry_0001", rate.rate_id))

    assert LABEL_ID.match(first.label.label_id)
    assert first.label.document.startswith(b"%PDF")
    assert first.label.service_code == rate.service_code
    assert first.label.quoted_charge == rate.total_charge
    assert (first.replayed, again.replayed) == (False, True)
    assert again.label == first.label
    assert adapter.label_bookings() == 1

    # The raw payload log holds the carrier's one answer for this key (written in batches).
    log = Database(sqlite_url, service="carrier-adapter-test")
    try:
        logged = await wait_for(
            lambda: log.run(count_payloads, "shp_retry_0001"), lambda count: count >= 1
        )
    finally:
        await log.close()
    assert logged == 1

    other = await adapter.stub.BookLabel(book_request("shp_other_0002", rate.rate_id))
    assert other.label.label_id != first.label.label_id
    assert adapter.label_bookings() == 2


async def test_unknown_rate_is_not_found(adapter: CarrierAdapter) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await adapter.stub.BookLabel(book_request("shp_norate_01", "rte_" + "0" * 26))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert adapter.label_bookings() == 0


async def test_concurrent_calls_with_one_key_book_one_label(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    # A slow carrier keeps the first booking in flight while the others arrive.
    env = carrier_env(db_url, nats_server.url, ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS="0.5")
    async with running_carrier_adapter(env) as service:
        rate = await cheapest_rate(service)
        answers = await asyncio.gather(
            *(service.stub.BookLabel(book_request("shp_race_0001", rate.rate_id)) for _ in range(4))
        )
        assert len({a.label.label_id for a in answers}) == 1
        assert len({a.label.tracking_number for a in answers}) == 1
        assert sorted(a.replayed for a in answers) == [False, True, True, True]
        assert service.label_bookings() == 1


@pytest.mark.postgres
async def test_two_replicas_racing_on_one_key_book_one_label(
    postgres_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    # Two replicas share the database: only the UNIQUE idempotency key can stop a second booking.
    env = carrier_env(postgres_url, nats_server.url, ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS="0.5")
    async with (
        running_carrier_adapter(env) as one,
        running_carrier_adapter(
            {**env, "CROSSDOCK_CARRIER_ADAPTER_MIGRATE_ON_START": "false"}
        ) as two,
    ):
        rate = await cheapest_rate(one)
        answers = await asyncio.gather(
            *(
                replica.stub.BookLabel(book_request("shp_replicas_01", rate.rate_id))
                for replica in (one, two, one, two)
            )
        )
        assert len({a.label.label_id for a in answers}) == 1
        assert sorted(a.replayed for a in answers) == [False, True, True, True]
        assert one.label_bookings() + two.label_bookings() == 1


async def test_a_label_call_that_times_out_and_is_retried_books_one_label(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    env = carrier_env(sqlite_url, nats_server.url, ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS="1.5")
    async with running_carrier_adapter(env) as service:
        rate = await cheapest_rate(service)
        request = book_request("shp_timeout_01", rate.rate_id)
        # The caller gives up long before the slow carrier answers.
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await service.stub.BookLabel(request, timeout=0.3)
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

        retried = await service.stub.BookLabel(request, timeout=30)
        again = await service.stub.BookLabel(request, timeout=30)
        assert retried.replayed and again.replayed
        assert retried.label == again.label
        assert service.label_bookings() == 1


async def test_cancel_label_voids_it_once(adapter: CarrierAdapter) -> None:
    rate = await cheapest_rate(adapter)
    booked = await adapter.stub.BookLabel(book_request("shp_cancel_001", rate.rate_id))
    request = svc.CancelLabelRequest(label_id=booked.label.label_id)
    cancelled = await adapter.stub.CancelLabel(request)
    twice = await adapter.stub.CancelLabel(request)
    assert cancelled.label.cancelled and twice.label.cancelled
    replay = await adapter.stub.BookLabel(book_request("shp_cancel_001", rate.rate_id))
    assert replay.replayed and replay.label.cancelled
    tracked = await adapter.stub.Track(
        svc.TrackRequest(carrier="sandbox", tracking_number=booked.label.tracking_number)
    )
    assert tracked.events[-1].carrier_status_code == "CXL"


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    return info.reason


async def test_a_return_label_is_booked_once_and_its_key_names_one_label(
    adapter: CarrierAdapter,
) -> None:
    quotes = await adapter.stub.GetRates(return_rates_request())
    assert quotes.rates and not quotes.carrier_errors
    rate = quotes.rates[0]

    first = await adapter.stub.BookLabel(return_request("rma_return_001", rate.rate_id))
    again = await adapter.stub.BookLabel(return_request("rma_return_001", rate.rate_id))

    assert first.label.is_return and LABEL_ID.match(first.label.label_id)
    assert first.label.document.startswith(b"%PDF")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.label == first.label
    assert adapter.label_bookings() == 1
    # The key booked a return label: asking it for an outbound one is refused, not answered
    # with the return label.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await adapter.stub.BookLabel(book_request("rma_return_001", rate.rate_id))
    assert reused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    assert adapter.label_bookings() == 1

    cancelled = await adapter.stub.CancelLabel(
        svc.CancelLabelRequest(label_id=first.label.label_id)
    )
    assert cancelled.label.is_return and cancelled.label.cancelled


async def test_a_carrier_without_return_labels_quotes_none_and_books_none(
    stub: StubTransport, sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    # A USPS account beside the sandbox; its HTTP goes to the stub, which fails the test on any
    # request it was not told about (so no return label call can slip through).
    stub.route("POST", r"/oauth2/v3/token$", json_answer("usps", "oauth_token.json"))
    stub.route("POST", r"/shipments/v3/options/search$", json_answer("usps", "options_search.json"))
    env = carrier_env(
        sqlite_url,
        nats_server.url,
        CARRIER_ACCOUNTS="sandbox,usps",
        ACCOUNT_USPS_CARRIER="usps",
        ACCOUNT_USPS_CLIENT_ID="usps-client-id-test",
        ACCOUNT_USPS_CLIENT_SECRET="usps-client-secret",
        ACCOUNT_USPS_TEST_MODE="true",
    )
    async with running_carrier_adapter(env) as service:
        returns = await service.stub.GetRates(return_rates_request(carriers=["sandbox", "usps"]))
        assert {rate.carrier for rate in returns.rates} == {"sandbox"}
        assert [(e.carrier, e.message, e.retryable) for e in returns.carrier_errors] == [
            ("usps", "usps does not support return labels", False)
        ]
        assert stub.requests == []

        outbound = await service.stub.GetRates(rates_request(carriers=["usps"]))
        usps_rate = outbound.rates[0].rate_id
        for _ in range(2):  # the refusal left no claim behind: the same answer again
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service.stub.BookLabel(return_request("rma_usps_0001", usps_rate))
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert error_reason(refused.value) == "CARRIER_OPERATION_UNSUPPORTED"
        assert stub.sent("POST", "/labels/") == []
        assert stub.sent("POST", "/payments/") == []


async def test_labels_survive_a_restart(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    env = carrier_env(sqlite_url, nats_server.url, ACCOUNT_SANDBOX_TIME_SCALE="3600")
    async with running_carrier_adapter(env) as before:
        rate = await cheapest_rate(before)
        booked = await before.stub.BookLabel(book_request("shp_restart_01", rate.rate_id))
    async with running_carrier_adapter(env) as after:
        replay = await after.stub.BookLabel(book_request("shp_restart_01", rate.rate_id))
        assert replay.replayed and replay.label == booked.label
        assert after.label_bookings() == 0
        # The sandbox carrier knows the parcel again, so tracking goes on. Its first scan is
        # planned a simulated two minutes after booking, so poll (bounded) until it is due.
        request = svc.TrackRequest(carrier="sandbox", tracking_number=booked.label.tracking_number)
        tracked = await after.stub.Track(request)
        for _ in range(50):
            if tracked.events:
                break
            await asyncio.sleep(0.1)
            tracked = await after.stub.Track(request)
        assert tracked.events and tracked.events[0].carrier_status_code == "LBL"


# -- shop and book (BookLabel with shop) ----------------------------------------------------------


async def test_shop_and_book_books_the_cheapest_quote_that_meets_the_level_once(
    adapter: CarrierAdapter,
) -> None:
    first = await adapter.stub.BookLabel(shop_request("shp_shop_0001"))
    quotes = await adapter.stub.GetRates(rates_request())
    eligible = [r for r in quotes.rates if r.service_level >= carrier_pb2.SERVICE_LEVEL_STANDARD]
    assert first.rate.service_code == eligible[0].service_code  # cheapest first
    assert first.rate.total_charge == eligible[0].total_charge
    assert RATE_ID.match(first.rate.rate_id) and first.rate.HasField("expire_time")
    assert first.label.service_code == first.rate.service_code and not first.replayed
    assert LABEL_ID.match(first.label.label_id) and first.label.document.startswith(b"%PDF")

    # Again (the caller timed out, or crashed before recording it): the same label and quote,
    # also when asked for by the quote's rate id.
    again = await adapter.stub.BookLabel(shop_request("shp_shop_0001"))
    by_rate = await adapter.stub.BookLabel(book_request("shp_shop_0001", first.rate.rate_id))
    assert again.replayed and by_rate.replayed
    assert again.label == first.label == by_rate.label and again.rate == first.rate
    assert adapter.label_bookings() == 1

    overnight = await adapter.stub.BookLabel(
        shop_request("shp_shop_0002", carrier_pb2.SERVICE_LEVEL_OVERNIGHT)
    )
    assert overnight.rate.service_level == carrier_pb2.SERVICE_LEVEL_OVERNIGHT
    assert overnight.label.label_id != first.label.label_id
    assert adapter.label_bookings() == 2


async def test_concurrent_shop_and_book_calls_with_one_key_book_one_label(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    env = carrier_env(db_url, nats_server.url, ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS="0.5")
    async with running_carrier_adapter(env) as service:
        answers = await asyncio.gather(
            *(service.stub.BookLabel(shop_request("shp_shop_race1")) for _ in range(4))
        )
        assert len({a.label.label_id for a in answers}) == 1
        assert len({a.rate.rate_id for a in answers}) == 1
        assert sorted(a.replayed for a in answers) == [False, True, True, True]
        assert service.label_bookings() == 1


async def test_shop_and_book_with_no_quote_that_meets_the_level_books_nothing(
    stub: StubTransport, sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    # USPS only, which books no return labels: a return finds no quote (and asks USPS nothing).
    env = carrier_env(
        sqlite_url,
        nats_server.url,
        CARRIER_ACCOUNTS="usps",
        ACCOUNT_USPS_CARRIER="usps",
        ACCOUNT_USPS_CLIENT_ID="usps-client-id-test",
        ACCOUNT_USPS_CLIENT_SECRET="usps-client-secret",
        ACCOUNT_USPS_TEST_MODE="true",
    )
    async with running_carrier_adapter(env) as service:
        for _ in range(2):  # nothing was claimed: the same answer again
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service.stub.BookLabel(shop_request("rma_shop_0001", is_return=True))
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert error_reason(refused.value) == "NO_RATE_MEETS_SERVICE_LEVEL"
        assert stub.requests == []


async def test_book_label_names_a_rate_or_shops_never_both_nor_neither(
    adapter: CarrierAdapter,
) -> None:
    rate = await cheapest_rate(adapter)
    both = shop_request("shp_shop_both1")
    both.rate_id = rate.rate_id
    neither = book_request("shp_shop_none1", "")
    for request in (both, neither):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await adapter.stub.BookLabel(request)
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert adapter.label_bookings() == 0
