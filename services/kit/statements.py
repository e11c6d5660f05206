"""Building blocks for SQL statements built once per process (SQLAlchemy Core, `bindparam()`).

Why: building a select()/update()/insert() per call cost more CPU than running it on SQLite
(coercions, bind parameters, cache-key generation). A statement built once at import keeps its
memoized cache key, so a call only binds its values. The services' `adapters/store/statements.py`
modules are made of these.

- `update_where(table, *keys)`: UPDATE whose SET columns come from the parameters it runs with;
  its WHERE binds are named `match_<key>` so they never collide with a column name.
- `insert_new(table)`: a first-writer-wins INSERT ... ON CONFLICT DO NOTHING per dialect, picked
  with `new_row(statements, conn)`. The caller reads `rowcount` (0 = the row was already there)
  instead of catching a unique violation: no savepoint, and a PostgreSQL transaction that loses
  a race stays usable. `inline()` leaves out the RETURNING of a generated key that SQLAlchemy
  would otherwise add on PostgreSQL, and `preserve_rowcount` keeps the rowcount psycopg reports.
- `prepared(statement)`: the same statement run on the raw DBAPI cursor (`db.dbapi_cursor`), in
  the unit of work's transaction. Why: SQLAlchemy's execution path (execution context, parameter
  and result processing) cost ~30-80 µs per prebuilt statement against a few µs on the cursor.
  It is compiled once per dialect (and, for INSERT/UPDATE, per set of parameter names, which
  decide their columns) with SQLAlchemy itself, runs the types' bind and result processors, and
  answers a `RawResult` (services.kit.raw_results) read like SQLAlchemy's. Statements it cannot
  run exactly as SQLAlchemy would (expanding IN, literal_execute, Python-side column defaults,
  implicit RETURNING) are refused with `Unpreparable`: keep `conn.execute` for those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Table, Update, and_, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.dml import ValuesBase
from sqlalchemy.sql.elements import BindParameter

from services.kit.db import dbapi_cursor
from services.kit.raw_results import RawResult, RawRow, RowMaker

# An INSERT ... ON CONFLICT DO NOTHING per dialect name ("sqlite", "postgresql").
NewRow = dict[str, Insert]


def insert_new(table: Table) -> NewRow:
    return {
        name: dialect_insert(table)
        .on_conflict_do_nothing()
        .inline()
        .execution_options(preserve_rowcount=True)
        for name, dialect_insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
    }


def new_row(statements: NewRow, conn: Connection) -> Insert:
    """The dialect's statement of an `insert_new` pair for this connection."""
    return statements[conn.dialect.name]


def update_where(table: Table, *keys: str) -> Update:
    """UPDATE `table` WHERE each key column = :match_<key>; SET comes from the parameters."""
    return update(table).where(and_(*(table.c[key] == bindparam(f"match_{key}") for key in keys)))


# -- the prepared path: prebuilt statements on the raw DBAPI cursor ----------------------------


class Unpreparable(ValueError):
    """A statement the prepared path cannot run exactly as SQLAlchemy would: keep conn.execute."""


def prepared(statement: ClauseElement | Mapping[str, ClauseElement]) -> Prepared:
    """`statement`, or a per-dialect pair such as `insert_new`'s, run on the raw cursor.

    Build it once, next to the statement (e.g. `GET_ITEM = prepared(select(...))`), then
    `GET_ITEM.run(conn, {"sku": sku}).first()`; see the module docstring.
    """
    return Prepared(statement)


class Prepared:
    """A prebuilt statement compiled once per dialect and run on `dbapi_cursor(conn)`."""

    __slots__ = ("_by_dialect", "_keyed_by_names", "_plans")

    def __init__(self, statement: ClauseElement | Mapping[str, ClauseElement]) -> None:
        # One statement for every dialect, or one per dialect name (NewRow).
        self._by_dialect: Mapping[str, ClauseElement] | ClauseElement = (
            dict(statement) if isinstance(statement, Mapping) else statement
        )
        statements = list(statement.values()) if isinstance(statement, Mapping) else [statement]
        for each in statements:
            _refuse_unbindable(each)
        # INSERT/UPDATE without .values() take their columns from the parameter names.
        self._keyed_by_names = any(isinstance(each, ValuesBase) for each in statements)
        self._plans: dict[object, _Plan] = {}

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> RawResult[RawRow]:
        """Execute once in `conn`'s transaction: rowcount, and the rows if it returns any."""
        values = params if params is not None else {}
        plan = self._plan(conn, values)
        arguments = plan.arguments(values)
        if not conn.in_transaction():
            conn.begin()  # what conn.execute's autobegin would do
        cursor = dbapi_cursor(conn)
        try:
            cursor.execute(plan.sql, arguments)
            # All rows now (rowcount of a RETURNING on SQLite is only known once they are read).
            raw = cursor.fetchall() if cursor.description is not None else None
            rowcount = int(cursor.rowcount)
        except Exception as error:
            # SQLAlchemy's wrapping (DBAPIError subclasses) and disconnect handling, unchanged.
            conn._handle_dbapi_exception(error, plan.sql, arguments, cursor, None)
        if raw is None:
            cursor.close()
            return RawResult(rowcount, None)
        maker = plan.row_maker(cursor.description)
        cursor.close()
        return RawResult(rowcount, maker(raw), maker.keys)

    def run_many(
        self, conn: Connection, seq_of_params: Iterable[Mapping[str, Any]]
    ) -> RawResult[Any]:
        """executemany: every parameter set named like the first; none given runs nothing."""
        seq = list(seq_of_params)
        if not seq:
            return RawResult(0, None)
        plan = self._plan(conn, seq[0])
        if plan.returns_rows:
            raise Unpreparable("a statement that returns rows cannot run with executemany")
        arguments = [plan.arguments(values) for values in seq]
        if not conn.in_transaction():
            conn.begin()
        cursor = dbapi_cursor(conn)
        try:
            cursor.executemany(plan.sql, arguments)
            rowcount = int(cursor.rowcount)
        except Exception as error:
            conn._handle_dbapi_exception(error, plan.sql, arguments, cursor, None)
        cursor.close()
        return RawResult(rowcount, None)

    def statement(self, dialect_name: str) -> ClauseElement:
        """The SQLAlchemy statement behind it, for `conn.execute` (a comparison, a benchmark)."""
        statement = self._by_dialect
        return statement[dialect_name] if isinstance(statement, Mapping) else statement

    def _plan(self, conn: Connection, values: Mapping[str, Any]) -> _Plan:
        dialect = conn.dialect
        key: object = (dialect.name, tuple(values)) if self._keyed_by_names else dialect.name
        plan = self._plans.get(key)
        if plan is None:
            statement = self.statement(dialect.name)
            names = list(values) if self._keyed_by_names else None
            # A race between two threads only compiles twice; either plan is right.
            plan = self._plans[key] = _Plan(statement, dialect, names)
        return plan


def _refuse_unbindable(statement: ClauseElement) -> None:
    """Fail where the statement is built (at import) rather than on its first run."""
    for element in visitors.iterate(statement):
        if isinstance(element, BindParameter) and (element.expanding or element.literal_execute):
            raise Unpreparable(
                f"bind parameter {element.key!r} is expanding or literal_execute: its SQL is "
                "rendered per call, keep conn.execute for this statement"
            )


BindProcessor = Callable[[Any], Any]


class _Plan:
    """One statement compiled for one dialect (and set of parameter names)."""

    __slots__ = (
        "_defaults",
        "_dialect",
        "_names",
        "_positional",
        "_processors",
        "_result_columns",
        "_row_maker",
        "returns_rows",
        "sql",
    )

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: list[str] | None
    ) -> None:
        compiled: Any = statement.compile(dialect=dialect, column_keys=column_keys)
        why = _unpreparable(compiled)
        if why:
            raise Unpreparable(f"{why}; keep conn.execute for: {compiled.string}")
        self.sql: str = compiled.string
        self._dialect = dialect
        # Values the statement carries itself (literals): the parameters may override them.
        self._defaults = {
            name: bind.value for bind, name in compiled.bind_names.items() if not bind.required
        }
        processors: Mapping[str, BindProcessor] = compiled._bind_processors
        self._positional: bool = compiled.positional
        if self._positional:  # qmark (sqlite3): a list in positiontup order
            self._names: Sequence[tuple[Any, str]] = [
                (index, name) for index, name in enumerate(compiled.positiontup)
            ]
        else:  # pyformat (psycopg): a dict keyed by the names as rendered
            escaped = compiled.escaped_bind_names
            self._names = [
                (escaped.get(name, name), name)
                for name in dict.fromkeys(compiled.bind_names.values())
            ]
        self._processors = tuple(
            (slot, processors[name]) for slot, name in self._names if name in processors
        )
        self._result_columns: Sequence[Any] = compiled._result_columns
        self.returns_rows = bool(self._result_columns)
        self._row_maker: RowMaker | None = None

    def arguments(self, values: Mapping[str, Any]) -> Any:
        """The DBAPI parameters: each bind's value (or default), through its type's processor."""
        if self._defaults:
            values = {**self._defaults, **values}
        try:
            if self._positional:
                arguments: Any = [values[name] for _, name in self._names]
            else:
                arguments = {slot: values[name] for slot, name in self._names}
        except KeyError as missing:
            raise InvalidRequestError(
                f"A value is required for bind parameter {missing.args[0]!r}"
            ) from None
        for slot, process in self._processors:
            arguments[slot] = process(arguments[slot])
        return arguments

    def row_maker(self, description: Sequence[Sequence[Any]]) -> RowMaker:
        """Keys and result processors, matched to the cursor's columns on the first run."""
        maker = self._row_maker
        if maker is None:
            maker = self._row_maker = self._new_row_maker(description)
        return maker

    def _new_row_maker(self, description: Sequence[Sequence[Any]]) -> RowMaker:
        columns = self._result_columns
        if not columns:  # text(): the driver's column names, no types to process
            return RowMaker([str(column[0]) for column in description], ())
        if len(columns) != len(description):
            raise Unpreparable(f"{len(description)} columns where {len(columns)} were compiled")
        processors = []
        for index, column in enumerate(columns):
            # The driver's type code picks the processor (e.g. PostgreSQL numeric vs float).
            process = column.type._cached_result_processor(self._dialect, description[index][1])
            if process is not None:
                processors.append((index, process))
        return RowMaker([column.keyname for column in columns], processors)


def _unpreparable(compiled: Any) -> str:
    """Why SQLAlchemy's execution path would do more than bind and run this ("" if nothing)."""
    if compiled.literal_execute_params or compiled.post_compile_params:
        return "expanding or literal_execute parameters are rendered per call"
    if compiled.insert_prefetch or compiled.update_prefetch:
        return "Python-side column defaults run in SQLAlchemy's execution context"
    if compiled.implicit_returning:
        return "implicit RETURNING of generated keys (use .inline())"
    if compiled._textual_ordered_columns or compiled._ad_hoc_textual:
        return "textual column matching"
    if any(bind.callable for bind in compiled.bind_names):
        return "a bind parameter with a callable value"
    if any(isinstance(p, tuple) for p in compiled._bind_processors.values()):
        return "a tuple-typed bind parameter"
    return ""
