"""Business flows on the running tower: real nats-server, SQLite and PostgreSQL, gRPC.

Items held at every step are published into JetStream out of order and twice; ListFlows,
ListFlowItems, the /metrics gauges (flows, DLQ depth, consumers' pending counts) and
`crossdock flows` all answer the hand count. The exception kinds' SLAs are gauges too, each the
tower's configured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator

import grpc
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from services.control_tower.config import TowerConfig
from services.control_tower.domain.exceptions import KINDS, ExceptionKind
from services.control_tower.domain.flows import FLOWS
from services.control_tower.main import setup
from services.kit import events as ev
from services.kit.cli import main as crossdock
from services.kit.client import open_channel
from services.kit.config import ConfigError
from services.kit.metrics import ServiceMetrics
from services.kit.server import ServiceServer
from services.kit.streams import DOMAIN_STREAMS, dlq_subject
from tests.control_tower.flow_scenarios import Scenario, mixed
from tests.control_tower.test_service import publish, violations
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for

TOWER = "control-tower-projections"


@contextlib.asynccontextmanager
async def tower(
    db_url: str, nats_url: str, **settings: str
) -> AsyncIterator[tuple[str, pb_grpc.TowerServiceStub, ServiceServer]]:
    """The tower as its main module builds it, its gauges refreshed five times a second;
    `settings` are more of its variables (names without the prefix)."""
    env = {
        "CROSSDOCK_CONTROL_TOWER_DB_URL": db_url,
        "CROSSDOCK_CONTROL_TOWER_NATS_URL": nats_url,
        "CROSSDOCK_CONTROL_TOWER_GRPC_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_METRICS_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_BIND_HOST": "127.0.0.1",
        "CROSSDOCK_CONTROL_TOWER_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.2",
        # The workbench's owners: not called by these tests (channels connect on first call).
        "CROSSDOCK_CONTROL_TOWER_SHIPMENT_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_CARRIER_ADAPTER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_ORDER_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_INVENTORY_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_BILLING_TARGET": "127.0.0.1:1",
        "CROSSDOCK_CONTROL_TOWER_FLOW_GAUGES_INTERVAL_SECONDS": "0.2",
        **{f"CROSSDOCK_CONTROL_TOWER_{name}": value for name, value in settings.items()},
    }
    config = TowerConfig.from_env(env)
    server = ServiceServer.from_config(config, metrics=ServiceMetrics(config.service))
    try:
        await setup(server, config)
        port = await server.start()
        target = f"127.0.0.1:{port}"
        channel = open_channel(target, default_timeout_seconds=10.0)
        try:
            yield target, pb_grpc.TowerServiceStub(channel), server
        finally:
            await channel.close()
    finally:
        await server.shutdown()


def samples(server: ServiceServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(metric sample name, sorted labels) → value, from the tower's /metrics page."""
    assert server.metrics is not None
    text = server.metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def gauge(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def hand_count(scenario: Scenario) -> dict[str, int]:
    return {flow.name: len(scenario.expected.get(flow.name, set())) for flow in FLOWS}


async def test_flows_over_grpc_metrics_and_the_cli_match_a_hand_count(
    db_url: str,
    nats_server: NatsServer,
    nats_client: NATS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    js = nats_client.jetstream()
    scenario = mixed()
    arrival = scenario.events[:]
    random.Random(7).shuffle(arrival)
    expected = hand_count(scenario)
    async with tower(db_url, nats_server.url) as (target, stub, server):
        for event in arrival:
            await publish(js, event)
        # Redeliveries JetStream does not de-duplicate: same ce-id, fresh Nats-Msg-Id.
        for event in arrival[:5]:
            await publish(js, event, msg_id="again-" + event.event_id)
        # Two dead letters of one consumer (as its dead-lettering would publish them).
        for n in range(2):
            await js.publish(
                dlq_subject("order-events"), b"x", headers={ev.NATS_MSG_ID: f"dlq-test-{n}"}
            )

        async def counts() -> dict[str, int]:
            answer = await stub.ListFlows(pb.ListFlowsRequest())
            return {flow.flow: flow.items for flow in answer.flows}

        assert await wait_for(counts, lambda got: got == expected, timeout=30) == expected
        answer = await stub.ListFlows(pb.ListFlowsRequest())
        assert [flow.flow for flow in answer.flows] == [flow.name for flow in FLOWS]
        released = next(f for f in answer.flows if f.flow == "released_not_picked")
        # The scenario happened long ago: every item is past its SLA, older than a month.
        assert (released.item_kind, released.breaches) == ("order", 2)
        assert released.sla.ToSeconds() == 4 * 3600
        assert released.oldest_age.ToSeconds() > 30 * 86400
        assert [b.items for b in released.age_buckets][-1] == 2
        assert sum(b.items for b in released.age_buckets) == 2

        # Drill-down, page by page, with each shipment's order.
        page = await stub.ListFlowItems(
            pb.ListFlowItemsRequest(flow="in_transit_past_promise", page_size=1)
        )
        assert len(page.items) == 1 and page.next_page_token
        rest = await stub.ListFlowItems(
            pb.ListFlowItemsRequest(flow="in_transit_past_promise", page_token=page.next_page_token)
        )
        items = [*page.items, *rest.items]
        assert {i.item_id for i in items} == scenario.expected["in_transit_past_promise"]
        assert all(i.order_id.startswith("ord_") and i.breached for i in items)

        # The gauges, refreshed by the worker: each flow and its breach series. Waited for
        # until a refresh also saw the redeliveries consumed (they change no flow count).
        found = await wait_for(
            lambda: samples(server),
            lambda s: (
                gauge(s, "crossdock_dlq_depth", consumer="order-events") == 2
                # Every flow: a refresh may run between two of the tower's batches.
                and all(
                    gauge(s, "crossdock_flow_items", flow=name) == count
                    for name, count in expected.items()
                )
                and all(
                    gauge(s, "crossdock_consumer_pending", consumer=TOWER, stream=stream) == 0
                    for stream in DOMAIN_STREAMS.values()
                )
            ),
        )
        for name, count in expected.items():
            assert gauge(found, "crossdock_flow_items", flow=name) == count, name
            assert gauge(found, "crossdock_flow_sla_breaches", flow=name) == count, name
            assert gauge(found, "crossdock_flow_items_by_age", flow=name, le="+Inf") == count
            assert gauge(found, "crossdock_flow_items_by_age", flow=name, le="60") == 0
        assert gauge(found, "crossdock_flow_sla_seconds", flow="picked_no_label") == 1800
        assert gauge(found, "crossdock_flow_oldest_age_seconds", flow="awaiting_allocation") > 0
        # The tower's own durables, with nothing pending once it has caught up.
        assert (
            gauge(
                found,
                "crossdock_consumer_pending",
                consumer="control-tower-projections",
                stream="ORDER",
            )
            == 0
        )
        assert gauge(found, "crossdock_dlq_depth", consumer="control-tower-projections") == 0

        # The operator's command: breaches first, then the empty flows in spine order.
        assert await asyncio.to_thread(crossdock, ["flows", "--target", target]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["FLOW", "KIND", "ITEMS", "BREACHES", "OLDEST", "SLA"]
        rows = [line.split() for line in table[1:]]
        assert [row[0] for row in rows[:2]] == ["released_not_picked", "in_transit_past_promise"]
        assert rows[0][1:4] == ["order", "2", "2"]
        assert all(int(row[2]) == 1 for row in rows[2:])
        assert await asyncio.to_thread(crossdock, ["flows", "--json", "--target", target]) == 0
        body = json.loads(capsys.readouterr().out)
        assert {f["flow"]: int(f.get("items", 0)) for f in body["flows"]} == expected
        # The drill-down: one flow's items with their orders, and a precise refusal.
        command = ["flows", "--items", "in_transit_past_promise", "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["ITEM", "ORDER", "ENTERED", "(UTC)", "AGE", "BREACH"]
        assert {line.split()[0] for line in lines[1:]} == scenario.expected[
            "in_transit_past_promise"
        ]
        assert all(
            line.split()[1].startswith("ord_") and line.endswith("yes") for line in lines[1:]
        )
        command = ["flows", "--items", "nope", "--target", target]
        assert await asyncio.to_thread(crossdock, command) == 2
        assert capsys.readouterr().err.startswith(
            "crossdock: INVALID_ARGUMENT: flow: unknown flow 'nope'"
        )


async def test_bad_flow_requests_are_invalid_argument_naming_the_field(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    async with tower(sqlite_url, nats_server.url) as (_, stub, _server):
        for request, field in (
            (pb.ListFlowItemsRequest(flow="no_such_flow"), "flow"),
            (pb.ListFlowItemsRequest(flow="Released Not Picked"), "flow"),
            (pb.ListFlowItemsRequest(flow=""), "flow"),
            (
                pb.ListFlowItemsRequest(flow="released_not_picked", page_token="bm9wZQ"),
                "page_token",
            ),
            (pb.ListFlowItemsRequest(flow="released_not_picked", page_size=-1), "page_size"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListFlowItems(request)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, request
            assert field in {name for name, _ in violations(caught.value)}, request


async def test_each_exception_kinds_configured_sla_is_a_gauge_even_with_none_open(
    sqlite_url: str, nats_server: NatsServer
) -> None:
    """The alert compares each kind's oldest age with this gauge: a configured SLA, not only
    the default, and every kind's series from the start."""
    overridden = {
        "SLA_EXCEPTION_ORDER_EXCEPTION_SECONDS": "120",
        "SLA_EXCEPTION_LABEL_OUTCOME_UNKNOWN_SECONDS": "7200",
    }
    async with tower(sqlite_url, nats_server.url, **overridden) as (_, _stub, server):
        found = samples(server)
    slas = {
        dict(labels)["kind"]: value
        for (name, labels), value in found.items()
        if name == "crossdock_exceptions_sla_seconds"
    }
    assert slas == {
        **{kind.label: KINDS[kind].default_sla for kind in ExceptionKind},
        "order_exception": 120,
        "label_outcome_unknown": 7200,
    }


def test_each_flows_sla_is_configurable_and_a_bad_value_fails_at_start_naming_it() -> None:
    env = {
        "CROSSDOCK_CONTROL_TOWER_DB_URL": "sqlite:///unused.db",
        "CROSSDOCK_CONTROL_TOWER_NATS_URL": "nats://127.0.0.1:4222",
        "CROSSDOCK_CONTROL_TOWER_GRPC_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_METRICS_PORT": "0",
        "CROSSDOCK_CONTROL_TOWER_SHIPMENT_TARGET": "shipment:50051",
        "CROSSDOCK_CONTROL_TOWER_CARRIER_ADAPTER_TARGET": "carrier-adapter:50051",
        "CROSSDOCK_CONTROL_TOWER_ORDER_TARGET": "order:50051",
        "CROSSDOCK_CONTROL_TOWER_INVENTORY_TARGET": "inventory:50051",
        "CROSSDOCK_CONTROL_TOWER_BILLING_TARGET": "billing:50051",
    }
    settings = TowerConfig.from_env(
        {**env, "CROSSDOCK_CONTROL_TOWER_SLA_PICKED_NO_LABEL_SECONDS": "90"}
    ).flow_settings()
    assert settings.sla_of("picked_no_label") == 90
    assert settings.sla_of("released_not_picked") == 4 * 3600  # the default
    assert set(settings.slas) == {flow.name for flow in FLOWS}

    with pytest.raises(ConfigError) as caught:
        TowerConfig.from_env(
            {
                **env,
                "CROSSDOCK_CONTROL_TOWER_SLA_RELEASED_NOT_PICKED_SECONDS": "4h",
                "CROSSDOCK_CONTROL_TOWER_TRANSIT_ALLOWANCE_SECONDS": "0",
            }
        )
    problems = "\n".join(caught.value.problems)
    assert "CROSSDOCK_CONTROL_TOWER_SLA_RELEASED_NOT_PICKED_SECONDS must be a number" in problems
    assert "CROSSDOCK_CONTROL_TOWER_TRANSIT_ALLOWANCE_SECONDS" in problems
