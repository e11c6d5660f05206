"""The gRPC API: SchemaRegistryService, thin over SchemaRegistry.

It runs behind the kit's ServiceInterceptor, which validates requests against the contract's
protovalidate rules and maps the registry's domain errors to statuses in one place:

- subject / version / schema id unknown → NOT_FOUND, ErrorInfo reason SUBJECT_NOT_FOUND,
  VERSION_NOT_FOUND or SCHEMA_NOT_FOUND, metadata error_code 40401 / 40402 / 40403;
- incompatible schema → FAILED_PRECONDITION (the request is fine, the subject's versions and
  mode forbid it; ALREADY_EXISTS would claim a duplicate, ABORTED invites a blind retry) with a
  google.rpc.PreconditionFailure: one violation per broken rule, type = the rule,
  subject = "subjects/{subject}/versions/{version}", description = the reason; ErrorInfo
  reason INCOMPATIBLE_SCHEMA, error_code 409;
- invalid schema → INVALID_ARGUMENT with a BadRequest on file_descriptor_set or message_name
  (error_code 42201); an invalid mode → INVALID_ARGUMENT on compatibility;
- concurrent registrations that kept conflicting → ABORTED (retry).
"""

from __future__ import annotations

from typing import Any

from crossdock.registry.v1 import registry_service_pb2 as pb
from crossdock.registry.v1 import registry_service_pb2_grpc as pb_grpc

from services.kit.server import ServiceServer
from services.schema_registry.adapters.contracts import (
    mode_from_proto,
    mode_to_proto,
    schema_to_proto,
    violation_to_proto,
)
from services.schema_registry.app import SchemaRegistry

SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["SchemaRegistryService"]


class SchemaRegistryApi(pb_grpc.SchemaRegistryServiceServicer):
    """The servicer. Handlers raise domain errors; the kit's interceptor answers them."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    async def RegisterSchema(
        self, request: pb.RegisterSchemaRequest, context: Any
    ) -> pb.RegisterSchemaResponse:
        schema = await self._registry.register(
            request.subject, request.message_name, request.file_descriptor_set
        )
        return pb.RegisterSchemaResponse(schema=schema_to_proto(schema))

    async def GetSchema(self, request: pb.GetSchemaRequest, context: Any) -> pb.GetSchemaResponse:
        schema = await self._registry.schema_by_id(request.schema_id)
        return pb.GetSchemaResponse(schema=schema_to_proto(schema))

    async def ListSubjects(
        self, request: pb.ListSubjectsRequest, context: Any
    ) -> pb.ListSubjectsResponse:
        return pb.ListSubjectsResponse(subjects=await self._registry.subjects())

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Any
    ) -> pb.ListVersionsResponse:
        return pb.ListVersionsResponse(versions=await self._registry.versions(request.subject))

    async def GetVersion(
        self, request: pb.GetVersionRequest, context: Any
    ) -> pb.GetVersionResponse:
        schema = await self._registry.version(request.subject, request.version or None)
        return pb.GetVersionResponse(schema=schema_to_proto(schema))

    async def CheckCompatibility(
        self, request: pb.CheckCompatibilityRequest, context: Any
    ) -> pb.CheckCompatibilityResponse:
        violations = await self._registry.check(
            request.subject,
            request.message_name,
            request.file_descriptor_set,
            request.version or None,
        )
        return pb.CheckCompatibilityResponse(
            compatible=not violations, violations=[violation_to_proto(v) for v in violations]
        )

    async def GetConfig(self, request: pb.GetConfigRequest, context: Any) -> pb.GetConfigResponse:
        mode = await self._registry.mode(request.subject)
        return pb.GetConfigResponse(compatibility=mode_to_proto(mode))

    async def SetConfig(self, request: pb.SetConfigRequest, context: Any) -> pb.SetConfigResponse:
        mode = await self._registry.set_mode(
            mode_from_proto(request.compatibility), request.subject
        )
        return pb.SetConfigResponse(compatibility=mode_to_proto(mode))


def add_to_server(server: ServiceServer, registry: SchemaRegistry) -> SchemaRegistryApi:
    """Serve the registry's gRPC API on a kit ServiceServer (before it starts)."""
    api = SchemaRegistryApi(registry)
    server.add_servicer(
        pb_grpc.add_SchemaRegistryServiceServicer_to_server, api, SERVICE_DESCRIPTOR
    )
    return api
