"""Generated secrets are kept across runs; port plans are distinct and detect a taken port."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from gateway.auth import split_api_key
from localmesh.credentials import FILE_NAME, load_or_create
from localmesh.ports import busy, fixed_plan, free_plan, port_keys
from localmesh.services import ALL_SERVICES, FIXED_PORTS, mesh_services


def test_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, ["order", "admin"])
    assert split_api_key(first.demo_api_key) is not None  # the gateway's key format
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600
    again = load_or_create(tmp_path, ["order", "admin", "billing"])
    assert again.demo_api_key == first.demo_api_key
    assert again.admin_token == first.admin_token
    assert again.nats_passwords["order"] == first.nats_passwords["order"]
    assert again.nats_passwords["billing"] not in ("", first.nats_passwords["order"])


def test_a_chosen_demo_key_wins(tmp_path: Path) -> None:
    load_or_create(tmp_path, ["admin"])
    assert load_or_create(tmp_path, ["admin"], demo_api_key="cdk_a_b").demo_api_key == "cdk_a_b"


def test_fixed_ports_cover_every_process_without_clashes() -> None:
    keys = port_keys(ALL_SERVICES, with_postgres=True, with_sandbox_carrier=True)
    plan = fixed_plan(keys)
    assert plan.of("gateway", "http") == 8080 and plan.of("gateway", "admin") == 8081
    assert len(set(plan.ports.values())) == len(keys)
    assert set(keys) == set(FIXED_PORTS)


@pytest.mark.integration  # binds loopback ports
def test_free_ports_are_distinct_and_taken_ones_are_reported() -> None:
    plan = free_plan(port_keys(mesh_services(), with_postgres=False))
    assert len(set(plan.ports.values())) == len(plan.ports)
    assert busy(plan) == []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", plan.of("order", "grpc")))
        listener.listen()
        assert busy(plan) == [f"order grpc port {plan.of('order', 'grpc')}"]
