"""Translation between the registry's domain values and the generated contract messages."""

from __future__ import annotations

from crossdock.registry.v1 import registry_pb2
from google.protobuf import timestamp_pb2

from services.schema_registry.domain.errors import InvalidCompatibilityLevel
from services.schema_registry.domain.model import RegisteredSchema, Violation
from services.schema_registry.domain.modes import CompatibilityMode

_PREFIX = "COMPATIBILITY_MODE_"


def mode_to_proto(mode: CompatibilityMode) -> registry_pb2.CompatibilityMode.ValueType:
    return registry_pb2.CompatibilityMode.Value(_PREFIX + mode.value)


def mode_from_proto(value: int) -> CompatibilityMode:
    """The domain mode of a contract enum value; 42203 for UNSPECIFIED or an unknown number."""
    try:
        name = registry_pb2.CompatibilityMode.Name(value)  # type: ignore[arg-type]
    except ValueError:
        name = ""
    mode = name.removeprefix(_PREFIX)
    if mode not in CompatibilityMode.__members__:
        raise InvalidCompatibilityLevel(f"invalid compatibility level {value}")
    return CompatibilityMode(mode)


def schema_to_proto(schema: RegisteredSchema) -> registry_pb2.Schema:
    created = timestamp_pb2.Timestamp()
    created.FromNanoseconds(int(schema.created_at * 1e9))
    return registry_pb2.Schema(
        schema_id=schema.schema_id,
        subject=schema.subject,
        version=schema.version,
        message_name=schema.message_name,
        file_descriptor_set=schema.descriptor,
        fingerprint=schema.fingerprint,
        create_time=created,
    )


def violation_to_proto(violation: Violation) -> registry_pb2.CompatibilityViolation:
    return registry_pb2.CompatibilityViolation(
        rule=violation.rule,
        against_version=violation.against_version,
        message=violation.message,
    )
