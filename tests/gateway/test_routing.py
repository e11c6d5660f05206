"""The route table answers exactly what trying every route's template would answer."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from gateway.problems import Problem
from gateway.routing import RouteTable
from gateway.templates import parse_template
from gateway.transcoder import Route
from tests.gateway.conftest import contract_routes

METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT")


def every_route_tried(routes: list[Route], method: str, raw_path: str) -> object:
    """The reference: every template tried, in order (what the partner API did before)."""
    matched = [(r, v) for r in routes if (v := r.template.match(raw_path)) is not None]
    if any(route.template.verb for route, _ in matched):
        matched = [(route, values) for route, values in matched if route.template.verb]
    allowed = [route.binding.http_method for route, _ in matched]
    for route, values in matched:
        if route.binding.http_method == method:
            return route, values
    return (405, ", ".join(sorted(set(allowed)))) if allowed else (404, "")


def answer(table: RouteTable, method: str, raw_path: str) -> object:
    try:
        return table.match(method, raw_path)
    except Problem as problem:
        return (problem.status, problem.headers.get("Allow", ""))


def sample_paths(routes: list[Route]) -> set[str]:
    values = ("ord_1", "X:cancel", "a%2Fb", "sandbox", "")
    paths = {"/", "/v1", "/v1/", "/v2/orders", "/v1/nothing/here", "/v1/orders/", "//v1/orders"}
    for route in routes:
        template = route.template.template
        names = route.template.variables
        for chosen in itertools.product(values, repeat=len(names)):
            path = template
            for name, value in zip(names, chosen, strict=True):
                path = path.replace("{" + name + "}", value)
            paths |= {path, path + "/extra", path.replace("/v1/", "/v1//")}
    return paths


@pytest.mark.integration  # runs protoc
def test_the_contract_routes_match_as_if_every_template_were_tried() -> None:
    routes = contract_routes()[0]
    # Routes whose first variable is in the first two segments are tried for every path.
    anywhere = parse_template("/v1/{name=**}:frob")
    first = parse_template("/{version}/orders")
    extra = [dataclasses.replace(routes[0], template=anywhere)]
    extra.append(dataclasses.replace(routes[-1], template=first))
    for every in (routes, build_sorted(routes + extra)):
        table = RouteTable(every)
        paths = sample_paths(every) | {"/v1/anything/at/all:frob", "/v2/orders"}
        for method, path in itertools.product(METHODS, sorted(paths)):
            assert answer(table, method, path) == every_route_tried(every, method, path), (
                method,
                path,
            )


def build_sorted(routes: list[Route]) -> list[Route]:
    return sorted(routes, key=lambda r: r.template.specificity)


@pytest.mark.integration  # runs protoc
def test_a_route_table_looks_only_at_routes_of_the_paths_prefix() -> None:
    table = RouteTable(contract_routes()[0])
    candidates = table.candidates("/v1/carriers/sandbox/webhooks")
    assert [route.template.template for route in candidates] == ["/v1/carriers/{carrier}/webhooks"]
    assert table.candidates("/v1/unknown") == []
