"""The gRPC API over a real grpc.aio server on a free port, through the registry client."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from crossdock.events.v1 import order_events_pb2
from crossdock.registry.v1 import registry_pb2
from crossdock.registry.v1 import registry_service_pb2 as pb
from crossdock.registry.v1 import registry_service_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2

from services.kit.grpc_errors import details_of, status_from_error
from services.kit.registry_client import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryUnavailableError,
    SchemaRegistryClient,
    SubjectNotFoundError,
    UnknownSchemaIdError,
    VersionNotFoundError,
    descriptor_set_of,
)
from tests.fixtures.ports import free_port
from tests.schema_registry.conftest import Served
from tests.schema_registry.protos import ADDED, BASE, REMOVED, THING, thing

SUBJECT = "regtest.thing.v1"
PLACED = "crossdock.order.placed.v1"


async def test_register_a_real_event_and_resolve_its_id(
    served: Served, client: SchemaRegistryClient
) -> None:
    schema = await client.register_message(order_events_pb2.OrderPlaced, PLACED)
    assert (schema.subject, schema.version) == (PLACED, 1)
    assert schema.message_name == "crossdock.events.v1.OrderPlaced"
    assert schema.create_time.seconds > 0
    again = await client.register_message(order_events_pb2.OrderPlaced, PLACED)
    assert again.schema_id == schema.schema_id

    async with SchemaRegistryClient(served.target) as fresh:  # an empty cache
        resolved = await fresh.get_schema(schema.schema_id)
    assert resolved.fingerprint == schema.fingerprint
    assert resolved.file_descriptor_set == schema.file_descriptor_set


async def test_ids_are_cached_and_fetched_once(served: Served) -> None:
    async with SchemaRegistryClient(served.target) as writer:
        schema = await writer.register(SUBJECT, THING, thing(BASE))
    async with SchemaRegistryClient(served.target, attempts=1, backoff_seconds=0) as reader:
        found = await asyncio.gather(*(reader.get_schema(schema.schema_id) for _ in range(10)))
        assert {s.fingerprint for s in found} == {schema.fingerprint}
        calls = served.metrics.registry.get_sample_value(
            "crossdock_grpc_requests_total",
            {"method": "/crossdock.registry.v1.SchemaRegistryService/GetSchema", "code": "OK"},
        )
        assert calls == 1  # ten concurrent lookups, one call

        await served.grpc.shutdown()  # the registry goes away: cached ids still resolve
        assert (await reader.get_schema(schema.schema_id)).fingerprint == schema.fingerprint
        with pytest.raises(RegistryUnavailableError):
            await reader.get_schema(schema.schema_id + 1)


async def test_unknown_subject_version_and_id(client: SchemaRegistryClient) -> None:
    with pytest.raises(SubjectNotFoundError) as subject_error:
        await client.list_versions(SUBJECT)
    assert subject_error.value.error_code == 40401
    await client.register(SUBJECT, THING, thing(BASE))
    with pytest.raises(VersionNotFoundError) as version_error:
        await client.get_version(SUBJECT, 5)
    assert version_error.value.error_code == 40402
    with pytest.raises(UnknownSchemaIdError) as id_error:
        await client.get_schema(4242)
    assert (id_error.value.code, id_error.value.error_code) == (grpc.StatusCode.NOT_FOUND, 40403)


async def test_an_incompatible_schema_is_failed_precondition_with_violations(
    served: Served, client: SchemaRegistryClient
) -> None:
    await client.register(SUBJECT, THING, thing(BASE))
    with pytest.raises(IncompatibleSchemaError) as raised:
        await client.register(SUBJECT, THING, thing(REMOVED))
    assert {(v.rule, v.against_version) for v in raised.value.violations} == {
        ("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", 1),
        ("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", 1),
    }
    assert raised.value.error_code == 409

    # The raw status, as any gRPC client sees it.
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = pb_grpc.SchemaRegistryServiceStub(channel)
        request = pb.RegisterSchemaRequest(
            subject=SUBJECT, message_name=THING, file_descriptor_set=thing(REMOVED)
        )
        with pytest.raises(grpc.aio.AioRpcError) as rpc_error:
            await stub.RegisterSchema(request, timeout=10)
    assert rpc_error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_from_error(rpc_error.value)
    assert status is not None
    [failure] = details_of(status, error_details_pb2.PreconditionFailure)
    assert {v.subject for v in failure.violations} == {f"subjects/{SUBJECT}/versions/1"}
    [info] = details_of(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.metadata["error_code"]) == ("INCOMPATIBLE_SCHEMA", "409")


async def test_invalid_schemas_and_requests_are_invalid_argument(
    client: SchemaRegistryClient,
) -> None:
    with pytest.raises(InvalidSchemaError) as garbage:
        await client.register(SUBJECT, THING, b"garbage bytes")
    assert (garbage.value.code, garbage.value.error_code) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        42201,
    )
    with pytest.raises(InvalidSchemaError) as missing:
        await client.register(SUBJECT, "regtest.v1.Missing", thing(BASE))
    assert missing.value.error_code == 42201
    # The contract's own rules (protovalidate): subjects look like event subjects.
    with pytest.raises(InvalidSchemaError) as bad_subject:
        await client.register("Not A Subject", THING, thing(BASE))
    assert bad_subject.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "subject" in str(bad_subject.value)


async def test_listing_checking_and_configuring(client: SchemaRegistryClient) -> None:
    v1 = await client.register(SUBJECT, THING, thing(BASE))
    v2 = await client.register(SUBJECT, THING, thing(ADDED))
    assert await client.list_subjects() == [SUBJECT]
    assert await client.list_versions(SUBJECT) == [1, 2]
    assert (await client.get_version(SUBJECT)).schema_id == v2.schema_id
    assert (await client.get_version(SUBJECT, 1)).schema_id == v1.schema_id

    assert await client.check(SUBJECT, THING, thing(ADDED)) == ()
    violations = await client.check(SUBJECT, THING, thing(REMOVED))
    assert {v.against_version for v in violations} == {2}
    assert await client.check(SUBJECT, THING, thing(REMOVED), version=1) != ()

    assert await client.get_config() == "BACKWARD"
    assert await client.set_config("NONE", SUBJECT) == "NONE"
    assert await client.get_config(SUBJECT) == "NONE"
    assert await client.get_config() == "BACKWARD"
    assert (await client.register(SUBJECT, THING, thing(REMOVED))).version == 3


async def test_set_config_needs_a_mode(served: Served) -> None:
    async with grpc.aio.insecure_channel(served.target) as channel:
        stub = pb_grpc.SchemaRegistryServiceStub(channel)
        unspecified = registry_pb2.COMPATIBILITY_MODE_UNSPECIFIED
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SetConfig(pb.SetConfigRequest(compatibility=unspecified), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration  # loopback sockets
async def test_an_unreachable_registry_is_reported_as_such() -> None:
    async with SchemaRegistryClient(
        f"127.0.0.1:{free_port()}", timeout_seconds=1, attempts=2, backoff_seconds=0.01
    ) as client:
        with pytest.raises(RegistryUnavailableError):
            await client.register(SUBJECT, THING, thing(BASE))


def test_descriptor_set_of_a_generated_message_holds_every_import() -> None:
    from google.protobuf import descriptor_pb2

    raw = descriptor_set_of(order_events_pb2.OrderPlaced)
    names = [f.name for f in descriptor_pb2.FileDescriptorSet.FromString(raw).file]
    assert names[-1] == "crossdock/events/v1/order_events.proto"
    assert {"crossdock/order/v1/order.proto", "google/protobuf/timestamp.proto"} <= set(names)
    assert names.index("crossdock/common/v1/common.proto") < names.index(
        "crossdock/order/v1/order.proto"
    )
