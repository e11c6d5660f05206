"""Results of statements run on the raw DBAPI cursor (`statements.prepared`), shaped like
SQLAlchemy's so a store reads them the same way.

A row is a tuple subclass (a namedtuple class built once per statement and dialect): `row.key`
(labels included), `row[0]`, `row._mapping["key"]`. `RawResult` holds every row fetched (the
cursor is closed at once) and answers `first()`, `one()`, `scalar()`, `all()`, iteration, ... with
SQLAlchemy's exceptions. Unlike SQLAlchemy's, reading a result does not consume it.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import MultipleResultsFound, NoResultFound, ResourceClosedError

ResultProcessor = Callable[[Any], Any]
T = TypeVar("T")


class RawRow(Protocol):
    """What a store may read from a row (attributes are its column keys)."""

    def __getattr__(self, key: str) -> Any: ...

    def __getitem__(self, index: int) -> Any: ...

    def __iter__(self) -> Iterator[T]: ...

    def __len__(self) -> int: ...

    @property
    def _mapping(self) -> Mapping[str, Any]: ...


class RowMaker:
    """Turns the driver's rows into rows with keys, applying the types' result processors."""

    __slots__ = ("_make", "_processors", "keys")

    def __init__(
        self, keys: Sequence[str], processors: Sequence[tuple[int, ResultProcessor]]
    ) -> None:
        self.keys = tuple(keys)
        self._make = _row_factory(self.keys)
        self._processors = tuple(processors)

    def __call__(self, raw_rows: Sequence[Sequence[Any]]) -> list[Any]:
        make = self._make
        if not self._processors:
            return [make(raw) for raw in raw_rows]
        rows = []
        for raw in raw_rows:
            values = list(raw)
            for index, process in self._processors:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows


def _row_factory(keys: tuple[str, ...]) -> Callable[[Iterable[Any]], Any]:
    """`make(values)` of a row class for these keys (built once per statement and dialect)."""
    # rename=True: a key that is no identifier (or starts with "_") stays reachable by index
    # and through _mapping, as with SQLAlchemy's Row.
    base = namedtuple("Row", keys, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> Mapping[str, Any]:
            return MappingProxyType(dict(zip(keys, self, strict=True)))

    return Row._make


class RawResult(Generic[T]):
    """`rowcount`, and the rows of a statement that returns rows (all fetched already)."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, rowcount: int, rows: list[T] | None, keys: tuple[str, ...] = ()) -> None:
        self.rowcount = rowcount
        self._rows = rows
        self._keys = keys

    def _all(self) -> list[T]:
        if self._rows is None:
            raise ResourceClosedError(
                "This result object does not return rows. It has been closed automatically."
            )
        return self._rows

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def all(self) -> list[T]:
        return list(self._all())

    def __iter__(self) -> Iterator[T]:
        return iter(self._all())

    def first(self) -> T | None:
        rows = self._all()
        return rows[0] if rows else None

    def one_or_none(self) -> T | None:
        rows = self._all()
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def one(self) -> T:
        rows = self._all()
        if not rows:
            raise NoResultFound("No row was found when one was required")
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return rows[0]

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]  # type: ignore[index]

    def scalar_one(self) -> Any:
        return self.one()[0]  # type: ignore[index]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]  # type: ignore[index]

    def scalars(self) -> RawResult[Any]:
        """The first column of each row (first(), all(), ... then answer values)."""
        return RawResult(self.rowcount, [row[0] for row in self._all()])  # type: ignore[index]

    def mappings(self) -> RawResult[Mapping[str, Any]]:
        """Each row as a read-only mapping of its keys."""
        rows = [row._mapping for row in self._all()]  # type: ignore[attr-defined]
        return RawResult(self.rowcount, rows, self._keys)
