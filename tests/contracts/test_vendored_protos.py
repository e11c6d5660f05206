"""third_party/proto is what tools/vendor_protos.py writes, and it compiles to the originals.

The important check is that buf/validate/validate.proto, printed back from the descriptor
protovalidate ships, compiles with protoc to that very descriptor: any rule or option the printer
lost would silently change validation behaviour. The printer is also round-tripped through protoc
on a few real and synthetic files to cover syntax validate.proto does not use.
"""

from __future__ import annotations

import difflib
import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "vendor_protos.py"
VENDORED = REPO_ROOT / "third_party" / "proto"
# protoc from grpc_tools does not find the well-known types on its own.
WKT_INCLUDE = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
VALIDATE = "buf/validate/validate.proto"

FileSet = descriptor_pb2.FileDescriptorSet
FileProto = descriptor_pb2.FileDescriptorProto


@pytest.fixture(scope="module")
def vendor() -> ModuleType:
    # tools/ is not a package; load the script as a module to reach its functions.
    spec = importlib.util.spec_from_file_location("vendor_protos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def protoc(includes: Sequence[Path], files: Sequence[str], out: Path) -> FileSet:
    """Compile with grpc_tools' protoc into a descriptor set (imports included)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{p}" for p in includes),
            f"--descriptor_set_out={out}",
            "--include_imports",
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return FileSet.FromString(out.read_bytes())


def by_name(files: FileSet, name: str) -> FileProto:
    return next(f for f in files.file if f.name == name)


def fill_json_names(vendor: ModuleType, file: FileProto) -> FileProto:
    """Give every field an explicit json_name, the way protoc reports it, on a copy."""
    out = FileProto()
    out.CopyFrom(file)

    def fields(msgs: Iterable[descriptor_pb2.DescriptorProto]) -> Iterable[Message]:
        for m in msgs:
            yield from m.field
            yield from m.extension
            yield from fields(m.nested_type)

    for field in [*fields(out.message_type), *out.extension]:
        assert isinstance(field, descriptor_pb2.FieldDescriptorProto)
        if not field.HasField("json_name"):
            field.json_name = vendor.default_json_name(field.name)
    out.ClearField("source_code_info")
    return out


def semantic(context: Iterable[FileProto], *files: FileProto) -> list[Message]:
    """files re-parsed with classes that know their custom options.

    protoc stores custom options as unknown fields, one record per option statement, so two
    equivalent spellings can differ in bytes; parsed as extensions they compare by value. One
    pool for all files: messages from different pools never compare equal.
    """
    pool = descriptor_pool.DescriptorPool()
    protos = list(context)
    if all(p.name != "google/protobuf/descriptor.proto" for p in protos):
        descriptor_proto = FileProto()
        descriptor_pb2.DESCRIPTOR.CopyToProto(descriptor_proto)
        protos.insert(0, descriptor_proto)
    for proto in protos:
        pool.Add(proto)
    cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.FileDescriptorProto")
    )
    return [cls.FromString(f.SerializeToString()) for f in files]


def assert_same(expected: Message, actual: Message) -> None:
    if expected != actual:
        diff = difflib.unified_diff(
            text_format.MessageToString(expected).splitlines(),
            text_format.MessageToString(actual).splitlines(),
            "expected",
            "actual",
            lineterm="",
        )
        pytest.fail("descriptors differ:\n" + "\n".join(list(diff)[:200]))


def without_top_level_unknowns(file: FileProto) -> FileProto:
    """Copy of file minus unknown top-level fields (buf tags images with one)."""
    out = FileProto()
    for field, value in file.ListFields():
        target = getattr(out, field.name)
        if field.is_repeated:
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(out, field.name, value)
    return out


# --------------------------------------------------------------------------------------------
# the vendored tree
# --------------------------------------------------------------------------------------------


@pytest.mark.integration  # runs tools/vendor_protos.py
def test_vendored_tree_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_validate_proto_compiles_back_to_the_shipped_descriptor(
    vendor: ModuleType, tmp_path: Path
) -> None:
    _, module_source = vendor.protovalidate_source()
    original = vendor.embedded_descriptor(module_source)
    compiled = by_name(protoc([VENDORED, WKT_INCLUDE], [VALIDATE], tmp_path / "set.pb"), VALIDATE)

    expected = fill_json_names(vendor, original)
    actual = fill_json_names(vendor, compiled)
    # Exact equality, custom option bytes included: not only equivalent, identical.
    assert_same(expected, actual)
    assert actual.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )


def test_google_api_protos_are_verbatim_copies_that_compile(tmp_path: Path) -> None:
    dist = metadata.distribution("googleapis-common-protos")
    copies = sorted(
        p.relative_to(VENDORED).as_posix() for p in (VENDORED / "google").rglob("*.proto")
    )
    assert {
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/api/field_behavior.proto",
    } <= set(copies)
    for name in copies:
        shipped = Path(str(dist.locate_file(name))).read_bytes()
        assert (VENDORED / name).read_bytes() == shipped, name
    protoc([VENDORED, WKT_INCLUDE], copies, tmp_path / "set.pb")


def test_buf_builds_the_vendored_tree(vendor: ModuleType, tmp_path: Path) -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if buf is None:
        pytest.skip("buf is not installed (pip install buf-bin)")
    # Throwaway module: the repository's own buf.yaml is owned elsewhere and may not list
    # third_party/proto as a module.
    module = tmp_path / "module"
    shutil.copytree(VENDORED, module)
    (module / "buf.yaml").write_text("version: v2\n")
    image = tmp_path / "image.binpb"
    env = {**os.environ, "BUF_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [buf, "build", str(module), "-o", str(image)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr

    built = without_top_level_unknowns(by_name(FileSet.FromString(image.read_bytes()), VALIDATE))
    original = vendor.embedded_descriptor(vendor.protovalidate_source()[1])
    assert_same(fill_json_names(vendor, original), fill_json_names(vendor, built))

    # buf.yaml lists third_party/proto as a module, so a workspace-wide `buf format -w` must
    # not rewrite the generated file (that would make `vendor_protos.py --check` fail).
    result = subprocess.run(
        [buf, "format", str(module), "--path", str(module / VALIDATE), "--diff", "--exit-code"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_stale_and_unexpected_files(
    vendor: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "proto"
    assert vendor.main(["--out", str(out)]) == 0
    assert vendor.main(["--check", "--out", str(out)]) == 0

    target = out / VALIDATE
    target.write_text(target.read_text() + "// local edit\n")
    (out / "extra.proto").write_text('syntax = "proto3";\n')
    capsys.readouterr()
    assert vendor.main(["--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{target} is stale" in err
    assert "extra.proto is not produced" in err

    # A normal run repairs both.
    assert vendor.main(["--out", str(out)]) == 0
    assert vendor.main(["--check", "--out", str(out)]) == 0
    assert not (out / "extra.proto").exists()


# --------------------------------------------------------------------------------------------
# the printer on other inputs
# --------------------------------------------------------------------------------------------

KITCHEN_PROTO2 = r"""
syntax = "proto2";

package kitchen.sink.v1;

import "google/protobuf/descriptor.proto";
import public "google/protobuf/duration.proto";

option java_package = "com.example.sink";
option optimize_for = CODE_SIZE;
option (file_label) = "sink";

extend google.protobuf.FileOptions { optional string file_label = 50000; }
extend google.protobuf.FieldOptions {
  optional Rule rule = 50001;
  repeated int32 tags = 50002;
  optional float ratio = 50003;
}
extend google.protobuf.MessageOptions { repeated Rule message_rules = 50004; }
extend google.protobuf.MethodOptions { optional Rule method_rule = 50005; }
extend google.protobuf.EnumValueOptions { optional string alias = 50006; }
extend google.protobuf.ServiceOptions { optional bool internal = 50007; }
extend google.protobuf.OneofOptions { optional bool exclusive = 50008; }
extend google.protobuf.ExtensionRangeOptions { optional string range_note = 50009; }

message Rule {
  optional string id = 1;
  repeated string tags = 2;
  optional Nested nested = 3;
  optional Kind kind = 4;
  map<string, int32> weights = 5;
  message Nested {
    optional int32 x = 1;
    optional double y = 2;
    optional bytes z = 3;
  }
}

enum Kind {
  option allow_alias = true;
  KIND_UNSPECIFIED = 0;
  KIND_A = 1 [(alias) = "a"];
  KIND_ALIAS = 1 [deprecated = true];
  KIND_NEG = -5;
  reserved 10 to 20, 30, 100 to max;
  reserved "KIND_OLD";
}

message Everything {
  option (message_rules) = { id: "a" };
  option (message_rules) = { id: "b" tags: ["x", "y"] };
  option deprecated = true;
  required int32 req = 1 [(tags) = 1, (tags) = 2, (ratio) = 0.5];
  optional string s = 2 [default = "he said \"hi\"\n\t\001\303\251", json_name = "sss"];
  optional bytes b = 3 [default = "\000\377abc"];
  optional double d = 4 [default = inf];
  optional float f = 5 [default = -1.5e-10];
  optional Kind k = 6 [default = KIND_A];
  optional int64 big = 7 [default = -9223372036854775808, jstype = JS_STRING];
  optional uint64 ubig = 8 [default = 18446744073709551615];
  optional bool flag = 9 [default = true];
  repeated int32 packed_ints = 10 [packed = true];
  optional group Result = 11 {
    optional string url = 1;
    repeated group Inner = 2 { optional int32 v = 1; }
  }
  oneof choice {
    option (exclusive) = true;
    string name = 12 [(rule).id = "n", (rule).nested.x = 3];
    int32 number = 13 [(rule) = { id: "num" tags: "t" kind: KIND_A weights { key: "a" value: 1 } }];
    group Picked = 14 { optional int32 p = 1; }
  }
  map<string, Rule> rules = 15;
  map<int64, Kind> kinds = 16;
  optional google.protobuf.Duration timeout = 17;
  optional Nested nested = 18;
  optional double nan_default = 19 [default = nan];
  message Nested {
    extend Everything { optional string nested_ext = 1000; }
    enum Level { LEVEL_UNSPECIFIED = 0; }
    optional Level level = 1;
  }
  extensions 1000 to 1999 [(range_note) = "first"];
  extensions 5000, 6000 to max;
  reserved 100, 200 to 299;
  reserved "gone", "removed";
}

extend Everything {
  optional int32 top_ext = 1001;
  repeated Rule top_rules = 1002;
}

// Name resolution: a nested Duration shadows the well-known one, a field named `google` or
// `kitchen` forces fully-qualified (leading dot) names.
message Shadow {
  message Duration {}
  optional google.protobuf.Duration real = 1;
  optional Duration local = 2;
  optional int32 google = 3;
  optional .google.protobuf.Duration dotted = 4;
  optional int32 kitchen = 5 [(kitchen.sink.v1.rule).id = "k"];
}

service SinkService {
  option (internal) = true;
  option deprecated = true;
  rpc Get(Rule) returns (Everything);
  rpc Stream(stream Rule) returns (stream google.protobuf.Duration) {
    option idempotency_level = NO_SIDE_EFFECTS;
    option (method_rule) = { id: "m" nested { x: 1 y: 2.5 z: "\001" } };
  }
}
"""

KITCHEN_PROTO3 = r"""
syntax = "proto3";

package kitchen.three;

import "google/protobuf/struct.proto";

message P3 {
  optional int32 maybe = 1;
  int32 plain = 2;
  repeated string names = 3;
  map<string, google.protobuf.Value> attrs = 4;
  oneof kind {
    string a = 5;
    P3 b = 6;
  }
  optional string after = 7;
  string custom_json = 8 [json_name = "CUSTOM"];
  enum Color {
    COLOR_UNSPECIFIED = 0;
    COLOR_RED = 1;
  }
  Color color = 9;
  repeated int32 unpacked = 10 [packed = false];
  reserved 20 to 30;
  reserved "legacy";
}

service Empty {}
"""

KITCHEN_EDITIONS = r"""
edition = "2023";

package kitchen.ed;

import "google/protobuf/java_features.proto";

option features.field_presence = IMPLICIT;
option features.(pb.java).utf8_validation = VERIFY;

message E {
  int32 implicit = 1;
  int32 explicit = 2 [features.field_presence = EXPLICIT];
  int32 req = 3 [features.field_presence = LEGACY_REQUIRED];
  repeated int32 expanded = 4 [features.repeated_field_encoding = EXPANDED];
  Inner delimited = 5 [features.message_encoding = DELIMITED];
  message Inner { int32 v = 1; }
  map<string, string> m = 6;
  Closed closed = 7 [features.field_presence = EXPLICIT];
  reserved foo, bar;
  reserved 10;
}

enum Closed {
  option features.enum_type = CLOSED;
  CLOSED_ZERO = 0;
  CLOSED_ONE = 1;
}
"""

SYNTHETIC = {
    "kitchen/sink/v1/sink.proto": KITCHEN_PROTO2,
    "kitchen/three/p3.proto": KITCHEN_PROTO3,
    "kitchen/ed/ed.proto": KITCHEN_EDITIONS,
}
GOOGLEAPIS_ROOT = Path(
    str(metadata.distribution("googleapis-common-protos").locate_file("google"))
).parent


@pytest.mark.parametrize(
    ("name", "root"),
    [
        ("google/protobuf/descriptor.proto", WKT_INCLUDE),
        ("google/protobuf/struct.proto", WKT_INCLUDE),
        ("google/protobuf/java_features.proto", WKT_INCLUDE),
        ("google/protobuf/cpp_features.proto", WKT_INCLUDE),
        ("google/api/http.proto", GOOGLEAPIS_ROOT),
        ("google/api/client.proto", GOOGLEAPIS_ROOT),
        ("google/api/resource.proto", GOOGLEAPIS_ROOT),
        *((name, None) for name in SYNTHETIC),
    ],
)
def test_printer_round_trips_through_protoc(
    vendor: ModuleType, tmp_path: Path, name: str, root: Path | None
) -> None:
    if root is None:
        root = tmp_path / "src"
        (root / name).parent.mkdir(parents=True)
        (root / name).write_text(SYNTHETIC[name])
    includes = [root, WKT_INCLUDE]
    first = protoc(includes, [name], tmp_path / "first.pb")
    original = by_name(first, name)

    source = vendor.render_proto(original, [f for f in first.file if f.name != name])
    rendered = tmp_path / "rendered"
    (rendered / name).parent.mkdir(parents=True)
    (rendered / name).write_text(source)
    again = by_name(protoc([rendered, *includes], [name], tmp_path / "again.pb"), name)

    expected, actual = semantic(
        first.file, fill_json_names(vendor, original), fill_json_names(vendor, again)
    )
    assert_same(expected, actual)
