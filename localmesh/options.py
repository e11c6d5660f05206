"""What a local mesh run is asked for: where its data lives, which ports, which database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from localmesh.services import REPO_ROOT, ServiceSpec, mesh_services
from services.kit.config import env_prefix_for

PortMode = Literal["fixed", "free"]
DbKind = Literal["sqlite", "postgres"]

DB_ENV = "CROSSDOCK_DB"
DATA_DIR_ENV = "CROSSDOCK_DATA_DIR"
DEMO_KEY_ENV = "CROSSDOCK_DEMO_API_KEY"
DEFAULT_DATA_DIR = REPO_ROOT / ".crossdock"
NATS_CLUSTER_SIZES = (1, 3)


@dataclass(frozen=True)
class MeshOptions:
    """Everything a launch needs; the defaults are `make run`'s."""

    # Where SQLite files, the NATS store, the PostgreSQL cluster, logs and secrets live.
    data_dir: Path = DEFAULT_DATA_DIR
    # "fixed": the documented ports (gateway on 8080); "free": picked at runtime (tests).
    ports: PortMode = "fixed"
    db: DbKind = "sqlite"
    # Fast mode: the sandbox carrier's simulated clock runs `sandbox_time_scale` times real time
    # (by default 4 simulated hours per real second: a 2-day delivery takes ~12 s).
    fast: bool = True
    sandbox_time_scale: float = 14400.0
    # Run the sandbox carrier as its own process (tools/sandbox_carrier.py) that carrier-adapter
    # calls over HTTP and that pushes through the gateway's carrier route, like a remote
    # carrier; off, it is simulated inside carrier-adapter and pushes straight into its ingest.
    sandbox_process: bool = False
    seed_demo_data: bool = True
    warehouse_simulator: bool = True
    # The chance the warehouse simulator finds a returned SKU damaged (0..1; returns are
    # received sellable unless set).
    return_damage_rate: float = 0.0
    # Per-service database URL overrides (service name → SQLAlchemy URL).
    db_urls: Mapping[str, str] = field(default_factory=dict)
    # The demo partner's key; None: $CROSSDOCK_DEMO_API_KEY, else generated once and kept.
    demo_api_key: str | None = None
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    startup_timeout_seconds: float = 90.0
    stop_timeout_seconds: float = 15.0
    # Processes per service (gateway included). More than one needs PostgreSQL: replicas share
    # their service's database (competing consumers, leased workers, one relay leader), and a
    # SQLite file has a single writer. The warehouse simulator and sandbox carrier stay single.
    replicas: int = 1
    # nats-server processes: 1, or a 3-node JetStream cluster on loopback (R3 streams).
    nats_cluster: int = 1
    # Start each service process with a supplementary group of its own, so a chaos run can cut
    # one process off NATS or PostgreSQL with an iptables owner rule (localmesh.chaos.netcut).
    # Needs root; off for every ordinary run.
    process_groups: bool = False
    # The consumers' ack_wait (CONSUMER_ACK_WAIT_SECONDS): how long events a frozen or killed
    # process held wait before another replica gets them. None: each service's default (30 s).
    consumer_ack_wait_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be 1 or more (got {self.replicas})")
        if self.nats_cluster not in NATS_CLUSTER_SIZES:
            raise ValueError(f"nats_cluster must be 1 or 3 (got {self.nats_cluster})")
        if self.replicas == 1:
            return
        if self.db != "postgres":
            raise ValueError(
                f"{self.replicas} replicas need --db postgres: a service's replicas share its "
                "database, and a SQLite file has a single writer"
            )
        on_sqlite = sorted(name for name, url in self.db_urls.items() if url.startswith("sqlite"))
        if on_sqlite:
            raise ValueError(
                f"{self.replicas} replicas need PostgreSQL, but these services are given a "
                f"SQLite URL: {', '.join(on_sqlite)}"
            )
        if not self.sandbox_process:
            # carrier-adapter's in-process sandbox keeps its parcels in memory: each replica
            # would simulate a different carrier.
            raise ValueError(
                f"{self.replicas} replicas need the sandbox carrier as its own process "
                "(sandbox_process, --sandbox-process): one carrier for every carrier-adapter"
            )

    def services(self) -> tuple[ServiceSpec, ...]:
        return mesh_services()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> MeshOptions:
        """Options from CROSSDOCK_DB, CROSSDOCK_DATA_DIR, CROSSDOCK_<SERVICE>_DB_URL, demo key."""
        env = os.environ if environ is None else environ
        db = env.get(DB_ENV, "sqlite").strip().lower() or "sqlite"
        if db not in ("sqlite", "postgres"):
            raise ValueError(f"{DB_ENV} must be sqlite or postgres (got {db!r})")
        urls = {
            spec.name: env[name]
            for spec in mesh_services()
            if (name := env_prefix_for(spec.name) + "DB_URL") in env and env[name].strip()
        }
        values: dict[str, object] = {
            "db": db,
            "db_urls": urls,
            "demo_api_key": env.get(DEMO_KEY_ENV, "").strip() or None,
        }
        if env.get(DATA_DIR_ENV, "").strip():
            values["data_dir"] = Path(env[DATA_DIR_ENV]).expanduser()
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
