"""The exceptions workbench's reads and writes, on the unit of work's connection.

Projection writes are set-based and order-independent (services.control_tower.domain.exceptions):
- an opening signal upserts its (kind, subject): earliest open time, latest sighting and its
  detail, one more occurrence (`unseen` drops an event already stored, so each counts once);
- a closing signal closes an existing row, the earliest close winning; a close with no row yet
  writes nothing (most shipments are manifested and never failed) — instead, every subject that
  opens is checked against the fixing events already stored, so a fix that arrived first still
  closes it in the same transaction, and it never shows as open;
- except for kinds whose fix names its exception exactly (an order's episode:
  `KindSpec.records_early_fix`): every such fix is an exception that opened or will, so it
  upserts its row closed (earliest close wins), and an opening that arrives later fills the
  row's open fields in and leaves it closed. A row no opening reached yet (`opened_at` NULL)
  is never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.control_tower.adapters.store import tables as t
from services.control_tower.domain.exceptions import (
    KINDS,
    Action,
    AuditEntry,
    ExceptionKind,
    ExceptionView,
    Signal,
    closed_by_event,
)
from services.kit.paging import keyset, next_page
from services.kit.statements import insert_new, prepared

_x = t.exceptions


def _open_upsert(statement: sqlite.Insert | postgresql.Insert) -> Any:
    new = statement.excluded
    newer = or_(_x.c.last_seen_at.is_(None), new.last_seen_at > _x.c.last_seen_at)
    earlier = or_(_x.c.opened_at.is_(None), new.opened_at < _x.c.opened_at)
    return statement.on_conflict_do_update(
        index_elements=["kind", "subject_id"],
        set_={
            "opened_at": case((earlier, new.opened_at), else_=_x.c.opened_at),
            # The earliest sighting's reference: the same whatever order they arrive in.
            "order_reference": case((earlier, new.order_reference), else_=_x.c.order_reference),
            "last_seen_at": case((newer, new.last_seen_at), else_=_x.c.last_seen_at),
            "detail": case((newer, new.detail), else_=_x.c.detail),
            "event_id": case((newer, new.event_id), else_=_x.c.event_id),
            "order_id": case((_x.c.order_id == "", new.order_id), else_=_x.c.order_id),
            "occurrences": _x.c.occurrences + 1,
        },
    ).inline()


_OPEN = prepared(
    {
        "sqlite": _open_upsert(sqlite.insert(_x)),
        "postgresql": _open_upsert(postgresql.insert(_x)),
    }
)


def _early_fix_upsert(statement: sqlite.Insert | postgresql.Insert) -> Any:
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["kind", "subject_id"],
        set_={
            "closed_at": new.closed_at,
            "closed_by": new.closed_by,
            "order_id": case((_x.c.order_id == "", new.order_id), else_=_x.c.order_id),
        },
        where=or_(_x.c.closed_at.is_(None), new.closed_at < _x.c.closed_at),
    ).inline()


# A fix that names its exception: its row closed, whether or not the opening arrived yet.
_FIX = prepared(
    {
        "sqlite": _early_fix_upsert(sqlite.insert(_x)),
        "postgresql": _early_fix_upsert(postgresql.insert(_x)),
    }
)

# Close a row that is open or was closed later than this (the earliest close wins).
_CLOSE = prepared(
    update(_x)
    .where(
        _x.c.kind == bindparam("match_kind"),
        _x.c.subject_id == bindparam("match_subject_id"),
        or_(_x.c.closed_at.is_(None), _x.c.closed_at > bindparam("match_closed_at")),
    )
    .values(closed_at=bindparam("closed_at"), closed_by=bindparam("closed_by"))
)


def unseen(conn: Connection, signals: Sequence[Signal]) -> list[Signal]:
    """The signals whose opening event is not stored yet, each once: run before the batch's
    events are stored, so a replay past the inbox's memory never counts an occurrence twice."""
    opening_ids = sorted({s.event_id for s in signals if s.opens})
    stored: set[str] = set()
    if opening_ids:
        rows = conn.execute(select(t.events.c.event_id).where(t.events.c.event_id.in_(opening_ids)))
        stored = {str(row.event_id) for row in rows}
    kept: list[Signal] = []
    seen: set[tuple[str, ExceptionKind, str]] = set()
    for signal in signals:
        key = (signal.event_id, signal.kind, signal.subject_id)
        if key in seen or (signal.opens and signal.event_id in stored):
            continue
        seen.add(key)
        kept.append(signal)
    return kept


