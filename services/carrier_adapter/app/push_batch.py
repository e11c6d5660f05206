"""Several carrier pushes at once (IngestWebhooks): each verified alone, all recorded in one
transaction.

Each push gets exactly the outcome IngestWebhook would have given it: its signature and body are
checked on their own (a forged push is refused, its neighbours are not), and its scans are
recorded under its own savepoint (`UnitsOfWork.run_batch`), so a push that fails while recording
rolls back alone. What the batch saves is the per-call and per-transaction cost: one commit (one
fsync) for the burst instead of one per push.

Recording takes a fast path first, as the kit's consumers do: every push in one unit of work
with no savepoints and one dedupe INSERT for all their scans (`record_all`). A push failing
while recording is rare (a value the database or the event refuses); then that unit of work is
rolled back whole and the pushes are recorded again the careful way, one savepoint each, so each
still gets exactly its own outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.app.tracking import IngestResult, parse, record_all, record_tracking
from services.carrier_adapter.domain.model import InboundWebhook, WebhookBatch
from services.kit.request_context import new_correlation_id
from services.kit.uow import ItemResult, UnitOfWork, UnitsOfWork

__all__ = ["PushOutcome", "ingest_pushes"]

# One push's outcome: what IngestWebhook would have returned, or the error it would have raised.
PushOutcome = IngestResult | BaseException


@dataclass(frozen=True)
class _Parsed:
    batch: WebhookBatch
    received_at: datetime
    correlation_id: str


def _record(uow: UnitOfWork, parsed: _Parsed) -> IngestResult:
    return record_tracking(uow, parsed.batch, parsed.received_at, parsed.correlation_id)


async def ingest_pushes(
    units: UnitsOfWork,
    registry: ConnectorRegistry,
    received_at: datetime,
    pushes: Sequence[tuple[str, InboundWebhook, str]],
) -> list[PushOutcome]:
    """The outcome of each (carrier, push, correlation id), in order."""
    outcomes: list[PushOutcome | None] = [None] * len(pushes)
    parsed: list[_Parsed] = []
    positions: list[int] = []
    for index, (carrier, webhook, correlation_id) in enumerate(pushes):
        try:
            batch = parse(registry.for_carrier(carrier), carrier, webhook)
        except Exception as error:  # the push's own error, for its sender alone
            outcomes[index] = error
            continue
        parsed.append(_Parsed(batch, received_at, correlation_id or new_correlation_id()))
        positions.append(index)
    if parsed:
        for index, outcome in zip(positions, await _record_pushes(units, parsed), strict=True):
            outcomes[index] = outcome
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


async def _record_pushes(units: UnitsOfWork, parsed: list[_Parsed]) -> list[PushOutcome]:
    """Each parsed push's outcome: all in one unit of work, or one savepoint each if one fails."""
    try:
        return list(await units.run(_record_all, parsed))
    except Exception as error:
        if len(parsed) == 1:
            return [error]  # what its own savepoint would have said
    # Why not always savepoints: a SAVEPOINT and a RELEASE plus a dedupe INSERT per push cost
    # more than the push's own statements; this path runs only once a push has failed.
    return [_outcome(result) for result in await units.run_batch(_record, parsed)]


def _outcome(result: ItemResult[_Parsed, IngestResult]) -> PushOutcome:
    if result.error is not None:
        return result.error
    assert result.value is not None
    return result.value


def _record_all(uow: UnitOfWork, parsed: list[_Parsed]) -> list[IngestResult]:
    received_at = parsed[0].received_at  # one call's pushes share their arrival time
    return record_all(uow, [(push.batch, push.correlation_id) for push in parsed], received_at)
