"""The partner API's promises over real HTTP against the running mesh: Stripe-style idempotency,
limits (429 with rate headers, 413), precise 400s for bad input, and signed webhooks that the
sample verifier shipped in the docs accepts (and rejects when tampered, stale or replayed).

Each test that spends a partner's rate budget uses a partner of its own (admin API), so tests
sharing the session mesh do not throttle each other.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import importlib.util
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localmesh import Mesh
from localmesh.demo import sample_order
from tests.e2e.test_partner_api import Partner, new_partner
from tests.fixtures.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def load_verifier() -> Any:
    """The sample verifier exactly as docs/webhooks.md ships it."""
    path = REPO / "docs" / "examples" / "verify_webhook.py"
    spec = importlib.util.spec_from_file_location("verify_webhook", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh(mesh: Mesh) -> Partner:
    return Partner(mesh, new_partner(mesh, f"contract partner {uuid.uuid4().hex[:6]}"))


def order_body(external_id: str) -> dict[str, Any]:
    return sample_order(external_id, random.Random(external_id))


def test_fifty_concurrent_posts_with_one_key_create_one_order(mesh: Mesh, fresh: Partner) -> None:
    key = str(uuid.uuid4())
    body = order_body(f"IDEM-{key[:8]}")

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=mesh.gateway_url, timeout=30) as client:
            return client.post(
                "/v1/orders",
                json=body,
                headers={**fresh.http.headers, "Idempotency-Key": key},
            )

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(post, range(50)))
    codes = sorted({a.status_code for a in answers})
    assert set(codes) <= {201, 409}, [(a.status_code, a.text) for a in answers]
    created = [a for a in answers if a.status_code == 201]
    assert created, codes
    order_ids = {a.json()["order"]["orderId"] for a in created}
    assert len(order_ids) == 1
    assert sum(a.headers.get("Idempotent-Replayed") != "true" for a in created) == 1

    # A retry replays the stored response; the same key with another body is 422.
    replay = fresh.http.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["order"]["orderId"] in order_ids
    other = fresh.http.post(
        "/v1/orders", json=order_body("IDEM-OTHER"), headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422, other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    listed = fresh.get("/v1/orders").json()["orders"]
    assert [o["orderId"] for o in listed if o["externalOrderId"] == body["externalOrderId"]] == [
        order_ids.pop()
    ]


def test_a_burst_beyond_the_bucket_gets_429_with_rate_headers(mesh: Mesh) -> None:
    burst = Partner(mesh, new_partner(mesh, f"burst partner {uuid.uuid4().hex[:6]}"))

    # Writes have the smaller bucket; admission comes before the body is even parsed, so
    # malformed bodies spend tokens as fast as the gateway can answer. Kept-alive connections:
    # a new connection per request is slow enough on a loaded machine for the refill to keep up.
    client = httpx.Client(
        base_url=mesh.gateway_url,
        timeout=30,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
    )

    def post(_: int) -> httpx.Response:
        return client.post(
            "/v1/orders",
            content=b"{",
            headers={
                **burst.http.headers,
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
            },
        )

    with client, concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(post, range(400)))
    limited = [a for a in answers if a.status_code == 429]
    assert limited, sorted({a.status_code for a in answers})
    throttled = limited[0]
    assert int(throttled.headers["Retry-After"]) >= 1
    assert int(throttled.headers["RateLimit-Remaining"]) == 0
    assert int(throttled.headers["RateLimit-Limit"]) > 0
    assert throttled.headers["content-type"].startswith("application/problem+json")
    admitted = [a for a in answers if a.status_code == 400]
    assert admitted and "RateLimit-Remaining" in admitted[0].headers


def test_an_oversized_body_is_413(fresh: Partner) -> None:
    huge = order_body("HUGE") | {"padding": "x" * 2_000_000}
    answer = fresh.post("/v1/orders", huge)
    assert answer.status_code == 413, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("raw", "pointer"),
    [
        (b'{"externalOrderId": "X",', ""),  # malformed JSON
        (json.dumps({"colour": "red"}).encode(), "colour"),  # unknown field
        (json.dumps({"lines": "three"}).encode(), "lines"),  # wrong type
        (json.dumps({"lines": [{"quantity": "many"}]}).encode(), "lines"),  # wrong nested type
        (json.dumps({"status": "ORDER_STATUS_COMPLETED"}).encode(), "status"),  # server-owned
    ],
)
def test_bad_input_is_400_with_field_pointers(fresh: Partner, raw: bytes, pointer: str) -> None:
    answer = fresh.http.post(
        "/v1/orders",
        content=raw,
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert problem["grpc_code"] == "INVALID_ARGUMENT" and problem["correlation_id"]
    if pointer:
        assert any(pointer in v["field"] for v in problem["violations"]), problem
    assert "Traceback" not in answer.text


class Receiver:
    """A partner's webhook endpoint: stores every delivery (raw body and headers)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((body, dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def test_signed_webhooks_pass_the_documented_verifier_and_tampering_fails(
    mesh: Mesh, receiver: Receiver
) -> None:
    verifier = load_verifier()
    partner = Partner(mesh, new_partner(mesh, f"webhook partner {uuid.uuid4().hex[:6]}"))
    created = partner.post(
        "/v1/webhooks/subscriptions",
        {"url": receiver.url, "eventTypes": ["crossdock.order.placed.v1"]},
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    placed = partner.post("/v1/orders", order_body(f"HOOK-{uuid.uuid4().hex[:6]}"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order"]["orderId"]
    wait_until(lambda: len(receiver.deliveries), lambda n: n >= 1, timeout=30, interval=0.5)
    assert receiver.deliveries, "no delivery arrived"
    body, headers = receiver.deliveries[0]
    signature = headers["Crossdock-Signature"]

    seen: set[str] = set()
    delivery = verifier.verify_webhook(body, signature, secret, seen)
    assert delivery["type"] == "crossdock.order.placed.v1"
    assert delivery["id"] == headers["Crossdock-Delivery-Id"]
    assert delivery["data"]["order"]["orderId"] == order_id

    with pytest.raises(verifier.DuplicateDelivery):  # the same delivery again
        verifier.verify_webhook(body, signature, secret, seen)
    tampered = body.replace(order_id.encode(), b"ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P")
    with pytest.raises(verifier.WebhookRejected, match="signature"):
        verifier.verify_webhook(tampered, signature, secret, set())
    stale_t = str(int(time.time()) - 3600)
    stale = "t=" + stale_t + "," + signature.split(",", 1)[1]
    with pytest.raises(verifier.WebhookRejected, match="timestamp"):
        verifier.verify_webhook(body, stale, secret, set())
    with pytest.raises(verifier.WebhookRejected, match="signature"):
        verifier.verify_webhook(body, signature, "whsec_not_the_secret", set())
