"""`crossdock demo`: sample orders through the partner REST API, followed until they settle.

Each order is a POST /v1/orders with the demo key and an Idempotency-Key; then every order is
polled until it reaches a final status (completed, cancelled, exception) or the timeout passes.
A progress bar shows how many settled; a table sums up each order's shipments and invoices.
"""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from localmesh.seed import CURRENCY, DEMO_ITEMS
from localmesh.table import render

FINAL_STATUSES = frozenset({"COMPLETED", "CANCELLED", "EXCEPTION"})
STATUS_PREFIX = "ORDER_STATUS_"
SHIP_TO = (
    ("Ada Lovelace", "12 Analytical Ave", "Boston", "MA", "02110"),
    ("Grace Hopper", "400 Compiler St", "Arlington", "VA", "22201"),
    ("Alan Turing", "7 Enigma Rd", "Seattle", "WA", "98101"),
    ("Katherine Johnson", "1 Orbit Blvd", "Houston", "TX", "77058"),
)


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


@dataclass
class PartnerApi:
    """The few partner REST calls the demo makes (stdlib HTTP: no extra dependency)."""

    base_url: str
    api_key: str
    timeout: float = 10.0

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")[:300]) from None

    def list_for_order(self, path: str, key: str, order_id: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"orderId": order_id})
        try:
            found = self.call("GET", f"{path}?{query}").get(key, [])
        except ApiError:
            return []  # e.g. 503 while that service is not part of the mesh
        return list(found)


@dataclass
class DemoOrder:
    external_id: str
    order_id: str = ""
    status: str = "PLACING"
    shipments: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def settled(self) -> bool:
        return self.status in FINAL_STATUSES or bool(self.error)


def sample_order(external_id: str, rng: random.Random) -> dict[str, Any]:
    """A CreateOrder body (lowerCamelCase JSON) for 1-3 of the seeded demo items."""
    name, street, city, region, postal = rng.choice(SHIP_TO)
    lines = []
    for item in rng.sample(list(DEMO_ITEMS), rng.randint(1, 3)):
        cents = item.unit_price_cents
        lines.append(
            {
                "sku": item.sku,
                "quantity": str(rng.randint(1, 3)),
                "unitPrice": {
                    "currencyCode": CURRENCY,
                    "units": str(cents // 100),
                    "nanos": (cents % 100) * 10_000_000,
                },
            }
        )
    return {
        "externalOrderId": external_id,
        "customer": {"partyId": f"CUST-{rng.randint(100, 999)}", "name": name},
        "shipTo": {
            "name": name,
            "lines": [street],
            "city": city,
            "region": region,
            "postalCode": postal,
            "countryCode": "US",
        },
        "lines": lines,
        "currencyCode": CURRENCY,
        "serviceLevel": "SERVICE_LEVEL_STANDARD",
    }


def place(api: PartnerApi, order: DemoOrder, body: dict[str, Any]) -> None:
    try:
        created = api.call("POST", "/v1/orders", body, Idempotency_Key=str(uuid.uuid4()))
    except (ApiError, OSError) as error:
        order.error = str(error)
        return
    order.order_id = created["order"]["orderId"]
    order.status = created["order"]["status"].removeprefix(STATUS_PREFIX)


def refresh(api: PartnerApi, order: DemoOrder) -> None:
    if not order.order_id or order.error:
        return
    try:
        found = api.call("GET", f"/v1/orders/{order.order_id}")["order"]
    except (ApiError, OSError):
        return  # transient: next poll
    order.status = found["status"].removeprefix(STATUS_PREFIX)
    shipments = api.list_for_order("/v1/shipments", "shipments", order.order_id)
    order.shipments = [
        f"{s.get('carrier', '?')} {s.get('trackingNumber', '')} "
        f"{s.get('status', '').removeprefix('SHIPMENT_STATUS_')}".strip()
        for s in shipments
    ]
    invoices = api.list_for_order("/v1/invoices", "invoices", order.order_id)
    order.invoices = [str(i.get("invoiceNumber", i.get("invoiceId", ""))) for i in invoices]


def progress_bar(orders: Sequence[DemoOrder], elapsed: float, width: int = 30) -> str:
    done = sum(order.settled for order in orders)
    filled = int(width * done / max(len(orders), 1))
    counts = Counter(order.status if not order.error else "FAILED" for order in orders)
    statuses = ", ".join(f"{count} {status.lower()}" for status, count in sorted(counts.items()))
    bar = "#" * filled + "." * (width - filled)
    return f"[{bar}] {done}/{len(orders)} settled  {elapsed:4.0f}s  {statuses}"


def summary(orders: Sequence[DemoOrder]) -> str:
    rows = [
        [
            order.order_id or "-",
            order.external_id,
            order.status if not order.error else "FAILED: " + order.error[:60],
            "; ".join(order.shipments) or "-",
            ", ".join(order.invoices) or "-",
        ]
        for order in orders
    ]
    return render(["order", "external id", "status", "shipments", "invoice"], rows)


def run_demo(
    api: PartnerApi,
    *,
    count: int,
    timeout_seconds: float,
    poll_seconds: float = 1.0,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
    seed: int | None = None,
) -> list[DemoOrder]:
    """Place `count` orders, follow them until settled or timed out; returns them."""
    rng = random.Random(seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    orders = [DemoOrder(f"DEMO-{stamp}-{index:02d}") for index in range(1, count + 1)]
    print(f"placing {count} orders through {api.base_url}/v1/orders", file=out)
    for order in orders:
        place(api, order, sample_order(order.external_id, rng))
    started = clock()
    interactive = out.isatty()
    last_line = 0.0
    while True:
        for order in orders:
            if not order.settled:
                refresh(api, order)
        elapsed = clock() - started
        bar = progress_bar(orders, elapsed)
        if interactive:
            print("\r" + bar + "   ", end="", file=out, flush=True)
        elif elapsed - last_line >= 5 or all(order.settled for order in orders):
            print(bar, file=out, flush=True)
            last_line = elapsed
        if all(order.settled for order in orders) or elapsed >= timeout_seconds:
            break
        time.sleep(poll_seconds)
    if interactive:
        print(file=out)
    print(file=out)
    print(summary(orders), file=out)
    waiting = [order for order in orders if not order.settled]
    if waiting:
        stuck = Counter(order.status for order in waiting)
        print(
            f"\ntimed out after {timeout_seconds:.0f}s: {len(waiting)} order(s) still in "
            + ", ".join(f"{status.lower()} ({count})" for status, count in stuck.items())
            + ". Orders stay released without the warehouse simulator and picked without the"
            " shipment service; the services' logs are in the data dir's logs/ folder.",
            file=out,
        )
    return orders
