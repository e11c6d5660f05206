"""The partner API's shortcuts answer exactly what the general code they skip would have.

The raw ASGI request view and reply (gateway.entrypoints.http_exchange) against starlette's
Request and Response, and the transcoder's shortcuts against google.protobuf.json_format.
"""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest
from buf.validate import validate_pb2
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_pb
from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from gateway.auth import is_signed_push
from gateway.carrier_push import MAX_FORWARDED, keeps_contract, may_be_signature, signature_headers
from gateway.entrypoints.http_exchange import Incoming, Reply
from gateway.jsonmap import parse_into
from gateway.problems import Problem
from gateway.transcoder import (
    RawBody,
    Route,
    _flat_fields,
    decode_request,
    response_json,
)
from services.kit.validation import violations_of
from tests.gateway.conftest import contract_routes, order_body

PUSH_TEMPLATE = "/v1/carriers/{carrier}/webhooks"


def scope_of(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None):  # type: ignore[no-untyped-def]
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "headers": headers if headers is not None else [(b"host", b"gw.example:8080")],
        "client": ("10.0.0.7", 5555),
        "server": ("127.0.0.1", 8080),
        "scheme": "http",
    }


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/carriers/sandbox/webhooks",
        "/v1/orders/a?b",
        "/v1/orders/a#b",
        "/v1/a\\b",
        "//v1/orders",
        "/v1/orders/\tx\n",
        "/v1/ördér",
        "/v1/\x7f",
    ],
)
@pytest.mark.parametrize("host", [b"gw.example:8080", b"not a host", None])
def test_the_path_is_starlettes_url_path(path: str, host: bytes | None) -> None:
    headers = [] if host is None else [(b"host", host)]
    scope = scope_of(path, headers=headers)
    assert Incoming(scope, _no_body).path == Request(scope).url.path


@pytest.mark.parametrize(
    "query", [b"", b"a=1&b=2&a=3", b"x=&y", b"sp=a+b&pct=%41%ZZ", b"latin=%E9\xe9"]
)
def test_query_pairs_are_starlettes(query: bytes) -> None:
    scope = scope_of("/v1/orders", query)
    assert Incoming(scope, _no_body).query() == Request(scope).query_params.multi_items()


def test_headers_are_read_as_starlette_reads_them() -> None:
    raw = [
        (b"x-sig", b"one"),
        (b"content-type", b"application/json"),
        (b"x-sig", b"two"),
        (b"x-latin", b"caf\xe9"),
    ]
    scope = scope_of("/v1/orders", headers=raw)
    incoming, request = Incoming(scope, _no_body), Request(scope)
    for name in ("x-sig", "content-type", "x-latin", "missing"):
        assert incoming.header(name.encode()) == request.headers.get(name)
    assert incoming.header(b"missing", "dflt") == request.headers.get("missing", "dflt")
    assert incoming.header_items() == request.headers.items()
    assert incoming.client_host == "10.0.0.7"


async def test_the_body_is_read_whole_or_refused_past_the_limit() -> None:
    messages = iter(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    assert await Incoming(scope_of("/"), receive).read_body(4) == b"abcd"
    messages = iter([{"type": "http.request", "body": b"abcde", "more_body": False}])
    assert await Incoming(scope_of("/"), receive).read_body(4) is None


def _starlette_and_reply() -> list[tuple[Response, Reply]]:
    problem_headers = {"RateLimit-Limit": "5", "Retry-After": "1"}
    return [
        (JSONResponse({"a": "é", "b": [1, 2]}, 201), Reply.json({"a": "é", "b": [1, 2]}, 201)),
        (
            Response(b"{}", 429, problem_headers, "application/problem+json"),
            Reply(b"{}", 429, "application/problem+json", problem_headers),
        ),
        (
            Response(b"x", 200, {"Idempotent-Replayed": "true"}, ""),
            Reply(b"x", 200, "", {"Idempotent-Replayed": "true"}),
        ),
        (
            Response(b"x", 200, {"Idempotent-Replayed": "true"}, "text/plain"),
            Reply(b"x", 200, "text/plain", {"Idempotent-Replayed": "true"}),
        ),
        (HTMLResponse("<p>é</p>"), Reply("<p>é</p>".encode(), media_type="text/html")),
        (Response(b"", 204, {}, "application/json"), Reply(b"", 204, "application/json", {})),
        (
            Response(b"{}", 200, {"Content-Type": "x/y"}, "application/json"),
            Reply(b"{}", 200, "application/json", {"Content-Type": "x/y"}),
        ),
    ]


@pytest.mark.parametrize("pair", _starlette_and_reply())
def test_a_reply_carries_starlettes_headers_in_starlettes_order(
    pair: tuple[Response, Reply],
) -> None:
    response, reply = pair
    rate = {"RateLimit-Limit": "9", "RateLimit-Remaining": "8", "Retry-After": "2"}
    response.headers.update(rate)
    reply.set_headers(rate)
    response.headers["X-Correlation-Id"] = "c-1"
    reply.set_header("X-Correlation-Id", "c-1")
    assert (reply.status_code, reply.raw_headers, reply.body) == (
        response.status_code,
        response.raw_headers,
        response.body,
    )


def _route_of(template: str, method: str = "POST") -> Route:
    return next(
        route
        for route in contract_routes()[0]
        if route.template.template == template and route.binding.http_method == method
    )


@pytest.mark.parametrize("values", [(0, 0), (1, 0), (0, 1), (3, 5)])
def test_a_flat_response_prints_as_message_to_dict_in_its_key_order(
    values: tuple[int, int],
) -> None:
    route = _route_of("/v1/carriers/{carrier}/webhooks")
    accepted, duplicate = values
    reply = carrier_pb.IngestWebhookResponse(accepted_events=accepted, duplicate_events=duplicate)
    assert _flat_fields(reply.DESCRIPTOR) is not None  # the shortcut is taken
    expected = json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)
    assert list(response_json(route, reply).items()) == list(expected.items())


