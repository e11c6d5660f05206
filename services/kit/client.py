"""Outgoing gRPC calls: every call carries the correlation id and has a deadline.

`open_channel` is how a service talks to another. On every call (a thin wrapper around the
channel's callables, or interceptors when tracing is on, since OpenTelemetry's are interceptors):

- add `x-correlation-id` of the call or event being handled (unless the caller set one);
- set the timeout to the tightest of: the caller's own timeout, what is left of the incoming
  call's deadline (so a callee never works for a caller that has given up), and a default for
  calls that have neither (no call ever waits forever);
- when tracing is on, add `traceparent` (opentelemetry-instrumentation-grpc).

Every channel balances its calls `round_robin` over the addresses its target resolves to, so one
client spreads its calls over every replica of the callee (grpc's default, `pick_first`, sends
them all to the first address). Targets are gRPC names:

- `dns:///inventory-headless:50051` (Kubernetes: a headless Service resolves to one A record per
  ready pod; deploy/k8s/README.md, "Client load balancing");
- `ipv4:127.0.0.1:5001,127.0.0.1:5002`: a fixed list of replicas (a local multi-replica mesh);
- `inventory:50051` or `127.0.0.1:5001`: one host, as before (a name is resolved by DNS).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.kit.request_context import (
    CORRELATION_ID_KEY,
    current_correlation_id,
    outgoing_timeout,
)
from services.kit.telemetry import active_tracer_provider, grpc_client_interceptors

# grpc-stubs declares the interceptor classes generic; at runtime they are not subscriptable.
if TYPE_CHECKING:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream = grpc.aio.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor
    _StreamUnary = grpc.aio.StreamUnaryClientInterceptor
    _StreamStream = grpc.aio.StreamStreamClientInterceptor

__all__ = [
    "ROUND_ROBIN_SERVICE_CONFIG",
    "SERVICE_CONFIG_OPTION",
    "TRANSIENT_CODES",
    "CallContextInterceptor",
    "UnaryStreamCallContextInterceptor",
    "call_context_interceptors",
    "channel_options",
    "is_transient",
    "open_channel",
    "outgoing_metadata",
]


# The gRPC service config of every channel open_channel makes (grpc option
# "grpc.service_config"): one subchannel per resolved address, each call to the next ready one.
# A pod that drains or dies leaves the rotation; a fresh DNS answer (re-resolved when a connection
# drops) adds new pods.
SERVICE_CONFIG_OPTION = "grpc.service_config"
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options(options: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """`options` plus the round_robin service config, unless the caller brought its own."""
    if any(name == SERVICE_CONFIG_OPTION for name, _ in options):
        return list(options)
    return [*options, (SERVICE_CONFIG_OPTION, ROUND_ROBIN_SERVICE_CONFIG)]


# Status codes worth calling again later (with backoff, on an idempotent call); any other code is
# the callee's final word. The one list every worker and client uses.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def is_transient(error: grpc.aio.AioRpcError) -> bool:
    """True when the failed call may succeed if made again later."""
    return error.code() in TRANSIENT_CODES


def outgoing_metadata(
    metadata: Sequence[tuple[str, str | bytes]] | None = None,
) -> tuple[tuple[str, str | bytes], ...]:
    """`metadata` plus the current correlation id (for calls made without open_channel)."""
    items = tuple(metadata or ())
    correlation_id = current_correlation_id()
    if correlation_id is None or any(key == CORRELATION_ID_KEY for key, _ in items):
        return items
    return (*items, (CORRELATION_ID_KEY, correlation_id))


class _CallContext:
    """Rewrites call details; shared by the four interceptor kinds grpc.aio requires."""

    def __init__(self, default_timeout_seconds: float) -> None:
        if default_timeout_seconds <= 0:
            raise ValueError("default_timeout_seconds must be positive")
        self._default_timeout_seconds = default_timeout_seconds

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*outgoing_metadata(tuple(details.metadata or ())))
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=outgoing_timeout(self._default_timeout_seconds, details.timeout),
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class CallContextInterceptor(_CallContext, _UnaryUnary):
    """Correlation id and deadline on unary calls."""

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class UnaryStreamCallContextInterceptor(_CallContext, _UnaryStream):
    """Correlation id and deadline on server-streaming calls."""

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamUnaryCallContextInterceptor(_CallContext, _StreamUnary):
    async def intercept_stream_unary(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStreamCallContextInterceptor(_CallContext, _StreamStream):
    async def intercept_stream_stream(
        self,
        continuation: Any,
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def call_context_interceptors(default_timeout_seconds: float) -> list[_CallContext]:
    """Correlation-id and deadline interceptors for every kind of call."""
    return [
        CallContextInterceptor(default_timeout_seconds),
        UnaryStreamCallContextInterceptor(default_timeout_seconds),
        _StreamUnaryCallContextInterceptor(default_timeout_seconds),
        _StreamStreamCallContextInterceptor(default_timeout_seconds),
    ]


def open_channel(
    target: str,
    *,
    default_timeout_seconds: float,
    tracer_provider: TracerProvider | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An insecure grpc.aio channel to another crossdock service (mesh traffic is in-cluster).

    `target` is a gRPC name (see the module docstring); calls go round_robin over every address
    it resolves to, unless `options` carries its own "grpc.service_config".
    `tracer_provider` defaults to the one setup_telemetry installed (none: no trace headers).
    """
    provider = tracer_provider if tracer_provider is not None else active_tracer_provider()
    if provider is None:
        # Without tracing, the correlation id and deadline are added by a thin wrapper: grpc.aio
        # runs interceptors through an extra call object and task per call (~50 µs of client
        # CPU, a fifth of a unary call).
        return _CallContextChannel(
            grpc.aio.insecure_channel(target, options=channel_options(options)),
            default_timeout_seconds,
        )
    interceptors: list[Any] = [
        *call_context_interceptors(default_timeout_seconds),
        *grpc_client_interceptors(provider),
    ]
    # grpc-stubs leaves ClientInterceptor as "cast or ignore".
    return grpc.aio.insecure_channel(
        target, options=channel_options(options), interceptors=cast(Any, interceptors)
    )


