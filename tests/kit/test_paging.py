"""Keyset paging in SQL for integer and string keys; foreign tokens are INVALID_ARGUMENT."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, select

from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.paging import decode_token, encode_token, keyset, next_page, page_size

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("sku", String(32), nullable=False, unique=True),
)


def seed(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(items.insert(), [{"seq": i, "sku": f"SKU-{i:03d}"} for i in range(1, 24)])


def walk(conn: Connection, *, by_sku: bool, descending: bool, size: int) -> list[list[object]]:
    pages: list[list[object]] = []
    token = ""
    while True:
        if by_sku:
            query = keyset(
                select(items), items.c.sku, token, size, key_type=str, descending=descending
            )
            page, token = next_page(conn.execute(query).all(), size, key=lambda row: row.sku)
            pages.append([row.sku for row in page])
        else:
            query = keyset(select(items), items.c.seq, token, size, descending=descending)
            page, token = next_page(conn.execute(query).all(), size, key=lambda row: row.seq)
            pages.append([row.seq for row in page])
        if not token:
            return pages


async def test_pages_cover_every_row_once_in_order(db_url: str) -> None:
    db = Database(db_url, service="pagingtest")
    await db.run(seed)
    by_seq = await db.run(lambda c: walk(c, by_sku=False, descending=True, size=10))
    assert [len(p) for p in by_seq] == [10, 10, 3]
    assert [s for p in by_seq for s in p] == list(range(23, 0, -1))
    by_sku = await db.run(lambda c: walk(c, by_sku=True, descending=False, size=5))
    assert [s for p in by_sku for s in p] == [f"SKU-{i:03d}" for i in range(1, 24)]
    exact = await db.run(lambda c: walk(c, by_sku=False, descending=False, size=23))
    assert exact == [list(range(1, 24))]  # no empty trailing page
    await db.close()


def test_tokens_round_trip_and_foreign_ones_are_refused() -> None:
    assert decode_token("") is None
    assert decode_token(encode_token(42)) == 42
    assert decode_token(encode_token("SKU-7"), str) == "SKU-7"
    foreign = [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"seq:abc").decode(),
        encode_token("SKU-7"),  # a string token where an integer key is expected
    ]
    for token in foreign:
        with pytest.raises(InvalidArgument) as caught:
            decode_token(token)
        assert caught.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgument):
        decode_token(encode_token(3), str)


def test_page_size_defaults_and_caps() -> None:
    assert page_size(0) == 50
    assert page_size(7) == 7
    assert page_size(10**6) == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)
