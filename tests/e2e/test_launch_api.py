"""`async with launch(...)`: the asyncio API brings a mesh up and down, and can be interrupted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from localmesh import MeshOptions, launch
from localmesh.probes import StartAborted, grpc_health

pytestmark = pytest.mark.slow


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def small_mesh(data_dir: Path) -> MeshOptions:
    return MeshOptions(
        data_dir=data_dir, ports="free", seed_demo_data=False, warehouse_simulator=False
    )


async def test_launch_yields_a_running_mesh_and_stops_it(tmp_path: Path) -> None:
    async with launch(small_mesh(tmp_path)) as mesh:
        assert grpc_health(mesh.grpc_targets["order"]) == "SERVING"
        assert (tmp_path / "mesh.json").exists()
        pids = dict(mesh.pids)
        assert all(running(pid) for pid in pids.values())
    assert not (tmp_path / "mesh.json").exists()
    assert {name: pid for name, pid in pids.items() if running(pid)} == {}


async def test_an_aborted_start_stops_what_it_started(tmp_path: Path) -> None:
    abort = threading.Event()
    reports: list[str] = []

    def report(line: str) -> None:
        reports.append(line)
        if line == "starting schema-registry":
            abort.set()  # Ctrl-C while the mesh is half up

    with pytest.raises(StartAborted):
        async with launch(small_mesh(tmp_path), report=report, abort=abort):
            pytest.fail("the mesh must not come up")
    assert "stopping nats-server" in reports
    assert processes_mentioning(str(tmp_path)) == []


async def test_a_second_mesh_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    async with launch(small_mesh(tmp_path)) as mesh:
        with pytest.raises(RuntimeError, match="another mesh is running"):
            async with launch(small_mesh(tmp_path)):
                pass
        assert (tmp_path / "mesh.json").exists()  # the running mesh's file is left alone
        assert grpc_health(mesh.grpc_targets["inventory"]) == "SERVING"
