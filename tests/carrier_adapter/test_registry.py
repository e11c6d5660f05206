"""Building connectors from configuration: the right connector, guarded, tables loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.carrier_adapter.adapters.carriers import karrio_http
from services.carrier_adapter.adapters.carriers.connectors import ConnectorDeps, build_connectors
from services.carrier_adapter.adapters.carriers.guarded import GuardedConnector
from services.carrier_adapter.adapters.carriers.sandbox.connector import SandboxConnector
from services.carrier_adapter.adapters.carriers.ups.connector import UpsConnector
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.config import load_accounts
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.model import (
    LabelRequest,
    Parcel,
    TrackingStatus,
)
from services.carrier_adapter.domain.normalize import RawScan
from services.kit.values import Address
from tests.carrier_adapter.conftest import unmapped_count
from tests.carrier_adapter.fakes import ManualClock, Recorder

P = "CROSSDOCK_CARRIER_ADAPTER_"
ENV = {
    f"{P}CARRIER_ACCOUNTS": "sandbox,ups_east",
    f"{P}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "whsec_1",
    f"{P}ACCOUNT_SANDBOX_TIME_SCALE": "3600",
    f"{P}ACCOUNT_SANDBOX_EXCEPTION_RATE": "0",
    f"{P}ACCOUNT_SANDBOX_RETURN_RATE": "0",
    f"{P}ACCOUNT_UPS_EAST_CARRIER": "ups",
    f"{P}ACCOUNT_UPS_EAST_CLIENT_ID": "cid",
    f"{P}ACCOUNT_UPS_EAST_CLIENT_SECRET": "csecret",
    f"{P}ACCOUNT_UPS_EAST_ACCOUNT_NUMBER": "A1B2C3",
}


@pytest.fixture
def no_transport() -> Iterator[None]:
    """No transport installed: the one build_connectors installs stays for the process's life,
    so an earlier test in this process that built karrio connectors may have left its own."""
    karrio_http.uninstall_transport()
    yield
    karrio_http.uninstall_transport()


def test_builds_guarded_connectors_and_a_default_transport(
    no_transport: None, metrics: CarrierMetrics
) -> None:
    registry = build_connectors(
        load_accounts(ENV), ConnectorDeps(clock=ManualClock(), metrics=metrics)
    )

    sandbox, ups = registry.get("sandbox"), registry.get("ups_east")
    assert isinstance(sandbox, GuardedConnector) and isinstance(sandbox.inner, SandboxConnector)
    assert isinstance(ups, GuardedConnector) and isinstance(ups.inner, UpsConnector)
    assert all(isinstance(c, CarrierConnector) for c in registry)
    assert registry.push_carriers() == frozenset({"sandbox"})
    assert [c.account_id for c in registry.polled()] == ["ups_east"]  # the sandbox pushes
    assert [c.account_id for c in registry.for_carrier("ups")] == ["ups_east"]
    # karrio must never run on its own, timeout-less urlopen.
    assert isinstance(karrio_http.installed_transport(), karrio_http.UrllibTransport)


async def test_registry_wires_metrics_unmapped_sink_and_payload_log(
    no_transport: None,
    metrics: CarrierMetrics,
    us_origin: Address,
    us_destination: Address,
    box: Parcel,
) -> None:
    clock = ManualClock()
    payloads, extra = Recorder(), Recorder()
    env = {**ENV, f"{P}CARRIER_ACCOUNTS": "sandbox"}
    deps = ConnectorDeps(clock=clock, metrics=metrics, payload_sink=payloads, on_unmapped=extra)
    sandbox = build_connectors(load_accounts(env), deps).get("sandbox")
    assert isinstance(sandbox, GuardedConnector) and isinstance(sandbox.inner, SandboxConnector)

    label = await sandbox.book_label(
        LabelRequest("shp_reg_0001", "sandbox_economy", us_origin, us_destination, (box,))
    )
    clock.advance(3600)  # 150 simulated days at time scale 3600
    result = await sandbox.track(label.tracking_number)
    odd = sandbox.inner.normalizer.normalize("T1", [RawScan("ZZZ", "odd", clock.now())])

    assert result.scans[-1].status is TrackingStatus.DELIVERED
    assert (
        [u.carrier_status_code for u in extra.unmapped()]
        == ["ZZZ"]
        == [u.carrier_status_code for u in odd.unmapped]
    )
    assert unmapped_count(metrics, "sandbox", "status") == 1
    assert {p.operation for p in payloads.payloads()} >= {"book_label", "track"}
    assert karrio_http.installed_transport() is None  # no karrio account, nothing installed


def test_poll_tracking_overrides_the_connector_per_account(
    no_transport: None, metrics: CarrierMetrics
) -> None:
    env = {
        **ENV,
        f"{P}ACCOUNT_SANDBOX_POLL_TRACKING": "true",
        f"{P}ACCOUNT_UPS_EAST_POLL_TRACKING": "false",
    }
    registry = build_connectors(load_accounts(env), ConnectorDeps(clock=ManualClock()))

    assert [c.account_id for c in registry.polled()] == ["sandbox"]
