"""SchemaRegistryConfig: the registry's settings (prefix CROSSDOCK_SCHEMA_REGISTRY_).

DB_URL, GRPC_PORT, HTTP_PORT and METRICS_PORT are required; GRPC_HOST / HTTP_HOST (default
0.0.0.0), BUF_PATH, MIGRATE_ON_START and LOG_LEVEL are optional. The registry publishes and
consumes no events, so it derives from the kit's DatabaseServiceConfig (no relay or consumer
settings).
"""

from __future__ import annotations

from services.kit.config import DatabaseServiceConfig, setting


class SchemaRegistryConfig(DatabaseServiceConfig, service="schema-registry"):
    http_host: str = setting(default="0.0.0.0", description="interface the REST API listens on")
    http_port: int = setting(
        minimum=0, maximum=65535, description="REST API listen port (0 picks a free port)"
    )
    buf_path: str = setting(
        default="", description="the buf binary (default: next to the Python interpreter, PATH)"
    )
