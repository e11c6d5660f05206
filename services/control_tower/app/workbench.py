"""The exceptions workbench's use cases: list and show exceptions, and the operator's actions.

Every action goes through the owner's RPC (services.control_tower.adapters.clients) and is
audited — who, when, why, the owner's call and its answer — in the same transaction as the
exception's state change. The tower never writes another service's state:
- retry: the owner tries the failed step again; the exception stays open until the owner's
  events show it fixed (a manifest after a failed label, an order's exception_cleared);
- map code: carrier-adapter maps the code and normalizes its scans again; its code_mapped
  event closes the exception;
- redrive: the consuming service's DeadLetterService applies the letter in place; applied (or
  already applied), the exception closes with its audit row;
- resolve: closes the exception by hand, with a note; no owner call.

An owner's refusal is audited (committed), then answered: a transient one as UNAVAILABLE, any
other as FAILED_PRECONDITION carrying the owner's code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from services.control_tower.adapters.clients import (
    CodeMapping,
    DeadLetterClients,
    OwnerClients,
    OwnerRefused,
)
from services.control_tower.adapters.store import exception_store as store
from services.control_tower.domain.exceptions import (
    KINDS,
    Action,
    AuditEntry,
    ExceptionKind,
    ExceptionView,
    Signal,
    closed_by_operator,
    require_code_mappable,
    require_open,
    require_redrivable,
    require_retryable,
)
from services.kit.errors import FailedPrecondition, NotFound, Unavailable
from services.kit.paging import page_size
from services.kit.uow import UnitOfWork, UnitsOfWork


@dataclass(frozen=True)
class ExceptionSettings:
    """Each kind's SLA in seconds (how long it may stay open before it is a breach)."""

    slas: dict[ExceptionKind, float] = field(default_factory=dict)

    def sla_of(self, kind: ExceptionKind) -> float:
        return self.slas.get(kind, KINDS[kind].default_sla)


@dataclass(frozen=True)
class ListQuery:
    """ListExceptions' question: a kind and a state (None: any), and a page."""

    kind: ExceptionKind | None = None
    open_only: bool | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class Act:
    """Who acts on which exception, and why."""

    exception_id: int
    operator: str
    reason: str


def list_exceptions(uow: UnitOfWork, query: ListQuery) -> tuple[list[ExceptionView], str]:
    return store.page(
        uow.conn,
        kind=query.kind,
        open_only=query.open_only,
        page_token=query.page_token,
        size=page_size(query.page_size),
    )


@dataclass(frozen=True)
class OpenExceptions:
    """The open exceptions now: how many per (kind, owner), the oldest one's age per kind."""

    counts: dict[tuple[ExceptionKind, str], int]
    oldest_age: dict[ExceptionKind, float]


def open_exceptions(uow: UnitOfWork, now: float) -> OpenExceptions:
    """Counts and ages of the open exceptions (the gauges)."""
    counts: dict[tuple[ExceptionKind, str], int] = {}
    oldest: dict[ExceptionKind, float] = {}
    for found in store.open_rows(uow.conn):
        key = (found.kind, found.owner)
        counts[key] = counts.get(key, 0) + 1
        oldest[found.kind] = max(oldest.get(found.kind, 0.0), found.age(now))
    return OpenExceptions(counts, oldest)


def _found(uow: UnitOfWork, exception_id: int, *, for_update: bool = False) -> ExceptionView:
    found = store.get(uow.conn, exception_id, for_update=for_update)
    if found is None:
        raise NotFound(
            f"no exception {exception_id}",
            resource_type="exception",
            resource_name=str(exception_id),
        )
    return found


def get_exception(uow: UnitOfWork, exception_id: int) -> tuple[ExceptionView, list[AuditEntry]]:
    """One exception and its audit trail; NOT_FOUND when unknown."""
    return _found(uow, exception_id), store.audit_of(uow.conn, exception_id)


def _audited(
    uow: UnitOfWork,
    act: Act,
    action: Action,
    owner_call: str,
    outcome: tuple[bool, str],
    now: float,
) -> tuple[ExceptionView, AuditEntry]:
    """Write the action's audit row (with the exception's order, for its timeline)."""
    succeeded, result = outcome
    found = _found(uow, act.exception_id)
    entry = AuditEntry(
        exception_id=act.exception_id,
        action=action,
        operator=act.operator,
        acted_at=now,
        reason=act.reason,
        owner_call=owner_call,
        succeeded=succeeded,
        result=result,
        order_id=found.order_id,
    )
    return found, replace(entry, audit_id=store.add_audit(uow.conn, entry))