def record_signals(
    conn: Connection, signals: Sequence[Signal], closers: dict[ExceptionKind, frozenset[str]]
) -> None:
    """Apply a batch's signals (the batch's events are already stored); rows in key order so
    two transactions lock them in the same order."""
    opening = sorted((s for s in signals if s.opens), key=lambda s: (s.kind.value, s.subject_id))
    _OPEN.run_many(
        conn,
        (
            {
                "kind": s.kind.value,
                "subject_id": s.subject_id,
                "order_id": s.order_id,
                "order_reference": s.order_reference,
                "opened_at": s.seen_at,
                "last_seen_at": s.seen_at,
                "occurrences": 1,
                "detail": s.detail[:1000],
                "event_id": s.event_id,
                "closed_at": None,
                "closed_by": "",
            }
            for s in opening
        ),
    )
    fixes = [s for s in signals if not s.opens]
    exact = [s for s in fixes if KINDS[s.kind].records_early_fix]
    _FIX.run_many(
        conn,
        (
            {
                "kind": s.kind.value,
                "subject_id": s.subject_id,
                "order_id": s.order_id,
                "order_reference": "",
                "opened_at": None,
                "last_seen_at": None,
                "occurrences": 0,
                "detail": "",
                "event_id": "",
                "closed_at": s.seen_at,
                "closed_by": closed_by_event(s.event_subject, s.event_id),
            }
            for s in sorted(exact, key=lambda s: (s.kind.value, s.subject_id, s.seen_at))
        ),
    )
    closing = _with_rows(conn, [s for s in fixes if not KINDS[s.kind].records_early_fix])
    # A subject that opened may have been fixed by an event stored earlier (or in this batch).
    opened = {(s.kind, s.subject_id) for s in opening}
    for kind, subject_id in sorted(opened, key=lambda pair: (pair[0].value, pair[1])):
        if kind not in closers:  # its fixes are rows already (records_early_fix)
            continue
        fix = _earliest_fix(conn, subject_id, closers[kind])
        if fix is not None:
            closing.append(Signal(kind, subject_id, False, fix[0], fix[1], fix[2]))
    _CLOSE.run_many(
        conn,
        (
            {
                "match_kind": s.kind.value,
                "match_subject_id": s.subject_id,
                "match_closed_at": s.seen_at,
                "closed_at": s.seen_at,
                "closed_by": closed_by_event(s.event_subject, s.event_id),
            }
            for s in sorted(closing, key=lambda s: (s.kind.value, s.subject_id, s.seen_at))
        ),
    )


# A dead letter never changes: the first sighting is the row.
_NEW_LETTER = prepared(insert_new(_x))
# A letter no longer in the DLQ (redriven or discarded): closed now.
_LETTERS_GONE = "dead letter gone from the DLQ (redriven or discarded)"


def sync_dead_letters(conn: Connection, letters: Sequence[Signal], now: float) -> None:
    """Open an exception per letter in the DLQ (its first sighting), and close the open ones
    whose letter is gone. `letters` is the whole DLQ, listed just before."""
    _NEW_LETTER.run_many(
        conn,
        (
            {
                "kind": ExceptionKind.DEAD_LETTER.value,
                "subject_id": s.subject_id,
                "order_id": "",
                "order_reference": s.order_reference,
                "opened_at": s.seen_at,
                "last_seen_at": s.seen_at,
                "occurrences": 1,
                "detail": s.detail[:1000],
                "event_id": s.event_id,
                "closed_at": None,
                "closed_by": "",
            }
            for s in sorted(letters, key=lambda s: s.subject_id)
        ),
    )
    present = {s.subject_id for s in letters}
    open_letters = conn.execute(
        select(_x.c.subject_id).where(
            _x.c.kind == ExceptionKind.DEAD_LETTER.value,
            _x.c.opened_at.is_not(None),
            _x.c.closed_at.is_(None),
        )
    ).all()
    gone = sorted(str(row.subject_id) for row in open_letters if row.subject_id not in present)
    _CLOSE.run_many(
        conn,
        (
            {
                "match_kind": ExceptionKind.DEAD_LETTER.value,
                "match_subject_id": subject_id,
                "match_closed_at": now,
                "closed_at": now,
                "closed_by": _LETTERS_GONE,
            }
            for subject_id in gone
        ),
    )


def _with_rows(conn: Connection, closing: list[Signal]) -> list[Signal]:
    """The closing signals whose exception has a row: one read instead of an UPDATE per fixing
    event (nearly every shipment is manifested; few ever failed)."""
    if not closing:
        return []
    subjects = sorted({s.subject_id for s in closing})
    rows = conn.execute(
        select(_x.c.kind, _x.c.subject_id).where(_x.c.subject_id.in_(subjects))
    ).all()
    existing = {(int(row.kind), str(row.subject_id)) for row in rows}
    return [s for s in closing if (s.kind.value, s.subject_id) in existing]


def _earliest_fix(
    conn: Connection, subject_id: str, subjects: frozenset[str]
) -> tuple[float, str, str] | None:
    """(time, event id, subject) of the earliest stored event that fixes `subject_id`."""
    row = conn.execute(
        select(t.events.c.occurred_at, t.events.c.event_id, t.events.c.subject)
        .where(
            t.events.c.aggregate_id == subject_id,
            t.events.c.subject.in_(sorted(subjects)),
        )
        .order_by(t.events.c.occurred_at, t.events.c.event_id)
        .limit(1)
    ).first()
    return None if row is None else (float(row.occurred_at), str(row.event_id), str(row.subject))


