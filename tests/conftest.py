"""Shared fixtures. The real ones live in tests/fixtures/ so other test trees can import them."""

from tests.fixtures.nats import nats_client, nats_server, nats_server_fn
from tests.fixtures.postgres import postgres_cluster, postgres_url

__all__ = ["nats_client", "nats_server", "nats_server_fn", "postgres_cluster", "postgres_url"]
