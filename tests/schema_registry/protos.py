"""Real descriptor sets for the registry tests, and buf run directly to confirm each verdict.

Schemas are small .proto variants compiled with grpc_tools' protoc
(`--descriptor_set_out --include_imports`). `buf_rules` runs `buf breaking` itself, with the
plain WIRE_JSON rule set and none of the registry's code, so a test can prove the registry's
verdict is buf's.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

PACKAGE = "regtest.v1"
THING = "regtest.v1.Thing"
THING_FILE = "regtest/v1/thing.proto"

# The edits the mode tests apply to BASE, each a complete message body of Thing.
BASE = "message Thing { string id = 1; int32 count = 2; }"
ADDED = "message Thing { string id = 1; int32 count = 2; string note = 3; }"
REMOVED = "message Thing { string id = 1; }"
RESERVED = 'message Thing { reserved 2; reserved "count"; string id = 1; }'
RETYPED = "message Thing { string id = 1; string count = 2; }"
DEPRECATED = "message Thing { string id = 1; int32 count = 2 [deprecated = true]; }"


def compile_files(files: dict[str, str], *, source_info: bool = False) -> bytes:
    """Compile .proto sources (path → text); returns the FileDescriptorSet with every import."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="regtest-proto-") as tmp:
        root = Path(tmp)
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        out = root / "out.binpb"
        args = [
            "protoc",
            f"-I{root}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            *(["--include_source_info"] if source_info else []),
            *files,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {list(files)}")
        return out.read_bytes()


def thing(
    body: str, *, imports: tuple[str, ...] = (), extra: dict[str, str] | None = None
) -> bytes:
    """regtest/v1/thing.proto holding `body`, compiled with `extra` files it may import."""
    header = f'syntax = "proto3";\npackage {PACKAGE};\n'
    header += "".join(f'import "{path}";\n' for path in imports)
    return compile_files({THING_FILE: header + body + "\n", **(extra or {})})


def find_buf() -> str:
    local = Path(sys.executable).parent / "buf"
    found = str(local) if local.is_file() else shutil.which("buf")
    if not found:
        raise RuntimeError("buf not found (pip install buf-bin)")
    return found


def buf_rules(new: bytes, old: bytes) -> set[str]:
    """The rules `buf breaking new --against old` (WIRE_JSON) reports; empty = compatible."""
    with tempfile.TemporaryDirectory(prefix="regtest-buf-") as tmp:
        root = Path(tmp)
        (root / "new.binpb").write_bytes(new)
        (root / "old.binpb").write_bytes(old)
        result = subprocess.run(
            [
                find_buf(),
                "breaking",
                "new.binpb",
                "--against",
                "old.binpb",
                "--error-format",
                "json",
                "--config",
                '{"version":"v2","breaking":{"use":["WIRE_JSON"]}}',
            ],
            cwd=root,
            env=dict(os.environ, BUF_CACHE_DIR=str(root / "cache")),
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode not in (0, 100):
        raise RuntimeError(f"buf breaking failed: {result.stderr}")
    return {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}


def with_field(descriptor_set: bytes, message_name: str, field_name: str, number: int) -> bytes:
    """A copy of a descriptor set whose message has one more string field (a mutated release)."""
    parsed = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    package, _, name = message_name.rpartition(".")
    for file in parsed.file:
        if file.package != package:
            continue
        for message in file.message_type:
            if message.name == name:
                message.field.add(
                    name=field_name,
                    number=number,
                    type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                    json_name=field_name,
                )
                return parsed.SerializeToString()
    raise KeyError(message_name)


def without_message(descriptor_set: bytes, message_name: str) -> bytes:
    """A copy of a descriptor set without one top-level message (an older release)."""
    parsed = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    package, _, name = message_name.rpartition(".")
    for file in parsed.file:
        if file.package == package:
            kept = [m for m in file.message_type if m.name != name]
            if len(kept) != len(file.message_type):
                del file.message_type[:]
                file.message_type.extend(kept)
                return parsed.SerializeToString()
    raise KeyError(message_name)
