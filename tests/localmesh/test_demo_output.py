"""The demo's sample orders are well formed, and its progress and summary say where orders are."""

from __future__ import annotations

import random

from localmesh.demo import DemoOrder, progress_bar, sample_order, summary
from localmesh.seed import DEMO_ITEMS


def test_sample_orders_use_seeded_items_once_each_in_one_currency() -> None:
    rng = random.Random(3)
    known = {item.sku: item for item in DEMO_ITEMS}
    for index in range(20):
        body = sample_order(f"DEMO-{index}", rng)
        skus = [line["sku"] for line in body["lines"]]
        assert len(skus) == len(set(skus)) and set(skus) <= set(known)
        for line in body["lines"]:
            price = line["unitPrice"]
            assert price["currencyCode"] == body["currencyCode"]
            cents = int(price["units"]) * 100 + price["nanos"] // 10_000_000
            assert cents == known[line["sku"]].unit_price_cents


def test_progress_and_summary_show_settled_and_stuck_orders() -> None:
    orders = [
        DemoOrder("A", "ord_A", "COMPLETED", ["sandbox SBX1 DELIVERED"], ["INV-2026-000001"]),
        DemoOrder("B", "ord_B", "SHIPPED"),
        DemoOrder("C", error="HTTP 503: unavailable"),
    ]
    bar = progress_bar(orders, 12.0, width=10)
    assert bar.startswith("[######....] 2/3 settled")
    assert "1 completed" in bar and "1 shipped" in bar and "1 failed" in bar
    table = summary(orders)
    assert "INV-2026-000001" in table and "sandbox SBX1 DELIVERED" in table
    assert "FAILED: HTTP 503" in table
