"""Carrier pushes coalesced into IngestWebhooks calls: a burst costs one call, not one per push.

Carriers push tracking news in bursts (a notification service flushes what happened since its
last run), and each push used to cost its own IngestWebhook call and its own transaction in
carrier-adapter. `PushBatcher.ingest` takes one push and answers what IngestWebhook would have
answered, but the push rides in an IngestWebhooks call with the pushes that arrived meanwhile:

- when a call slot is free, a call starts at once (in the event loop's next turn, as any task
  does) and takes every push queued by then: the pushes whose requests the loop handled in the
  same turn ride together, and an idle push goes alone, with no added latency;
- while `max_in_flight` calls are out, new pushes wait and go together in the next call, at most
  `max_batch` a call (natural batching: batches grow only as fast as the backend falls behind).

Each push keeps its own outcome. A push carrier-adapter refused comes back as the gRPC error
IngestWebhook would have raised (same code, message and rich details), so the gateway's error
mapping answers the carrier exactly as before. A failure of the whole call (carrier-adapter
unreachable, deadline) fails every push in it with that error, as separate calls would have.

Each push carries the correlation id of its HTTP request. The batched call itself runs outside
any request's context, so no request's deadline or correlation id leaks onto the others.

A carrier-adapter that predates IngestWebhooks (a rolling upgrade) answers UNIMPLEMENTED: the
pushes of that call are then sent one by one with IngestWebhook, and batching is retried after
`retry_batching_after` seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from crossdock.carrier.v1 import carrier_service_pb2 as carrier_pb
from google.rpc import status_pb2

from services.kit.grpc_errors import STATUS_DETAILS_KEY
from services.kit.request_context import (
    CORRELATION_ID_KEY,
    correlation_scope,
    current_correlation_id,
    new_correlation_id,
)

__all__ = ["INGEST_WEBHOOKS_PATH", "PushBatcher"]

log = logging.getLogger(__name__)

INGEST_WEBHOOKS_PATH = "/crossdock.carrier.v1.CarrierAdapterService/IngestWebhooks"
MAX_BATCH = 100  # IngestWebhooksRequest.pushes allows 100

IngestWebhooks = Callable[
    [carrier_pb.IngestWebhooksRequest], Awaitable[carrier_pb.IngestWebhooksResponse]
]
IngestWebhook = Callable[
    [carrier_pb.IngestWebhookRequest], Awaitable[carrier_pb.IngestWebhookResponse]
]


@dataclass
class _Waiting:
    push: carrier_pb.IngestWebhookRequest
    correlation_id: str  # of the push's HTTP request; "" for none
    answer: asyncio.Future[carrier_pb.IngestWebhookResponse] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PushBatcher:
    def __init__(
        self,
        call: IngestWebhooks,
        single: IngestWebhook,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = 2,
        retry_batching_after: float = 60.0,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be within 1..{MAX_BATCH}")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._call = call
        self._single = single
        self._retry_batching_after = retry_batching_after
        self._unbatched_until = 0.0  # monotonic time before which pushes go one by one
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[_Waiting] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        # A call task created but not started yet: it will take what is queued when it starts,
        # so a push arriving meanwhile needs no call of its own.
        self._starting = False

    async def ingest(
        self, push: carrier_pb.IngestWebhookRequest
    ) -> carrier_pb.IngestWebhookResponse:
        """IngestWebhook's answer for `push`; raises its gRPC error as an AioRpcError.

        `push` is copied into its call when the call is made: it must not change meanwhile."""
        waiting = _Waiting(push, current_correlation_id() or "")
        self._queue.append(waiting)
        self._dispatch()
        # A carrier hanging up cancels only its own answer; the call runs in its own task, so
        # the other pushes riding in it are not affected.
        return await waiting.answer

    async def close(self) -> None:
        """Wait for the calls in flight (new pushes are not expected any more)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _dispatch(self) -> None:
        if self._queue and not self._starting and len(self._in_flight) < self._max_in_flight:
            self._starting = True
            # A fresh context: the call must not inherit the deadline or correlation id of
            # whichever request happened to start it.
            task = asyncio.get_running_loop().create_task(
                self._send_queued(), context=contextvars.Context()
            )
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    async def _send_queued(self) -> None:
        """One call with the pushes queued when the task starts (at most `max_batch`)."""
        self._starting = False
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        self._dispatch()  # more than a batch queued: another call may start too
        if batch:
            await self._send(batch)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            self._starting = False  # it may have been cancelled before it took its batch
        self._dispatch()  # what queued up meanwhile goes out now, together

    async def _send(self, batch: list[_Waiting]) -> None:
        if time.monotonic() < self._unbatched_until:
            await self._send_one_by_one(batch)
            return
        request = _batch_request(batch)
        try:
            reply = await self._call(request)
            if len(reply.results) != len(batch):
                raise _mismatch(len(batch), len(reply.results))
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                log.warning("carrier-adapter has no IngestWebhooks; sending pushes one by one")
                self._unbatched_until = time.monotonic() + self._retry_batching_after
                await self._send_one_by_one(batch)
                return
            for waiting in batch:
                _settle(waiting, error=error)
            return
        except Exception as error:  # every waiting push must get an answer
            log.exception("IngestWebhooks call failed")
            failure = _rpc_error(grpc.StatusCode.INTERNAL, f"push batch failed: {error!r}")
            for waiting in batch:
                _settle(waiting, error=failure)
            return
        for waiting, result in zip(batch, reply.results, strict=True):
            if result.HasField("ingested"):
                _settle(waiting, value=result.ingested)
            else:
                _settle(waiting, error=_error_of(result.error, waiting.correlation_id))

    async def _send_one_by_one(self, batch: list[_Waiting]) -> None:
        await asyncio.gather(*(self._send_alone(waiting) for waiting in batch))

    async def _send_alone(self, waiting: _Waiting) -> None:
        # Under the push's own correlation id, as its request would have sent it.
        with correlation_scope(waiting.correlation_id or new_correlation_id()):
            try:
                _settle(waiting, value=await self._single(waiting.push))
            except Exception as error:  # handed to the push's request
                _settle(waiting, error=error)


