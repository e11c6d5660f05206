"""A bad setting stops a launch before anything starts, with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from localmesh.credentials import FILE_NAME
from localmesh.environment import service_env
from localmesh.mesh import start_mesh
from localmesh.options import MeshOptions
from localmesh.preflight import check_settings
from localmesh.services import ALL_SERVICES, REPO_ROOT
from services.kit.config import ConfigError
from tests.localmesh.test_environment import context

BAD_KEY = "my-demo-key"
KEY_PROBLEM = "CROSSDOCK_DEMO_API_KEY must be an API key of the form cdk_<key id>_<secret>"
CROSSDOCK = Path(sys.executable).parent / "crossdock"  # the console script `make run` runs


def _clean_environ(**variables: str) -> dict[str, str]:
    """This process's environment without CROSSDOCK_* settings, plus `variables`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CROSSDOCK_")}
    return kept | variables


def _processes_mentioning(text: str) -> list[str]:
    """pid and command of every live process whose command line or environment has `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if text.encode() in cmdline or text.encode() in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {command}")
    return found


def test_the_launchers_assembled_settings_pass_and_a_bad_demo_key_is_named() -> None:
    ctx = context()
    check_settings([(spec, service_env(spec, ctx)) for spec in ALL_SERVICES])

    bad = replace(ctx, credentials=replace(ctx.credentials, demo_api_key=BAD_KEY))
    with pytest.raises(ConfigError) as caught:
        check_settings([(spec, service_env(spec, bad)) for spec in ALL_SERVICES])
    assert caught.value.problems == [KEY_PROBLEM]


def test_every_bad_setting_of_every_service_is_named_and_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tuning knob passed through to the order service, and the gateway's demo key.
    monkeypatch.setenv("CROSSDOCK_ORDER_RESERVE_TIMEOUT_SECONDS", "soon")
    options = MeshOptions(data_dir=tmp_path, ports="free", demo_api_key=BAD_KEY)

    with pytest.raises(ConfigError) as caught, start_mesh(options):
        pytest.fail("the mesh started")

    assert caught.value.problems == [
        "CROSSDOCK_ORDER_RESERVE_TIMEOUT_SECONDS must be a number (got 'soon')",
        KEY_PROBLEM,
    ]
    assert not (tmp_path / "logs").exists()  # no process was spawned (each gets a log first)
    assert not (tmp_path / FILE_NAME).exists()  # the rejected key is not kept for the next run


@pytest.mark.timeout(120)
def test_crossdock_run_with_a_malformed_demo_key_exits_2_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "mesh"
    done = subprocess.run(
        [str(CROSSDOCK), "run", "--ports", "free", "--data-dir", str(data_dir)],
        env=_clean_environ(CROSSDOCK_DEMO_API_KEY=BAD_KEY),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"crossdock run: {KEY_PROBLEM}"]
    assert "Traceback" not in done.stdout + done.stderr
    assert BAD_KEY not in done.stdout + done.stderr  # the key is a secret: never echoed
    assert "starting" not in done.stdout
    assert not (data_dir / "logs").exists()
    # No nats-server or service is left running (their command lines or environments name it).
    assert _processes_mentioning(str(data_dir.resolve())) == []


@pytest.mark.timeout(120)
def test_the_gateway_alone_refuses_a_malformed_demo_key_without_a_traceback(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.main"],
        env=_clean_environ(
            CROSSDOCK_GATEWAY_ADMIN_TOKEN="t",
            CROSSDOCK_GATEWAY_DB_URL=f"sqlite:///{tmp_path}/gateway.db",
            CROSSDOCK_DEMO_API_KEY=BAD_KEY,
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == ["gateway: invalid configuration:", f"  {KEY_PROBLEM}"]
    assert BAD_KEY not in done.stdout + done.stderr
    assert not (tmp_path / "gateway.db").exists()  # failed before the database was touched
