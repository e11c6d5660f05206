"""Standard gRPC health checking (grpc.health.v1.Health: Check, List, Watch) that can drain.

grpcio-health-checking provides the protocol; the servicer is ours because its aio servicer keeps
every `Watch` stream open forever, so a client or load balancer watching our health would hold
`server.stop(grace)` for the whole grace period. Here `drain()` sets every service NOT_SERVING
for good, each watcher sends that status, and then its stream ends (status OK).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

from grpc import StatusCode
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["NOT_SERVING", "SERVICE_UNKNOWN", "SERVING", "DrainingHealthServicer"]

ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class DrainingHealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Health by service name ("" is the whole server), starting NOT_SERVING."""

    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {"": NOT_SERVING}
        # Bumped on every change; a watcher waits for it to move, so no change is missed.
        self._version = 0
        self._changed = asyncio.Condition()
        self._draining = False

    @property
    def draining(self) -> bool:
        """True once drain() began: the server is shutting down."""
        return self._draining

    async def set(self, service: str, status: ServingStatus) -> None:
        """Set one service's status; ignored once draining (NOT_SERVING is final)."""
        if self._draining:
            return
        async with self._changed:
            self._statuses[service] = status
            self._version += 1
            self._changed.notify_all()

    async def drain(self) -> None:
        """Set everything NOT_SERVING for good and let every Watch stream end."""
        async with self._changed:
            self._draining = True
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            self._version += 1
            self._changed.notify_all()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                service: health_pb2.HealthCheckResponse(status=status)
                for service, status in self._statuses.items()
            }
        )

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        # Writes happen only in this coroutine, one at a time (grpc allows one in flight).
        last_sent: ServingStatus | None = None
        while True:
            seen = self._version
            status = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if status != last_sent:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last_sent = status
            if self._draining:
                return
            async with self._changed:
                await self._changed.wait_for(lambda: self._version != seen)  # noqa: B023
