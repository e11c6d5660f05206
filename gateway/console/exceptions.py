"""The exceptions workbench for the console: ListExceptions and GetException on the control
tower, made into what the list and the detail page show, and the tower's refusals made into
messages.

The list puts open exceptions first, those past their kind's SLA first among them (then the
oldest); closed ones follow, the latest closed first. Which actions an exception offers follows
its kind, as the tower's workbench defines them (tower.proto ExceptionKind): a label failure is
retried, an unmapped carrier code mapped, a dead letter redriven; any open one can be resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import grpc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.tower.v1 import tower_pb2, tower_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.adapters.backends import Backends, BackendUnavailable
from gateway.console.timeline import TOWER_SERVICE, Refusal
from services.kit.cli_tower import age, explained

NOT_CONFIGURED = Refusal(
    "The control tower is not configured on this gateway "
    "(CROSSDOCK_GATEWAY_TOWER_TARGET is empty).",
    503,
)
# Every kind the tower's contract defines, by its short name, as the page's filters and the CLI
# (`crossdock exceptions list --kind`) say them: a kind added to the contract is listed too.
KINDS: dict[str, tower_pb2.ExceptionKind.ValueType] = {
    name.removeprefix("EXCEPTION_KIND_").lower(): number
    for name, number in tower_pb2.ExceptionKind.items()
    if number != tower_pb2.EXCEPTION_KIND_UNSPECIFIED
}
STATES: dict[str, tower_pb2.ExceptionState.ValueType] = {
    "open": tower_pb2.EXCEPTION_STATE_OPEN,
    "closed": tower_pb2.EXCEPTION_STATE_CLOSED,
}
# What an operator may do to an open exception of each kind besides resolving it (which every
# open one allows, and is all a kind not named here offers: e.g. a label whose outcome at the
# carrier is unknown is reconciled by hand, never retried).
KIND_ACTIONS: dict[str, tuple[str, ...]] = {
    "label_failed": ("retry",),
    "label_void_failed": ("retry",),
    "order_exception": ("retry",),
    "carrier_code_unmapped": ("map-code",),
    "dead_letter": ("redrive",),
}
ACTION_TITLES = {
    "retry": "Retry",
    "resolve": "Resolve",
    "map-code": "Map code",
    "redrive": "Redrive",
}
_AUDIT_ACTIONS = {
    tower_pb2.EXCEPTION_ACTION_RETRY: "retry",
    tower_pb2.EXCEPTION_ACTION_RESOLVE: "resolve",
    tower_pb2.EXCEPTION_ACTION_MAP_CODE: "map-code",
    tower_pb2.EXCEPTION_ACTION_REDRIVE: "redrive",
}
# The statuses a carrier code can be mapped to: every TrackingStatus but UNSPECIFIED and
# UNKNOWN (an unmapped code already reads as UNKNOWN), in the enum's (lifecycle) order.
MAP_STATUSES: tuple[str, ...] = tuple(
    name.removeprefix("TRACKING_STATUS_")
    for name, number in tracking_pb2.TrackingStatus.items()
    if number
    not in (tracking_pb2.TRACKING_STATUS_UNSPECIFIED, tracking_pb2.TRACKING_STATUS_UNKNOWN)
)
PAGE_SIZE = 500
# The most the list shows: a workbench with more needs its filters, not a longer page.
MAX_SHOWN = 1000
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Filters:
    kind: str = ""  # a KINDS name, "" for every kind
    state: str = ""  # "open", "closed", "" for both

    def query(self) -> dict[str, str]:
        pairs = (("kind", self.kind), ("state", self.state))
        return {name: value for name, value in pairs if value}


@dataclass(frozen=True)
class ExceptionRow:
    """One exception as the list and the detail page show it."""

    exception_id: int
    kind: str
    owner: str
    subject_kind: str
    subject_id: str
    order_id: str  # "" while no order is known
    is_open: bool
    age: str
    breached: bool
    occurrences: int
    detail: str  # the owner's last word on what was tried and why it failed
    opened: str
    last_seen: str
    closed: str  # "" while open
    closed_by: str
    age_seconds: float
    close_seconds: float  # 0 while open

    @property
    def state(self) -> str:
        return "open" if self.is_open else "closed"

    @property
    def actions(self) -> tuple[str, ...]:
        """What its kind allows while it is open, resolve last; nothing once closed."""
        if not self.is_open:
            return ()
        return (*KIND_ACTIONS.get(self.kind, ()), "resolve")


@dataclass(frozen=True)
class AuditRow:
    """One operator action: who, when, why, the owner's call and its answer."""

    action: str
    operator: str
    time: str
    stamp: str  # the time in epoch microseconds: names this entry in a link
    reason: str
    owner_call: str
    succeeded: bool
    result: str

    @property
    def title(self) -> str:
        return ACTION_TITLES.get(self.action, self.action)


