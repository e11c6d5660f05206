"""Allowed state transitions as data: one table per aggregate, checked wherever its state moves.

    SHIPMENT = StateMachine("shipment", [
        ("book label", {CREATED}, MANIFESTED),
        ("cancel", {CREATED, MANIFESTED, LABEL_FAILED}, CANCELLED),
        ...
    ])
    name = SHIPMENT.transition(shipment.status, target)   # IllegalTransition if not in the table

Each (source, target) pair has exactly one name, so a timeline can say which transition happened.
An illegal move is a bug in the code that attempted it, never a client error: it is refused (a
FAILED_PRECONDITION, which a consumer dead-letters) and leaves the aggregate as it was.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.kit.errors import FailedPrecondition

S = TypeVar("S", bound=Hashable)


class IllegalTransition(FailedPrecondition):
    default_reason = "ILLEGAL_TRANSITION"


@dataclass(frozen=True)
class Transition(Generic[S]):
    name: str
    source: S
    target: S


class StateMachine(Generic[S]):
    """The transitions one aggregate may make, by name."""

    def __init__(self, aggregate: str, table: Iterable[tuple[str, Iterable[S], S]]) -> None:
        self.aggregate = aggregate
        self._names: dict[tuple[S, S], str] = {}
        for name, sources, target in table:
            for source in sources:
                if source == target:
                    raise ValueError(f"{aggregate}: {name} goes from {source} to itself")
                if (source, target) in self._names:
                    raise ValueError(
                        f"{aggregate}: {source} -> {target} is both "
                        f"{self._names[source, target]!r} and {name!r}"
                    )
                self._names[source, target] = name

    def transition(self, source: S, target: S) -> str:
        """The name of the move from `source` to `target`; IllegalTransition if not allowed."""
        name = self._names.get((source, target))
        if name is None:
            raise IllegalTransition(
                f"{self.aggregate} cannot go from {_label(source)} to {_label(target)}",
                metadata={"from": _label(source), "to": _label(target)},
            )
        return name

    def allows(self, source: S, target: S) -> bool:
        return (source, target) in self._names

    def transitions(self) -> list[Transition[S]]:
        """Every allowed move, for documentation and tests."""
        return [Transition(name, s, t) for (s, t), name in self._names.items()]


def _label(state: object) -> str:
    return str(getattr(state, "name", state))
