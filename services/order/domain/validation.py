"""Order rules that need no I/O beyond a catalog lookup the caller passes in.

The contract's protovalidate rules already check shapes (patterns, lengths, ranges). These rules
add what needs the item master or reads across fields, and re-check the basics so the domain is
safe on its own. Paths match the CreateOrderRequest, e.g. "order.lines[1].sku".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from services.order.domain.errors import FieldViolation, invalid_order
from services.order.domain.model import Address, OrderInput

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class CatalogItem:
    """What order validation needs to know about a SKU."""

    sku: str
    active: bool


class Catalog(Protocol):
    """Looks SKUs up in the item master; unknown SKUs are simply absent from the answer."""

    def lookup(self, skus: Collection[str]) -> Mapping[str, CatalogItem]: ...


class StaticCatalog:
    """A Catalog over a fixed set of items (tests, the simulator, a cached item master)."""

    def __init__(self, items: Collection[CatalogItem]) -> None:
        self._items = {item.sku: item for item in items}

    def lookup(self, skus: Collection[str]) -> Mapping[str, CatalogItem]:
        return {sku: self._items[sku] for sku in skus if sku in self._items}


def order_violations(order: OrderInput, catalog: Catalog) -> list[FieldViolation]:
    """Every rule the order breaks, in field order; empty when it is valid."""
    violations: list[FieldViolation] = []

    def fail(path: str, rule_id: str, description: str) -> None:
        violations.append(FieldViolation(f"order.{path}", rule_id, description))

    if not order.external_order_id.strip():
        fail("external_order_id", "required", "external_order_id is required")
    if not order.customer.party_id.strip():
        fail("customer.party_id", "required", "the customer's party_id is required")
    for path, description in _address_gaps(order.ship_to):
        fail(f"ship_to.{path}", "required", description)
    if not _CURRENCY.match(order.currency_code):
        fail("currency_code", "pattern", "currency_code must be a three-letter ISO 4217 code")
    if not order.lines:
        fail("lines", "min_items", "an order needs at least one line")

    known = catalog.lookup({line.sku for line in order.lines})
    seen: set[str] = set()
    for index, line in enumerate(order.lines):
        path = f"lines[{index}]"
        if line.quantity <= 0:
            fail(f"{path}.quantity", "gt", "quantity must be positive")
        if line.unit_price.currency_code != order.currency_code:
            fail(
                f"{path}.unit_price.currency_code",
                "order.currency_consistent",
                f"price is in {line.unit_price.currency_code}, the order in {order.currency_code}",
            )
        if line.unit_price.amount < 0:
            fail(f"{path}.unit_price", "gte", "a price cannot be negative")
        if line.sku in seen:
            fail(f"{path}.sku", "order.sku_unique", f"SKU {line.sku!r} is on another line")
        seen.add(line.sku)
        item = known.get(line.sku)
        if item is None:
            fail(f"{path}.sku", "sku_exists", f"SKU {line.sku!r} does not exist")
        elif not item.active:
            fail(f"{path}.sku", "sku_active", f"SKU {line.sku!r} can no longer be ordered")
    return violations


def validate_order(order: OrderInput, catalog: Catalog) -> None:
    """Raise kit InvalidArgument naming every broken rule; return when the order is valid."""
    violations = order_violations(order, catalog)
    if violations:
        raise invalid_order(violations)


def _address_gaps(address: Address) -> list[tuple[str, str]]:
    """Missing parts of a ship-to address; blank (whitespace-only) counts as missing."""
    gaps = [
        (name, f"ship_to.{name} is required")
        for name in ("name", "city", "postal_code")
        if not getattr(address, name).strip()
    ]
    if not address.lines or not address.lines[0].strip():
        gaps.append(("lines[0]", "the first street line is required"))
    gaps += [
        (f"lines[{index}]", "street lines cannot be blank")
        for index, text in enumerate(address.lines)
        if index > 0 and not text.strip()
    ]
    if not _COUNTRY.match(address.country_code):
        gaps.append(("country_code", "country_code must be a two-letter ISO 3166-1 code"))
    return gaps
