"""Carrier pushes: no API key, the raw body and signature headers forwarded, the backend's
verdict answered (a bad signature is 401 problem+json), still size- and rate-limited."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format

from gateway.adapters.store.queries import BucketPolicy, purge_idle_buckets
from gateway.entrypoints.partner_api import Limits
from gateway.transcoder import RawBody, build_request
from services.carrier_adapter.adapters.carriers.sandbox import webhooks
from services.kit.logging import JsonFormatter
from tests.gateway.backends import SANDBOX_SECRET
from tests.gateway.conftest import Stack, StackFactory, bearer, contract_routes

PUSH = "/v1/carriers/sandbox/webhooks"
PUSH_TEMPLATE = "/v1/carriers/{carrier}/webhooks"


def signed(body: bytes, *, secret: str = SANDBOX_SECRET, age: timedelta = timedelta(0)) -> dict:
    headers = webhooks.sign(body, [secret], "evt_sbx_1", datetime.now(UTC) - age)
    return {**headers, "Content-Type": "application/json"}


BODY = json.dumps({"id": "evt_sbx_1", "type": "tracking.updated", "data": {}}).encode()


async def test_a_signed_push_needs_no_api_key_and_reaches_the_adapter_byte_exact(
    stack: Stack,
) -> None:
    response = await stack.client.post(
        PUSH, content=BODY, headers={**signed(BODY), "X-Correlation-Id": "push-1"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"acceptedEvents": 1, "duplicateEvents": 0}
    assert stack.carrier is not None
    assert stack.carrier.bodies == [("sandbox", "application/json", BODY)]
    forwarded = stack.carrier.signature_headers[0]
    assert set(forwarded) == {
        webhooks.EVENT_ID_HEADER,
        webhooks.TIMESTAMP_HEADER,
        webhooks.SIGNATURE_HEADER,
    }


async def test_raw_non_json_bodies_pass_through(stack: Stack) -> None:
    payload = b"<TrackEvent id='1'>DELIVERED</TrackEvent>"
    response = await stack.client.post(
        "/v1/carriers/ups/webhooks",
        content=payload,
        headers={"Content-Type": "application/xml", "X-Ups-Signature": "abc"},
    )
    assert response.status_code == 200, response.text
    assert stack.carrier is not None
    assert stack.carrier.bodies == [("ups", "application/xml", payload)]
    assert stack.carrier.signature_headers == [{"x-ups-signature": "abc"}]


async def test_bad_signatures_are_401_problems(stack: Stack) -> None:
    cases = {
        "tampered": (BODY + b" ", signed(BODY)),
        "wrong secret": (BODY, signed(BODY, secret="not-the-secret")),
        "stale": (BODY, signed(BODY, age=timedelta(minutes=30))),
        "unsigned": (BODY, {"Content-Type": "application/json"}),
    }
    for name, (body, headers) in cases.items():
        response = await stack.client.post(PUSH, content=body, headers=headers)
        assert response.status_code == 401, (name, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["grpc_code"] == "UNAUTHENTICATED"
    assert stack.carrier is not None
    assert stack.carrier.bodies == []


async def test_an_api_key_is_neither_needed_nor_used(stack: Stack) -> None:
    response = await stack.client.post(
        PUSH, content=BODY, headers={**signed(BODY), **bearer("cdk_not_valid")}
    )
    assert response.status_code == 200


async def test_pushes_are_size_and_rate_limited(make_stack: StackFactory) -> None:
    limits = Limits(max_body_bytes=1024, push_bucket=BucketPolicy(2, 0.001))
    stack = await make_stack(limits)
    huge = b"x" * 2048
    too_big = await stack.client.post(PUSH, content=huge, headers=signed(huge))
    assert too_big.status_code == 413
    # The 413 took a token: one left, then the bucket is empty.
    ok = await stack.client.post(PUSH, content=BODY, headers=signed(BODY))
    assert ok.status_code == 200
    limited = await stack.client.post(PUSH, content=BODY, headers=signed(BODY))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Limit"] == "2"
    # Another carrier has its own bucket.
    other = await stack.client.post(
        "/v1/carriers/ups/webhooks", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert other.status_code == 200
    # Push buckets live in the gateway's memory (gateway.adapters.push_buckets), not the database.
    assert await stack.db.run(purge_idle_buckets, "push", time.time() + 1) == 0


async def test_a_push_bucket_refills_and_its_429_says_when(make_stack: StackFactory) -> None:
    stack = await make_stack(Limits(push_bucket=BucketPolicy(1, 20)))
    first = await stack.client.post(PUSH, content=BODY, headers=signed(BODY))
    assert first.status_code == 200
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("1", "0")
    limited = await stack.client.post(PUSH, content=BODY, headers=signed(BODY))
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["grpc_code"] == "RESOURCE_EXHAUSTED"
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["RateLimit-Limit"] == "1"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Reset"] == "1"
    await asyncio.sleep(0.1)  # 20 tokens a second: refilled
    assert (await stack.client.post(PUSH, content=BODY, headers=signed(BODY))).status_code == 200


@pytest.mark.integration  # runs protoc
def test_the_push_route_is_documented_without_security() -> None:
    operation = contract_routes()[1]["paths"]["/v1/carriers/{carrier}/webhooks"]["post"]
    assert operation["security"] == []
    assert "x-required-scope" not in operation


@pytest.mark.integration  # runs protoc
@pytest.mark.parametrize("payload", [b"", BODY, bytes(range(256)), b"\xff\xfe not utf-8"])
def test_a_raw_body_is_the_message_proto3_json_would_make(payload: bytes) -> None:
    route = next(r for r in contract_routes()[0] if r.template.template == PUSH_TEMPLATE)
    message = build_request(route, {"carrier": "sandbox"}, [], RawBody(payload, "text/x"), None)
    as_json = {
        "carrier": "sandbox",
        "body": {"contentType": "text/x", "data": base64.b64encode(payload).decode()},
    }
    expected = json_format.ParseDict(as_json, route.request_class())
    assert message == expected
    assert message.SerializeToString() == expected.SerializeToString()
    assert message.HasField("body")


async def test_a_push_breaking_the_carrier_rule_is_a_precise_400(stack: Stack) -> None:
    # Its protovalidate check is skipped only for pushes that cannot break a rule
    # (carrier_push.keeps_contract): this one can, so it gets the full check, and its answer.
    for carrier in ("UPS", "x", "no-dashes", "a" * 33):
        answer = await stack.client.post(
            f"/v1/carriers/{carrier}/webhooks", content=BODY, headers=signed(BODY)
        )
        assert answer.status_code == 400, carrier
        problem = answer.json()
        assert problem["detail"] == "the request breaks the contract's rules"
        assert [v["field"] for v in problem["violations"]] == ["carrier"]
    assert stack.carrier is not None
    assert stack.carrier.bodies == []  # none reached carrier-adapter


async def test_each_request_logs_one_json_line(stack: Stack) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    request_log = logging.getLogger("gateway.entrypoints.partner_api")
    level = request_log.level
    request_log.setLevel(logging.INFO)  # the line is only made when INFO is on
    request_log.addHandler(handler)
    try:
        answer = await stack.client.post(
            PUSH, content=BODY, headers={**signed(BODY), "X-Correlation-Id": "push-log-1"}
        )
    finally:
        request_log.removeHandler(handler)
        request_log.setLevel(level)
    assert answer.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert isinstance(line.pop("duration_ms"), float)
    assert line.pop("time").endswith("Z")
    assert line == {
        "level": "INFO",
        "logger": "gateway.entrypoints.partner_api",
        "message": "http request",
        "service": "gateway",
        "correlation_id": "push-log-1",
        "method": "POST",
        "path": PUSH,
        "status": 200,
    }
