"""CreateOrder idempotency: the same partner, external id and payload return the same order.

The fingerprint covers everything the partner sent, normalised (money to 9 decimal places), so a
retry of the same request matches even if it was re-serialised, and any real change does not.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from services.order.domain.errors import OrderReplayMismatch
from services.order.domain.model import Money, Order, OrderInput

_NANO = Decimal("1e-9")


def order_fingerprint(partner_id: str, order: OrderInput) -> str:
    """A stable digest of (partner, request payload)."""
    text = json.dumps(
        {"partner_id": partner_id, **_canonical(order)}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def input_differences(stored: OrderInput, incoming: OrderInput) -> list[str]:
    """Field paths where two order payloads differ, e.g. ["order.lines[1].quantity"]."""
    return sorted(_diff(_canonical(stored), _canonical(incoming), "order"))


def ensure_same_request(existing: Order, partner_id: str, incoming: OrderInput) -> None:
    """Return if `incoming` replays the request that created `existing`; raise otherwise.

    The error names the order and every differing field so the partner can see what changed.
    """
    if order_fingerprint(partner_id, incoming) == existing.fingerprint:
        return
    differences = input_differences(existing.as_input(), incoming) or ["order"]
    raise OrderReplayMismatch(
        f"external order id {existing.external_order_id!r} was already used for order "
        f"{existing.order_id} with a different payload (differs in: {', '.join(differences)})",
        resource_type="order",
        resource_name=existing.order_id,
        metadata={
            "order_id": existing.order_id,
            "external_order_id": existing.external_order_id,
            "differences": ",".join(differences),
        },
    )


def _money(money: Money) -> dict[str, str]:
    return {"currency_code": money.currency_code, "amount": str(money.amount.quantize(_NANO))}


def _canonical(order: OrderInput) -> dict[str, object]:
    ship_to = order.ship_to
    return {
        "external_order_id": order.external_order_id,
        "customer": {
            "party_id": order.customer.party_id,
            "name": order.customer.name,
            "email": order.customer.email,
        },
        "ship_to": {
            "name": ship_to.name,
            "company": ship_to.company,
            "lines": list(ship_to.lines),
            "city": ship_to.city,
            "region": ship_to.region,
            "postal_code": ship_to.postal_code,
            "country_code": ship_to.country_code,
            "phone": ship_to.phone,
            "email": ship_to.email,
            "residential": ship_to.residential,
        },
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": _money(line.unit_price)}
            for line in order.lines
        ],
        "currency_code": order.currency_code,
        "service_level": order.service_level.name,
        "backorder_policy": order.backorder_policy.name,
    }


def _diff(stored: object, incoming: object, path: str) -> list[str]:
    if isinstance(stored, dict) and isinstance(incoming, dict):
        found: list[str] = []
        for key in sorted(set(stored) | set(incoming)):
            found += _diff(stored.get(key), incoming.get(key), f"{path}.{key}")
        return found
    if isinstance(stored, list) and isinstance(incoming, list):
        if len(stored) != len(incoming):
            return [path]
        found = []
        for index, (old, new) in enumerate(zip(stored, incoming, strict=True)):
            found += _diff(old, new, f"{path}[{index}]")
        return found
    return [] if stored == incoming else [path]
