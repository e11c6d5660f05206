"""Stopping the launcher leaves nothing behind: Ctrl-C after a crashed child, or kill -9 of it.

Each test runs `crossdock run --ports free` as a subprocess with its own data dir (the session
mesh is shared and must stay up), waits for its mesh.json, and checks every child pid is gone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmesh.mesh import MESH_FILE
from localmesh.services import REPO_ROOT
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.slow
CLI = (sys.executable, "-m", "services.kit.cli")


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Launched:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.output = data_dir / "supervisor.out"
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [*CLI, "run", "--ports", "free", "--data-dir", str(data_dir)],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pids: dict[str, int] = {}

    def wait_ready(self) -> dict[str, int]:
        mesh_file = self.data_dir / MESH_FILE

        def ready() -> bool:
            assert self.process.poll() is None, self.output.read_text()[-3000:]
            return mesh_file.exists()

        assert wait_until(ready, bool, timeout=120, interval=0.1), (
            "timed out waiting for the mesh to start"
        )
        self.pids = dict(json.loads(mesh_file.read_text())["pids"])
        return self.pids

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        assert wait_until(
            lambda: not any(running(pid) for pid in self.pids.values()),
            bool,
            timeout=30,
            interval=0.1,
        ), "timed out waiting for cleanup"


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    mesh = Launched(tmp_path / "mesh")
    try:
        yield mesh
    finally:
        mesh.cleanup()


def test_ctrl_c_stops_every_process_even_after_a_child_crashed(launched: Launched) -> None:
    pids = launched.wait_ready()
    assert {"nats-server", "order", "gateway", "warehouse-sim"} <= set(pids)
    assert all(running(pid) for pid in pids.values())

    subprocess.run(["kill", "-9", str(pids["billing"])], check=True)
    assert wait_until(
        lambda: "billing exited" in launched.output.read_text(), bool, timeout=10, interval=0.1
    ), "timed out waiting for the crash report"

    launched.process.send_signal(signal.SIGINT)
    assert launched.process.wait(timeout=90) == 0, launched.output.read_text()[-3000:]
    left = {name: pid for name, pid in pids.items() if running(pid)}
    assert left == {}
    output = launched.output.read_text()
    assert output.index("stopping gateway") < output.index("stopping nats-server")
    assert not (launched.data_dir / MESH_FILE).exists()


def test_killing_the_launcher_takes_its_children_down(launched: Launched) -> None:
    pids = launched.wait_ready()
    launched.process.kill()  # no chance to clean up: the kernel's death signal must do it
    launched.process.wait()
    assert wait_until(
        lambda: not any(running(pid) for pid in pids.values()), bool, timeout=60, interval=0.1
    ), "orphans still running: " + ", ".join(n for n, pid in pids.items() if running(pid))
