"""Open exceptions at a glance, for the flow overview: the tower's open exceptions (ListExceptions,
state OPEN, page by page) counted per kind, with who owns them, the oldest's age and how many are
past their kind's SLA.

Kinds with breaches come first (most breaches first), then the others in the contract's order,
as the overview orders its flows. Dead letters are the dead_letter kind, owned by the consuming
service: its owners' counts are the DLQ depth per consumer an operator can redrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from gateway.adapters.backends import Backends
from gateway.console import exceptions
from gateway.console.exceptions import ExceptionRow
from gateway.console.timeline import Refusal
from services.kit.cli_tower import age

# Counted per refresh of the overview: past this, the counts are of the first ones (by id) and
# the section says so; the exceptions list, filtered, shows them all.
MAX_COUNTED = exceptions.MAX_SHOWN


@dataclass(frozen=True)
class OwnerCount:
    owner: str  # "" when the tower could not name the service (a dead letter's unknown durable)
    count: int


@dataclass(frozen=True)
class KindSummary:
    """One kind's open exceptions."""

    kind: str
    owners: tuple[OwnerCount, ...]  # most first, then by name
    count: int
    breached: int  # open longer than the kind's SLA
    oldest: str  # human-readable age of the oldest
    oldest_seconds: float


@dataclass(frozen=True)
class OpenExceptions:
    kinds: tuple[KindSummary, ...]  # only kinds with open exceptions
    truncated: bool  # more were open than MAX_COUNTED

    @property
    def count(self) -> int:
        return sum(kind.count for kind in self.kinds)

    @property
    def breached(self) -> int:
        return sum(kind.breached for kind in self.kinds)


async def open_by_kind(backends: Backends, timeout_seconds: float) -> OpenExceptions | Refusal:
    """The open exceptions counted per kind, or why the tower cannot say."""
    stub = exceptions.tower_stub(backends)
    if stub is None:
        return exceptions.NOT_CONFIGURED
    try:
        found, truncated = await exceptions.read_all(stub, "", "open", MAX_COUNTED, timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return exceptions.read_refusal(error)
    return summarize((exceptions.exception_row(exception) for exception in found), truncated)


def summarize(rows: Iterable[ExceptionRow], truncated: bool = False) -> OpenExceptions:
    """Open rows per kind, breaches first (most first), then in the contract's kind order."""
    by_kind: dict[str, list[ExceptionRow]] = {}
    for row in rows:
        if row.is_open:  # closed ones are no one's work: never counted, whoever passed them
            by_kind.setdefault(row.kind, []).append(row)
    order = {kind: position for position, kind in enumerate(exceptions.KINDS)}
    kinds = [_kind_summary(kind, found) for kind, found in by_kind.items()]
    kinds.sort(key=lambda kind: (-kind.breached, order.get(kind.kind, len(order)), kind.kind))
    return OpenExceptions(tuple(kinds), truncated)


def _kind_summary(kind: str, rows: list[ExceptionRow]) -> KindSummary:
    owners = Counter(row.owner for row in rows)
    oldest_seconds = max(row.age_seconds for row in rows)
    return KindSummary(
        kind=kind,
        owners=tuple(
            OwnerCount(owner, count)
            for owner, count in sorted(owners.items(), key=lambda pair: (-pair[1], pair[0]))
        ),
        count=len(rows),
        breached=sum(1 for row in rows if row.breached),
        oldest=age(oldest_seconds),
        oldest_seconds=oldest_seconds,
    )
