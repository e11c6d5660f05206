"""Tables of the kit's test service (what `services/<name>/store/tables.py` looks like)."""

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

from services.kit.schema import add_kit_tables

metadata = MetaData()
outbox, inbox = add_kit_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("thing_id", String(255), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("consumer", String(255), nullable=False),
)
