"""Compile the test-only kittest.proto (events carrying the real `event` option) with grpc_tools."""

from __future__ import annotations

import importlib
import importlib.resources
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = Path(__file__).resolve().parent / "protos"


def compile_kittest(out_dir: Path) -> Path:
    """Generate kittest/v1/kittest_pb2.py under out_dir; returns out_dir (a sys.path entry)."""
    from grpc_tools import protoc

    include = importlib.resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{REPO / 'proto'}",
        f"-I{REPO / 'third_party' / 'proto'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        "kittest/v1/kittest.proto",
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on kittest.proto")
    return out_dir


def import_kittest(out_dir: Path) -> ModuleType:
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    return importlib.import_module("kittest.v1.kittest_pb2")