def test_every_flat_response_of_the_contracts_prints_as_message_to_dict() -> None:
    checked = 0
    for route in contract_routes()[0]:
        reply = route.response_class()
        if _flat_fields(reply.DESCRIPTOR) is None or route.binding.response_body:
            continue
        for index, field in enumerate(reply.DESCRIPTOR.fields):
            if index % 2:  # every other field set: set and unset fields interleave
                setattr(reply, field.name, _a_value_for(field))
        expected = json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)
        assert list(response_json(route, reply).items()) == list(expected.items())
        checked += 1
    assert checked >= 1


def _a_value_for(field: Any) -> Any:
    return {bool: True, str: "x", int: 7}[type(field.default_value)]


def _parse_dict_outcome(data: dict[str, Any], message: Message) -> tuple[Message, str]:
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as error:
        return message, str(error).split("\n", 1)[0]
    return message, ""


@pytest.mark.parametrize(
    "data",
    [
        {"carrier": "sandbox"},
        {"carrier": "sändbox"},  # not ASCII: ParseDict itself decides
        {"carrier": "\ud800"},  # an unpaired surrogate: ParseDict's error
        {"carrier": 7},
        {"nope": "x"},
        {"carrier": "ups", "body": {"contentType": "x/y"}},
    ],
)
def test_plain_string_fields_parse_as_parse_dict_does(data: dict[str, Any]) -> None:
    route = _route_of("/v1/carriers/{carrier}/webhooks")
    expected, error = _parse_dict_outcome(data, route.request_class())
    message = route.request_class()
    violations = parse_into(data, message)
    assert [v.description for v in violations] == ([error] if error else [])
    if not error:
        assert message == expected
        assert message.SerializeToString() == expected.SerializeToString()


def _order_variants() -> list[Any]:
    base = order_body()
    snake = {
        "external_order_id": "PO-S",
        "customer": {"party_id": "C-1", "name": "Zoë 😀"},
        "ship_to": {"name": "A", "lines": ["1", "2"], "city": "X", "country_code": "GB"},
        "lines": [{"sku": "S", "quantity": 3, "unit_price": {"currency_code": "GBP"}}],
        "currency_code": "GBP",
        "service_level": "SERVICE_LEVEL_EXPRESS",
    }

    def with_line(**changes: Any) -> dict[str, Any]:
        return {**base, "lines": [{**base["lines"][0], **changes}]}

    return [
        base,
        snake,
        {},
        {"customer": {}},
        {**base, "serviceLevel": 2},
        {**base, "serviceLevel": "NOT_A_LEVEL"},
        {**base, "serviceLevel": None},
        {**base, "customer": None},
        {**base, "customer": "C-1"},
        {**base, "lines": {"sku": "S"}},
        {**base, "lines": [None]},
        {**base, "shipTo": {**base["shipTo"], "lines": ["ok", None]}},
        {**base, "shipTo": {**base["shipTo"], "lines": "one line"}},
        {**base, "externalOrderId": "\ud800"},
        {**base, "externalOrderId": 12},
        {**base, "bogus": 1},
        {**base, "currency_code": "EUR"},  # given twice, by both names
        with_line(quantity="2"),
        with_line(quantity=" 2"),
        with_line(quantity="+2"),
        with_line(quantity="2_0"),
        with_line(quantity="٣"),
        with_line(quantity=2.0),
        with_line(quantity=2.5),
        with_line(quantity=True),
        with_line(quantity="-9223372036854775809"),
        with_line(quantity=9223372036854775807),
        with_line(unitPrice={"currencyCode": "GBP", "units": "5", "nanos": 2**31}),
        with_line(unitPrice={"currencyCode": "GBP", "units": "5", "nanos": -5}),
    ]


@pytest.mark.parametrize("body", _order_variants())
def test_a_json_body_parses_as_parse_dict_does(body: Any) -> None:
    route = _route_of("/v1/orders")
    data = {"order": body}
    expected, error = _parse_dict_outcome(data, route.request_class())
    message = route.request_class()
    violations = parse_into(data, message)
    assert [v.description for v in violations] == ([error] if error else [])
    if not error:
        assert message == expected
        assert message.SerializeToString(deterministic=True) == expected.SerializeToString(
            deterministic=True
        )


