"""A new annotated RPC is exposed with no gateway code: the contract here is built in the test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import ServiceDescriptor

from gateway.adapters.backends import Backends
from gateway.adapters.store import migrate, queries
from gateway.descriptors import bindings_of
from gateway.entrypoints.partner_api import PartnerGateway
from gateway.openapi import build_openapi
from gateway.transcoder import build_routes
from services.kit.db import Database

SERVICE = "crossdock.ping.v1.PingService"


def ping_service() -> ServiceDescriptor:
    """crossdock.ping.v1.PingService.CreatePing: POST /v1/pings/{name}, body "*"."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(SERVICE)
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto(
        name="crossdock/ping/v1/ping_service.proto",
        package="crossdock.ping.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    request = file.message_type.add(name="CreatePingRequest")
    for number, name in enumerate(("name", "partner_id", "note_text"), start=1):
        request.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            json_name={"partner_id": "partnerId", "note_text": "noteText"}.get(name, name),
        )
    response = file.message_type.add(name="CreatePingResponse")
    response.field.add(
        name="echo",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="echo",
    )
    method = file.service.add(name="PingService").method.add(
        name="CreatePing",
        input_type=".crossdock.ping.v1.CreatePingRequest",
        output_type=".crossdock.ping.v1.CreatePingResponse",
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(
        http_pb2.HttpRule(post="/v1/pings/{name}", body="*")
    )
    pool.Add(file)
    return pool.FindServiceByName(SERVICE)


@pytest.fixture
async def ping_backend() -> AsyncIterator[int]:
    """A gRPC server for the test-built service (a generic handler: no generated code exists)."""
    service = ping_service()
    method = service.methods_by_name["CreatePing"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)

    async def create_ping(request, context):  # type: ignore[no-untyped-def]
        echo = f"{request.name}|{request.partner_id}|{request.note_text}"
        return response_class(echo=echo)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "CreatePing": grpc.unary_unary_rpc_method_handler(
                create_ping,
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(None)


async def test_a_new_annotated_rpc_is_routed_documented_and_called(
    ping_backend: int, tmp_path: Path
) -> None:
    routes = build_routes(bindings_of([ping_service()]))
    openapi = build_openapi(routes, {})
    assert list(openapi["paths"]) == ["/v1/pings/{name}"]
    url = f"sqlite:///{tmp_path}/gw.db"
    migrate(url)
    db = Database(url, service="gateway")
    backends = Backends({SERVICE: f"127.0.0.1:{ping_backend}"}, default_timeout_seconds=5)
    now = time.time()
    partner_id = await db.run(
        queries.ensure_partner_named, "p", "ptn_01J00000000000000000000000", now
    )
    # The scope follows the domain: "ping:write", which only a direct grant can give.
    await db.run(queries.install_key, partner_id, "cdk_pingkey_secret", ["ping:write"], now)
    gateway = PartnerGateway(routes, backends, db, openapi)
    transport = httpx.ASGITransport(app=gateway)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.post(
                "/v1/pings/hello",
                json={"noteText": "hi"},
                headers={"Authorization": "Bearer cdk_pingkey_secret"},
            )
            assert response.status_code == 201, response.text
            assert response.json() == {"echo": f"hello|{partner_id}|hi"}
    finally:
        await backends.close()
        await db.close()
