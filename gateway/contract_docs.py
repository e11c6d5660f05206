"""Proto comments for the API docs.

Generated descriptors carry no comments, so the docs come from a FileDescriptorSet compiled with
source info. Order of preference:

1. `gateway/contract_docs.binpb`, written by `python -m gateway.contract_docs` (meant to run in
   `make proto` next to the code generation, so a production image needs no protoc);
2. compiling proto/ on the fly with grpc_tools.protoc (a dev dependency) when the artifact is
   missing, e.g. in a fresh checkout;
3. no comments (the spec is still complete, only without descriptions).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
ARTIFACT = Path(__file__).resolve().parent / "contract_docs.binpb"
PROTO_ROOT = REPO / "proto"
THIRD_PARTY = REPO / "third_party" / "proto"

# FileDescriptorProto / DescriptorProto field numbers used in SourceCodeInfo paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def compile_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """Compile every crossdock .proto with source info (needs grpc_tools)."""
    import grpc_tools  # type: ignore[import-untyped]

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "docs.binpb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{THIRD_PARTY}",
            f"-I{well_known}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sources,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed: {result.stderr.strip()}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def load_descriptor_set() -> descriptor_pb2.FileDescriptorSet | None:
    if ARTIFACT.is_file():
        return descriptor_pb2.FileDescriptorSet.FromString(ARTIFACT.read_bytes())
    try:
        return compile_descriptor_set()
    except (ImportError, RuntimeError, OSError) as error:
        log.warning("API docs without proto comments", extra={"reason": str(error)})
        return None


def comments_by_name(files: descriptor_pb2.FileDescriptorSet | None) -> dict[str, str]:
    """Leading comment of every message, field, enum, value, service and method, by full name."""
    found: dict[str, str] = {}
    if files is None:
        return found
    for file in files.file:
        names = _names_by_path(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            comment = location.leading_comments.strip()
            if name and comment:
                found[name] = " ".join(line.strip() for line in comment.splitlines())
    return found


def _names_by_path(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    names: dict[tuple[int, ...], str] = {}
    prefix = file.package

    def enum(path: tuple[int, ...], scope: str, item: descriptor_pb2.EnumDescriptorProto) -> None:
        full = f"{scope}.{item.name}"
        names[path] = full
        for index, value in enumerate(item.value):
            # Enum values live in the enclosing scope in protobuf naming.
            names[(*path, _ENUM_VALUE, index)] = f"{full}.{value.name}"

    def message(path: tuple[int, ...], scope: str, item: descriptor_pb2.DescriptorProto) -> None:
        full = f"{scope}.{item.name}"
        names[path] = full
        for index, field in enumerate(item.field):
            names[(*path, _MSG_FIELD, index)] = f"{full}.{field.name}"
        for index, nested in enumerate(item.nested_type):
            message((*path, _MSG_NESTED, index), full, nested)
        for index, nested_enum in enumerate(item.enum_type):
            enum((*path, _MSG_ENUM, index), full, nested_enum)

    for index, item in enumerate(file.message_type):
        message((_FILE_MESSAGE, index), prefix, item)
    for index, item_enum in enumerate(file.enum_type):
        enum((_FILE_ENUM, index), prefix, item_enum)
    for index, service in enumerate(file.service):
        full = f"{prefix}.{service.name}"
        names[(_FILE_SERVICE, index)] = full
        for method_index, method in enumerate(service.method):
            names[(_FILE_SERVICE, index, _SERVICE_METHOD, method_index)] = f"{full}.{method.name}"
    return names


def main() -> None:
    """Write the artifact: `python -m gateway.contract_docs`."""
    ARTIFACT.write_bytes(compile_descriptor_set().SerializeToString(deterministic=True))
    print(f"wrote {ARTIFACT}")


if __name__ == "__main__":
    main()