def _resolve(uow: UnitOfWork, act: Act, now: float) -> tuple[ExceptionView, AuditEntry]:
    """Close by hand and audit it, in one transaction."""
    found = _found(uow, act.exception_id, for_update=True)
    require_open(found)  # re-checked in the transaction: an event may have closed it
    _, entry = _audited(uow, act, Action.RESOLVE, "", (True, "closed by hand"), now)
    store.close_by_operator(uow.conn, act.exception_id, now, closed_by_operator(act.operator))
    return _found(uow, act.exception_id), entry


def _redriven(
    uow: UnitOfWork, act: Act, call: str, result: str, acted_at: float, now: float
) -> tuple[ExceptionView, AuditEntry]:
    """Audit an applied redrive and close the exception (its letter is gone), together."""
    _, entry = _audited(uow, act, Action.REDRIVE, call, (True, result), acted_at)
    store.close_by_operator(
        uow.conn, act.exception_id, now, f"{closed_by_operator(act.operator)} (redrive {result})"
    )
    return _found(uow, act.exception_id), entry


def sync_dead_letters(uow: UnitOfWork, letters: Sequence[Signal], now: float) -> None:
    """The DLQ as listed just now: new letters open, vanished ones close."""
    store.sync_dead_letters(uow.conn, letters, now)


def _refusal(refused: OwnerRefused) -> Exception:
    message = f"{refused.call} answered {refused.code}: {refused.details}"
    metadata = {"owner_call": refused.call, "owner_code": refused.code}
    if refused.transient:
        return Unavailable(message, reason="OWNER_UNAVAILABLE", metadata=metadata)
    return FailedPrecondition(message, reason="OWNER_REFUSED", metadata=metadata)


class Workbench:
    """The operator's actions: read in one unit of work, call the owner, audit in another."""

    def __init__(
        self,
        units: UnitsOfWork,
        owners: OwnerClients,
        clock: Callable[[], float] = time.time,
        dead_letters: DeadLetterClients | None = None,
    ) -> None:
        self._units = units
        self._owners = owners
        self._clock = clock
        self._dead_letters = dead_letters if dead_letters is not None else DeadLetterClients({})

    async def _audit(
        self, act: Act, action: Action, call: str, outcome: str | OwnerRefused, acted_at: float
    ) -> tuple[ExceptionView, AuditEntry]:
        """Audit at `acted_at`, when the operator acted: before the owner's call, so the
        action precedes its effects on the timeline (the owner commits them during the call)."""
        if isinstance(outcome, OwnerRefused):
            refused = (False, str(outcome))
            await self._units.run(_audited, act, action, call, refused, acted_at)
            raise _refusal(outcome)
        return await self._units.run(_audited, act, action, call, (True, outcome), acted_at)

    async def retry(self, act: Act) -> tuple[ExceptionView, AuditEntry]:
        acted_at = self._clock()
        found = await self._units.run(_found, act.exception_id)
        call = require_retryable(found)
        try:
            outcome: str | OwnerRefused = await self._owners.retry(call, found.retry_subject)
        except OwnerRefused as refused:
            outcome = refused
        return await self._audit(act, Action.RETRY, call, outcome, acted_at)

    async def map_code(self, act: Act, status: int) -> tuple[ExceptionView, AuditEntry]:
        acted_at = self._clock()
        found = await self._units.run(_found, act.exception_id)
        carrier, code = require_code_mappable(found)
        call = "carrier-adapter.MapCarrierCode"
        mapping = CodeMapping(carrier, code, status, act.reason, act.operator)
        try:
            outcome: str | OwnerRefused = await self._owners.map_code(mapping)
        except OwnerRefused as refused:
            outcome = refused
        return await self._audit(act, Action.MAP_CODE, call, outcome, acted_at)

    async def redrive(self, act: Act) -> tuple[ExceptionView, AuditEntry]:
        """Redrive the letter through its consuming service; applied (or a duplicate), the
        exception closes with the audit row."""
        acted_at = self._clock()
        found = await self._units.run(_found, act.exception_id)
        durable, sequence = require_redrivable(found)
        call = DeadLetterClients.call_of(found.owner)
        try:
            result = await self._dead_letters.redrive(
                found.owner, durable, sequence, act.operator, act.reason
            )
        except OwnerRefused as refused:
            return await self._audit(act, Action.REDRIVE, call, refused, acted_at)
        return await self._units.run(_redriven, act, call, result, acted_at, self._clock())

    async def resolve(self, act: Act) -> tuple[ExceptionView, AuditEntry]:
        return await self._units.run(_resolve, act, self._clock())
