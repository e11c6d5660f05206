"""Descriptor sets as the registry sees them: validated, canonical, fingerprinted, scoped.

A schema is a serialized google.protobuf.FileDescriptorSet holding the event message's file and
every file it imports. Two producers built from the same contracts must get the same schema id,
whether their descriptors came from protoc, buf or a generated Python module, so the stored form
is canonical: files in dependency order (ties by name), no source info (comments are not
schema), and every field's json_name filled in (protoc's Python embedding omits default
json_names while buf and `--descriptor_set_out` write them, and buf's FIELD_SAME_JSON_NAME
compares the literal option).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from services.schema_registry.domain.errors import InvalidSchema

FileProto = descriptor_pb2.FileDescriptorProto
MessageProto = descriptor_pb2.DescriptorProto


def parse_descriptor_set(raw: bytes) -> descriptor_pb2.FileDescriptorSet:
    """Parse a serialized FileDescriptorSet; 42201 when it is not one."""
    if not raw:
        raise InvalidSchema("the descriptor set is empty")
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    try:
        descriptor_set.ParseFromString(raw)
    except DecodeError:
        raise InvalidSchema("not a serialized google.protobuf.FileDescriptorSet") from None
    if not descriptor_set.file or any(not f.name for f in descriptor_set.file):
        raise InvalidSchema("the descriptor set holds no named files")
    return descriptor_set


def ordered_files(descriptor_set: descriptor_pb2.FileDescriptorSet) -> list[FileProto]:
    """The files, each after everything it imports (ties by name); 42201 on gaps or cycles."""
    by_name: dict[str, FileProto] = {}
    for file in descriptor_set.file:
        if file.name in by_name:
            raise InvalidSchema(f"file {file.name!r} appears twice")
        by_name[file.name] = file
    for file in by_name.values():
        for dependency in file.dependency:
            if dependency not in by_name:
                raise InvalidSchema(
                    f"{file.name!r} imports {dependency!r}, which the descriptor set does not "
                    "include (build it with every dependency, e.g. protoc --include_imports)"
                )
    ordered: list[FileProto] = []
    placed: set[str] = set()
    remaining = sorted(by_name)
    while remaining:
        ready = [name for name in remaining if set(by_name[name].dependency) <= placed]
        if not ready:
            raise InvalidSchema(f"import cycle among {', '.join(remaining)}")
        # One at a time keeps the order a pure function of the set: the smallest ready name.
        name = ready[0]
        ordered.append(by_name[name])
        placed.add(name)
        remaining.remove(name)
    return ordered


def validate(descriptor_set: descriptor_pb2.FileDescriptorSet, message_name: str) -> None:
    """Check that the files link (every type resolves) and that `message_name` is a message."""
    pool = descriptor_pool.DescriptorPool()
    for file in ordered_files(descriptor_set):
        try:
            pool.Add(file)
        except (TypeError, ValueError) as error:
            raise InvalidSchema(f"{file.name!r} does not link: {error}") from None
    try:
        pool.FindMessageTypeByName(message_name)
    except KeyError:
        raise InvalidSchema(
            f"the descriptor set has no message {message_name!r}", field="message_name"
        ) from None


def json_name_of(field_name: str) -> str:
    """protoc's default JSON name: underscores dropped, the letter after each one upper-cased."""
    out: list[str] = []
    upper_next = False
    for char in field_name:
        if char == "_":
            upper_next = True
        elif upper_next:
            out.append(char.upper())
            upper_next = False
        else:
            out.append(char)
    return "".join(out)


def _messages(messages: Iterable[MessageProto]) -> Iterator[MessageProto]:
    for message in messages:
        yield message
        yield from _messages(message.nested_type)


def canonical_bytes(descriptor_set: descriptor_pb2.FileDescriptorSet) -> bytes:
    """The canonical serialization (see the module docstring)."""
    canonical = descriptor_pb2.FileDescriptorSet()
    for file in ordered_files(descriptor_set):
        copy = canonical.file.add()
        copy.CopyFrom(file)
        copy.ClearField("source_code_info")
        for message in _messages(copy.message_type):
            for field in message.field:
                if not field.HasField("json_name"):
                    field.json_name = json_name_of(field.name)
    return canonical.SerializeToString(deterministic=True)


def fingerprint(message_name: str, canonical: bytes) -> str:
    """SHA-256 (hex) of the root message name and the canonical descriptor set.

    The name is included because one descriptor set can serve two roots (two messages that
    reference each other prune to the same files), and a schema is a root plus its files.
    """
    digest = hashlib.sha256()
    digest.update(message_name.encode("utf-8") + b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def payload_files(descriptor_set: descriptor_pb2.FileDescriptorSet, message_name: str) -> set[str]:
    """The files that define the root message and every type its fields reach.

    What a consumer decodes lives there. The other files are only there for options (event
    routing, protovalidate rules, descriptor.proto): they never change the bytes on the wire or
    the JSON, so compatibility checks skip them.
    """
    file_of: dict[str, str] = {}
    message_of: dict[str, MessageProto] = {}

    def index(prefix: str, file_name: str, messages: Iterable[MessageProto]) -> None:
        for message in messages:
            full = f"{prefix}.{message.name}" if prefix else message.name
            file_of[full] = file_name
            message_of[full] = message
            for enum in message.enum_type:
                file_of[f"{full}.{enum.name}"] = file_name
            index(full, file_name, message.nested_type)

    for file in descriptor_set.file:
        index(file.package, file.name, file.message_type)
        for enum in file.enum_type:
            file_of[f"{file.package}.{enum.name}" if file.package else enum.name] = file.name

    found: set[str] = set()
    seen: set[str] = set()
    pending = [message_name]
    while pending:
        type_name = pending.pop()
        if type_name in seen or type_name not in file_of:
            continue
        seen.add(type_name)
        found.add(file_of[type_name])
        message = message_of.get(type_name)
        if message is not None:
            pending.extend(f.type_name.lstrip(".") for f in message.field if f.type_name)
    return found