@dataclass(frozen=True)
class ExceptionsView:
    rows: tuple[ExceptionRow, ...]
    truncated: bool  # more matched than MAX_SHOWN

    @property
    def open_count(self) -> int:
        return sum(1 for row in self.rows if row.is_open)

    @property
    def breached_count(self) -> int:
        return sum(1 for row in self.rows if row.is_open and row.breached)


@dataclass(frozen=True)
class ExceptionDetail:
    row: ExceptionRow
    audit: tuple[AuditRow, ...]

    def entry(self, action: str, stamp: str) -> AuditRow | None:
        """The audit entry of `action` made at `stamp` (a link's), if the trail has it."""
        found = [row for row in self.audit if row.action == action and row.stamp == stamp]
        return found[-1] if found else None


def read_filters(query: Mapping[str, str]) -> Filters | Refusal:
    """The list's `kind` and `state` query parameters, or a 400 naming what is wrong."""
    kind = query.get("kind", "").strip().lower()
    state = query.get("state", "").strip().lower()
    if kind and kind not in KINDS:
        return Refusal(f"kind: must be one of {', '.join(KINDS)} (or empty), not {kind!r}.", 400)
    if state and state not in STATES:
        return Refusal(f"state: must be open or closed (or empty), not {state!r}.", 400)
    return Filters(kind, state)


def tower_stub(backends: Backends) -> tower_pb2_grpc.TowerServiceAsyncStub | None:
    try:
        return tower_pb2_grpc.TowerServiceStub(backends.channel(TOWER_SERVICE))
    except BackendUnavailable:
        return None


async def list_exceptions(
    backends: Backends, filters: Filters, timeout_seconds: float
) -> ExceptionsView | Refusal:
    """Every exception the filters keep (up to MAX_SHOWN), open first and breaches first."""
    stub = tower_stub(backends)
    if stub is None:
        return NOT_CONFIGURED
    # Without a state filter the open ones are read first, so a long closed history can not
    # push them past MAX_SHOWN.
    states = [filters.state] if filters.state else ["open", "closed"]
    found: list[tower_pb2.Exception] = []
    truncated = False
    try:
        for state in states:
            more, truncated = await read_all(
                stub, filters.kind, state, MAX_SHOWN - len(found), timeout_seconds
            )
            found += more
            if truncated:
                break
    except grpc.aio.AioRpcError as error:
        return read_refusal(error)
    rows = [exception_row(exception) for exception in found]
    return ExceptionsView(tuple(ranked(rows)), truncated)


async def read_all(
    stub: tower_pb2_grpc.TowerServiceAsyncStub,
    kind: str,
    state: str,
    limit: int,
    timeout_seconds: float,
) -> tuple[list[tower_pb2.Exception], bool]:
    """Up to `limit` exceptions of one state, page by page; and whether more were left."""
    found: list[tower_pb2.Exception] = []
    token = ""
    while True:
        request = tower_pb2.ListExceptionsRequest(
            kind=KINDS.get(kind, tower_pb2.EXCEPTION_KIND_UNSPECIFIED),
            state=STATES[state],
            page_size=PAGE_SIZE,
            page_token=token,
        )
        page = await stub.ListExceptions(request, timeout=timeout_seconds)
        found += page.exceptions
        token = page.next_page_token
        if len(found) > limit or (len(found) == limit and token):
            return found[:limit], True
        if not token:
            return found, False