class _WithCallContext:
    """A multi-callable that adds what CallContextInterceptor adds: the correlation id to the
    metadata and the tightest timeout. It returns grpc's own call object, so callers can read its
    metadata and status as with any call."""

    def __init__(self, inner: Any, default_timeout_seconds: float) -> None:
        self._inner = inner
        self._default_timeout_seconds = default_timeout_seconds

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._inner(
            request,
            timeout=outgoing_timeout(self._default_timeout_seconds, timeout),
            metadata=_call_metadata(metadata),
            **kwargs,
        )


def _call_metadata(
    metadata: Sequence[tuple[str, str | bytes]] | None,
) -> tuple[tuple[str, str | bytes], ...]:
    """`outgoing_metadata`, with a short path for the usual call that passes no metadata."""
    if metadata:
        return outgoing_metadata(tuple(metadata))
    correlation_id = current_correlation_id()
    return () if correlation_id is None else ((CORRELATION_ID_KEY, correlation_id),)


class _CallContextChannel(grpc.aio.Channel):
    """A channel whose calls carry the correlation id and a deadline (see _WithCallContext)."""

    def __init__(self, channel: grpc.aio.Channel, default_timeout_seconds: float) -> None:
        if default_timeout_seconds <= 0:
            raise ValueError("default_timeout_seconds must be positive")
        self._channel = channel
        self._default_timeout_seconds = default_timeout_seconds

    def _wrap(self, inner: Any) -> Any:
        return _WithCallContext(inner, self._default_timeout_seconds)

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(self._channel.unary_unary(*args, **kwargs))

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(self._channel.unary_stream(*args, **kwargs))

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(self._channel.stream_unary(*args, **kwargs))

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(self._channel.stream_stream(*args, **kwargs))

    async def __aenter__(self) -> _CallContextChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.close(None)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()