def test_a_plain_order_body_does_not_need_parse_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    parse_dict = json_format.ParseDict

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return parse_dict(*args, **kwargs)

    monkeypatch.setattr(json_format, "ParseDict", counted)
    route = _route_of("/v1/orders")
    message = route.request_class()
    assert parse_into({"order": order_body()}, message) == []
    assert message.order.lines[0].quantity == 2
    assert calls == []


def test_the_raw_name_look_keeps_every_header_signature_headers_forwards() -> None:
    names = [
        b"x-sig", b"X-Sig", b"x-forwarded-for", b"x-correlation-id", b"stripe-signature",
        b"Stripe-SIGNATURE", b"content-type", b"host", b"\xc0x-sig", b"x\xe9-a", b"X-\xc9",
        b"signatures", b"sig", b"xx-a", b"authorization",
    ]  # fmt: skip
    raw = [(name, b"v%d" % index) for index, name in enumerate(names)]
    scope = scope_of("/v1/carriers/sandbox/webhooks", headers=raw)
    incoming = Incoming(scope, _no_body)
    assert signature_headers(incoming.header_items(may_be_signature)) == signature_headers(
        Request(scope).headers.items()
    )


# ---- carrier pushes: the request built directly, the rules check skipped when it cannot fail ----


def _general_push(carrier: str, payload: bytes, content_type: str) -> tuple[Message, str]:
    """What the general way (json_format) makes of a push: the message, or its error."""
    as_json = {
        "carrier": carrier,
        "body": {"contentType": content_type, "data": base64.b64encode(payload).decode()},
    }
    return _parse_dict_outcome(as_json, _route_of(PUSH_TEMPLATE).request_class())


@pytest.mark.parametrize(
    "carrier", ["sandbox", "UPS", "a b", "x" * 40, "", "sändbox", "\ud800", "a%2Fb"]
)
@pytest.mark.parametrize("payload", [b"", b'{"id":1}', b"\xff\x00"])
def test_a_push_decodes_as_the_general_way_makes_it(carrier: str, payload: bytes) -> None:
    route = _route_of(PUSH_TEMPLATE)
    expected, error = _general_push(carrier, payload, "text/x")
    try:
        message = decode_request(route, {"carrier": carrier}, [], RawBody(payload, "text/x"))
    except Problem as problem:
        assert error, problem  # refused only where ParseDict refuses
        return
    assert not error
    assert message.SerializeToString() == expected.SerializeToString()
    assert message.HasField("body")


def test_a_push_with_a_query_still_takes_the_general_way() -> None:
    route = _route_of(PUSH_TEMPLATE)
    with pytest.raises(Problem) as refused:
        decode_request(route, {"carrier": "ups"}, [("token", "x")], RawBody(b"{}", "x/y"))
    assert [v.field for v in refused.value.violations] == ["token"]


def test_the_push_rules_are_the_ones_keeps_contract_knows() -> None:
    """keeps_contract stands in for protovalidate on pushes: a new rule on IngestWebhookRequest
    (or another signed push RPC) must be taught to it, and this test says so."""
    descriptor = carrier_pb.IngestWebhookRequest.DESCRIPTOR
    pushes = [route for route in contract_routes()[0] if is_signed_push(route.binding)]
    assert {route.binding.method.input_type.full_name for route in pushes} == {descriptor.full_name}
    rules = {
        field.name: field.GetOptions().Extensions[validate_pb2.field]
        for field in descriptor.fields
        if field.GetOptions().HasExtension(validate_pb2.field)
    }
    assert {name: str(rule).split() for name, rule in rules.items()} == {
        "carrier": ["string", "{", "pattern:", '"^[a-z][a-z0-9_]{1,31}$"', "}"],
        "body": ["required:", "true"],
        "signature_headers": ["map", "{", "max_pairs:", str(MAX_FORWARDED), "}"],
    }
    assert not descriptor.GetOptions().HasExtension(validate_pb2.message)
    assert not descriptor.oneofs
    for field in httpbody_pb2.HttpBody.DESCRIPTOR.fields:
        assert not field.GetOptions().HasExtension(validate_pb2.field)


@pytest.mark.parametrize(
    "carrier", ["sandbox", "ups", "dhl_express", "UPS", "x", "a" * 32, "a" * 33, "1ab", "a-b", ""]
)
@pytest.mark.parametrize("header_count", [0, 3, MAX_FORWARDED, MAX_FORWARDED + 1])
def test_a_push_keeps_the_contract_exactly_when_protovalidate_says_so(
    carrier: str, header_count: int
) -> None:
    headers = {f"x-sig-{index}": "v" for index in range(header_count)}
    route = _route_of(PUSH_TEMPLATE)
    message = cast(
        carrier_pb.IngestWebhookRequest,
        decode_request(route, {"carrier": carrier}, [], RawBody(b"{}", "x/y")),
    )
    message.signature_headers.update(headers)  # as finish_request sets them, before its check
    assert keeps_contract(carrier, headers) == (violations_of(message) == [])
