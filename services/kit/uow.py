"""The unit of work every use case runs in, and the one way a service publishes a domain event.

A use case is a plain function `def cancel_order(uow, command) -> Result` (cosmicpython's
service layer). It reads and writes through `uow.conn` and announces what happened with
`uow.publish(domain_event)`. The service's one `EventMapper` turns the domain event into its
contract message and aggregate id, and the kit's outbox stores it in the same transaction
(Eventuate's per-aggregate publisher). No service builds an event protobuf, a subject or
CloudEvents headers inline.

`UnitsOfWork` runs use cases on the service's `Database`:
- `run(use_case, *args)`: one transaction, re-run whole on an optimistic `Conflict`;
- `run_batch(use_case, items)`: many items in ONE transaction (one commit, one fsync), each under
  its own savepoint, so one failing item costs only itself.

Event consumers already run inside a transaction the kit opened; their handlers get the same
unit of work with `UnitOfWork.of(conn)`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from services.kit import outbox
from services.kit.db import (
    AFTER_COMMIT_KEY,
    EVENT_MAPPER_KEY,
    UNIT_OF_WORK_KEY,
    Database,
    dbapi_cursor,
)
from services.kit.errors import Conflict
from services.kit.request_context import current_correlation_id

T = TypeVar("T")
E = TypeVar("E")
I = TypeVar("I")  # noqa: E741 - an item of a batch
P = ParamSpec("P")

# A mapping function's answer: the contract message and its aggregate id (`ce-subject`, and the
# key that keeps one aggregate's events in order).
Mapped = tuple[Message, str]


class EventMapper:
    """A service's one mapping from its domain events to contract messages.

    Lives in the service's `adapters/contracts.py`:

        mapper = EventMapper("order")

        @mapper.maps(OrderPlaced)
        def _placed(event: OrderPlaced) -> Mapped:
            return events_pb.OrderPlaced(...), event.order_id
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._mappers: dict[type[Any], Callable[[Any], Mapped]] = {}

    def maps(self, event_type: type[E]) -> Callable[[Callable[[E], Mapped]], Callable[[E], Mapped]]:
        """Decorator registering the function that maps `event_type` (and its subclasses)."""

        def register(fn: Callable[[E], Mapped]) -> Callable[[E], Mapped]:
            self.register(event_type, fn)
            return fn

        return register

    def register(self, event_type: type[E], fn: Callable[[E], Mapped]) -> None:
        if event_type in self._mappers:
            raise ValueError(f"{event_type.__name__} is already mapped for {self.service}")
        self._mappers[event_type] = fn

    def event_types(self) -> tuple[type[Any], ...]:
        return tuple(self._mappers)

    def to_message(self, event: object) -> Mapped:
        """The contract message and aggregate id of a domain event; TypeError if unmapped."""
        for cls in type(event).__mro__:
            fn = self._mappers.get(cls)
            if fn is not None:
                message, aggregate_id = fn(event)
                return message, aggregate_id
        raise TypeError(f"{self.service} has no event mapping for {type(event).__name__}")


