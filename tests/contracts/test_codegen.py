"""Generated code, vendored protos and the event catalog are never stale, and the generated
client package is something internal teams can install and type check against."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Every test here runs the generators, a build or mypy as child processes.
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "tool", ["tools/gen_proto.py", "tools/gen_event_catalog.py", "tools/vendor_protos.py"]
)
def test_generated_artifacts_are_up_to_date(tool: str) -> None:
    result = _run(sys.executable, tool, "--check")
    assert result.returncode == 0, f"{tool} --check: {result.stdout}{result.stderr}"


def test_stale_generated_code_is_detected(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert _run(sys.executable, "tools/gen_proto.py", "--out", str(out)).returncode == 0
    stale = out / "crossdock" / "order" / "v1" / "order_pb2.py"
    stale.write_text(stale.read_text() + "\n# edited by hand\n")
    result = _run(sys.executable, "tools/gen_proto.py", "--check", "--out", str(out))
    assert result.returncode != 0
    assert "changed crossdock/order/v1/order_pb2.py" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def contracts_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    result = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(dist),
        str(REPO / "gen" / "python"),
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = dist.glob("crossdock_contracts-*.whl")
    return wheel


def test_contracts_wheel_ships_stubs_and_typing_marker(contracts_wheel: Path) -> None:
    names = set(zipfile.ZipFile(contracts_wheel).namelist())
    for expected in (
        "crossdock/py.typed",
        "crossdock/order/v1/order_service_pb2.py",
        "crossdock/order/v1/order_service_pb2.pyi",
        "crossdock/order/v1/order_service_pb2_grpc.py",
        "crossdock/order/v1/order_service_pb2_grpc.pyi",
        "crossdock/events/v1/order_events_pb2.pyi",
        "buf/validate/validate_pb2.py",
    ):
        assert expected in names, f"{expected} missing from {contracts_wheel.name}"


CLIENT = """
import grpc
from crossdock.order.v1 import order_service_pb2, order_service_pb2_grpc

async def place(channel: grpc.aio.Channel) -> str:
    stub = order_service_pb2_grpc.OrderServiceStub(channel)
    response = await stub.GetOrder(order_service_pb2.GetOrderRequest(order_id="ord_x"))
    return response.order.order_id
"""


def test_client_code_type_checks_against_the_stubs(tmp_path: Path) -> None:
    good = tmp_path / "good_client.py"
    good.write_text(CLIENT)
    bad = tmp_path / "bad_client.py"
    # quantity_ordered is an int64: mypy must refuse a string, which proves the stubs are used.
    bad.write_text(
        CLIENT + "\nfrom crossdock.order.v1 import order_pb2\n"
        "order_pb2.OrderLine(quantity_ordered='two')\n"
    )
    args = [
        str(BIN / "mypy"),
        "--strict",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-incremental",
    ]
    ok = _run(*args, str(good))
    assert ok.returncode == 0, ok.stdout
    broken = _run(*args, str(bad))
    assert broken.returncode != 0
    assert "quantity_ordered" in broken.stdout, broken.stdout
