"""One gRPC channel per backend service, and a unary callable per route.

The operator console reaches the control tower (not a partner route) through `channel()`.

Calls go through the kit's open_channel, so each carries the correlation id of the HTTP request
(from the contextvar) and a deadline. The callable is built from the descriptors alone
(`/<service>/<method>` plus the message classes), so new RPCs need no generated stub here.

Carrier pushes are the exception: the IngestWebhook route's callable is a PushBatcher
(adapters/push_batching.py), which coalesces concurrent pushes into IngestWebhooks calls and
answers each push exactly as IngestWebhook would (`push_batch_max=1` with one call in flight
still goes through IngestWebhooks; `push_batching=False` keeps one IngestWebhook per push).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_pb

from gateway.adapters.push_batching import INGEST_WEBHOOKS_PATH, MAX_BATCH, PushBatcher
from gateway.transcoder import Route
from services.kit.client import open_channel

INGEST_WEBHOOK_PATH = "/crossdock.carrier.v1.CarrierAdapterService/IngestWebhook"


class BackendUnavailable(Exception):
    """No target is configured for a route's service."""


class Backends:
    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        default_timeout_seconds: float,
        push_batching: bool = True,
        push_batch_max: int = MAX_BATCH,
        push_batch_in_flight: int = 2,
    ) -> None:
        """`targets` maps a service's full name (crossdock.order.v1.OrderService) to host:port."""
        self._targets = dict(targets)
        self._timeout = default_timeout_seconds
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}
        self._push_batching = push_batching
        self._push_batch_max = push_batch_max
        self._push_batch_in_flight = push_batch_in_flight
        self._batchers: list[PushBatcher] = []

    def add_target(self, service: str, target: str) -> None:
        """Route a service to `target` (the gateway's own in-process services)."""
        self._targets[service] = target

    def channel(self, service: str) -> grpc.aio.Channel:
        """The channel to `service` (a full name), for callers with a generated stub, like the
        operator console's control tower client; BackendUnavailable when it has no target."""
        return self._channel(service)

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
            if self._push_batching and path == INGEST_WEBHOOK_PATH:
                call = self._push_batcher(channel, call)
            self._callables[path] = call
        return call

    def _push_batcher(self, channel: grpc.aio.Channel, single: Any) -> Any:
        batched = channel.unary_unary(
            INGEST_WEBHOOKS_PATH,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=carrier_pb.IngestWebhooksResponse.FromString,
        )
        batcher = PushBatcher(
            batched,
            single,
            max_batch=self._push_batch_max,
            max_in_flight=self._push_batch_in_flight,
        )
        self._batchers.append(batcher)
        return batcher.ingest

    async def close(self) -> None:
        for batcher in self._batchers:
            await batcher.close()
        self._batchers.clear()
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
        self._callables.clear()