class UnitOfWork:
    """One transaction of one service: its connection, its publisher and its after-commit hooks."""

    __slots__ = ("_mapper", "conn")

    def __init__(self, conn: Connection, mapper: EventMapper | None) -> None:
        self.conn = conn
        self._mapper = mapper

    @classmethod
    def of(cls, conn: Connection) -> UnitOfWork:
        """The unit of work of the transaction `conn` belongs to (consumer handlers, workers)."""
        current = conn.info.get(UNIT_OF_WORK_KEY)
        if isinstance(current, UnitOfWork) and current.conn is conn:
            return current
        uow = cls(conn, conn.info.get(EVENT_MAPPER_KEY))
        conn.info[UNIT_OF_WORK_KEY] = uow
        return uow

    def publish(self, event: object, *, correlation_id: str | None = None) -> str:
        """Append a domain event to the outbox through the service's mapper; returns its id.

        The correlation id defaults to the one of the call or event being handled.
        """
        if self._mapper is None:
            raise RuntimeError(
                "this service's Database has no EventMapper: pass event_mapper= to start_events"
            )
        message, aggregate_id = self._mapper.to_message(event)
        if correlation_id is None:
            correlation_id = current_correlation_id() or ""
        return outbox.append(self.conn, message, aggregate_id, correlation_id=correlation_id)

    def publish_all(self, events: Iterable[object], *, correlation_id: str | None = None) -> None:
        for event in events:
            self.publish(event, correlation_id=correlation_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the event loop once this transaction commits (never on rollback)."""
        self.conn.info[AFTER_COMMIT_KEY].append(callback)


@dataclass(frozen=True, slots=True)
class ItemResult(Generic[I, T]):
    """What a batch did with one item: its value, or the error that rolled back only that item."""

    item: I
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# PostgreSQL's deadlock_detected and serialization_failure: the database chose this transaction
# as the victim of a race with another one. Like a lost compare-and-set, re-running it is right.
_RACE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_a_race(error: BaseException) -> bool:
    """A `Conflict`, or a database error that means the same (deadlock, serialization failure)."""
    if isinstance(error, Conflict):
        return True
    return (
        isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in _RACE_SQLSTATES
    )


def _as_conflict(error: BaseException) -> Conflict:
    if isinstance(error, Conflict):
        return error
    return Conflict(f"the database aborted a racing transaction: {error.orig}")  # type: ignore[attr-defined]


class UnitsOfWork:
    """Runs a service's use cases in units of work on its database."""

    def __init__(self, db: Database, *, conflict_attempts: int = 6) -> None:
        self.db = db
        self.conflict_attempts = conflict_attempts

    async def run(
        self, use_case: Callable[Concatenate[UnitOfWork, P], T], *args: Any, **kwargs: Any
    ) -> T:
        """`use_case(uow, *args)` in one transaction; re-run whole on `Conflict` (jittered), or on
        a deadlock or serialization failure, which end as `Conflict` (ABORTED) if they persist."""
        for attempt in range(1, self.conflict_attempts + 1):
            try:
                return await self.db.run(_with_uow, use_case, args, kwargs)
            except Exception as error:
                if not lost_a_race(error):
                    raise
                if attempt == self.conflict_attempts:
                    raise _as_conflict(error) from error
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    def run_sync(
        self, use_case: Callable[Concatenate[UnitOfWork, P], T], *args: Any, **kwargs: Any
    ) -> T:
        """The same in the caller's thread (CLI, scripts). Not for the event loop."""
        return self.db.run_sync(_with_uow, use_case, args, kwargs)

    async def run_batch(
        self, use_case: Callable[[UnitOfWork, I], T], items: Sequence[I]
    ) -> list[ItemResult[I, T]]:
        """`use_case(uow, item)` for every item in ONE transaction, each under its own savepoint.

        An item that raises is rolled back alone and reported with its error; the others commit.
        Items that lost an optimistic `Conflict` are re-run in a further batch.
        """
        results: dict[int, ItemResult[I, T]] = {}
        pending = list(range(len(items)))
        for attempt in range(1, self.conflict_attempts + 1):
            done: list[tuple[int, ItemResult[I, T]]] = await self.db.run(
                _batch, use_case, [(i, items[i]) for i in pending]
            )
            pending = []
            for index, result in done:
                error = result.error
                if error is not None and lost_a_race(error):
                    if attempt < self.conflict_attempts:
                        pending.append(index)
                        continue
                    result = ItemResult(result.item, error=_as_conflict(error))
                results[index] = result
            if not pending:
                break
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        return [results[i] for i in range(len(items))]


def _with_uow(
    conn: Connection,
    use_case: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    return use_case(UnitOfWork.of(conn), *args, **kwargs)


def _batch(
    conn: Connection, use_case: Callable[[UnitOfWork, I], T], indexed: list[tuple[int, I]]
) -> list[tuple[int, ItemResult[I, T]]]:
    uow = UnitOfWork.of(conn)
    cursor = dbapi_cursor(conn)
    done: list[tuple[int, ItemResult[I, T]]] = []
    for index, item in indexed:
        # Raw savepoints: SQLAlchemy's begin_nested() costs ~150 µs a call on SQLite.
        cursor.execute("SAVEPOINT crossdock_item")
        callbacks = len(conn.info[AFTER_COMMIT_KEY])
        try:
            value = use_case(uow, item)
        except Exception as error:
            cursor.execute("ROLLBACK TO SAVEPOINT crossdock_item")
            cursor.execute("RELEASE SAVEPOINT crossdock_item")
            del conn.info[AFTER_COMMIT_KEY][callbacks:]  # a rolled-back item wakes nobody
            done.append((index, ItemResult(item, error=error)))
        else:
            cursor.execute("RELEASE SAVEPOINT crossdock_item")
            done.append((index, ItemResult(item, value=value)))
    return done
