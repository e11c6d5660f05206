"""The registry's pure rules: mode semantics, descriptor validation, canonical form, errors."""

from __future__ import annotations

import pytest
from crossdock.events.v1 import order_events_pb2
from google.protobuf import descriptor_pb2

from services.kit.registry_client import descriptor_set_of
from services.schema_registry.domain.descriptors import (
    canonical_bytes,
    fingerprint,
    json_name_of,
    parse_descriptor_set,
    payload_files,
    validate,
)
from services.schema_registry.domain.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    VersionNotFound,
    http_error_of,
)
from services.schema_registry.domain.model import Violation
from services.schema_registry.domain.modes import (
    DEFAULT_MODE,
    Comparison,
    Direction,
    comparison_with,
    comparisons_for,
    parse_mode,
)
from services.schema_registry.domain.modes import CompatibilityMode as Mode
from tests.schema_registry.protos import BASE, THING, compile_files, thing

B, F = Direction.BACKWARD, Direction.FORWARD


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Mode.BACKWARD, [Comparison(3, (B,))]),
        (Mode.FORWARD, [Comparison(3, (F,))]),
        (Mode.FULL, [Comparison(3, (B, F))]),
        (Mode.BACKWARD_TRANSITIVE, [Comparison(v, (B,)) for v in (3, 2, 1)]),
        (Mode.FORWARD_TRANSITIVE, [Comparison(v, (F,)) for v in (3, 2, 1)]),
        (Mode.FULL_TRANSITIVE, [Comparison(v, (B, F)) for v in (3, 2, 1)]),
        (Mode.NONE, []),
    ],
)
def test_which_versions_each_mode_compares_with(mode: Mode, expected: list[Comparison]) -> None:
    assert comparisons_for(mode, [1, 2, 3]) == expected
    assert comparisons_for(mode, []) == []


def test_a_named_version_is_compared_in_the_mode_directions_only() -> None:
    assert comparison_with(Mode.FULL_TRANSITIVE, 2) == [Comparison(2, (B, F))]
    assert comparison_with(Mode.NONE, 2) == []


def test_modes_parse_from_confluent_names() -> None:
    assert DEFAULT_MODE is Mode.BACKWARD
    assert parse_mode("full_transitive") is Mode.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevel) as raised:
        parse_mode("SIDEWAYS")
    assert http_error_of(raised.value) == (422, 42203)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SubjectNotFound("s.v1"), (404, 40401)),
        (VersionNotFound("s.v1", 3), (404, 40402)),
        (SchemaNotFound(9), (404, 40403)),
        (SubjectConfigNotFound("s.v1"), (404, 40408)),
        (IncompatibleSchema("s.v1", [Violation("R", 1, "why")]), (409, 409)),
        (InvalidSchema("bad"), (422, 42201)),
    ],
)
def test_confluent_error_codes(error: Exception, expected: tuple[int, int]) -> None:
    assert http_error_of(error) == expected  # type: ignore[arg-type]


def test_incompatible_schema_names_each_version_it_breaks() -> None:
    error = IncompatibleSchema("s.v1", [Violation("FIELD_SAME_TYPE", 2, "backward: x")])
    assert [(v.type, v.subject) for v in error.violations] == [
        ("FIELD_SAME_TYPE", "subjects/s.v1/versions/2")
    ]
    assert "FIELD_SAME_TYPE (version 2) backward: x" in error.message


@pytest.mark.parametrize(
    "raw", [b"", b"garbage", b"\x0a\x03abc", descriptor_pb2.FileDescriptorSet().SerializeToString()]
)
def test_bytes_that_are_no_descriptor_set_are_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidSchema):
        parse_descriptor_set(raw)


def test_a_missing_dependency_is_invalid() -> None:
    full = parse_descriptor_set(descriptor_set_of(order_events_pb2.OrderPlaced))
    partial = descriptor_pb2.FileDescriptorSet(
        file=[f for f in full.file if f.name != "crossdock/common/v1/common.proto"]
    )
    with pytest.raises(InvalidSchema, match="does not include"):
        validate(partial, "crossdock.events.v1.OrderPlaced")


def test_an_unresolved_type_and_a_missing_message_are_invalid() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="x.proto", package="x", syntax="proto3")
    message = file.message_type.add(name="M")
    message.field.add(name="a", number=1, type=11, label=1, type_name=".x.Nope")
    with pytest.raises(InvalidSchema, match="does not link"):
        validate(descriptor_pb2.FileDescriptorSet(file=[file]), "x.M")
    with pytest.raises(InvalidSchema) as raised:
        validate(parse_descriptor_set(thing(BASE)), "regtest.v1.Missing")
    assert raised.value.violations[0].field == "message_name"


def test_json_names_follow_protoc() -> None:
    assert json_name_of("order_id") == "orderId"
    assert json_name_of("ipv4_addr_2") == "ipv4Addr2"
    assert json_name_of("a__b") == "aB"


def test_the_canonical_form_ignores_how_the_set_was_built() -> None:
    files = {
        "regtest/v1/part.proto": 'syntax = "proto3";\npackage regtest.v1;\n'
        "// Part is a comment that source info would keep.\n"
        "message Part { string sku_code = 1; }\n",
        "regtest/v1/thing.proto": 'syntax = "proto3";\npackage regtest.v1;\n'
        'import "regtest/v1/part.proto";\nmessage Thing { Part part_ref = 1; }\n',
    }
    plain = parse_descriptor_set(compile_files(files))
    # As a generated Python module would give it: source info, no json_name, another order.
    other = parse_descriptor_set(compile_files(files, source_info=True))
    for file in other.file:
        for message in file.message_type:
            for field in message.field:
                field.ClearField("json_name")
    other = descriptor_pb2.FileDescriptorSet(file=list(reversed(other.file)))
    assert plain.SerializeToString() != other.SerializeToString()
    assert canonical_bytes(plain) == canonical_bytes(other)
    canonical = canonical_bytes(plain)
    assert fingerprint(THING, canonical) != fingerprint("regtest.v1.Part", canonical)


def test_payload_files_leave_out_option_definitions() -> None:
    descriptor_set = parse_descriptor_set(descriptor_set_of(order_events_pb2.OrderPlaced))
    every_file = {f.name for f in descriptor_set.file}
    payload = payload_files(descriptor_set, "crossdock.events.v1.OrderPlaced")
    assert payload == {
        "crossdock/events/v1/order_events.proto",
        "crossdock/order/v1/order.proto",
        "crossdock/common/v1/common.proto",
        "crossdock/carrier/v1/carrier.proto",
        "google/protobuf/timestamp.proto",
    }
    assert every_file - payload >= {
        "crossdock/events/v1/options.proto",
        "buf/validate/validate.proto",
        "google/protobuf/descriptor.proto",
    }
