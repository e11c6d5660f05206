"""The mesh with two processes of every service on PostgreSQL and a 3-node JetStream cluster
(`crossdock run --db postgres --replicas 2 --nats-cluster 3`).

The partner API's end-to-end tests (tests/e2e/test_partner_api.py: an order placed over REST
reaches invoiced, and the BOLA matrix) and a return credited once its goods are back
(tests/e2e/test_returns_api.py) run here unchanged: they are imported, and this module's `mesh`
is the replica mesh. Then: every service really runs twice, calls through the gateway
reach both replicas of the services behind it, and every stream is R3 with a leader.

The launcher's parts for replicas (options, ports, environments, the cluster's nats.conf) are
checked first, without a mesh.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from crossdock.tower.v1 import tower_pb2 as tower_pb
from crossdock.tower.v1 import tower_pb2_grpc as tower_grpc
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from localmesh import Mesh, MeshOptions
from localmesh.chaos import netcut
from localmesh.chaos.nemesis import ALL_KINDS, FaultKind
from localmesh.chaos.run import ChaosSettings, restock, run_on, wait_until_quiet
from localmesh.credentials import Credentials
from localmesh.demo import DemoOrder, PartnerApi, place, sample_order
from localmesh.environment import MeshContext, service_settings
from localmesh.nats_binary import find_nats_server
from localmesh.natsconf import ADMIN_USER, ClusterNode, nats_users, render_nats_config
from localmesh.ports import fixed_plan, port_keys
from localmesh.probes import grpc_serving, meta_leader
from localmesh.services import ALL_SERVICES, GATEWAY, ORDER
from services.kit.bus import server_urls
from services.kit.streams import DLQ_STREAM, DOMAIN_STREAMS
from tests.e2e.test_partner_api import (
    partner_b,
    test_an_order_placed_with_the_demo_key_reaches_invoiced,
    test_partner_a_gets_404_for_every_id_of_partner_b,
    test_partners_find_an_order_by_their_own_id_and_only_their_own,
)
from tests.e2e.test_returns_api import test_goods_received_back_are_credited
from tests.fixtures.replica_mesh import ACK_WAIT_SECONDS, NATS_NODES, REPLICAS, ReplicaMesh
from tests.fixtures.waiting import wait_for

# Re-exported so pytest collects them here too, against this module's `mesh`.
__all__ = [
    "partner_b",
    "test_an_order_placed_with_the_demo_key_reaches_invoiced",
    "test_goods_received_back_are_credited",
    "test_partner_a_gets_404_for_every_id_of_partner_b",
    "test_partners_find_an_order_by_their_own_id_and_only_their_own",
]

# serial: the short chaos run at its end needs the machine to itself (its settle window and the
# faults' timings assume no other tests running beside it).
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.serial]

# The chaos run's report, summary and plot stay for a person to read after the suite.
REPO = Path(__file__).resolve().parents[2]
CUTS = (FaultKind.CUT_NATS, FaultKind.CUT_POSTGRES)
ARTIFACTS = Path(os.environ.get("CROSSDOCK_TEST_ARTIFACTS", REPO / "test-artifacts"))


# ---- the launcher's parts, without a mesh ----------------------------------------------------


def replica_options(**overrides: object) -> MeshOptions:
    values: dict[str, object] = {
        "data_dir": Path("/data/mesh"),
        "db": "postgres",
        "replicas": REPLICAS,
        "nats_cluster": NATS_NODES,
        "sandbox_process": True,
    }
    return MeshOptions(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"db": "sqlite"}, "2 replicas need --db postgres"),
        ({"db_urls": {"billing": "sqlite:////tmp/b.db"}}, "given a SQLite URL: billing"),
        ({"sandbox_process": False}, "sandbox carrier as its own process"),
        ({"replicas": 0}, "replicas must be 1 or more"),
        ({"nats_cluster": 2}, "nats_cluster must be 1 or 3"),
    ],
)
def test_options_refuse_a_shape_replicas_cannot_run(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        replica_options(**overrides)


def test_crossdock_run_refuses_replicas_on_sqlite_before_starting_anything(
    tmp_path: Path,
) -> None:
    crossdock = str(Path(sys.executable).with_name("crossdock"))
    done = subprocess.run(
        [crossdock, "run", "--replicas", "2", "--db", "sqlite", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2, done.stderr
    assert "2 replicas need --db postgres" in done.stderr
    assert not (tmp_path / "logs").exists()


def replica_context() -> MeshContext:
    options = replica_options()
    keys = port_keys(
        ALL_SERVICES,
        with_postgres=True,
        with_sandbox_carrier=True,
        replicas=REPLICAS,
        nats_nodes=NATS_NODES,
    )
    users = [spec.name for spec in ALL_SERVICES] + [ADMIN_USER]
    return MeshContext(
        options=options,
        plan=fixed_plan(keys),
        credentials=Credentials(
            nats_passwords={user: f"pw-{user}" for user in users},
            admin_token="admin-token",
            sandbox_webhook_secret="webhook-secret",
            demo_api_key="cdk_abc_secret",
        ),
        db_urls={spec.name: f"postgresql+psycopg://pg/{spec.db_name}" for spec in ALL_SERVICES},
        running=frozenset(spec.name for spec in ALL_SERVICES),
    )


def test_fixed_ports_of_replicas_and_nats_nodes_do_not_clash() -> None:
    plan = replica_context().plan
    assert len(set(plan.ports.values())) == len(plan.ports)
    assert plan.of("gateway", "http") == 8080 and plan.of("gateway-2", "http") == 8180
    assert plan.of("order-2", "grpc") == plan.of("order", "grpc") + 100
    assert [plan.of(node, "client") for node in ("nats", "nats-2", "nats-3")] == [4222, 4223, 4224]


def test_replicas_differ_in_ports_only_and_clients_get_every_replica() -> None:
    ctx = replica_context()
    first, second = service_settings(ORDER, ctx), service_settings(ORDER, ctx, "order-2")
    assert first["GRPC_PORT"] != second["GRPC_PORT"]
    assert first["METRICS_PORT"] != second["METRICS_PORT"]
    # Alembic takes no lock: only the first replica (started first) migrates.
    assert (first["MIGRATE_ON_START"], second["MIGRATE_ON_START"]) == ("true", "false")
    same = {"GRPC_PORT", "METRICS_PORT", "MIGRATE_ON_START"}
    assert {k: v for k, v in first.items() if k not in same} == {
        k: v for k, v in second.items() if k not in same
    }
    inventory = [ctx.plan.of(i, "grpc") for i in ("inventory", "inventory-2")]
    assert first["INVENTORY_TARGET"] == "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in inventory)
    assert first["STREAM_REPLICAS"] == "3"
    nodes = server_urls(first["NATS_URL"])
    assert [url.rsplit(":", 1)[1] for url in nodes] == ["4222", "4223", "4224"]
    assert all(url.startswith("nats://order:pw-order@") for url in nodes)
    gateway = service_settings(GATEWAY, ctx, "gateway-2")
    assert gateway["HTTP_PORT"] == "8180" and gateway["ORDER_TARGET"].startswith("ipv4:")


def test_a_cluster_node_config_is_one_nats_server_accepts(tmp_path: Path) -> None:
    passwords = {name: f"pw-{name}" for name in ("order", ADMIN_USER)}
    text = render_nats_config(
        host="127.0.0.1",
        client_port=4223,
        monitor_port=8223,
        store_dir=tmp_path / "jetstream",
        users=nats_users(["order"], passwords),
        cluster=ClusterNode("crossdock-local-2", 6223, (6222, 6224)),
    )
    assert "sync_interval: always" in text
    assert 'routes: ["nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6224"]' in text
    config = tmp_path / "nats.conf"
    config.write_text(text)
    checked = subprocess.run(
        [find_nats_server(), "-t", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_nats_url_list_is_split_into_servers() -> None:
    assert server_urls("nats://a:1, nats://b:2,") == ["nats://a:1", "nats://b:2"]
    with pytest.raises(ValueError, match="no NATS server URL"):
        server_urls(" , ")


# ---- the replica mesh ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh(replica_mesh: Mesh) -> Mesh:
    """The session mesh's place, for the imported tests."""
    return replica_mesh


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_every_service_runs_as_two_live_processes(mesh: Mesh) -> None:
    assert mesh.replicas == REPLICAS
    for service in mesh.services:
        processes = mesh.instances[service]
        pids = {mesh.pids[process] for process in processes}
        assert len(processes) == len(pids) == REPLICAS, (service, processes)
        assert all(_running(pid) for pid in pids), service
    # The simulator and the sandbox carrier stay single.
    assert not {"warehouse-sim-2", "sandbox-carrier-2"} & set(mesh.pids)
    assert len(mesh.gateway_urls) == REPLICAS and mesh.gateway_urls[0] == mesh.gateway_url
    for url in mesh.gateway_urls:
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200, url


