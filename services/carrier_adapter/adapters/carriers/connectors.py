"""Build every configured carrier account's connector, wrapped in its reliability guard.

`main` calls `build_connectors(load_accounts(), deps)` once at start. Each
account gets its own connector, circuit breaker and payload recorder; all share the carrier's
code tables, which load (and validate) here so a broken table fails the start, not a scan.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from services.carrier_adapter.adapters.carriers import karrio_http
from services.carrier_adapter.adapters.carriers.dhl_express.connector import DhlExpressConnector
from services.carrier_adapter.adapters.carriers.fedex.connector import FedexConnector
from services.carrier_adapter.adapters.carriers.guarded import CallPolicy, GuardedConnector
from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.adapters.carriers.sandbox.connector import (
    SandboxConnector,
    SandboxSettings,
)
from services.carrier_adapter.adapters.carriers.sandbox.remote import RemoteSandboxConnector
from services.carrier_adapter.adapters.carriers.tables import (
    CodeTables,
    load_service_table,
    load_status_table,
)
from services.carrier_adapter.adapters.carriers.ups.connector import UpsConnector
from services.carrier_adapter.adapters.carriers.usps.connector import UspsConnector
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.config import CarrierAccount
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.model import UnmappedCode
from services.carrier_adapter.domain.normalize import UnmappedSink
from services.carrier_adapter.domain.payload_log import (
    PayloadRecorder,
    PayloadSink,
    RetentionPolicy,
)

__all__ = [
    "KARRIO_CONNECTORS",
    "ConnectorDeps",
    "ConnectorRegistry",
    "build_connector",
    "build_connectors",
]

KARRIO_CONNECTORS: dict[str, type[KarrioConnector]] = {
    "ups": UpsConnector,
    "fedex": FedexConnector,
    "dhl_express": DhlExpressConnector,
    "usps": UspsConnector,
}


@dataclass
class ConnectorDeps:
    clock: Clock
    metrics: CarrierMetrics | None = None
    payload_sink: PayloadSink | None = None
    # Called for each unmapped code besides the metric (e.g. to log it); events come from the
    # TrackingResult.unmapped the service receives.
    on_unmapped: UnmappedSink | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    call_policy: CallPolicy = field(default_factory=CallPolicy)
    rng: random.Random = field(default_factory=random.Random)
    # Socket timeout for karrio HTTP; keep it under the per-call deadline.
    http_timeout_seconds: float = 20.0
    # Live status tables (packaged + operators' mappings); None normalizes with the packaged
    # tables alone.
    code_tables: CodeTables | None = None


class ConnectorRegistry:
    def __init__(
        self,
        connectors: Iterable[CarrierConnector],
        poll_overrides: Mapping[str, bool] | None = None,
    ) -> None:
        self._by_account = {c.account_id: c for c in connectors}
        # Per account id, from config (POLL_TRACKING); absent: the connector's capability decides.
        self._poll_overrides = dict(poll_overrides or {})

    def get(self, account_id: str) -> CarrierConnector:
        return self._by_account[account_id]

    def for_carrier(self, carrier: str) -> list[CarrierConnector]:
        return [c for c in self._by_account.values() if c.carrier == carrier]

    def push_carriers(self) -> frozenset[str]:
        """Carriers that push; everything else goes to the polling scheduler."""
        return frozenset(c.carrier for c in self if c.capabilities.push_tracking)

    def polled(self) -> list[CarrierConnector]:
        """The accounts the tracking poller serves: those that cannot push, unless configured."""
        return [
            c
            for c in self
            if self._poll_overrides.get(c.account_id, not c.capabilities.push_tracking)
        ]

    async def aclose(self) -> None:
        """Close the transports connectors keep open (a remote carrier's HTTP session); at
        shutdown, after the last call."""
        for connector in self:
            close = getattr(connector, "aclose", None)
            if close is not None:
                await close()

    def __iter__(self) -> Iterator[CarrierConnector]:
        return iter(self._by_account.values())

    def __len__(self) -> int:
        return len(self._by_account)


def build_connector(account: CarrierAccount, deps: ConnectorDeps) -> CarrierConnector:
    """The bare connector for one account (no guard)."""
    sinks = [
        s for s in (deps.metrics.count_unmapped if deps.metrics else None, deps.on_unmapped) if s
    ]

    def on_unmapped(code: UnmappedCode) -> None:
        for sink in sinks:
            sink(code)

    recorder = (
        PayloadRecorder(
            account.carrier,
            account.account_id,
            deps.payload_sink,
            deps.clock.now,
            account.secret_values(),
            deps.retention,
        )
        if deps.payload_sink is not None
        else None
    )
    status_table = (
        deps.code_tables.table(account.carrier)
        if deps.code_tables is not None
        else load_status_table(account.carrier)
    )
    service_table = load_service_table(account.carrier)
    if account.carrier == "sandbox" and account.get("endpoint"):
        return RemoteSandboxConnector(
            account.account_id,
            account.get("endpoint"),
            SandboxSettings.from_account(account),
            status_table=status_table,
            service_table=service_table,
            clock=deps.clock,
            on_unmapped=on_unmapped,
            payloads=recorder,
            timeout_seconds=deps.http_timeout_seconds,
        )
    if account.carrier == "sandbox":
        return SandboxConnector(
            account.account_id,
            SandboxSettings.from_account(account),
            status_table=status_table,
            service_table=service_table,
            clock=deps.clock,
            on_unmapped=on_unmapped,
            payloads=recorder,
        )
    connector_class = KARRIO_CONNECTORS[account.carrier]
    return connector_class(
        account,
        status_table=status_table,
        service_table=service_table,
        on_unmapped=on_unmapped,
        payloads=recorder,
        clock=deps.clock,
    )


def build_connectors(
    accounts: Iterable[CarrierAccount], deps: ConnectorDeps, *, guarded: bool = True
) -> ConnectorRegistry:
    accounts = list(accounts)
    if any(a.carrier in KARRIO_CONNECTORS for a in accounts) and (
        karrio_http.installed_transport() is None
    ):
        # karrio's own urlopen has no timeout; never let it run unguarded.
        karrio_http.install_transport(karrio_http.UrllibTransport(), deps.http_timeout_seconds)
    connectors: list[CarrierConnector] = []
    for account in accounts:
        connector = build_connector(account, deps)
        if guarded:
            connector = GuardedConnector(
                connector, deps.call_policy, deps.clock, deps.rng, deps.metrics
            )
        connectors.append(connector)
    overrides = {a.account_id: a.poll_tracking for a in accounts if a.poll_tracking is not None}
    return ConnectorRegistry(connectors, overrides)
