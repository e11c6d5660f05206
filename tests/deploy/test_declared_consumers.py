"""Each service's event handlers match what the event catalog says it consumes.

NATS users (local run and Kubernetes) and the KEDA lag triggers are generated from the catalog's
`consumers` lists, so a handler for an event its service is not declared to consume would be
refused by nats-server in deployment while passing every in-process test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.billing.app import BillingSettings
from services.billing.entrypoints.consumers import event_handlers as billing_registry
from services.control_tower.entrypoints.consumers import event_handlers as tower_registry
from services.inventory.domain.ids import SequentialIds
from services.inventory.entrypoints.consumers import event_handlers as inventory_registry
from services.kit.catalog import load_catalog
from services.kit.handlers import HandlerRegistry
from services.order.domain import FulfillmentSaga, StepTimeouts
from services.order.entrypoints.consumers import event_handlers as order_registry
from services.shipment.entrypoints.consumers import event_handlers as shipment_registry


def now() -> datetime:
    return datetime.now(UTC)


REGISTRIES: dict[str, Callable[[], HandlerRegistry]] = {
    "billing": lambda: billing_registry(BillingSettings("INV", "CRN", frozenset()), now),
    "control-tower": tower_registry,
    "inventory": lambda: inventory_registry(SequentialIds(), now),
    "order": lambda: order_registry(FulfillmentSaga(StepTimeouts()), now),
    "shipment": lambda: shipment_registry(now, lambda: None),
}


@pytest.mark.parametrize("service", sorted(REGISTRIES))
def test_every_handled_event_is_declared_for_its_service(service: str) -> None:
    handled = set(REGISTRIES[service]().subjects())
    declared = {e.subject for e in load_catalog() if service in e.consumers}
    # Declared but not (yet) handled is allowed: the catalog also names planned consumers
    # (e.g. returns), and the kit acks events a service has no handler for.
    assert handled - declared == set()


def test_the_control_tower_handles_every_event_it_is_declared_to_consume() -> None:
    declared = {e.subject for e in load_catalog() if "control-tower" in e.consumers}
    assert declared == {e.subject for e in load_catalog()}
    assert set(tower_registry().subjects()) == declared