def served(metrics_url: str, service: str) -> float:
    """gRPC calls of `service` (e.g. "order.v1.OrderService") one process answered so far."""
    text = httpx.get(metrics_url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "crossdock_grpc_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and f".{service}/" in sample.labels["method"]
    )


@pytest.mark.parametrize(
    ("service", "grpc_service", "path"),
    [
        ("order", "order.v1.OrderService", "/v1/orders"),
        ("inventory", "inventory.v1.InventoryService", "/v1/items"),
    ],
)
def test_calls_through_each_gateway_reach_both_replicas_behind_it(
    mesh: Mesh, service: str, grpc_service: str, path: str
) -> None:
    replicas = mesh.instances[service]
    before = {r: served(mesh.instance_metrics_urls[r], grpc_service) for r in replicas}
    headers = {"Authorization": f"Bearer {mesh.demo_api_key}"}
    for gateway in mesh.gateway_urls:
        with httpx.Client(base_url=gateway, headers=headers, timeout=10) as client:
            for _ in range(8):
                answer = client.get(path, params={"pageSize": 1})
                assert answer.status_code == 200, answer.text
    after = {r: served(mesh.instance_metrics_urls[r], grpc_service) for r in replicas}
    # round_robin: each gateway alternates between the two, so both got calls.
    gained = {r: after[r] - before[r] for r in replicas}
    assert all(count > 0 for count in gained.values()), gained
    assert sum(gained.values()) >= 8 * len(mesh.gateway_urls), gained


