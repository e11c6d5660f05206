"""The document's examples and security: what Swagger UI's "try it out" starts from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from gateway.auth import bearer_token, is_signed_push, scope_for
from tests.gateway.conftest import contract_routes

_BASE = "urn:crossdock:openapi"


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operation, JSON pointer of the media type, the media type) for every body and response."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            name = f"{method.upper()} {path}"
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                yield (
                    name,
                    _pointer("paths", path, method, "requestBody", "content", media),
                    content,
                )
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    pointer = _pointer("paths", path, method, "responses", status, "content", media)
                    yield f"{name} {status}", pointer, content


def _validator(spec: dict[str, Any], pointer: str) -> Draft202012Validator:
    # The whole document is the resource, so the schemas' "#/components/..." refs resolve.
    registry: Registry[Any] = Registry().with_resource(_BASE, DRAFT202012.create_resource(spec))
    schema = {"$ref": f"{_BASE}#{pointer}/schema"}
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def test_every_json_body_and_response_has_an_example_valid_against_its_schema() -> None:
    spec = contract_routes()[1]
    checked = 0
    for name, pointer, content in _examples(spec):
        if "application/json" not in pointer and "problem+json" not in pointer:
            continue  # the carrier push's raw body: bytes in the carrier's own format
        assert "example" in content, f"{name}: no example"
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in _validator(spec, pointer).iter_errors(content["example"])
        ]
        assert not errors, f"{name}: the example breaks its schema: {errors}"
        checked += 1
    assert checked > 300  # every operation's bodies, successes and problems


def test_the_validation_catches_an_example_that_breaks_its_schema() -> None:
    # The check above can fail: a quantity of zero breaks OrderLineInput's rule (> 0).
    spec = contract_routes()[1]
    pointer = _pointer("paths", "/v1/orders", "post", "requestBody", "content", "application/json")
    example = spec["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    broken = {**example["example"], "lines": [{**example["example"]["lines"][0], "quantity": 0}]}
    assert not list(_validator(spec, pointer).iter_errors(example["example"]))
    assert list(_validator(spec, pointer).iter_errors(broken))


def test_the_create_order_example_orders_seeded_demo_items_with_lines() -> None:
    # So "try it out" succeeds as it stands against a local mesh (localmesh.seed).
    from localmesh.seed import CURRENCY, DEMO_ITEMS

    spec = contract_routes()[1]
    body = spec["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    order = body["example"]
    assert len(order["lines"]) >= 2
    assert {line["sku"] for line in order["lines"]} <= {item.sku for item in DEMO_ITEMS}
    assert order["currencyCode"] == CURRENCY
    created = spec["paths"]["/v1/orders"]["post"]["responses"]["201"]["content"]
    assert created["application/json"]["example"]["order"]["lines"]


def test_problem_examples_are_the_gateways_own_problem_bodies() -> None:
    spec = contract_routes()[1]
    responses = spec["paths"]["/v1/orders"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "422", "429", "503"):
        problem = responses[status]["content"]["application/problem+json"]["example"]
        assert problem["status"] == int(status)
        assert problem["type"] == f"/docs#problem-{status}"
    forbidden = responses["403"]["content"]["application/problem+json"]["example"]
    assert "orders:write" in forbidden["detail"]
    bad = responses["400"]["content"]["application/problem+json"]["example"]
    assert bad["violations"] and bad["grpc_code"] == "INVALID_ARGUMENT"


def test_every_operation_but_signed_pushes_requires_the_bearer_api_key() -> None:
    routes, spec = contract_routes()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    # The scheme Swagger UI's "Authorize" fills in is the header gateway.auth reads.
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert bearer_token("Bearer cdk_key_secret") == "cdk_key_secret"
    assert spec["security"] == [{"bearerAuth": []}]
    for route in routes:
        path = route.template.openapi_path
        operation = spec["paths"][path][route.binding.http_method.lower()]
        if is_signed_push(route.binding):
            assert operation["security"] == [], path
        else:
            assert operation["security"] == [{"bearerAuth": [scope_for(route.binding)]}], path
            assert "401" in operation["responses"] and "403" in operation["responses"], path
