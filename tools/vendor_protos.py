#!/usr/bin/env python3
"""Fill third_party/proto/ with the third-party .proto sources our contracts import.

Why this exists: CI and dev machines reach PyPI but not the Buf Schema Registry or GitHub, so the
imports of proto/ (google/api/*.proto, buf/validate/validate.proto) are taken from installed PyPI
packages instead of `buf dep update`:

* googleapis-common-protos ships google/api/*.proto as source: annotations, http and
  field_behavior, any other google/* file that proto/ imports, and their imports are copied
  verbatim (the google/protobuf well-known types are left to protoc and buf).
* protovalidate ships buf/validate/validate.proto only as a serialized FileDescriptorProto (plus
  docstrings made from the proto comments), so the source is printed back from the descriptor.

Usage:
    python tools/vendor_protos.py            # (re)write third_party/proto
    python tools/vendor_protos.py --check    # exit 1, naming the stale file(s), if out of date

The script owns third_party/proto: .proto files there that it would not write are reported by
--check and removed by a normal run.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_encoding,
    text_format,
    unknown_fields,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "third_party" / "proto"
DEFAULT_CONTRACTS = REPO_ROOT / "proto"

GOOGLEAPIS_DIST = "googleapis-common-protos"
GOOGLEAPIS_ROOTS = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/field_behavior.proto",
)
PROTOVALIDATE_DIST = "protovalidate"
VALIDATE_PROTO = "buf/validate/validate.proto"
VALIDATE_MODULE = "protovalidate/_gen/buf/validate/validate_pb.py"

FDP = descriptor_pb2.FieldDescriptorProto
# Field numbers above this are reserved for extensions of descriptor.proto itself; `max` in
# `extensions N to max` / `reserved N to max` means this for messages, int32 max for enums.
MAX_FIELD_NUMBER = 536_870_911
MAX_ENUM_NUMBER = 2**31 - 1

# (kind, scope full name, member) -> comment text. kind is "type", "field", "oneof", "value" or
# "ext"; member is a field/extension number, oneof/enum value name, or "" for types.
DocKey = tuple[str, str, str]
Docs = Mapping[DocKey, str]


class VendorError(Exception):
    """Something in the installed packages is not what this script knows how to handle."""


# --------------------------------------------------------------------------------------------
# googleapis-common-protos: plain copies
# --------------------------------------------------------------------------------------------

_IMPORT_RE = re.compile(r'^\s*import\s+(?:(?:public|weak|option)\s+)?"([^"]+)"\s*;', re.M)


def contract_imports(contracts: Path) -> list[str]:
    """google/* imports of our contracts that are not well-known types, e.g. google/api/httpbody.

    Why: a contract may import more of googleapis than GOOGLEAPIS_ROOTS; vendoring what proto/
    imports keeps `make proto-deps` the only step after adding such an import.
    """
    names: set[str] = set()
    for path in sorted(contracts.rglob("*.proto")) if contracts.is_dir() else []:
        names.update(_IMPORT_RE.findall(path.read_text(encoding="utf-8")))
    return sorted(
        n
        for n in names
        if n.startswith("google/")
        and not n.startswith("google/protobuf/")
        and not (contracts / n).is_file()
    )


def googleapis_files(roots: Iterable[str] = GOOGLEAPIS_ROOTS) -> dict[str, bytes]:
    """roots plus everything they import, except the well-known types.

    google/protobuf/*.proto is skipped because protoc (grpc_tools) and buf bundle those.
    """
    dist = metadata.distribution(GOOGLEAPIS_DIST)
    files: dict[str, bytes] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in files or name.startswith("google/protobuf/"):
            continue
        path = Path(str(dist.locate_file(name)))
        if not path.is_file():
            raise VendorError(f"{name} is not shipped by {GOOGLEAPIS_DIST}=={dist.version}")
        data = path.read_bytes()
        files[name] = data
        pending.extend(_IMPORT_RE.findall(data.decode("utf-8")))
    return files


# --------------------------------------------------------------------------------------------
# protovalidate: descriptor, license header and comments from the generated module
# --------------------------------------------------------------------------------------------


def protovalidate_source() -> tuple[str, str]:
    """(version, source text of the generated validate module)."""
    dist = metadata.distribution(PROTOVALIDATE_DIST)
    path = Path(str(dist.locate_file(VALIDATE_MODULE)))
    if not path.is_file():
        raise VendorError(f"{VALIDATE_MODULE} is missing from {PROTOVALIDATE_DIST}=={dist.version}")
    return dist.version, path.read_text(encoding="utf-8")


def embedded_descriptor(module_source: str) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto literal passed as `_DESC = file_desc(b'...', ...)`.

    Read with ast instead of importing: the module needs the protobuf-py runtime, and the
    literal is all we want.
    """
    for node in ast.parse(module_source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_DESC" for t in node.targets)
            and isinstance(node.value, ast.Call)
            and node.value.args
            and isinstance(node.value.args[0], ast.Constant)
            and isinstance(node.value.args[0].value, bytes)
        ):
            return descriptor_pb2.FileDescriptorProto.FromString(node.value.args[0].value)
    raise VendorError(f"no `_DESC = file_desc(b'...')` literal found in {VALIDATE_MODULE}")


def license_header(module_source: str) -> list[str]:
    """The module's leading `#` comment block (Buf's Apache-2.0 notice), without the `# `."""
    lines: list[str] = []
    for line in module_source.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" ").rstrip())
    if not any("Buf Technologies" in line for line in lines) or not any(
        "Apache License" in line for line in lines
    ):
        # Keep the header truthful even if upstream reformats its notice.
        return [
            "Copyright Buf Technologies, Inc.",
            "",
            "Licensed under the Apache License, Version 2.0:",
            "http://www.apache.org/licenses/LICENSE-2.0",
        ]
    return lines


def _split_signature(text: str) -> tuple[str, str | None]:
    """Split a docstring section into (comment, trailing ```proto signature``` block)."""
    text = text.rstrip()
    start = text.rfind("```proto\n")
    if not text.endswith("```") or start < 0:
        return text.strip("\n"), None
    return text[:start].rstrip().strip("\n"), text[start + len("```proto\n") : -3].strip()


def _attribute_entries(section: str) -> Iterator[tuple[str, str]]:
    """(name, dedented text) for each entry of a Google-style `Attributes:` section."""
    name: str | None = None
    body: list[str] = []
    for line in section.splitlines():
        if m := re.fullmatch(r" {4}(\w+):", line):
            if name is not None:
                yield name, "\n".join(body)
            name, body = m[1], []
        elif name is not None:
            body.append(line[8:] if line.startswith(" " * 8) else line.strip())
    if name is not None:
        yield name, "\n".join(body)


def _class_docs(doc: str, docs: dict[DocKey, str]) -> None:
    head, _, attributes = doc.partition("\nAttributes:\n")
    text, sig = _split_signature(head)
    m = re.fullmatch(r"(message|enum)\s+([\w.]+)", sig or "")
    if m is None:
        return
    kind, full = m[1], m[2]
    if text:
        docs[("type", full, "")] = text
    for _, entry in _attribute_entries(attributes):
        text, sig = _split_signature(entry)
        if not text or not sig:
            continue
        # The signature block names the declaration; the Python attribute names are mangled.
        if kind == "enum":
            if mm := re.match(r"(\w+)\s*=", sig):
                docs[("value", full, mm[1])] = text
        elif mm := re.fullmatch(r"oneof\s+(\w+)", sig):
            docs[("oneof", full, mm[1])] = text
        elif mm := re.search(r"\b\w+\s*=\s*(\d+)", sig):
            docs[("field", full, mm[1])] = text


def module_docs(module_source: str) -> dict[DocKey, str]:
    """Comments recovered from the docstrings of the generated module (best effort)."""
    docs: dict[DocKey, str] = {}

    def visit(body: Sequence[ast.stmt]) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.ClassDef):
                if doc := ast.get_docstring(node):
                    _class_docs(doc, docs)
                visit(node.body)
            elif (
                isinstance(node, ast.Assign | ast.AnnAssign)
                and i + 1 < len(body)
                and isinstance(nxt := body[i + 1], ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                # Extensions are documented by a bare string after their assignment.
                text, sig = _split_signature(inspect.cleandoc(nxt.value.value))
                m = re.match(r"extend\s+([\w.]+)\s*\{.*?\b\w+\s*=\s*(\d+)", sig or "", re.S)
                if m and text:
                    docs[("ext", m[1], m[2])] = text

    visit(ast.parse(module_source).body)
    return docs


# --------------------------------------------------------------------------------------------
# FileDescriptorProto -> .proto source
# --------------------------------------------------------------------------------------------


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def default_json_name(name: str) -> str:
    """protoc's ToJsonName: drop underscores, upper-case the letter after each."""
    out: list[str] = []
    upper_next = False
    for ch in name:
        if ch == "_":
            upper_next = True
        elif upper_next:
            out.append(ch.upper())
            upper_next = False
        else:
            out.append(ch)
    return "".join(out)


def _wkt_file(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A google/protobuf/*.proto descriptor from the installed protobuf runtime."""
    if not name.startswith("google/protobuf/"):
        return None
    module_name = name.removesuffix(".proto").replace("/", ".") + "_pb2"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def _descriptor_file(
    deps: Sequence[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pb2.FileDescriptorProto:
    name = "google/protobuf/descriptor.proto"
    found = next((d for d in deps if d.name == name), None) or _wkt_file(name)
    assert found is not None  # descriptor_pb2 is always importable
    return found


def _file_closure(
    file: descriptor_pb2.FileDescriptorProto, deps: Sequence[descriptor_pb2.FileDescriptorProto]
) -> list[descriptor_pb2.FileDescriptorProto]:
    """file and its transitive dependencies, dependencies first (the order a pool needs)."""
    known = {d.name: d for d in deps}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def add(proto: descriptor_pb2.FileDescriptorProto) -> None:
        if proto.name in seen:
            return
        seen.add(proto.name)
        for dep in proto.dependency:
            found = known.get(dep) or _wkt_file(dep)
            if found is None:
                raise VendorError(f"{proto.name}: dependency {dep} was not provided")
            add(found)
        ordered.append(proto)

    add(file)
    return ordered


def _symbols(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> set[str]:
    """Every full name protoc could resolve a name against (packages included)."""
    out: set[str] = set()

    def enum(e: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        out.add(_join(scope, e.name))
        out.update(_join(scope, v.name) for v in e.value)  # values are siblings of the enum

    def message(m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full = _join(scope, m.name)
        out.add(full)
        out.update(_join(full, f.name) for f in [*m.field, *m.extension])
        out.update(_join(full, o.name) for o in m.oneof_decl)
        for nested in m.nested_type:
            message(nested, full)
        for e in m.enum_type:
            enum(e, full)

    for f in files:
        parts = f.package.split(".") if f.package else []
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        for m in f.message_type:
            message(m, f.package)
        for e in f.enum_type:
            enum(e, f.package)
        out.update(_join(f.package, x.name) for x in f.extension)
        for s in f.service:
            out.add(_join(f.package, s.name))
            out.update(_join(f.package, f"{s.name}.{m.name}") for m in s.method)
    return out


def _format_float(value: float) -> str:
    # Spelled the way protoc's option parser accepts non-finite values.
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _quote(value: str | bytes) -> str:
    # Same escaping as text_format: strings keep UTF-8 readable, bytes are octal-escaped.
    as_utf8 = isinstance(value, str)
    return '"' + text_encoding.CEscape(value, as_utf8=as_utf8) + '"'  # type: ignore[arg-type]


class ProtoPrinter:
    """Prints one FileDescriptorProto as .proto source that compiles back to the same descriptor.

    Options are re-parsed with message classes from a private DescriptorPool holding the file and
    its dependencies, so custom options (extensions) come back as named fields instead of unknown
    bytes and can be printed as `(full.name) = value`.
    """

    _SCALARS: ClassVar[dict[int, str]] = {
        FDP.TYPE_DOUBLE: "double",
        FDP.TYPE_FLOAT: "float",
        FDP.TYPE_INT64: "int64",
        FDP.TYPE_UINT64: "uint64",
        FDP.TYPE_INT32: "int32",
        FDP.TYPE_FIXED64: "fixed64",
        FDP.TYPE_FIXED32: "fixed32",
        FDP.TYPE_BOOL: "bool",
        FDP.TYPE_STRING: "string",
        FDP.TYPE_BYTES: "bytes",
        FDP.TYPE_UINT32: "uint32",
        FDP.TYPE_SFIXED32: "sfixed32",
        FDP.TYPE_SFIXED64: "sfixed64",
        FDP.TYPE_SINT32: "sint32",
        FDP.TYPE_SINT64: "sint64",
    }

    def __init__(
        self,
        file: descriptor_pb2.FileDescriptorProto,
        deps: Sequence[descriptor_pb2.FileDescriptorProto] = (),
        docs: Docs | None = None,
    ) -> None:
        self.file = file
        self.docs: Docs = docs or {}
        files = _file_closure(file, deps)
        self.pool = descriptor_pool.DescriptorPool()
        # Options are parsed with the pool's *Options classes, so descriptor.proto must be in
        # it even when the file does not import it.
        names = {f.name for f in files}
        descriptor_proto = "google/protobuf/descriptor.proto"
        extra = [] if descriptor_proto in names else _file_closure(_descriptor_file(deps), deps)
        for proto in [*extra, *files]:
            self.pool.Add(proto)
        self.symbols = _symbols(files)
        self.syntax = file.syntax or "proto2"
        self._classes: dict[str, type[Message]] = {}

    # -- names ------------------------------------------------------------------------------

    def _resolves_uniquely(self, candidate: str, target: str, scope: str) -> bool:
        """True if `candidate`, written in `scope`, can only mean `target`.

        Stricter than protoc on purpose: the first component must exist in exactly one enclosing
        scope, so the result does not depend on protoc's lookup details (where it starts, which
        non-type symbols it skips).
        """
        first = candidate.split(".", 1)[0]
        chain = [scope]
        while chain[-1]:
            chain.append(chain[-1].rpartition(".")[0])
        hits = [s for s in chain if _join(s, first) in self.symbols]
        return len(hits) == 1 and _join(hits[0], candidate) == target

    def type_name(self, target: str, scope: str) -> str:
        """Shortest unambiguous spelling of a type (`Rule`, `google.protobuf.Duration`)."""
        target = target.lstrip(".")
        parts = target.split(".")
        # Relative names only within our own package (`Rule`, `Outer.Inner`); other packages are
        # spelled in full, as people write them, rather than as `protobuf.Duration`.
        package = self.file.package.split(".") if self.file.package else []
        own = parts[: len(package)] == package
        starts = range(len(parts) - 1, len(package) - 1, -1) if own else range(0)
        for i in [*starts, 0]:
            if self._resolves_uniquely(".".join(parts[i:]), target, scope):
                return ".".join(parts[i:])
        return "." + target

    def option_name(self, target: str, scope: str) -> str:
        """Extensions are spelled fully qualified in options, as people usually write them."""
        target = target.lstrip(".")
        return target if self._resolves_uniquely(target, target, scope) else "." + target

    # -- options ----------------------------------------------------------------------------

    def _message_class(self, descriptor: Descriptor) -> type[Message]:
        cls = self._classes.get(descriptor.full_name)
        if cls is None:
            cls = message_factory.GetMessageClass(descriptor)
            self._classes[descriptor.full_name] = cls
        return cls

    def _check_known(self, msg: Message, where: str) -> None:
        """Refuse to drop option bytes that no loaded extension explains."""
        if len(unknown_fields.UnknownFieldSet(msg)):
            raise VendorError(f"{where}: options carry fields unknown to the loaded descriptors")
        for fd, value in msg.ListFields():
            for item in self._elements(fd, value):
                if isinstance(item, Message):
                    self._check_known(item, where)

    def _elements(self, fd: FieldDescriptor, value: Any) -> list[Any]:
        """A field's values as a list; map fields as entry messages, the way .proto spells them."""
        if not _is_repeated(fd):
            return [value]
        if fd.message_type is None or not fd.message_type.GetOptions().map_entry:
            return list(value)
        entries: list[Any] = []
        for key in sorted(value):
            entry = self._message_class(fd.message_type)()
            entry.key = key  # type: ignore[attr-defined]
            if isinstance(value[key], Message):
                entry.value.CopyFrom(value[key])  # type: ignore[attr-defined]
            else:
                entry.value = value[key]  # type: ignore[attr-defined]
            entries.append(entry)
        return entries

    def option_items(self, options: Message, scope: str) -> list[str]:
        """`name = value` for every option set in `options` (a *Options message)."""
        if not options.ByteSize():
            return []
        cls = self._message_class(self.pool.FindMessageTypeByName(options.DESCRIPTOR.full_name))
        msg = cls.FromString(options.SerializeToString())
        self._check_known(msg, scope or self.file.name)
        items: list[str] = []
        for fd, value in msg.ListFields():
            items.extend(self._assignments(self._path_part(fd, scope), fd, value, scope))
        return items

    def _path_part(self, fd: FieldDescriptor, scope: str) -> str:
        return f"({self.option_name(fd.full_name, scope)})" if fd.is_extension else fd.name

    def _assignments(
        self, path: str, fd: FieldDescriptor, value: object, scope: str, in_ext: bool = False
    ) -> Iterator[str]:
        in_ext = in_ext or fd.is_extension
        if _is_repeated(fd):
            # Repeated options are written as one statement per element; message elements must
            # be aggregates, since `a.b = 1, a.c = 2` on a repeated field would add two elements.
            for item in self._elements(fd, value):
                yield f"{path} = {self._value(fd, item)}"
            return
        if fd.type not in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            yield f"{path} = {self._value(fd, value)}"
            return
        assert isinstance(value, Message)
        fields = value.ListFields()
        # Standard message options (features, feature_support) are flattened to their leaves.
        # Custom options are kept as ONE statement so the option bytes come out as a single
        # record, like the original: `(x).a.b = 1` when only one leaf is set, else `(x) = {...}`.
        single = len(fields) == 1 and len(self._elements(*fields[0])) == 1
        if fields and (not in_ext or single):
            for sub, sub_value in fields:
                sub_path = f"{path}.{self._path_part(sub, scope)}"
                yield from self._assignments(sub_path, sub, sub_value, scope, in_ext)
        else:
            yield f"{path} = {self._value(fd, value)}"

    def _value(self, fd: FieldDescriptor, value: object) -> str:
        if fd.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            assert isinstance(value, Message)
            text = text_format.MessageToString(value, as_utf8=True, force_colon=True).rstrip("\n")
            if not text:
                return "{}"
            # Indented relative to the statement; _indent_block shifts it to the statement's level.
            return "{\n" + "\n".join("  " + line for line in text.split("\n")) + "\n}"
        if fd.type == FDP.TYPE_ENUM:
            assert isinstance(value, int) and fd.enum_type is not None
            enum_value = fd.enum_type.values_by_number.get(value)
            return enum_value.name if enum_value is not None else str(value)
        if fd.type == FDP.TYPE_BOOL:
            return "true" if value else "false"
        if fd.type in (FDP.TYPE_FLOAT, FDP.TYPE_DOUBLE):
            assert isinstance(value, float)
            return _format_float(value)
        if fd.type in (FDP.TYPE_STRING, FDP.TYPE_BYTES):
            assert isinstance(value, str | bytes)
            return _quote(value)
        return str(value)

    # -- output helpers ---------------------------------------------------------------------

    @staticmethod
    def _comment(text: str | None, indent: str) -> list[str]:
        if not text:
            return []
        return [f"{indent}//{' ' + line if line else ''}".rstrip() for line in text.split("\n")]

    @staticmethod
    def _indent_block(text: str, indent: str) -> list[str]:
        """Indent continuation lines of a multi-line statement (aggregate option values)."""
        first, *rest = text.split("\n")
        return [first] + [indent + line if line else line for line in rest]

    def _statement(self, indent: str, head: str, items: list[str], tail: str = ";") -> list[str]:
        """`head [item];` for one option, one option per line for more (as `buf format` does)."""
        if not items:
            return [f"{indent}{head}{tail}"]
        if len(items) == 1:
            return self._indent_block(f"{indent}{head} [{items[0]}]{tail}", indent)
        lines = [f"{indent}{head} ["]
        for i, item in enumerate(items):
            sep = "," if i < len(items) - 1 else ""
            lines.extend(self._indent_block(f"{indent}  {item}{sep}", indent + "  "))
        lines.append(f"{indent}]{tail}")
        return lines

    def _options(self, options: Message, scope: str, indent: str) -> list[list[str]]:
        return [
            self._indent_block(f"{indent}option {item};", indent)
            for item in self.option_items(options, scope)
        ]

    @staticmethod
    def _blocks(blocks: Iterable[list[str]]) -> list[str]:
        """Join member blocks; multi-line ones (comments, bodies) get blank lines around them."""
        lines: list[str] = []
        previous: list[str] | None = None
        for block in blocks:
            if not block:
                continue
            if previous is not None and (len(previous) > 1 or len(block) > 1):
                lines.append("")
            lines.extend(block)
            previous = block
        return lines

    def _body(self, indent: str, head: str, blocks: Iterable[list[str]]) -> list[str]:
        inner = self._blocks(blocks)
        if not inner:
            return [f"{indent}{head} {{}}"]
        return [f"{indent}{head} {{", *inner, f"{indent}}}"]

    # -- declarations -----------------------------------------------------------------------

    def _visibility(self, proto: Message) -> str:
        # Edition 2024 `export`/`local`; absent from older descriptors.
        if "visibility" not in proto.DESCRIPTOR.fields_by_name or not proto.HasField("visibility"):
            return ""
        value = proto.visibility  # type: ignore[attr-defined]
        return {
            descriptor_pb2.VISIBILITY_EXPORT: "export ",
            descriptor_pb2.VISIBILITY_LOCAL: "local ",
        }.get(value, "")

    def _label(self, field: FDP, in_oneof: bool) -> str:
        if in_oneof:
            return ""
        if field.label == FDP.LABEL_REPEATED:
            return "repeated "
        if self.syntax == "proto2":
            return "required " if field.label == FDP.LABEL_REQUIRED else "optional "
        if self.syntax == "proto3" and field.proto3_optional:
            return "optional "
        return ""  # proto3 implicit presence; editions express presence as a feature

    def _field_type(self, field: FDP, scope: str) -> str:
        if field.type in self._SCALARS:
            return self._SCALARS[field.type]
        return self.type_name(field.type_name, scope)

    def _default(self, field: FDP) -> str:
        if field.type == FDP.TYPE_STRING:
            return _quote(field.default_value)
        if field.type == FDP.TYPE_BYTES:
            return f'"{field.default_value}"'  # protoc stores bytes defaults already C-escaped
        return field.default_value

    def _field_items(self, field: FDP, full: str) -> list[str]:
        items: list[str] = []
        if field.HasField("default_value"):
            items.append(f"default = {self._default(field)}")
        is_extension = bool(field.extendee)  # json_name is not allowed on extensions
        if (
            not is_extension
            and field.HasField("json_name")
            and field.json_name != default_json_name(field.name)
        ):
            items.append(f"json_name = {_quote(field.json_name)}")
        if field.HasField("options"):
            items.extend(self.option_items(field.options, full))
        return items

    def _field(
        self,
        field: FDP,
        scope: str,
        indent: str,
        nested: Mapping[str, descriptor_pb2.DescriptorProto],
        in_oneof: bool = False,
        doc_key: DocKey | None = None,
    ) -> list[str]:
        full = _join(scope, field.name)
        lines = self._comment(self.docs.get(doc_key or ("field", scope, str(field.number))), indent)
        items = self._field_items(field, full)
        entry = nested.get(field.type_name.lstrip("."))
        if entry is not None and entry.options.map_entry and field.label == FDP.LABEL_REPEATED:
            key, value = sorted(entry.field, key=lambda f: f.number)
            head = (
                f"map<{self._field_type(key, full)}, {self._field_type(value, full)}> "
                f"{field.name} = {field.number}"
            )
            return lines + self._statement(indent, head, items)
        if entry is not None and field.type == FDP.TYPE_GROUP and self.syntax == "proto2":
            head = f"{self._label(field, in_oneof)}group {entry.name} = {field.number}"
            opening = self._statement(indent, head, items, tail="")
            body = self._message_members(entry, _join(scope, entry.name), indent + "  ")
            return lines + opening[:-1] + [opening[-1] + " {", *body, f"{indent}}}"]
        label = self._label(field, in_oneof)
        head = f"{label}{self._field_type(field, full)} {field.name} = {field.number}"
        return lines + self._statement(indent, head, items)

    def _range(self, start: int, end: int, max_value: int) -> str:
        """Reserved/extension range; `end` is inclusive here."""
        if end == max_value:
            return f"{start} to max"
        return str(start) if start == end else f"{start} to {end}"

    def _reserved(
        self, ranges: Sequence[tuple[int, int]], names: Sequence[str], max_value: int, indent: str
    ) -> list[list[str]]:
        blocks: list[list[str]] = []
        if ranges:
            text = ", ".join(self._range(s, e, max_value) for s, e in ranges)
            blocks.append([f"{indent}reserved {text};"])
        if names:
            # Editions spell reserved names as identifiers, older syntaxes as strings.
            spelled = names if self.syntax == "editions" else [_quote(n) for n in names]
            blocks.append([f"{indent}reserved {', '.join(spelled)};"])
        return blocks

    def _extends(self, extensions: Sequence[FDP], scope: str, indent: str) -> list[list[str]]:
        """`extend X { ... }` blocks, one per run of extensions with the same extendee."""
        blocks: list[list[str]] = []
        i = 0
        while i < len(extensions):
            extendee = extensions[i].extendee
            run: list[list[str]] = []
            while i < len(extensions) and extensions[i].extendee == extendee:
                ext = extensions[i]
                key = ("ext", extendee.lstrip("."), str(ext.number))
                run.append(self._field(ext, scope, indent + "  ", {}, doc_key=key))
                i += 1
            name = self.type_name(extendee, _join(scope, extensions[i - 1].name))
            blocks.append(self._body(indent, f"extend {name}", run))
        return blocks

    def _message_members(
        self, msg: descriptor_pb2.DescriptorProto, full: str, indent: str
    ) -> list[str]:
        nested = {_join(full, n.name): n for n in msg.nested_type}
        blocks: list[list[str]] = []
        if msg.HasField("options"):
            blocks.extend(self._options(msg.options, full, indent))

        # Map entries and proto2 groups are nested types printed as part of their field.
        index_of = {_join(full, n.name): i for i, n in enumerate(msg.nested_type)}

        def owned(field: FDP) -> int | None:
            i = index_of.get(field.type_name.lstrip("."))
            if i is None:
                return None
            if msg.nested_type[i].options.map_entry and field.label == FDP.LABEL_REPEATED:
                return i
            return i if field.type == FDP.TYPE_GROUP and self.syntax == "proto2" else None

        inline = {i for f in msg.field if (i := owned(f)) is not None}
        next_nested = 0

        def nested_before(stop: int) -> None:
            # protoc numbers nested types in source order, map entries and groups included, so
            # other nested messages are interleaved with the fields to keep nested_type's order.
            nonlocal next_nested
            for i in range(next_nested, stop):
                if i not in inline:
                    blocks.append(self._message(msg.nested_type[i], full, indent))
            next_nested = max(next_nested, stop)

        # Fields in declaration order; a real oneof is printed whole at its first member.
        printed_oneofs: set[int] = set()
        for field in msg.field:
            synthetic = self.syntax != "proto2" and field.proto3_optional
            if not field.HasField("oneof_index") or synthetic:
                if (i := owned(field)) is not None:
                    nested_before(i)
                blocks.append(self._field(field, full, indent, nested))
                continue
            index = field.oneof_index
            if index in printed_oneofs:
                continue
            printed_oneofs.add(index)
            oneof = msg.oneof_decl[index]
            fields = [f for f in msg.field if f.HasField("oneof_index") and f.oneof_index == index]
            owned_here = [i for f in fields if (i := owned(f)) is not None]
            if owned_here:
                nested_before(min(owned_here))
            members: list[list[str]] = []
            if oneof.HasField("options"):
                members.extend(self._options(oneof.options, _join(full, oneof.name), indent + "  "))
            members.extend(
                self._field(f, full, indent + "  ", nested, in_oneof=True) for f in fields
            )
            lines = self._comment(self.docs.get(("oneof", full, oneof.name)), indent)
            blocks.append(lines + self._body(indent, f"oneof {oneof.name}", members))
        nested_before(len(msg.nested_type))
        blocks.extend(self._enum(e, full, indent) for e in msg.enum_type)
        blocks.extend(self._extends(msg.extension, full, indent))

        max_number = MAX_FIELD_NUMBER if not msg.options.message_set_wire_format else -1
        for r in msg.extension_range:
            head = f"extensions {self._range(r.start, r.end - 1, max_number)}"
            items = self.option_items(r.options, full) if r.HasField("options") else []
            blocks.append(self._statement(indent, head, items))
        ranges = [(r.start, r.end - 1) for r in msg.reserved_range]
        blocks.extend(self._reserved(ranges, msg.reserved_name, max_number, indent))
        return self._blocks(blocks)

    def _message(self, msg: descriptor_pb2.DescriptorProto, scope: str, indent: str) -> list[str]:
        full = _join(scope, msg.name)
        lines = self._comment(self.docs.get(("type", full, "")), indent)
        head = f"{indent}{self._visibility(msg)}message {msg.name}"
        members = self._message_members(msg, full, indent + "  ")
        if not members:
            return [*lines, f"{head} {{}}"]
        return [*lines, f"{head} {{", *members, f"{indent}}}"]

    def _enum(self, enum: descriptor_pb2.EnumDescriptorProto, scope: str, indent: str) -> list[str]:
        full = _join(scope, enum.name)
        inner = indent + "  "
        blocks: list[list[str]] = []
        if enum.HasField("options"):
            blocks.extend(self._options(enum.options, full, inner))
        for value in enum.value:
            doc = self._comment(self.docs.get(("value", full, value.name)), inner)
            items = self.option_items(value.options, full) if value.HasField("options") else []
            blocks.append(doc + self._statement(inner, f"{value.name} = {value.number}", items))
        ranges = [(r.start, r.end) for r in enum.reserved_range]  # inclusive for enums
        blocks.extend(self._reserved(ranges, enum.reserved_name, MAX_ENUM_NUMBER, inner))
        lines = self._comment(self.docs.get(("type", full, "")), indent)
        return lines + self._body(indent, f"{self._visibility(enum)}enum {enum.name}", blocks)

    def _service(self, service: descriptor_pb2.ServiceDescriptorProto, indent: str) -> list[str]:
        full = _join(self.file.package, service.name)
        inner = indent + "  "
        blocks: list[list[str]] = []
        if service.HasField("options"):
            blocks.extend(self._options(service.options, full, inner))
        for method in service.method:
            method_full = _join(full, method.name)
            request = self.type_name(method.input_type, method_full)
            response = self.type_name(method.output_type, method_full)
            head = (
                f"rpc {method.name}({'stream ' if method.client_streaming else ''}{request}) "
                f"returns ({'stream ' if method.server_streaming else ''}{response})"
            )
            options = self._options(method.options, method_full, inner + "  ")
            if options:
                blocks.append(self._body(inner, head, options))
            else:
                blocks.append([f"{inner}{head};"])
        return self._body(indent, f"service {service.name}", blocks)

    def render(self, header: Sequence[str] = ()) -> str:
        f = self.file
        blocks: list[list[str]] = []
        if header:
            blocks.append(self._comment("\n".join(header), ""))
        if self.syntax == "editions":
            edition = descriptor_pb2.Edition.Name(f.edition).removeprefix("EDITION_")
            blocks.append([f'edition = "{edition}";'])
        else:
            blocks.append([f'syntax = "{self.syntax}";'])
        if f.package:
            blocks.append([f"package {f.package};"])
        public, weak = set(f.public_dependency), set(f.weak_dependency)
        imports = [
            f"import {'public ' if i in public else 'weak ' if i in weak else ''}{_quote(d)};"
            for i, d in enumerate(f.dependency)
        ]
        imports += [f"import option {_quote(d)};" for d in f.option_dependency]
        blocks.append(imports)
        if f.HasField("options"):
            # Standard file options alphabetically, as `buf format` orders them; custom ones
            # keep their order after them (their order is visible in the option bytes).
            items = self.option_items(f.options, f.package)
            standard = sorted(i for i in items if not i.startswith("("))
            custom = [i for i in items if i.startswith("(")]
            blocks.append(
                [line for i in standard + custom for line in self._indent_block(f"option {i};", "")]
            )
        sections: list[list[str]] = []
        sections.extend(self._extends(f.extension, f.package, ""))
        sections.extend(self._message(m, f.package, "") for m in f.message_type)
        sections.extend(self._enum(e, f.package, "") for e in f.enum_type)
        sections.extend(self._service(s, "") for s in f.service)
        lines: list[str] = []
        for block in [*blocks, *sections]:
            if block:
                lines.extend([*block, ""])
        return "\n".join(lines).rstrip("\n") + "\n"


def _is_repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def render_proto(
    file: descriptor_pb2.FileDescriptorProto,
    deps: Sequence[descriptor_pb2.FileDescriptorProto] = (),
    header: Sequence[str] = (),
    docs: Docs | None = None,
) -> str:
    """.proto source for `file`. deps: its dependencies (well-known types are found alone)."""
    return ProtoPrinter(file, deps, docs).render(header)


def validate_proto_source() -> str:
    version, source = protovalidate_source()
    header = [
        *license_header(source),
        "",
        f"Generated by tools/vendor_protos.py from the descriptor shipped in "
        f"{PROTOVALIDATE_DIST}=={version}",
        f"({VALIDATE_MODULE}). DO NOT EDIT; run `make proto-deps` instead.",
    ]
    return render_proto(embedded_descriptor(source), header=header, docs=module_docs(source))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def expected_files(contracts: Path = DEFAULT_CONTRACTS) -> dict[str, bytes]:
    files = googleapis_files([*GOOGLEAPIS_ROOTS, *contract_imports(contracts)])
    files[VALIDATE_PROTO] = validate_proto_source().encode("utf-8")
    return files


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def stale_files(out: Path, expected: Mapping[str, bytes]) -> list[str]:
    """Human-readable problems, one per file that differs from `expected`."""
    problems: list[str] = []
    for name, data in sorted(expected.items()):
        path = out / name
        if not path.is_file():
            problems.append(f"{_display(path)} is missing")
        elif path.read_bytes() != data:
            problems.append(f"{_display(path)} is stale")
    if out.is_dir():
        for path in sorted(out.rglob("*.proto")):
            if path.relative_to(out).as_posix() not in expected:
                problems.append(f"{_display(path)} is not produced by tools/vendor_protos.py")
    return problems


def write_files(out: Path, expected: Mapping[str, bytes]) -> list[Path]:
    """Write what changed (keeps mtimes stable for make), prune what we no longer produce."""
    touched: list[Path] = []
    for name, data in sorted(expected.items()):
        path = out / name
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            touched.append(path)
    for path in sorted(out.rglob("*.proto"), reverse=True):
        if path.relative_to(out).as_posix() not in expected:
            path.unlink()
            touched.append(path)
    for directory in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    return touched


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the output directory is out of date",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {_display(DEFAULT_OUT)})",
    )
    parser.add_argument(
        "--contracts",
        type=Path,
        default=DEFAULT_CONTRACTS,
        help="our .proto tree, scanned for further googleapis imports "
        f"(default: {_display(DEFAULT_CONTRACTS)})",
    )
    args = parser.parse_args(argv)
    try:
        expected = expected_files(args.contracts)
    except (VendorError, metadata.PackageNotFoundError) as exc:
        print(f"vendor_protos: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale_files(args.out, expected)
        for problem in problems:
            print(f"vendor_protos: {problem}", file=sys.stderr)
        if problems:
            print(
                "vendor_protos: run `make proto-deps` (python tools/vendor_protos.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    for path in write_files(args.out, expected):
        verb = "wrote" if path.exists() else "removed"
        print(f"vendor_protos: {verb} {_display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