async def test_every_stream_has_three_replicas_and_a_leader(mesh: Mesh) -> None:
    views = {meta_leader(url) for url in mesh.nats_monitor_urls}
    assert len(mesh.nats_monitor_urls) == NATS_NODES
    assert len(views) == 1 and next(iter(views))[1] == NATS_NODES, views
    nc = NATS()
    await nc.connect(mesh.nats_admin_url)
    try:
        streams = {str(info.config.name): info for info in await nc.jetstream().streams_info()}
    finally:
        await nc.close()
    assert {*DOMAIN_STREAMS.values(), DLQ_STREAM} <= set(streams), sorted(streams)
    for name, info in streams.items():
        assert info.config.num_replicas == NATS_NODES, name
        assert info.cluster is not None and info.cluster.leader, name
        followers = info.cluster.replicas or []
        assert len(followers) == NATS_NODES - 1, (name, followers)
        assert not any(peer.offline for peer in followers), (name, followers)


# ---- the 50-order run, then every reconciliation check twice ----------------------------------

ORDERS = 50
# Checks that judge every completed order (the others judge what is open: active reservations,
# parcels in transit, none of which a settled mesh has).
JUDGING_EVERY_ORDER = ("delivered_vs_invoiced", "event_flow", "labels", "order_totals")