def _batch_request(batch: list[_Waiting]) -> carrier_pb.IngestWebhooksRequest:
    """The IngestWebhooks request of `batch`, each push copied once, straight into its item
    (an IngestWebhookItem made first and then copied into the request cost twice as much)."""
    request = carrier_pb.IngestWebhooksRequest()
    for waiting in batch:
        item = request.pushes.add(correlation_id=waiting.correlation_id)
        item.push.CopyFrom(waiting.push)
    return request


def _settle(
    waiting: _Waiting,
    *,
    value: carrier_pb.IngestWebhookResponse | None = None,
    error: BaseException | None = None,
) -> None:
    if waiting.answer.done():
        return  # the push's request gave up (cancelled): nobody is waiting for this answer
    if value is not None:
        waiting.answer.set_result(value)
    else:
        waiting.answer.set_exception(error or _rpc_error(grpc.StatusCode.INTERNAL, "no answer"))


def _error_of(status: status_pb2.Status, correlation_id: str) -> grpc.aio.AioRpcError:
    """The AioRpcError IngestWebhook would have raised for this status."""
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    trailing: list[tuple[str, str | bytes]] = [(STATUS_DETAILS_KEY, status.SerializeToString())]
    if correlation_id:
        trailing.append((CORRELATION_ID_KEY, correlation_id))
    return grpc.aio.AioRpcError(
        code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailing),
        details=status.message,
        debug_error_string=None,
    )


def _rpc_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=message, debug_error_string=None
    )


def _mismatch(sent: int, got: int) -> grpc.aio.AioRpcError:
    return _rpc_error(grpc.StatusCode.INTERNAL, f"{got} results for {sent} pushes")


_CODES = {code.value[0]: code for code in grpc.StatusCode}
