"""Gateway settings, read once from CROSSDOCK_GATEWAY_* (the kit's ServiceConfig).

Backend targets are per contract domain: `<domain>_target` serves every service of
`crossdock.<domain>.v1` (order, inventory, shipment, billing, carrier). An empty target makes
that domain's routes answer 503, so a partial local run still serves the rest.

The demo partner's key is CROSSDOCK_DEMO_API_KEY (no gateway prefix: `crossdock run` and
`crossdock demo` read it too); a malformed one stops the gateway at start, like any bad setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import ServiceDescriptor

from gateway.auth import split_api_key, split_operator_key
from gateway.descriptors import domain_of
from services.kit.config import DatabaseServiceConfig, setting

DEMO_KEY_ENV = "CROSSDOCK_DEMO_API_KEY"
API_KEY_FORM = "cdk_<key id>_<secret>"
OPERATOR_KEY_FORM = "cdo_<key id>_<secret>"


def check_api_key_form(api_key: str) -> None:
    """Raise ValueError naming the form unless `api_key` is one the gateway can install."""
    if split_api_key(api_key) is None:
        raise ValueError(f"an API key of the form {API_KEY_FORM}")


def check_operator_key_form(operator_key: str) -> None:
    """Raise ValueError naming the form unless `operator_key` is an operator key."""
    if split_operator_key(operator_key) is None:
        raise ValueError(f"an operator key of the form {OPERATOR_KEY_FORM}")


class GatewayConfig(DatabaseServiceConfig, service="gateway"):
    # The gateway serves HTTP, not gRPC: the inherited ports get defaults (metrics on 0 = free).
    grpc_port: int = setting(default=0, minimum=0, maximum=65535, description="unused")
    metrics_port: int = setting(
        default=0, minimum=0, maximum=65535, description="Prometheus /metrics port (0: free)"
    )
    db_url: str = setting(
        default="sqlite:///.crossdock/gateway.db",
        secret=True,
        description="SQLAlchemy URL of the gateway's database (SQLite or PostgreSQL)",
    )
    http_host: str = setting(default="0.0.0.0", description="interface the partner API listens on")
    http_port: int = setting(
        default=8080, minimum=0, maximum=65535, description="partner API port (0 picks one)"
    )
    admin_host: str = setting(
        default="127.0.0.1", description="interface the admin API listens on (keep it private)"
    )
    admin_port: int = setting(
        default=8081, minimum=0, maximum=65535, description="admin API port (0 picks one)"
    )
    admin_token: str = setting(secret=True, description="bearer token of the admin API")
    order_target: str = setting(default="", description="host:port of the order service")
    inventory_target: str = setting(default="", description="host:port of the inventory service")
    shipment_target: str = setting(default="", description="host:port of the shipment service")
    billing_target: str = setting(default="", description="host:port of the billing service")
    carrier_target: str = setting(default="", description="host:port of the carrier-adapter")
    tower_target: str = setting(
        default="",
        description="host:port of the control tower (the operator console's timeline); empty: "
        "the console says the tower is not configured",
    )
    max_body_bytes: int = setting(
        default=1_048_576, minimum=1024, description="largest request body; larger is 413"
    )
    idempotency_retention_seconds: float = setting(
        default=86_400.0, minimum=60, description="how long Idempotency-Key results are kept"
    )
    read_rate_per_second: float = setting(
        default=50.0, minimum=0.001, description="per-partner GET token refill rate"
    )
    read_burst: int = setting(default=100, minimum=1, description="per-partner GET bucket size")
    write_rate_per_second: float = setting(
        default=20.0, minimum=0.001, description="per-partner non-GET token refill rate"
    )
    write_burst: int = setting(default=50, minimum=1, description="per-partner non-GET bucket")
    push_rate_per_second: float = setting(
        default=50.0,
        minimum=0.001,
        description="carrier webhook pushes refill rate, per carrier and client address, per "
        "gateway replica (kept in memory: N replicas admit N times this)",
    )
    push_burst: int = setting(
        default=100, minimum=1, description="carrier webhook push bucket size, per gateway replica"
    )
    push_batch_max: int = setting(
        default=100,
        minimum=1,
        maximum=100,
        description="most carrier pushes forwarded in one IngestWebhooks call; pushes that "
        "arrive while calls are in flight wait and go together",
    )
    push_batch_in_flight: int = setting(
        default=2,
        minimum=1,
        maximum=64,
        description="IngestWebhooks calls in flight at once; a push arriving with fewer goes "
        "out at once",
    )
    webhooks_enabled: bool = setting(
        default=True,
        description="run the outbound webhook worker (gateway-webhooks consumers and sender); "
        "needs NATS",
    )
    webhook_follow_subscriptions: bool = setting(
        default=True,
        description="the gateway-webhooks durables take only the event types enabled "
        "subscriptions want (a create waits for NATS to confirm); false: every milestone event. "
        "Every replica must agree, and replicas without the webhook worker must not serve "
        "subscription changes while others follow",
    )
    webhook_filter_reconcile_seconds: float = setting(
        default=60.0,
        minimum=1.0,
        description="how often the durables' event filter is recomputed from the subscriptions "
        "(narrows after disables; deletes narrow at once)",
    )
    webhook_consumer_linger_ms: float = setting(
        default=10.0,
        minimum=0.0,
        maximum=1000.0,
        description="once fewer than a batch of milestone events arrived, how long the webhook "
        "consumers wait for more to take in the same transaction (0: none)",
    )
    webhook_retry_hours: float = setting(
        default=72.0,
        minimum=0.0001,
        description="how long a failing webhook delivery is retried before it fails for good",
    )
    webhook_retry_base_seconds: float = setting(
        default=30.0,
        minimum=0.001,
        description="first webhook retry delay ceiling; doubles per attempt (full jitter)",
    )
    webhook_retry_max_delay_seconds: float = setting(
        default=3600.0, minimum=0.001, description="largest delay between two webhook attempts"
    )
    webhook_disable_after_failures: int = setting(
        default=50,
        minimum=1,
        description="consecutive failed delivery attempts after which a subscription is disabled",
    )
    webhook_timeout_seconds: float = setting(
        default=10.0, minimum=0.1, description="timeout of one webhook POST"
    )
    webhook_poll_interval_seconds: float = setting(
        default=1.0, minimum=0.01, description="how often the sender looks for due deliveries"
    )
    webhook_concurrency: int = setting(
        default=16, minimum=1, description="webhook POSTs in flight per gateway replica"
    )
    webhook_log_retention_days: float = setting(
        default=30.0,
        minimum=1,
        description="how long delivered and failed webhook deliveries stay in the delivery log",
    )
    webhook_allow_private_networks: bool = setting(
        default=False,
        description="allow deliveries to private, loopback and link-local addresses "
        "(local runs and tests only: otherwise a partner could reach into the cluster)",
    )
    demo_api_key: str = setting(
        default="",
        secret=True,
        env=DEMO_KEY_ENV,
        check=check_api_key_form,
        description=f"the demo partner's API key, of the form `{API_KEY_FORM}` (as the gateway and "
        "`crossdock run` print one); unset: the gateway issues a new one at start, and "
        "`crossdock run` generates one once and keeps it in the data dir",
    )

    demo_operator_key: str = setting(
        default="",
        secret=True,
        check=check_operator_key_form,
        description=f"a demo operator's key (`{OPERATOR_KEY_FORM}`, scopes ops:read and ops:act), "
        "installed at start unless its id exists; `crossdock run` generates one once and keeps "
        "it in the data dir; unset: no demo operator",
    )

    console_session_hours: float = setting(
        default=8.0,
        minimum=0.05,
        maximum=24 * 30,
        description="how long an operator console sign-in lasts before the operator key is "
        "asked for again (a revoked or expired key ends it at the next request)",
    )
    console_refresh_seconds: float = setting(
        default=5.0,
        minimum=0.5,
        maximum=3600,
        description="how often an open console timeline re-reads itself while its order is "
        "not completed or cancelled",
    )

    def targets_for(self, services: Sequence[ServiceDescriptor]) -> dict[str, str]:
        """Service full name → target, from the per-domain settings."""
        found: dict[str, str] = {}
        for service in services:
            target = getattr(self, f"{domain_of(service)}_target", "")
            if target:
                found[service.full_name] = str(target)
        return found