async def test_fifty_orders_complete_and_every_check_twice_in_a_row_finds_nothing(
    mesh: Mesh,
) -> None:
    """50 orders over REST to COMPLETED; once the mesh is quiet, every reconciliation check,
    report-only, twice in a row: no drift, no finding, and each check that judges completed
    orders judged them (the graces are 0 on this mesh: TOWER_SETTINGS)."""
    restock(mesh, ChaosSettings(seed=50, rate_per_second=1.0, duration_seconds=ORDERS))
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    rng = random.Random(50)
    orders = [DemoOrder(f"RECON-{n:03d}") for n in range(ORDERS)]
    for order in orders:
        place(api, order, sample_order(order.external_id, rng))
    assert [o.error for o in orders if o.error] == []

    def statuses() -> set[str]:
        return {api.call("GET", f"/v1/orders/{o.order_id}")["order"]["status"] for o in orders}

    done = await wait_for(
        lambda: asyncio.to_thread(statuses),
        lambda got: got == {"ORDER_STATUS_COMPLETED"},
        timeout=180,
        interval=1.0,
    )
    assert done == {"ORDER_STATUS_COMPLETED"}
    await wait_until_quiet(mesh.nats_monitor_urls[0])
    await asyncio.sleep(3)  # past event_flow's 2 s grace

    with grpc.insecure_channel(mesh.grpc_targets["control-tower"]) as channel:
        tower = tower_grpc.TowerServiceStub(channel)
        for _ in range(2):
            answer = await asyncio.to_thread(
                tower.RunReconciliation,
                tower_pb.RunReconciliationRequest(report_only=True),
                timeout=300,
            )
            runs = {run.check: run for run in answer.runs}
            assert set(runs) >= {*JUDGING_EVERY_ORDER, "reservations", "stale_tracking"}, runs
            assert {c: (r.error, r.drifts, r.new_findings) for c, r in runs.items()} == {
                c: ("", 0, 0) for c in runs
            }
            assert all(runs[c].scanned >= ORDERS for c in JUDGING_EVERY_ORDER), runs
        listed = tower.ListFindings(
            tower_pb.ListFindingsRequest(state=tower_pb.FINDING_STATE_OPEN, page_size=100),
            timeout=10,
        )
        assert list(listed.findings) == []


def test_a_respawned_replica_answers_as_soon_as_the_respawn_returns(
    replica_mesh_runner: ReplicaMesh,
) -> None:
    """The chaos report's "back in N s" is a respawn's own figure: it must wait for the
    replica's real readiness (gRPC health, the gateway's /healthz), not for a live process."""
    runner, mesh = replica_mesh_runner.runner, replica_mesh_runner.mesh
    billing, gateway = mesh.instances["billing"][-1], mesh.instances[GATEWAY.name][-1]
    for name in (billing, gateway):
        runner.kill(name)
        runner.respawn(name)
    assert grpc_serving(mesh.instance_grpc_targets[billing])()
    assert httpx.get(mesh.gateway_urls[-1] + "/healthz", timeout=5).status_code == 200


# ---- last: a short chaos run on this same mesh -------------------------------------------------


def test_zz_a_short_chaos_run_with_every_fault_kind_has_zero_violations(
    replica_mesh_runner: ReplicaMesh, tmp_path: Path
) -> None:
    """`make chaos`'s run, short: a fixed seed, one fault of every kind while orders, cancels and
    returns arrive over REST, then the checker over everything the mesh did (this module's
    earlier orders included). Named to run last: it kills and restarts processes.

    Without iptables as root (netcut) the two network cuts are left out, and the run says so."""
    kinds = ALL_KINDS if netcut.available() else tuple(k for k in ALL_KINDS if k not in CUTS)
    settings = ChaosSettings(
        seed=11,
        # Every kind once (the pause held 5 s past the mesh's 10 s ack_wait), then PostgreSQL
        # restarted again as the last orders arrive.
        duration_seconds=90.0,
        rate_per_second=3.0,
        replicas=REPLICAS,
        nats_nodes=NATS_NODES,
        settle_seconds=150.0,
        cut_seconds=10.0,
        gap_seconds=4.0,
        ack_wait_seconds=ACK_WAIT_SECONDS,
        out_dir=ARTIFACTS / "chaos-short",
        kinds=kinds,
    )

    report = run_on(replica_mesh_runner.runner, replica_mesh_runner.mesh, settings)
    if not report.ok:
        # Every process's log beside the report: the mesh's data dir goes with the module.
        logs = replica_mesh_runner.mesh.data_dir / "logs"
        shutil.copytree(logs, settings.out_dir / "logs", dirs_exist_ok=True)

    assert {record.kind for record in report.faults} == {kind.value for kind in kinds}
    assert report.ok, report.summary()
    work = report.workload.summary()
    assert work["orders_accepted"] >= 180, work
    assert work["cancels_accepted"] > 0 and work["returns_created"] > 0, work
