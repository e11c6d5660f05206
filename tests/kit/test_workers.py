"""The kit's one polling worker: run while there is work, sleep when idle, wake on demand, back
off after failures, and drain on stop."""

from __future__ import annotations

import asyncio

import pytest

from services.kit.workers import PollingWorker, backoff_delay


async def settle(predicate: object, seconds: float = 5.0) -> None:
    """Yield to the loop until `predicate()` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def test_it_runs_again_at_once_while_there_is_work_then_sleeps() -> None:
    queue = [3, 2, 1, 0]
    runs: list[int] = []

    async def work() -> int:
        runs.append(len(runs))
        return queue.pop(0) if queue else 0

    worker = PollingWorker("drain-queue", work, interval=3600)
    worker.start()
    await settle(lambda: len(runs) == 4)
    await asyncio.sleep(0.05)
    assert len(runs) == 4  # the fourth run found nothing: asleep for an hour now
    worker.wake()
    await settle(lambda: len(runs) == 5)
    await worker.stop()


async def test_failures_back_off_and_a_success_resets_the_count() -> None:
    outcomes: list[object] = [RuntimeError("down"), RuntimeError("down"), 0]
    seen_failures: list[int] = []
    worker: PollingWorker

    async def work() -> int:
        seen_failures.append(worker.failures)
        outcome = outcomes.pop(0) if outcomes else 0
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)  # type: ignore[call-overload]

    worker = PollingWorker("flaky", work, interval=0.01, max_backoff=0.02)
    worker.start()
    await settle(lambda: len(seen_failures) >= 4)
    await worker.stop()
    assert seen_failures[:3] == [0, 1, 2]
    assert worker.failures == 0


async def test_stop_lets_the_run_in_hand_finish_then_runs_the_final_job() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    events: list[str] = []

    async def work() -> int:
        started.set()
        await release.wait()
        events.append("run finished")
        return 0

    async def flush() -> None:
        events.append("final flush")

    worker = PollingWorker("drain", work, interval=3600, at_stop=flush)
    worker.start()
    await started.wait()
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.02)
    assert not stopping.done()  # waits for the in-flight run
    release.set()
    await stopping
    assert events == ["run finished", "final flush"]
    assert not worker.running
    await worker.stop()  # idempotent: the final job does not run twice
    assert events == ["run finished", "final flush"]


async def test_a_run_that_outlives_the_drain_timeout_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def work() -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    worker = PollingWorker("stuck", work, interval=1, drain_timeout=0.05)
    worker.start()
    await asyncio.sleep(0.01)
    await worker.stop()
    assert cancelled.is_set()


def test_backoff_is_capped_full_jitter() -> None:
    assert backoff_delay(0, base=1, cap=10) == 0
    for failures in range(1, 40):
        delay = backoff_delay(failures, base=1, cap=10)
        assert 0 <= delay <= min(10, 2 ** (failures - 1))


def test_a_worker_needs_a_positive_interval() -> None:
    async def work() -> int:
        return 0

    with pytest.raises(ValueError, match="positive"):
        PollingWorker("bad", work, interval=0)
