"""`crossdock run` and `crossdock demo`, mounted on the kit's CLI by `crossdock.cli` entry points.

crossdock run [--db sqlite|postgres] [--data-dir DIR] [--ports fixed|free] [--slow]
              [--return-damage-rate R] [--sandbox-process] [--replicas N] [--nats-cluster 1|3]
crossdock demo [--orders N] [--timeout S] [--gateway-url URL] [--api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from localmesh.demo import PartnerApi, run_demo
from localmesh.mesh import MESH_FILE, launch
from localmesh.options import DATA_DIR_ENV, DEFAULT_DATA_DIR, DEMO_KEY_ENV, MeshOptions
from localmesh.ports import PortsBusy
from localmesh.probes import StartAborted, StartFailed, http_ok
from localmesh.table import mesh_table
from services.kit.config import ConfigError

DEFAULT_GATEWAY_URL = "http://localhost:8080"


def add_run_command(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run the whole mesh locally (what `make run` does)",
        description="Start nats-server, every service, the gateway on :8080, the warehouse "
        "simulator and the sandbox carrier; seed demo data; stop everything on Ctrl-C. Data "
        f"stays in the data dir (default {DEFAULT_DATA_DIR}) across runs. A service's "
        "CROSSDOCK_<SERVICE>_DB_URL, when set, replaces its database. "
        "`--db postgres --replicas 2 --nats-cluster 3` runs two processes of every service "
        "(gateway included) on a 3-node JetStream cluster.",
    )
    parser.add_argument(
        "--db", choices=["sqlite", "postgres"], help="databases (default: $CROSSDOCK_DB or sqlite)"
    )
    parser.add_argument("--data-dir", type=Path, help=f"default: ${DATA_DIR_ENV} or .crossdock")
    parser.add_argument(
        "--ports", choices=["fixed", "free"], default="fixed", help="free: pick unused ports"
    )
    parser.add_argument("--slow", action="store_true", help="run the sandbox carrier in real time")
    parser.add_argument(
        "--sandbox-process",
        action="store_true",
        help="run the sandbox carrier as its own process, called over HTTP like a real carrier",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="processes per service, each on its own ports; clients balance over them "
        "(N > 1 needs --db postgres and runs the sandbox carrier as its own process; "
        "with fixed ports replica n listens on the first's ports + (n-1)*100)",
    )
    parser.add_argument(
        "--nats-cluster",
        type=int,
        choices=[1, 3],
        default=1,
        help="nats-servers: 1, or a 3-node JetStream cluster on loopback with R3 streams "
        "(client ports 4222-4224, monitor 8222-8224, routes 6222-6224)",
    )
    parser.add_argument("--no-seed", action="store_true", help="do not seed demo data")
    parser.add_argument("--no-warehouse-sim", action="store_true", help="confirm no picks")
    parser.add_argument(
        "--return-damage-rate",
        type=float,
        default=0.0,
        help="chance (0..1) the warehouse finds a returned SKU damaged (default 0)",
    )
    parser.set_defaults(run=cmd_run)


def add_demo_command(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="place sample orders through the running mesh and follow them",
        description="Place sample orders with the demo key (POST /v1/orders), show their "
        "progress to a final status, then a summary of shipments and invoices. Exits 0 when "
        "every order completed.",
    )
    parser.add_argument("--orders", type=int, default=5, help="how many orders (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    parser.add_argument("--gateway-url", help="default: the running mesh's, else :8080")
    parser.add_argument("--api-key", help=f"default: the running mesh's, else ${DEMO_KEY_ENV}")
    parser.add_argument("--data-dir", type=Path, help="where the running mesh keeps its data")
    parser.add_argument("--seed", type=int, help="seed for reproducible orders")
    parser.set_defaults(run=cmd_demo)


def _say(line: str) -> None:
    print(f"crossdock: {line}", flush=True)


def _process_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def cmd_run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"ports": args.ports, "fast": not args.slow}
    overrides |= {"seed_demo_data": not args.no_seed}
    overrides |= {"warehouse_simulator": not args.no_warehouse_sim}
    # Replicas share one carrier: the sandbox runs as its own process (MeshOptions).
    overrides |= {"sandbox_process": args.sandbox_process or args.replicas > 1}
    overrides |= {"replicas": args.replicas, "nats_cluster": args.nats_cluster}
    if not 0.0 <= args.return_damage_rate <= 1.0:
        print("crossdock run: --return-damage-rate must be within 0..1", file=sys.stderr)
        return 2
    overrides |= {"return_damage_rate": args.return_damage_rate}
    if args.db:
        overrides["db"] = args.db
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    try:
        options = MeshOptions.from_env(None, **overrides)
    except ValueError as error:
        print(f"crossdock run: {error}", file=sys.stderr)
        return 2
    stop, abort = asyncio.Event(), threading.Event()

    def on_signal() -> None:
        if stop.is_set():
            _say("still stopping (bounded waits; processes that overstay are killed)")
        stop.set()
        abort.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with launch(options, report=_say, abort=abort) as mesh:
            print("\n" + mesh_table(mesh) + "\n", flush=True)
            reported: set[str] = set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                for name, pid in mesh.pids.items():
                    if name not in reported and not _process_running(pid):
                        reported.add(name)
                        _say(f"{name} exited; see {mesh.log_dir / (name + '.log')}")
            _say("stopping")
    except ConfigError as error:
        # Found before anything started: one line per bad variable, no traceback.
        for problem in error.problems:
            print(f"crossdock run: {problem}", file=sys.stderr)
        return 2
    except StartAborted:
        _say("start interrupted; everything started so far is stopped")
        return 130
    except (StartFailed, PortsBusy, RuntimeError) as error:
        print(f"crossdock run: {error}", file=sys.stderr)
        return 1
    _say("stopped")
    return 0


def _running_mesh(data_dir: Path) -> dict[str, Any]:
    path = data_dir / MESH_FILE
    if not path.exists():
        return {}
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(path.read_text()))
    return {}


async def cmd_demo(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    mesh = _running_mesh(data_dir)
    gateway = args.gateway_url or mesh.get("gateway_url") or DEFAULT_GATEWAY_URL
    key = args.api_key or mesh.get("demo_api_key") or os.environ.get(DEMO_KEY_ENV, "")
    if not key:
        print(
            f"crossdock demo: no API key: start the mesh (make run) or set ${DEMO_KEY_ENV}",
            file=sys.stderr,
        )
        return 2
    api = PartnerApi(str(gateway).rstrip("/"), str(key))
    if not await asyncio.to_thread(http_ok, api.base_url + "/healthz", 3.0):
        print(
            f"crossdock demo: no gateway answers at {api.base_url}: start the mesh (make run)",
            file=sys.stderr,
        )
        return 3
    try:
        orders = await asyncio.to_thread(
            run_demo, api, count=args.orders, timeout_seconds=args.timeout, seed=args.seed
        )
    except OSError as error:
        print(f"crossdock demo: cannot reach the gateway at {gateway}: {error}", file=sys.stderr)
        return 3
    return 0 if all(order.status == "COMPLETED" for order in orders) else 1
