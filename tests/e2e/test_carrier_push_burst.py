"""A burst of carrier pushes through the partner REST API of the running mesh: the gateway
coalesces them into few IngestWebhooks calls, and every push still gets its own answer.

The pushes are signed with a secret carrier-adapter does not hold, so each must come back 401
with its own correlation id, and nothing is recorded in the shared mesh.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

import httpx

from localmesh import Mesh
from services.carrier_adapter.adapters.carriers.sandbox import webhooks

METHOD = "/crossdock.carrier.v1.CarrierAdapterService/IngestWebhooks"
BURST = 24


def served_batches(mesh: Mesh) -> float:
    """IngestWebhooks calls carrier-adapter has answered OK so far."""
    exposition = httpx.get(mesh.metrics_urls["carrier-adapter"], timeout=10).text
    pattern = re.compile(
        r'^crossdock_grpc_requests_total\{code="OK",method="' + re.escape(METHOD) + r'"\} (\S+)$',
        re.MULTILINE,
    )
    found = pattern.search(exposition)
    return float(found.group(1)) if found else 0.0


async def test_a_burst_of_pushes_shares_calls_and_each_push_gets_its_own_answer(
    mesh: Mesh,
) -> None:
    before = served_batches(mesh)
    now = datetime.now(UTC)

    async def push(client: httpx.AsyncClient, index: int) -> httpx.Response:
        body = json.dumps(
            {"id": f"evt_sbx_burst_{index}", "type": "tracking.updated", "data": {}}
        ).encode()
        headers = webhooks.sign(body, ["not-the-carrier-secret"], f"evt_sbx_burst_{index}", now)
        headers |= {"Content-Type": "application/json", "X-Correlation-Id": f"burst-{index}"}
        return await client.post(
            mesh.gateway_url + "/v1/carriers/sandbox/webhooks", content=body, headers=headers
        )

    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        answers = await asyncio.gather(*(push(client, i) for i in range(BURST)))

    for index, answer in enumerate(answers):
        assert answer.status_code == 401, answer.text
        problem = answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert problem["correlation_id"] == f"burst-{index}"
        assert problem["grpc_code"] == "UNAUTHENTICATED"
    calls = served_batches(mesh) - before
    assert 1 <= calls < BURST  # the pushes rode together, fewer calls than pushes
