"""open_channel balances calls round_robin over every address of its target.

Two real kit servers on loopback, one `ipv4:` target listing both (the form a local
multi-replica mesh uses; a Kubernetes headless Service gives the same address list through DNS).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
import pytest
from crossdock.inventory.v1 import inventory_pb2
from crossdock.inventory.v1 import inventory_service_pb2 as inventory
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.kit.client import SERVICE_CONFIG_OPTION, open_channel
from services.kit.request_context import CORRELATION_ID_KEY, correlation_scope
from services.kit.server import ServiceServer
from tests.kit.server_support import serving

# The tests here serve gRPC on loopback ports.
pytestmark = pytest.mark.integration

INVENTORY_SERVICE = inventory.DESCRIPTOR.services_by_name["InventoryService"]
# Enough calls for both connections to come up: round_robin sends calls only to ready ones.
WARM_UP_CALLS = 50
PICK_FIRST = json.dumps({"loadBalancingConfig": [{"pick_first": {}}]})


class CountingInventory(inventory_grpc.InventoryServiceServicer):
    """One replica: counts the calls it answered and the correlation ids they carried."""

    def __init__(self) -> None:
        self.calls = 0
        self.correlation_ids: set[str | None] = set()

    async def GetItem(
        self, request: inventory.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> inventory.GetItemResponse:
        self.calls += 1
        self.correlation_ids.add(dict(context.invocation_metadata() or ()).get(CORRELATION_ID_KEY))
        return inventory.GetItemResponse(item=inventory_pb2.Item(sku=request.sku))


@asynccontextmanager
async def replicas(
    count: int,
) -> AsyncIterator[tuple[list[ServiceServer], list[CountingInventory], str]]:
    """`count` served inventory replicas, and the `ipv4:` target listing them all."""
    servicers = [CountingInventory() for _ in range(count)]
    async with AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                serving(
                    (inventory_grpc.add_InventoryServiceServicer_to_server, s, INVENTORY_SERVICE)
                )
            )
            for s in servicers
        ]
        target = "ipv4:" + ",".join(f"127.0.0.1:{server.port}" for server in servers)
        yield servers, servicers, target


async def get_item(channel: grpc.aio.Channel) -> None:
    response = await inventory_grpc.InventoryServiceStub(channel).GetItem(
        inventory.GetItemRequest(sku="SKU-1")
    )
    assert response.item.sku == "SKU-1"


async def warm_up(channel: grpc.aio.Channel, servicers: list[CountingInventory]) -> None:
    """Call until every replica has answered once (each connection is up)."""
    for _ in range(WARM_UP_CALLS):
        if all(s.calls for s in servicers):
            return
        await get_item(channel)
    pytest.fail(f"after {WARM_UP_CALLS} calls: {[s.calls for s in servicers]} per replica")


@pytest.mark.parametrize("tracing", [False, True], ids=["no-tracing", "tracing"])
async def test_calls_alternate_over_every_listed_replica(tracing: bool) -> None:
    provider = TracerProvider() if tracing else None
    async with (
        replicas(2) as (_, servicers, target),
        open_channel(target, default_timeout_seconds=5, tracer_provider=provider) as channel,
    ):
        await warm_up(channel, servicers)
        before = [s.calls for s in servicers]
        with correlation_scope("corr-balanced"):
            for _ in range(10):
                await get_item(channel)

    # round_robin takes the ready connections in turn: exactly half each.
    assert [s.calls - b for s, b in zip(servicers, before, strict=True)] == [5, 5]
    # Both paths (thin wrapper, interceptors) still carry the correlation id.
    assert all("corr-balanced" in s.correlation_ids for s in servicers)


async def test_calls_keep_succeeding_when_a_replica_stops() -> None:
    async with (
        replicas(2) as (servers, servicers, target),
        open_channel(target, default_timeout_seconds=5) as channel,
    ):
        await warm_up(channel, servicers)
        await servers[1].shutdown()
        stopped_at = servicers[1].calls
        for _ in range(10):
            await get_item(channel)
        still_up = servicers[0].calls

    assert servicers[1].calls == stopped_at, "no call reached the stopped replica"
    assert still_up >= 10


@pytest.mark.parametrize("target", ["127.0.0.1:{port}", "dns:///localhost:{port}"])
async def test_a_single_host_target_works_as_before(target: str) -> None:
    """An address, or a name with one address (the manifests' dns:/// form), as before."""
    async with (
        replicas(1) as (servers, servicers, _),
        open_channel(target.format(port=servers[0].port), default_timeout_seconds=5) as channel,
    ):
        for _ in range(3):
            await get_item(channel)
    assert servicers[0].calls == 3


async def test_a_service_config_of_the_caller_wins() -> None:
    """pick_first (grpc's default without ours) keeps every call on one replica: the balancing
    the other tests see is the service config open_channel adds."""
    async with (
        replicas(2) as (_, servicers, target),
        open_channel(
            target, default_timeout_seconds=5, options=[(SERVICE_CONFIG_OPTION, PICK_FIRST)]
        ) as channel,
    ):
        for _ in range(20):
            await get_item(channel)
    assert sorted(s.calls for s in servicers) == [0, 20]
