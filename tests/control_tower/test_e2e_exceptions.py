"""End to end on a local mesh of its own (the same launcher as `make run`): a label booking that
keeps failing (the sandbox carrier answers after 1 s, shipment gives it 0.3 s once) appears in
the control tower's exceptions within 2 s of the order showing EXCEPTION, with the right kind
and owner; the operator's retries through the tower then book the label and the order
completes; the retries are in the audit trail and on the order's timeline.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc

from localmesh import Mesh, MeshOptions, start_mesh
from localmesh.demo import sample_order
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Every booking attempt times out once: the shipment is LABEL_FAILED, its order EXCEPTION.
FAILING_LABELS = {
    "CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_SANDBOX_LABEL_DELAY_SECONDS": "1",
    "CROSSDOCK_SHIPMENT_LABEL_TIMEOUT_SECONDS": "0.3",
    "CROSSDOCK_SHIPMENT_LABEL_MAX_ATTEMPTS": "1",
}


@pytest.fixture(scope="module")
def failing_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    options = MeshOptions(data_dir=tmp_path_factory.mktemp("failing-labels"), ports="free")
    saved = {name: os.environ.get(name) for name in FAILING_LABELS}
    os.environ.update(FAILING_LABELS)
    try:
        with start_mesh(options) as running:
            yield running
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_failing_label_appears_within_2s_and_the_towers_retry_completes_the_order(
    failing_mesh: Mesh,
) -> None:
    http = httpx.Client(
        base_url=failing_mesh.gateway_url,
        headers={"Authorization": f"Bearer {failing_mesh.demo_api_key}"},
        timeout=15,
    )
    body = sample_order(f"EXC-{uuid.uuid4().hex[:12]}", random.Random(7))
    created = http.post("/v1/orders", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert created.status_code == 201, created.text
    order_id = str(created.json()["order"]["orderId"])

    def status() -> str:
        answer = http.get(f"/v1/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["order"]["status"]).removeprefix("ORDER_STATUS_")

    assert wait_until(status, lambda s: s == "EXCEPTION", timeout=60) == "EXCEPTION"

    with grpc.insecure_channel(failing_mesh.grpc_targets["control-tower"]) as channel:
        tower = pb_grpc.TowerServiceStub(channel)

        def failures() -> list[pb.Exception]:
            answer = tower.ListExceptions(
                pb.ListExceptionsRequest(
                    kind=pb.EXCEPTION_KIND_LABEL_FAILED, state=pb.EXCEPTION_STATE_OPEN
                ),
                timeout=5,
            )
            return [x for x in answer.exceptions if x.order_id == order_id]

        # Within 2 s of the order showing EXCEPTION (the same owner event caused both).
        found = wait_until(failures, lambda got: len(got) == 1, timeout=2, interval=0.1)
        (failure,) = found
        assert (failure.owner, failure.subject_kind) == ("shipment", "shipment")

        # The operator retries through the tower until the carrier's booking lands.
        retries = 0
        while status() != "COMPLETED" and retries < 8:
            current = tower.GetException(
                pb.GetExceptionRequest(exception_id=failure.exception_id), timeout=5
            )
            if current.exception.state == pb.EXCEPTION_STATE_CLOSED:
                break
            try:
                tower.RetryException(
                    pb.RetryExceptionRequest(
                        exception_id=failure.exception_id, operator="e2e", reason="carrier back"
                    ),
                    timeout=10,
                )
                retries += 1
            except grpc.RpcError as error:  # closed in between: the manifest won the race
                assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error
                break
            wait_until(status, lambda s: s != "EXCEPTION", timeout=3)
        assert retries >= 1
        assert wait_until(status, lambda s: s == "COMPLETED", timeout=120) == "COMPLETED"

        closed = wait_until(
            lambda: tower.GetException(
                pb.GetExceptionRequest(exception_id=failure.exception_id), timeout=5
            ),
            lambda got: got.exception.state == pb.EXCEPTION_STATE_CLOSED,
            timeout=10,
        )
        assert closed.exception.closed_by.startswith("event crossdock.shipment.manifested.v1 ")
        assert [a.operator for a in closed.audit if a.succeeded] == ["e2e"] * retries
        timeline = tower.GetTimeline(pb.GetTimelineRequest(reference=order_id), timeout=10)
        subjects = [e.subject for e in timeline.entries]
        assert subjects.count("exception.retry") == retries
        assert subjects.index("exception.retry") < subjects.index(
            "crossdock.shipment.manifested.v1"
        )
    http.close()
