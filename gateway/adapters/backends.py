"""One gRPC channel per backend service, and a unary callable per route.

Calls go through the kit's open_channel, so each carries the correlation id of the HTTP request
(from the contextvar) and a deadline. The callable is built from the descriptors alone
(`/<service>/<method>` plus the message classes), so new RPCs need no generated stub here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from gateway.transcoder import Route
from services.kit.client import open_channel


class BackendUnavailable(Exception):
    """No target is configured for a route's service."""


class Backends:
    def __init__(self, targets: Mapping[str, str], *, default_timeout_seconds: float) -> None:
        """`targets` maps a service's full name (crossdock.order.v1.OrderService) to host:port."""
        self._targets = dict(targets)
        self._timeout = default_timeout_seconds
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}

    def add_target(self, service: str, target: str) -> None:
        """Route a service to `target` (the gateway's own in-process services)."""
        self._targets[service] = target

    def _channel(self, service: str) -> grpc.aio.Channel:
        target = self._targets.get(service, "")
        if not target:
            raise BackendUnavailable(service)
        if target not in self._channels:
            # Services that share a process (and target) share one channel.
            self._channels[target] = open_channel(target, default_timeout_seconds=self._timeout)
        return self._channels[target]

    def callable_for(self, route: Route) -> Any:
        path = route.binding.grpc_path
        call = self._callables.get(path)
        if call is None:
            channel = self._channel(route.binding.service.full_name)
            call = channel.unary_unary(
                path,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=route.response_class.FromString,
            )
            self._callables[path] = call
        return call

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
        self._callables.clear()
