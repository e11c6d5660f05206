"""The kit with a real registry: schema ids on published events, refusal to start, consumers.

The registry runs in-process on free ports (the `served` fixture); NATS is a real nats-server and
each service database an SQLite file. The service is the kit's test service (tests/kit), whose
events (kittest.v1, producer "kittest") carry the real `event` option.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from services.kit import events as ev
from services.kit.consumer import ConsumerSettings, EventConsumer, Outcome
from services.kit.dlq import list_dead_letters
from services.kit.outbox import append
from services.kit.registry_client import SchemaRegistryClient
from services.kit.runtime import open_event_runtime
from services.kit.schema_ids import SchemaRejectedError, SchemaResolver
from services.kit.streams import ensure_streams
from tests.fixtures.events import publish_as_relay
from tests.fixtures.kittest.harness import (
    MIGRATIONS,
    SERVICE,
    open_db,
    produce,
    read_effects,
    registry_for,
)
from tests.fixtures.kittest.proto import REPO
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for
from tests.schema_registry.conftest import Served
from tests.schema_registry.protos import compile_files

SUBJECT = "crossdock.order.thing_happened.v1"
SHIPPED_SUBJECT = "crossdock.carrier.thing_shipped.v1"
QUICK = ConsumerSettings(fetch_timeout=0.2, ack_wait=5, max_deliver=3, nak_base_delay=0.1)

# What the registry holds before the service starts: ThingHappened with a field 4 that the
# service's ThingHappened no longer has, and does not reserve. BACKWARD refuses the service's.
HELD_WITH_EXTRA = """syntax = "proto3";
package kittest.v1;
message ThingHappened {
  string thing_id = 1;
  int64 n = 2;
  string note = 3;
  string extra = 4;
}
"""


@pytest.fixture(autouse=True)
def _no_schema_ids_left_behind() -> Any:
    yield
    assert not ev.schema_ids_installed(), "a runtime left its schema ids installed"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def _rest(served: Served, path: str) -> Any:
    # The REST API runs on this event loop: read it from a thread.
    return await asyncio.to_thread(_get_json, served.base_url + path)


def _get_schema_calls(served: Served) -> int:
    total = 0.0
    for metric in served.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "crossdock_grpc_requests_total" and sample.labels.get(
                "method", ""
            ).endswith("/GetSchema"):
                total += sample.value
    return int(total)


async def _eventually(check: Any, timeout: float = 20.0) -> None:
    """Wait (bounded) until `await check()` is truthy; a readiness wait, not a timing claim."""
    if not await wait_for(check, bool, timeout=timeout):
        raise AssertionError("condition not reached in time")


async def _hold_incompatible_version(client: SchemaRegistryClient) -> None:
    files = {"kittest/v1/kittest.proto": HELD_WITH_EXTRA}
    await client.register(SUBJECT, "kittest.v1.ThingHappened", compile_files(files))


# ---- a published event carries the right schema id --------------------------------------------


async def test_a_published_event_carries_the_schema_id_the_registry_returns(
    pb: ModuleType, served: Served, nats_client: NATS, nats_server: NatsServer, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'service.db'}"

    async def start() -> Any:
        return await open_event_runtime(
            service=SERVICE,
            db_url=db_url,
            nats_url=nats_server.url,
            migrations=MIGRATIONS,
            registry_target=served.target,
            produced=[pb.ThingHappened],
        )

    runtime = await start()
    try:
        await runtime.db.run(produce, pb, [("t-1", 1)])
        assert await runtime.relay.flush(20)
        # An event the service did not register cannot be stamped: it fails loudly.
        with pytest.raises(ev.UnregisteredSchemaError, match="ThingShipped"):
            await runtime.db.run(
                lambda conn: append(
                    conn, pb.ThingShipped(thing_id="t-1", n=1), "t-1", correlation_id="c"
                )
            )
    finally:
        await runtime.close()

    latest = await _rest(served, f"/subjects/{SUBJECT}/versions/latest")
    schema_id = int(latest["id"])
    stored = await nats_client.jetstream().get_last_msg("ORDER", SUBJECT)
    assert stored.headers is not None
    assert stored.headers["ce-dataschema"] == f"crossdock-registry:/schemas/ids/{schema_id}"
    # The URI's path is where the registry serves that schema.
    path = stored.headers["ce-dataschema"].removeprefix("crossdock-registry:")
    assert (await _rest(served, path))["messageName"] == "kittest.v1.ThingHappened"
    assert runtime.schema_ids == {"kittest.v1.ThingHappened": schema_id}

    # Registration is idempotent: a restart gets the same id, and no new version.
    again = await start()
    await again.close()
    assert again.schema_ids == {"kittest.v1.ThingHappened": schema_id}
    assert await _rest(served, f"/subjects/{SUBJECT}/versions") == [1]
    # Without a registry, events carry the placeholder again.
    assert ev.dataschema_for("kittest.v1.ThingHappened").startswith("urn:crossdock:schema:")


# ---- a service with an incompatible schema refuses to run ------------------------------------


async def test_start_events_refuses_an_incompatible_schema_and_says_why(
    pb: ModuleType,
    served: Served,
    client: SchemaRegistryClient,
    nats_server: NatsServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _hold_incompatible_version(client)
    caplog.set_level(logging.ERROR, logger="services.kit.schema_ids")

    with pytest.raises(SchemaRejectedError) as refused:
        await open_event_runtime(
            service=SERVICE,
            db_url=f"sqlite:///{tmp_path / 'service.db'}",
            nats_url=nats_server.url,
            migrations=MIGRATIONS,
            registry_target=served.target,
            produced=[pb.ThingHappened],
        )

    reasons = refused.value.rejected[SUBJECT]
    assert any("extra" in reason for reason in reasons), reasons
    [line] = [r for r in caplog.records if getattr(r, "subject", None) == SUBJECT]
    assert line.levelno == logging.ERROR
    assert line.violations == reasons  # type: ignore[attr-defined]
    assert SUBJECT in str(refused.value)
    # Nothing was opened: the database file was never created (migrations come after).
    assert not (tmp_path / "service.db").exists()


@pytest.mark.slow
async def test_a_service_process_with_an_incompatible_schema_exits_non_zero_with_the_reason(
    served: Served,
    client: SchemaRegistryClient,
    kittest_dir: Path,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    await _hold_incompatible_version(client)
    prefix = "CROSSDOCK_KITTEST_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env.pop("CROSSDOCK_FAULT", None)
    env["PYTHONPATH"] = os.pathsep.join([str(kittest_dir), str(REPO)])
    env.update(
        {
            prefix + "DB_URL": f"sqlite:///{tmp_path / 'service.db'}",
            prefix + "NATS_URL": nats_server.url,
            prefix + "GRPC_PORT": "0",
            prefix + "METRICS_PORT": "0",
            prefix + "BIND_HOST": "127.0.0.1",
            prefix + "SCHEMA_REGISTRY_TARGET": served.target,
        }
    )
    # Run in a thread: the registry serves on this test's event loop.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.schema_registry.kit_service_app"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    refusals = [line for line in lines if line.get("subject") == SUBJECT and "violations" in line]
    assert refusals, result.stderr[-3000:]
    assert refusals[0]["level"] == "ERROR"
    assert "refusing to start" in refusals[0]["message"]
    assert any("extra" in reason for reason in refusals[0]["violations"])
    assert not any(line.get("message") == "ready" for line in lines)


# ---- consumers resolve ids through the registry -------------------------------------------------


async def test_consumers_resolve_each_id_once_and_dead_letter_unknown_ids(
    pb: ModuleType,
    served: Served,
    client: SchemaRegistryClient,
    nats_client: NATS,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    good = (await client.register_message(pb.ThingHappened, SUBJECT)).schema_id
    other = (await client.register_message(pb.ThingShipped, SHIPPED_SUBJECT)).schema_id
    unknown = good + other + 1000
    js = nats_client.jetstream()
    runtime = await open_event_runtime(
        service=SERVICE,
        db_url=f"sqlite:///{tmp_path / 'consumer.db'}",
        nats_url=nats_server.url,
        registry=registry_for(pb, "kittest-effects"),
        purpose="effects",
        migrations=MIGRATIONS,
        consumer_settings=QUICK,
        registry_target=served.target,
        produced=[],  # a pure consumer: nothing registered, so nothing cached beforehand
    )
    try:
        calls_before = _get_schema_calls(served)

        async def effects(count: int) -> bool:
            return len(await runtime.db.run(read_effects)) >= count

        # Several batches of events naming the same id: one registry call in all.
        for batch in range(3):
            for i in range(3):
                thing = pb.ThingHappened(thing_id=f"t-{batch}-{i}", n=1)
                await publish_as_relay(
                    js,
                    thing,
                    thing.thing_id,
                    event_id=f"ev-{batch}-{i}",
                    dataschema=ev.dataschema_uri(good),
                )
            await _eventually(lambda b=batch: effects(3 * (b + 1)))
        assert _get_schema_calls(served) - calls_before == 1

        # An id the registry does not know, and an id of another message's schema: DLQ.
        await publish_as_relay(
            js,
            pb.ThingHappened(thing_id="t-unknown", n=1),
            "t-unknown",
            event_id="ev-unknown",
            dataschema=ev.dataschema_uri(unknown),
        )
        await publish_as_relay(
            js,
            pb.ThingHappened(thing_id="t-wrong", n=1),
            "t-wrong",
            event_id="ev-wrong",
            dataschema=ev.dataschema_uri(other),
        )
        # The placeholder of a producer without a registry is accepted as before.
        await publish_as_relay(
            js,
            pb.ThingHappened(thing_id="t-placeholder", n=1),
            "t-placeholder",
            event_id="ev-placeholder",
            dataschema="urn:crossdock:schema:kittest.v1.ThingHappened",
        )

        async def two_letters() -> bool:
            return len(await list_dead_letters(js, "kittest-effects")) >= 2

        await _eventually(two_letters)
        await _eventually(lambda: effects(10))
        letters = {d.event_id: d for d in await list_dead_letters(js, "kittest-effects")}
        assert set(letters) == {"ev-unknown", "ev-wrong"}
        assert f"schema id {unknown} is unknown to the schema registry" in (
            letters["ev-unknown"].reason
        )
        assert "kittest.v1.ThingShipped" in letters["ev-wrong"].reason
        # Headers intact, so a redrive after registering the schema can apply it.
        assert letters["ev-unknown"].original_headers["ce-dataschema"] == ev.dataschema_uri(unknown)
        applied = {event_id for event_id, _, _ in await runtime.db.run(read_effects)}
        assert "ev-placeholder" in applied and "ev-unknown" not in applied
        # One call for the good id (cached before), one each for the other two ids.
        assert _get_schema_calls(served) - calls_before == 3
    finally:
        await runtime.close()


async def test_an_unreachable_registry_retries_the_event_instead_of_dead_lettering_it(
    pb: ModuleType, nats_client: NATS, tmp_path: Path
) -> None:
    js = nats_client.jetstream()
    await ensure_streams(js)
    db = open_db(f"sqlite:///{tmp_path / 'consumer.db'}")
    nobody = SchemaRegistryClient(f"127.0.0.1:{free_port()}", timeout_seconds=0.5, attempts=1)
    consumer = EventConsumer(
        service=SERVICE,
        purpose="effects",
        stream="ORDER",
        registry=registry_for(pb, "kittest-effects"),
        db=db,
        nc=nats_client,
        settings=QUICK,
        schema_resolver=SchemaResolver(nobody),
    )
    try:
        await consumer.ensure()
        await publish_as_relay(
            js,
            pb.ThingHappened(thing_id="t-1", n=1),
            "t-1",
            event_id="ev-1",
            dataschema=ev.dataschema_uri(5),
        )
        sub = await js.pull_subscribe_bind(durable=consumer.name, stream=consumer.stream)
        msgs = await sub.fetch(10, timeout=5)
        assert await consumer.process(msgs) == [Outcome.RETRY]
        await sub.unsubscribe()
        assert await list_dead_letters(js, "kittest-effects") == []
        assert await db.run(read_effects) == []
    finally:
        await nobody.close()
        await db.close()
