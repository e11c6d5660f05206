"""ListLabels and ResolveLabel through gRPC, against a carrier that does not dedupe bookings by
our key and answers after the booking deadline.

The sandbox carrier is served as its own HTTP app (tools/sandbox_carrier.py) on a loopback port,
so a booking whose reply times out here still completes there, as at a real carrier. The real
service runs in-process with real NATS, on SQLite and on PostgreSQL. "One label" is checked on
the carrier's side: its own list of labels booked under the key.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import grpc
import pytest
from crossdock.carrier.v1 import carrier_service_pb2 as svc
from google.rpc import error_details_pb2
from nats.aio.client import Client as NATS

from services.carrier_adapter.adapters.carriers.connectors import ConnectorDeps, build_connectors
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.lifecycle import LifecycleRates
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.carrier_adapter.config import load_accounts
from services.carrier_adapter.domain.errors import UnsupportedOperation
from services.carrier_adapter.domain.model import LabelRequest, Parcel
from services.kit.grpc_errors import details_of, status_from_error
from services.kit.values import Address
from tests.carrier_adapter.fakes import ManualClock
from tests.carrier_adapter.service_support import book_request, rates_request
from tests.fixtures.asgi_server import serving
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter
from tests.fixtures.sandbox import WEBHOOK_SECRET
from tests.fixtures.waiting import wait_for
from tools.sandbox_carrier import Journal, create_app

KEY = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
SLOW = 1.5  # the carrier's answer, in seconds
DEADLINE = "0.5"  # carrier-adapter's booking deadline


def slow_carrier(label_delay: float = SLOW) -> SandboxConnector:
    settings = SandboxSettings(
        webhook_secrets=(WEBHOOK_SECRET,),
        seed=7,
        rates=LifecycleRates(exception=0.0, return_to_sender=0.0, weather_delay=0.0),
        label_delay_seconds=label_delay,
        dedupe_bookings=False,
    )
    return SandboxConnector(
        "sandbox",
        settings,
        status_table=load_status_table("sandbox"),
        service_table=load_service_table("sandbox"),
        clock=SystemClock(),
    )


def reason(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    assert status is not None
    (info,) = details_of(status, error_details_pb2.ErrorInfo)
    return str(info.reason)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def rate_id(adapter: CarrierAdapter) -> str:
    return str((await adapter.stub.GetRates(rates_request())).rates[0].rate_id)


async def resolve(adapter: CarrierAdapter, **named: str) -> svc.ResolveLabelResponse:
    answer: svc.ResolveLabelResponse = await adapter.stub.ResolveLabel(
        svc.ResolveLabelRequest(**named)  # type: ignore[arg-type]
    )
    return answer


async def listed(adapter: CarrierAdapter, status: int) -> list[svc.LabelSummary]:
    answer = await adapter.stub.ListLabels(svc.ListLabelsRequest(status=status))
    return list(answer.labels)


async def test_a_label_the_carrier_booked_after_the_deadline_is_resolved_to_that_label(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    carrier = slow_carrier()
    async with contextlib.AsyncExitStack() as stack:
        endpoint = await stack.enter_async_context(
            serving(create_app(carrier, Journal(None), SystemClock()))
        )
        env = carrier_env(
            db_url,
            nats_server.url,
            ACCOUNT_SANDBOX_ENDPOINT=endpoint,
            ACCOUNT_SANDBOX_DEDUPE_BOOKINGS="false",
            BOOK_LABEL_TIMEOUT_SECONDS=DEADLINE,
        )
        adapter = await stack.enter_async_context(running_carrier_adapter(env))
        rate = await rate_id(adapter)

        timed_out = await refused(adapter.stub.BookLabel(book_request(KEY, rate)))
        assert timed_out.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        again = await refused(adapter.stub.BookLabel(book_request(KEY, rate)))
        assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert reason(again) == "LABEL_OUTCOME_UNKNOWN"
        (unknown,) = await listed(adapter, svc.LABEL_STATUS_UNKNOWN)
        assert (unknown.idempotency_key, unknown.reference, unknown.carrier) == (
            KEY,
            "ORD-1",
            "sandbox",
        )
        assert unknown.tracking_number == "" and not unknown.HasField("book_time")
        assert unknown.HasField("create_time")
        # The carrier went on booking after our deadline.
        there = await wait_for(lambda: carrier.find_labels(KEY), lambda found: len(found) == 1)
        tracking = there[0][0].tracking_number

        resolved = await adapter.stub.ResolveLabel(
            svc.ResolveLabelRequest(label_id=unknown.label_id)
        )
        assert resolved.booked
        assert (resolved.label.label_id, resolved.label.tracking_number) == (
            unknown.label_id,
            tracking,
        )
        # The caller's retry gets that very label: no second booking at the carrier.
        replay = await adapter.stub.BookLabel(book_request(KEY, rate))
        assert replay.replayed and replay.label.tracking_number == tracking
        assert len(carrier.find_labels(KEY)) == 1
        assert await listed(adapter, svc.LABEL_STATUS_UNKNOWN) == []
        (booked,) = await listed(adapter, svc.LABEL_STATUS_BOOKED)
        assert (booked.label_id, booked.tracking_number) == (unknown.label_id, tracking)
        assert booked.HasField("book_time")

        known = await refused(
            adapter.stub.ResolveLabel(svc.ResolveLabelRequest(idempotency_key=KEY))
        )
        assert known.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert reason(known) == "LABEL_OUTCOME_KNOWN"
        missing = await refused(
            adapter.stub.ResolveLabel(svc.ResolveLabelRequest(idempotency_key="no-such-key-1"))
        )
        assert missing.code() is grpc.StatusCode.NOT_FOUND
        unnamed = await refused(adapter.stub.ResolveLabel(svc.ResolveLabelRequest()))
        assert unnamed.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_resolving_answers_unavailable_while_the_carrier_is_down(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    carrier = slow_carrier()
    async with contextlib.AsyncExitStack() as stack:
        # The carrier's own lifetime, closed mid-test.
        server = await stack.enter_async_context(contextlib.AsyncExitStack())
        endpoint = await server.enter_async_context(
            serving(create_app(carrier, Journal(None), SystemClock()))
        )
        env = carrier_env(
            sqlite_url,
            nats_server.url,
            ACCOUNT_SANDBOX_ENDPOINT=endpoint,
            ACCOUNT_SANDBOX_DEDUPE_BOOKINGS="false",
            BOOK_LABEL_TIMEOUT_SECONDS=DEADLINE,
        )
        adapter = await stack.enter_async_context(running_carrier_adapter(env))
        rate = await rate_id(adapter)
        await refused(adapter.stub.BookLabel(book_request(KEY, rate)))
        await wait_for(lambda: carrier.find_labels(KEY), lambda found: len(found) == 1)
        await server.aclose()  # the carrier is down

        outage = await refused(
            adapter.stub.ResolveLabel(svc.ResolveLabelRequest(idempotency_key=KEY))
        )
        assert outage.code() is grpc.StatusCode.UNAVAILABLE
        (still,) = await listed(adapter, svc.LABEL_STATUS_UNKNOWN)
        assert still.idempotency_key == KEY


async def test_a_label_the_carrier_never_booked_releases_the_key_for_a_new_booking(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    # The sandbox in this process: the deadline cancels its booking before it books anything.
    env = carrier_env(
        db_url,
        nats_server.url,
        ACCOUNT_SANDBOX_DEDUPE_BOOKINGS="false",
        ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS="1",
        BOOK_LABEL_TIMEOUT_SECONDS="0.3",
    )
    async with running_carrier_adapter(env) as adapter:
        rate = await rate_id(adapter)
        await refused(adapter.stub.BookLabel(book_request(KEY, rate)))
        (unknown,) = await listed(adapter, svc.LABEL_STATUS_UNKNOWN)

        resolved = await adapter.stub.ResolveLabel(svc.ResolveLabelRequest(idempotency_key=KEY))
        assert not resolved.booked and not resolved.HasField("label")
        assert await listed(adapter, svc.LABEL_STATUS_UNSPECIFIED) == []
        # The key is free: the next booking goes to the carrier again (and times out again),
        # instead of being refused as of unknown outcome.
        retried = await refused(adapter.stub.BookLabel(book_request(KEY, rate)))
        assert retried.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        (again,) = await listed(adapter, svc.LABEL_STATUS_UNKNOWN)
        assert again.label_id != unknown.label_id


async def test_list_labels_pages_oldest_first_and_filters_by_status_and_time(
    sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    async with running_carrier_adapter(carrier_env(sqlite_url, nats_server.url)) as adapter:
        rate = await rate_id(adapter)
        keys = [f"shp_page_{n:04d}" for n in range(5)]
        for key in keys:
            await adapter.stub.BookLabel(book_request(key, rate))
        seen, token = [], ""
        while True:
            page = await adapter.stub.ListLabels(
                svc.ListLabelsRequest(status=svc.LABEL_STATUS_BOOKED, page_size=2, page_token=token)
            )
            assert len(page.labels) <= 2
            seen += [label.idempotency_key for label in page.labels]
            token = page.next_page_token
            if not token:
                break
        assert seen == keys
        assert await listed(adapter, svc.LABEL_STATUS_UNKNOWN) == []
        later = svc.ListLabelsRequest()
        later.created_after.FromDatetime(datetime.now(UTC))
        assert list((await adapter.stub.ListLabels(later)).labels) == []
        # A voided label is left out unless asked for.
        (first,) = (await adapter.stub.ListLabels(svc.ListLabelsRequest(page_size=1))).labels
        await adapter.stub.CancelLabel(svc.CancelLabelRequest(label_id=first.label_id))
        live = await adapter.stub.ListLabels(svc.ListLabelsRequest())
        assert [label.idempotency_key for label in live.labels] == keys[1:]
        every = await adapter.stub.ListLabels(svc.ListLabelsRequest(include_cancelled=True))
        assert [label.cancelled for label in every.labels] == [True, False, False, False, False]
        bad = await refused(adapter.stub.ListLabels(svc.ListLabelsRequest(page_token="nope!")))
        assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_karrio_carrier_cannot_look_a_label_up_and_says_so() -> None:
    env = {
        "CROSSDOCK_CARRIER_ADAPTER_CARRIER_ACCOUNTS": "ups_east",
        "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CARRIER": "ups",
        "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CLIENT_ID": "cid",
        "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CLIENT_SECRET": "csecret",
        "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_ACCOUNT_NUMBER": "A1B2C3",
    }
    registry = build_connectors(load_accounts(env), ConnectorDeps(clock=ManualClock()))
    with pytest.raises(UnsupportedOperation) as unsupported:
        await registry.get("ups_east").find_label(KEY)
    assert unsupported.value.reason == "CARRIER_OPERATION_UNSUPPORTED"


def test_whether_the_sandbox_dedupes_bookings_is_an_account_setting() -> None:
    prefix = "CROSSDOCK_CARRIER_ADAPTER_"
    base = {
        f"{prefix}CARRIER_ACCOUNTS": "sandbox",
        f"{prefix}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "whsec_1",
    }
    (plain,) = load_accounts(base)
    assert SandboxSettings.from_account(plain).capabilities().idempotent_booking
    (strict,) = load_accounts({**base, f"{prefix}ACCOUNT_SANDBOX_DEDUPE_BOOKINGS": "false"})
    assert not SandboxSettings.from_account(strict).capabilities().idempotent_booking
    with pytest.raises(Exception, match="DEDUPE_BOOKINGS must be true or false"):
        load_accounts({**base, f"{prefix}ACCOUNT_SANDBOX_DEDUPE_BOOKINGS": "maybe"})


async def test_the_carrier_finds_labels_by_key_and_lists_them_by_booking_time_in_pages(
    us_origin: Address, us_destination: Address, box: Parcel
) -> None:
    carrier = slow_carrier(label_delay=0.0)
    for key in ("shp_find_0001", "shp_find_0002", "shp_find_0001"):  # booked twice: no dedupe
        await carrier.book_label(
            LabelRequest(key, "sandbox_standard", us_origin, us_destination, (box,))
        )
    async with (
        serving(create_app(carrier, Journal(None), SystemClock())) as endpoint,
        aiohttp.ClientSession() as session,
    ):

        async def get(query: str) -> dict[str, Any]:
            async with session.get(f"{endpoint}/v1/labels?{query}") as answer:
                assert answer.status == 200
                found: dict[str, Any] = await answer.json()
                return found

        twice = await get("idempotency_key=shp_find_0001")
        numbers = [found["label"]["tracking_number"] for found in twice["labels"]]
        assert len(set(numbers)) == 2 and [f["voided"] for f in twice["labels"]] == [False] * 2
        first = await get("page_size=2")
        assert len(first["labels"]) == 2 and first["next_page_token"]
        rest = await get(f"page_size=2&page_token={first['next_page_token']}")
        assert len(rest["labels"]) == 1 and rest["next_page_token"] == ""
        keys = [f["label"]["idempotency_key"] for f in first["labels"] + rest["labels"]]
        assert keys == ["shp_find_0001", "shp_find_0002", "shp_find_0001"]
        later = datetime.now(UTC).isoformat()
        assert (await get(urlencode({"booked_after": later})))["labels"] == []
        assert len((await get(urlencode({"booked_before": later})))["labels"]) == 3
        # What the connector answers: the first live label under the key.
        remote = RemoteSandboxConnector(
            "sandbox",
            endpoint,
            carrier.settings,
            status_table=load_status_table("sandbox"),
            service_table=load_service_table("sandbox"),
            clock=SystemClock(),
        )
        try:
            found = await remote.find_label("shp_find_0001")
            assert found is not None and found.tracking_number == numbers[0]
            assert await remote.find_label("shp_find_none") is None
        finally:
            await remote.aclose()
