"""Which route a request's path and method name: 404, 405 with Allow, or the route and values.

Matching every template against every path cost a regex per route per request, so routes are
indexed by the path's first two segments (`/v1/orders/...` -> ("", "v1", "orders")). A template
can only match a path that starts with its literal prefix, so a path is tried only against the
routes whose prefix has the same first two segments, plus the few whose first variable sits in
those segments; the order (most specific first, `transcoder.build_routes`) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from gateway.problems import Problem
from gateway.transcoder import Route

_PathKey = tuple[str, ...]


def _path_key(path: str) -> _PathKey:
    return tuple(path.split("/", 3)[:3])


def _key_of(route: Route) -> _PathKey | None:
    """The first two segments every path this route matches has, or None if they vary."""
    template = route.template.template
    variable_at = template.find("{")
    if variable_at < 0:
        return _path_key(template)  # all literal: only this very path matches
    literal_prefix = template[:variable_at]
    if literal_prefix.count("/") >= 3:  # segments 1 and 2 are literal and complete
        return _path_key(literal_prefix)
    return None


class RouteTable:
    def __init__(self, routes: Sequence[Route]) -> None:
        keys = [_key_of(route) for route in routes]
        # Routes of one key, plus the routes any path may match, in the routes' order.
        self._any_path = [route for route, key in zip(routes, keys, strict=True) if key is None]
        self._by_key: dict[_PathKey, list[Route]] = {}
        for key in {key for key in keys if key is not None}:
            self._by_key[key] = [
                route
                for route, route_key in zip(routes, keys, strict=True)
                if route_key is None or route_key == key
            ]

    def candidates(self, raw_path: str) -> list[Route]:
        """The routes that may match `raw_path`, most specific first."""
        return self._by_key.get(_path_key(raw_path), self._any_path)

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route of `method` on `raw_path` (still percent-encoded) and its decoded values;
        raises a 405 Problem (with Allow) when the path has routes of other methods, else 404."""
        matched = [
            (route, values)
            for route in self.candidates(raw_path)
            if (values := route.template.match(raw_path)) is not None
        ]
        if any(route.template.verb for route, _ in matched):
            # `/v1/orders/X:cancel` names the custom method, not an order "X:cancel": a plain
            # `{order_id}` template must not claim it (nor offer its methods in Allow).
            matched = [(route, values) for route, values in matched if route.template.verb]
        allowed: list[str] = []
        for route, values in matched:
            if route.binding.http_method == method:
                return route, values
            allowed.append(route.binding.http_method)
        if allowed:
            raise Problem(
                405,
                f"{method} is not allowed here",
                grpc.StatusCode.UNIMPLEMENTED,
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise Problem(404, "no such resource", grpc.StatusCode.NOT_FOUND)
