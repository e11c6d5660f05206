"""Shared carrier-adapter fixtures: addresses, parcels, the stub transport, metrics."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from services.carrier_adapter.adapters.carriers.karrio_http import transport_installed
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.domain.model import (
    Parcel,
)
from services.kit.values import Address, Dimensions, DimensionUnit, Weight, WeightUnit
from tests.carrier_adapter.stub_transport import StubTransport

# karrio imports PyPDF2, which warns about its own deprecation when first imported; import it
# once here, quietly, before any test module pulls karrio in.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import PyPDF2  # noqa: F401


@pytest.fixture(autouse=True)
def _quiet_jstruct() -> None:
    # karrio's schema library warns on every carrier field it has no slot for; real carrier
    # payloads carry many, and the noise would bury a failing test's own log lines.
    logging.getLogger("jstruct").setLevel(logging.ERROR)


@pytest.fixture
def stub() -> Iterator[StubTransport]:
    transport = StubTransport()
    with transport_installed(transport, default_timeout=5.0):
        yield transport
    assert not transport.unexpected, f"unexpected requests: {transport.unexpected}"


@pytest.fixture
def metrics() -> CarrierMetrics:
    return CarrierMetrics(CollectorRegistry())


@pytest.fixture
def us_origin() -> Address:
    return Address(
        "East DC",
        ("1 Dock Rd",),
        "Atlanta",
        "30301",
        "US",
        region="GA",
        company="Crossdock Inc",
        phone="+14045550100",
    )


@pytest.fixture
def us_destination() -> Address:
    return Address(
        "Jane Doe",
        ("2 Elm St", "Apt 4"),
        "Beverly Hills",
        "90210",
        "US",
        region="CA",
        phone="+13105550100",
        residential=True,
    )


@pytest.fixture
def box() -> Parcel:
    return Parcel(
        Weight(Decimal("2.5"), WeightUnit.KILOGRAM),
        Dimensions(Decimal(30), Decimal(20), Decimal(15), DimensionUnit.CENTIMETER),
        "pkg_1",
    )


def unmapped_count(metrics: CarrierMetrics, carrier: str, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "crossdock_carrier_unmapped_codes_total", {"carrier": carrier, "kind": kind}
    )
    return value or 0.0
