"""buf governance: lint and format are clean, and buf breaking catches breaking edits.

The breaking tests work on a copy of the workspace in a temp dir: they build a baseline image
from the untouched copy, apply one edit, and run the same `buf breaking` the Makefile runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Every test here runs the buf binary.
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUF = str(Path(sys.executable).parent / "buf")
ORDER_PROTO = Path("proto/crossdock/order/v1/order.proto")


def _buf(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUF, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_buf_lint_is_clean() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_format_is_clean() -> None:
    result = _buf("format", "proto", "--diff", "--exit-code")
    assert result.returncode == 0, result.stdout + result.stderr


def test_contracts_are_compatible_with_the_released_baseline() -> None:
    result = _buf("breaking", "proto", "--against", "proto/baseline.binpb")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the buf workspace with a baseline image of its untouched contracts."""
    for name in ("proto", "third_party"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    built = _buf("build", "proto", "--exclude-source-info", "-o", "before.binpb", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    return tmp_path


def _edit(workspace: Path, path: Path, old: str, new: str) -> None:
    file = workspace / path
    text = file.read_text()
    assert text.count(old) == 1, f"edit anchor {old!r} must occur once in {path}"
    file.write_text(text.replace(old, new))


def _breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return _buf(
        "breaking", "proto", "--against", "before.binpb", "--error-format", "json", cwd=workspace
    )


def _remove_field(ws: Path) -> None:
    _edit(ws, ORDER_PROTO, "  string exception_reason = 13;\n", "")


def _change_field_type(ws: Path) -> None:
    _edit(ws, ORDER_PROTO, "  int64 quantity_ordered = 3;", "  string quantity_ordered = 3;")


def _renumber_field(ws: Path) -> None:
    _edit(ws, ORDER_PROTO, "  string external_order_id = 3;", "  string external_order_id = 30;")


def _move_message_to_another_file(ws: Path) -> None:
    # Same package, other file: fine under PACKAGE rules, breaking under FILE, because generated
    # Python modules are per file and importers of order_pb2.TimelineEntry would break.
    order = ws / ORDER_PROTO
    text = order.read_text()
    start = text.index("// TimelineEntryKind says")
    end = text.index("// ReturnStatus is")
    order.write_text(text[:start] + text[end:])
    (order.parent / "timeline.proto").write_text(
        'syntax = "proto3";\n\npackage crossdock.order.v1;\n\n'
        'import "crossdock/order/v1/order.proto";\nimport "google/protobuf/timestamp.proto";\n\n'
        + text[start:end]
    )
    _edit(
        ws,
        Path("proto/crossdock/order/v1/order_service.proto"),
        'import "crossdock/order/v1/order.proto";\n',
        'import "crossdock/order/v1/order.proto";\nimport "crossdock/order/v1/timeline.proto";\n',
    )


BREAKING: list[tuple[Callable[[Path], None], str]] = [
    (_remove_field, "FIELD_NO_DELETE"),
    (_change_field_type, "FIELD_SAME_TYPE"),
    (_renumber_field, "FIELD_NO_DELETE"),
    (_move_message_to_another_file, "MESSAGE_NO_DELETE"),
]


@pytest.mark.parametrize(("edit", "rule"), BREAKING, ids=[e.__name__ for e, _ in BREAKING])
def test_buf_breaking_fails_on_breaking_edits(
    workspace: Path, edit: Callable[[Path], None], rule: str
) -> None:
    edit(workspace)
    result = _breaking(workspace)
    assert result.returncode != 0, "buf breaking accepted a breaking edit"
    rules = {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}
    assert rule in rules, result.stdout


def test_buf_breaking_accepts_an_added_field(workspace: Path) -> None:
    _edit(
        workspace,
        ORDER_PROTO,
        "  google.protobuf.Timestamp update_time = 16;\n}",
        "  google.protobuf.Timestamp update_time = 16;\n"
        "  // gift_message is printed on the packing slip.\n"
        "  string gift_message = 17;\n}",
    )
    result = _breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr
