"""The kit's prepared path (`statements.prepared`): prebuilt statements on the raw DBAPI cursor
must answer what `conn.execute` answers, and store the same values, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.exc import (
    IntegrityError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    ResourceClosedError,
)

from services.kit.db import make_engine
from services.kit.raw_results import RawResult, RowMaker
from services.kit.statements import Unpreparable, insert_new, prepared, update_where

metadata = MetaData()
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

# Every column type the converted stores use (shipment, billing, inventory), and the common
# types whose bind/result processors do real work (DateTime, Numeric, JSON).
parcels = Table(
    "parcels",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("parcel_id", String(40), nullable=False, unique=True),
    Column("note", Text, nullable=True),
    Column("pieces", Integer, nullable=False),
    Column("grams", BigInteger, nullable=False),
    Column("weight", Float, nullable=True),
    Column("label", LargeBinary, nullable=True),
    Column("fragile", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", Integer, nullable=False, server_default="1"),
    sqlite_autoincrement=True,
)
scans = Table(
    "scans",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("parcel_id", String(40), nullable=False),
    Column("event", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)
typed = Table(
    "typed",
    metadata,
    Column("typed_id", String(10), primary_key=True),
    Column("at", DateTime, nullable=True),
    Column("amount", Numeric(12, 2), nullable=True),
    Column("doc", JSON, nullable=True),
)
counters = Table(
    "counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

PARCEL = select(parcels).where(parcels.c.parcel_id == bindparam("parcel_id"))
# Labels, an outer join and a literal bound into the statement (kind = 1).
PARCEL_SCANS = (
    select(
        parcels.c.parcel_id.label("tracked_id"),
        parcels.c.fragile,
        scans.c.event,
        scans.c.seq.label("scan_seq"),
    )
    .select_from(parcels.outerjoin(scans, scans.c.parcel_id == parcels.c.parcel_id))
    .where(parcels.c.parcel_id == bindparam("parcel_id"), parcels.c.kind == 1)
    .order_by(scans.c.seq)
)
INSERT_PARCEL = parcels.insert().inline()
INSERT_RETURNING = parcels.insert().returning(parcels.c.seq, parcels.c.fragile, parcels.c.label)
NEW_PARCEL = insert_new(parcels)
SAVE_PARCEL = update_where(parcels, "parcel_id", "version")
INSERT_SCAN = scans.insert().inline()
TYPED = select(typed).where(typed.c.typed_id == bindparam("typed_id"))
INSERT_TYPED = typed.insert().inline()
NEXT_VALUE = text(
    "INSERT INTO counters (name, value) VALUES (:name, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
)


def parcel(parcel_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "parcel_id": parcel_id,
        "note": None,
        "pieces": 2,
        "grams": 2**40,  # beyond 32 bits
        "weight": 3,  # an int for a Float column: SQLite's processor stores 3.0
        "label": b"\x00\xffPDF",
        "fragile": True,
        "version": 1,
    }
    return {**values, **changes}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)  # the kit's engine: BEGIN IMMEDIATE, WAL, ... on SQLite
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def typed_rows(rows: Any) -> list[list[tuple[type, Any]]]:
    """Rows with each value's type, so 3 and 3.0 or 1 and True do not compare equal."""
    return [[(type(value), value) for value in row] for row in rows]


def stored(conn: Connection, table: Table, key: str) -> list[list[tuple[type, Any]]]:
    """The values as the driver returns them, past SQLAlchemy's types: what is on disk."""
    names = ", ".join(column.name for column in table.columns if column.name != "seq")
    rows = conn.exec_driver_sql(f"SELECT {names} FROM {table.name} ORDER BY {key}").all()
    return typed_rows(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows)


# -- same rows as conn.execute --------------------------------------------------------------


def test_select_with_labels_and_a_join_answers_what_conn_execute_does(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(INSERT_PARCEL, parcel("p-1"))
        conn.execute(INSERT_SCAN, [{"parcel_id": "p-1", "event": b"e%d" % n} for n in (1, 2)])
        for statement, params in (
            (PARCEL, {"parcel_id": "p-1"}),
            (PARCEL_SCANS, {"parcel_id": "p-1"}),
        ):
            expected = conn.execute(statement, params)
            keys = list(expected.keys())
            expected_rows = expected.all()
            result = prepared(statement).run(conn, params)
            assert list(result.keys()) == keys
            rows = result.all()
            assert typed_rows(rows) == typed_rows(expected_rows)
            for row, sa_row in zip(rows, expected_rows, strict=True):
                assert dict(row._mapping) == dict(sa_row._mapping)
                assert [getattr(row, key) for key in keys] == [getattr(sa_row, k) for k in keys]
        joined = prepared(PARCEL_SCANS).run(conn, {"parcel_id": "p-1"}).first()
        assert joined is not None
        assert (joined.tracked_id, joined.fragile, joined.event) == ("p-1", True, b"e1")
        assert joined[0] == "p-1" and joined._mapping["scan_seq"] == joined.scan_seq
        assert prepared(PARCEL).run(conn, {"parcel_id": "nope"}).first() is None


def test_insert_returning_answers_what_conn_execute_does(engine: Engine) -> None:
    with engine.begin() as conn:
        expected = conn.execute(INSERT_RETURNING, parcel("p-1")).all()
        rows = prepared(INSERT_RETURNING).run(conn, parcel("p-2")).all()
        assert typed_rows(rows) == typed_rows([(expected[0].seq + 1, True, b"\x00\xffPDF")])
        assert rows[0].fragile is True and rows[0].label == b"\x00\xffPDF"


def test_text_returning_keys_come_from_the_driver(engine: Engine) -> None:
    with engine.begin() as conn:
        assert prepared(NEXT_VALUE).run(conn, {"name": "inv"}).scalar_one() == 1
        result = prepared(NEXT_VALUE).run(conn, {"name": "inv"})
        assert list(result.keys()) == ["value"]
        assert result.one().value == 2
        assert conn.execute(NEXT_VALUE, {"name": "inv"}).scalar_one() == 3


def test_on_conflict_do_nothing_counts_1_then_0(engine: Engine) -> None:
    new_parcel = prepared(NEW_PARCEL)
    with engine.begin() as conn:
        assert new_parcel.run(conn, parcel("p-1")).rowcount == 1
        assert new_parcel.run(conn, parcel("p-1", pieces=9)).rowcount == 0
        same_in_sqlalchemy = new_parcel.statement(conn.dialect.name)
        assert conn.execute(same_in_sqlalchemy, parcel("p-1")).rowcount == 0
        assert conn.execute(select(parcels.c.pieces)).scalars().all() == [2]


def test_update_rowcount_and_columns_from_the_parameter_names(engine: Engine) -> None:
    save = prepared(SAVE_PARCEL)
    with engine.begin() as conn:
        conn.execute(INSERT_PARCEL, parcel("p-1"))
        done = save.run(conn, {"match_parcel_id": "p-1", "match_version": 1, "version": 2})
        assert done.rowcount == 1
        # Another set of names is another SET list: the note changes, pieces stay.
        done = save.run(
            conn, {"match_parcel_id": "p-1", "match_version": 2, "version": 3, "note": "n"}
        )
        assert done.rowcount == 1
        stale = save.run(conn, {"match_parcel_id": "p-1", "match_version": 1, "version": 9})
        assert stale.rowcount == 0
        row = conn.execute(PARCEL, {"parcel_id": "p-1"}).one()
        assert (row.version, row.note, row.pieces) == (3, "n", 2)


def test_executemany_writes_every_set_and_counts_them(engine: Engine) -> None:
    events = [{"parcel_id": "p-1", "event": b"e%d" % n} for n in range(3)]
    with engine.begin() as conn:
        assert prepared(INSERT_SCAN).run_many(conn, events).rowcount == 3
        assert prepared(INSERT_SCAN).run_many(conn, []).rowcount == 0
        conn.execute(INSERT_PARCEL, [parcel("p-1"), parcel("p-2")])
        bumps = [
            {"match_parcel_id": key, "match_version": 1, "version": 2}
            for key in ("p-1", "p-2", "p-3")
        ]
        assert prepared(SAVE_PARCEL).run_many(conn, bumps).rowcount == 2
        stored_events = conn.execute(select(scans.c.event).order_by(scans.c.seq)).scalars().all()
        assert stored_events == [b"e0", b"e1", b"e2"]
    with pytest.raises(Unpreparable), engine.begin() as conn:
        prepared(PARCEL).run_many(conn, [{"parcel_id": "p-1"}])


# -- bind and result processors -------------------------------------------------------------


def test_every_column_type_stores_and_reads_the_same_values(engine: Engine) -> None:
    at = datetime(2024, 2, 29, 23, 59, 58, 123456)
    typed_values = {"at": at, "amount": Decimal("12.30"), "doc": {"lines": [1, "two", None]}}
    with engine.begin() as conn:
        conn.execute(INSERT_PARCEL, parcel("a-sqlalchemy", weight=None, fragile=False))
        prepared(INSERT_PARCEL).run(conn, parcel("b-prepared", weight=None, fragile=False))
        conn.execute(INSERT_PARCEL, parcel("c-sqlalchemy", note="ü"))
        prepared(INSERT_PARCEL).run(conn, parcel("d-prepared", note="ü"))
        conn.execute(INSERT_TYPED, {"typed_id": "a", **typed_values})
        prepared(INSERT_TYPED).run(conn, {"typed_id": "b", **typed_values})
        conn.execute(INSERT_TYPED, {"typed_id": "c", "at": None, "amount": None, "doc": None})
        prepared(INSERT_TYPED).run(conn, {"typed_id": "d", "at": None, "amount": None, "doc": None})

        on_disk = stored(conn, parcels, "parcel_id")
        assert [row[1:] for row in on_disk[0::2]] == [row[1:] for row in on_disk[1::2]]
        on_disk = stored(conn, typed, "typed_id")
        assert [row[1:] for row in on_disk[0::2]] == [row[1:] for row in on_disk[1::2]]

        for key in ("a-sqlalchemy", "d-prepared"):
            expected = conn.execute(PARCEL, {"parcel_id": key}).all()
            assert typed_rows(prepared(PARCEL).run(conn, {"parcel_id": key})) == typed_rows(
                expected
            )
        for key in "abcd":
            expected = conn.execute(TYPED, {"typed_id": key}).all()
            rows = prepared(TYPED).run(conn, {"typed_id": key}).all()
            assert typed_rows(rows) == typed_rows(expected)
        row = prepared(TYPED).run(conn, {"typed_id": "b"}).one()
        assert (row.at, row.amount, row.doc) == (at, Decimal("12.30"), typed_values["doc"])
        parcel_row = prepared(PARCEL).run(conn, {"parcel_id": "d-prepared"}).one()
        assert parcel_row.weight == 3.0 and isinstance(parcel_row.weight, float)
        assert parcel_row.fragile is True and parcel_row.grams == 2**40


# -- one transaction with SQLAlchemy ----------------------------------------------------------


def test_raw_writes_share_the_transaction_of_sqlalchemy(engine: Engine) -> None:
    count = select(func.count()).select_from(parcels)
    with engine.connect() as conn:
        transaction = conn.begin()
        prepared(NEW_PARCEL).run(conn, parcel("p-1"))
        assert conn.execute(count).scalar_one() == 1  # the raw write, seen by SQLAlchemy
        conn.execute(parcels.update().values(pieces=7))
        assert prepared(PARCEL).run(conn, {"parcel_id": "p-1"}).one().pieces == 7
        transaction.rollback()
        with conn.begin():
            assert conn.execute(count).scalar_one() == 0
            assert prepared(PARCEL).run(conn, {"parcel_id": "p-1"}).first() is None


def test_a_connection_outside_a_transaction_begins_one(engine: Engine) -> None:
    with engine.connect() as conn:
        prepared(NEW_PARCEL).run(conn, parcel("p-1"))
        assert conn.in_transaction()
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(parcels)).scalar_one() == 0


def test_driver_errors_surface_as_sqlalchemy_does_them(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin():
        prepared(INSERT_PARCEL).run(conn, parcel("p-1"))
        with pytest.raises(IntegrityError) as raised:
            prepared(INSERT_PARCEL).run(conn, parcel("p-1"))
        assert raised.value.orig is not None  # the driver's error, as uow.lost_a_race reads it
        with pytest.raises(InvalidRequestError, match="bind parameter 'parcel_id'"):
            prepared(PARCEL).run(conn, {})


# -- what it refuses --------------------------------------------------------------------------


def test_statements_rendered_per_call_are_refused_where_they_are_built() -> None:
    with pytest.raises(Unpreparable, match="expanding"):
        prepared(select(parcels).where(parcels.c.parcel_id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(Unpreparable, match="literal_execute"):
        prepared(select(parcels).where(parcels.c.pieces == bindparam("n", literal_execute=True)))
    with pytest.raises(Unpreparable, match="expanding"):
        prepared({"sqlite": select(parcels).where(parcels.c.parcel_id.in_(["a", "b"]))})


def test_python_side_defaults_are_refused_on_the_first_run(engine: Engine) -> None:
    stamped = Table(
        "stamped",
        MetaData(),
        Column("k", String(4), primary_key=True),
        Column("n", Integer, default=5),
    )
    stamped.create(engine)
    with engine.begin() as conn, pytest.raises(Unpreparable, match="Python-side"):
        prepared(stamped.insert().inline()).run(conn, {"k": "a"})


# -- the result object ------------------------------------------------------------------------


def rows_of(*values: int) -> RawResult[Any]:
    maker = RowMaker(["n", "_hidden"], [(0, lambda v: v * 10)])
    return RawResult(len(values), maker([(v, "x") for v in values]), maker.keys)


def test_results_answer_like_sqlalchemy_results() -> None:
    one, none, two = rows_of(1), rows_of(), rows_of(1, 2)
    assert one.one().n == 10 and one.scalar_one() == 10 and one.scalar() == 10
    assert one.one()._mapping == {"n": 10, "_hidden": "x"}  # a key that is no field name
    assert none.first() is None and none.scalar() is None and none.one_or_none() is None
    assert none.scalar_one_or_none() is None
    assert [row.n for row in two] == [10, 20] and two.scalars().all() == [10, 20]
    assert two.mappings().first() == {"n": 10, "_hidden": "x"}
    with pytest.raises(NoResultFound):
        none.one()
    with pytest.raises(MultipleResultsFound):
        two.one_or_none()
    with pytest.raises(MultipleResultsFound):
        two.scalar_one()
    with pytest.raises(ResourceClosedError):
        RawResult(1, None).first()