def _view(row: Any) -> ExceptionView:
    return ExceptionView(
        exception_id=int(row.exception_id),
        kind=ExceptionKind(row.kind),
        subject_id=row.subject_id,
        order_id=row.order_id,
        opened_at=row.opened_at,
        last_seen_at=row.last_seen_at,
        occurrences=int(row.occurrences),
        detail=row.detail,
        event_id=row.event_id,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
    )


# The exceptions with their order: the event's, else the one its reference (a tracking number,
# a dead letter's aggregate) is linked to, whatever the link's kind.
_linked_order = (
    select(t.links.c.order_id)
    .where(t.links.c.value == _x.c.order_reference, t.links.c.partner_id == "")
    .order_by(t.links.c.kind)
    .limit(1)
    .scalar_subquery()
)
_WITH_ORDER = select(
    *(column for column in _x.c if column.name != "order_id"),
    case(
        (_x.c.order_id != "", _x.c.order_id),
        (_x.c.order_reference != "", func.coalesce(_linked_order, "")),
        else_="",
    ).label("order_id"),
)


def get(conn: Connection, exception_id: int, *, for_update: bool = False) -> ExceptionView | None:
    """One exception that an owner's event opened, or None."""
    query = _WITH_ORDER.where(_x.c.exception_id == exception_id, _x.c.opened_at.is_not(None))
    if for_update:
        query = query.with_for_update(of=_x)
    row = conn.execute(query).first()
    return None if row is None else _view(row)


def page(
    conn: Connection,
    *,
    kind: ExceptionKind | None,
    open_only: bool | None,
    page_token: str,
    size: int,
) -> tuple[list[ExceptionView], str]:
    """A page of exceptions (only opened ones) in id order, filtered by kind and state."""
    query = _WITH_ORDER.where(_x.c.opened_at.is_not(None))
    if kind is not None:
        query = query.where(_x.c.kind == kind.value)
    if open_only is True:
        query = query.where(_x.c.closed_at.is_(None))
    elif open_only is False:
        query = query.where(_x.c.closed_at.is_not(None))
    query = keyset(query, _x.c.exception_id, page_token, size, key_type=int)
    rows = conn.execute(query).all()
    found, token = next_page(rows, size, key=lambda row: int(row.exception_id))
    return [_view(row) for row in found], token


def close_by_operator(
    conn: Connection, exception_id: int, closed_at: float, closed_by: str
) -> None:
    """Close an open exception by an operator's action (a resolve, an applied redrive)."""
    conn.execute(
        update(_x)
        .where(_x.c.exception_id == exception_id, _x.c.closed_at.is_(None))
        .values(closed_at=closed_at, closed_by=closed_by)
    )


def add_audit(conn: Connection, entry: AuditEntry) -> int:
    """One operator action, in the caller's transaction; its audit id."""
    result = conn.execute(
        t.exception_audit.insert().values(
            exception_id=entry.exception_id,
            order_id=entry.order_id,
            action=entry.action.value,
            operator=entry.operator,
            acted_at=entry.acted_at,
            reason=entry.reason[:500],
            owner_call=entry.owner_call,
            succeeded=entry.succeeded,
            result=entry.result[:1000],
        )
    )
    (audit_id,) = result.inserted_primary_key or (0,)
    return int(audit_id)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        exception_id=int(row.exception_id),
        action=Action(row.action),
        operator=row.operator,
        acted_at=float(row.acted_at),
        reason=row.reason,
        owner_call=row.owner_call,
        succeeded=bool(row.succeeded),
        result=row.result,
        order_id=row.order_id,
        audit_id=int(row.audit_id),
    )


def audit_of(conn: Connection, exception_id: int) -> list[AuditEntry]:
    """Every action on an exception, oldest first."""
    a = t.exception_audit
    rows = conn.execute(
        select(a).where(a.c.exception_id == exception_id).order_by(a.c.audit_id)
    ).all()
    return [_entry(row) for row in rows]


def audit_of_order(conn: Connection, order_id: str) -> list[AuditEntry]:
    """Every action on the exceptions of an order, oldest first."""
    a = t.exception_audit
    rows = conn.execute(select(a).where(a.c.order_id == order_id).order_by(a.c.audit_id)).all()
    return [_entry(row) for row in rows]


def open_rows(conn: Connection) -> list[ExceptionView]:
    """Every open exception (few: each needs an operator), for the gauges."""
    rows = conn.execute(
        _WITH_ORDER.where(_x.c.opened_at.is_not(None), _x.c.closed_at.is_(None))
    ).all()
    return [_view(row) for row in rows]


__all__ = [
    "add_audit",
    "audit_of",
    "audit_of_order",
    "close_by_operator",
    "get",
    "open_rows",
    "page",
    "record_signals",
    "sync_dead_letters",
    "unseen",
]