def ranked(rows: list[ExceptionRow]) -> list[ExceptionRow]:
    """Open before closed; open: past the SLA first, then the oldest; closed: latest first."""

    def key(row: ExceptionRow) -> tuple[int, int, float]:
        if row.is_open:
            return (0, 0 if row.breached else 1, -row.age_seconds)
        return (1, 0, -row.close_seconds)

    return sorted(rows, key=key)


async def get_exception(
    backends: Backends, exception_id: int, timeout_seconds: float
) -> ExceptionDetail | Refusal:
    """One exception and its audit trail, or why there is none."""
    stub = tower_stub(backends)
    if stub is None:
        return NOT_CONFIGURED
    request = tower_pb2.GetExceptionRequest(exception_id=exception_id)
    try:
        response = await stub.GetException(request, timeout=timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return read_refusal(error, exception_id)
    return ExceptionDetail(
        exception_row(response.exception), tuple(audit_row(entry) for entry in response.audit)
    )


def exception_row(exception: tower_pb2.Exception) -> ExceptionRow:
    kind = kind_name(exception.kind)
    is_open = exception.state == tower_pb2.EXCEPTION_STATE_OPEN
    closed = exception.HasField("close_time")
    age_seconds = exception.age.ToTimedelta().total_seconds()
    return ExceptionRow(
        exception_id=exception.exception_id,
        kind=kind,
        owner=exception.owner,
        subject_kind=exception.subject_kind,
        subject_id=exception.subject_id,
        order_id=exception.order_id,
        is_open=is_open,
        age=age(age_seconds),
        breached=exception.sla_breached,
        occurrences=exception.occurrences,
        detail=exception.detail,
        opened=_time(exception.open_time) if exception.HasField("open_time") else "",
        last_seen=_time(exception.last_seen_time) if exception.HasField("last_seen_time") else "",
        closed=_time(exception.close_time) if closed else "",
        closed_by=exception.closed_by,
        age_seconds=age_seconds,
        close_seconds=exception.close_time.ToMicroseconds() / 1e6 if closed else 0.0,
    )


def kind_name(number: int) -> str:
    """A kind's short name; a kind newer than this gateway's contract is named by its number
    (a tower upgraded first must not break the pages that list its exceptions)."""
    try:
        name = tower_pb2.ExceptionKind.Name(tower_pb2.ExceptionKind.ValueType(number))
        return name.removeprefix("EXCEPTION_KIND_").lower()
    except ValueError:
        return f"kind_{number}"


def audit_row(entry: tower_pb2.ExceptionAuditEntry) -> AuditRow:
    return AuditRow(
        action=_AUDIT_ACTIONS.get(entry.action, "unknown"),
        operator=entry.operator,
        time=_time(entry.time),
        stamp=str(entry.time.ToMicroseconds()),
        reason=entry.reason,
        owner_call=entry.owner_call,
        succeeded=entry.succeeded,
        result=entry.result,
    )


def _time(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def read_refusal(error: grpc.aio.AioRpcError, exception_id: int = 0) -> Refusal:
    """A refusal of ListExceptions or GetException as the page says it."""
    code = error.code()
    if code is grpc.StatusCode.NOT_FOUND and exception_id:
        return Refusal(f"The control tower knows no exception {exception_id}.", 404)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return Refusal(f"The control tower refused the request: {explained(error)}.", 400)
    if code in _TRANSIENT:
        return Refusal(
            f"The control tower did not answer ({code.name}); this page tries again.",
            503,
            transient=True,
        )
    return Refusal(f"The control tower refused the request ({code.name}: {explained(error)}).", 502)
