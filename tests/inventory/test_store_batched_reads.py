"""The SQL repository's batched reads and decoded rows, on SQLite and PostgreSQL.

Batched reads run one prepared IN statement per padded number of SKUs (the list repeats a SKU
to reach it) and an expanding one beyond `MAX_PREPARED_IN`; items and locations decoded from
unchanged rows are reused. Whatever the batch size, the answer is exactly the rows asked for,
and a changed row is always decoded afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Connection

from services.inventory import domain
from services.inventory.adapters.store import SqlInventory, migrate
from services.inventory.adapters.store import statements as sql
from services.kit.db import Database

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# Sizes around the padding steps (1, 2, 4, 8, ...) and past the prepared maximum.
BATCH_SIZES = (1, 2, 3, 4, 5, 9, sql.MAX_PREPARED_IN, sql.MAX_PREPARED_IN + 1)
STOCKED = sql.MAX_PREPARED_IN + 2


def sku(n: int) -> str:
    return f"SKU-{n:04d}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="inventory")

    def stock(conn: Connection) -> None:
        repo = SqlInventory(conn)
        for location_id in ("WH-EAST", "WH-WEST"):
            repo.save_location(domain.Location(location_id, location_id.title()))
        for n in range(STOCKED):
            repo.save_item(domain.Item(sku(n), f"item {n}", active=n % 2 == 0))
            # Every SKU at WH-EAST, every third one at WH-WEST too; on hand tells them apart.
            repo.save_position(domain.Position(sku(n), "WH-EAST", n + 1, 0, 1, NOW))
            if n % 3 == 0:
                repo.save_position(domain.Position(sku(n), "WH-WEST", n + 100, 0, 1, NOW))

    database.run_sync(stock)
    yield database
    database.engine.dispose()


def asked(size: int) -> list[str]:
    """`size` SKUs: stocked ones from the end backwards (so padding repeats a real one), and the
    last one unknown."""
    return [sku(STOCKED - 1 - n) for n in range(size - 1)] + ["SKU-UNKNOWN"]


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_get_items_answers_exactly_the_known_skus_asked_for(db: Database, size: int) -> None:
    skus = asked(size)
    items = db.run_sync(lambda conn: SqlInventory(conn).get_items(skus))
    known = skus[:-1]
    assert sorted(items) == sorted(known)
    for name in known:
        n = int(name.removeprefix("SKU-"))
        assert items[name] == domain.Item(name, f"item {n}", active=n % 2 == 0)


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_get_positions_answers_every_sku_asked_for_at_one_location(db: Database, size: int) -> None:
    skus = asked(size)
    positions = db.run_sync(lambda conn: SqlInventory(conn).get_positions(skus, "WH-WEST"))
    assert sorted(positions) == sorted(skus)
    for name in skus:
        n = int(name.removeprefix("SKU-")) if name != "SKU-UNKNOWN" else -1
        position = positions[name]
        if n >= 0 and n % 3 == 0:
            assert (position.on_hand, position.version) == (n + 100, 1)
        else:  # never stocked there: the zero position
            assert position == domain.Position(name, "WH-WEST")


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_positions_of_skus_answers_their_stocked_positions_in_order(
    db: Database, size: int
) -> None:
    skus = asked(size)
    positions = db.run_sync(lambda conn: SqlInventory(conn).positions_of_skus(skus))
    expected = sorted(
        [(name, "WH-EAST") for name in skus[:-1]]
        + [(name, "WH-WEST") for name in skus[:-1] if int(name.removeprefix("SKU-")) % 3 == 0]
    )
    assert [(p.sku, p.location_id) for p in positions] == expected


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_get_item_stock_answers_the_known_skus_with_their_position_at_one_location(
    db: Database, size: int
) -> None:
    skus = asked(size)
    stock = db.run_sync(lambda conn: SqlInventory(conn).get_item_stock(skus, "WH-WEST"))
    known = skus[:-1]
    assert sorted(stock) == sorted(known)
    for name in known:
        n = int(name.removeprefix("SKU-"))
        position = stock[name].position
        if n % 3 == 0:
            assert (position.sku, position.on_hand, position.version) == (name, n + 100, 1)
        else:  # never stocked there: the zero position
            assert position == domain.Position(name, "WH-WEST")


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_positions_at_active_locations_answer_the_stocked_positions_in_order(
    db: Database, size: int
) -> None:
    skus = asked(size)
    db.run_sync(
        lambda conn: SqlInventory(conn).save_location(
            domain.Location("WH-WEST", "West", active=False)
        )
    )
    positions = db.run_sync(lambda conn: SqlInventory(conn).positions_at_active_locations(skus))
    assert [(p.sku, p.location_id) for p in positions] == sorted(
        (name, "WH-EAST") for name in skus[:-1]
    )


def test_a_sku_asked_for_twice_is_answered_once(db: Database) -> None:
    skus = [sku(3), sku(3), sku(6)]
    items = db.run_sync(lambda conn: SqlInventory(conn).get_items(skus))
    positions = db.run_sync(lambda conn: SqlInventory(conn).positions_of_skus(skus))
    assert sorted(items) == [sku(3), sku(6)]
    assert [(p.sku, p.location_id) for p in positions] == [
        (sku(3), "WH-EAST"),
        (sku(3), "WH-WEST"),
        (sku(6), "WH-EAST"),
        (sku(6), "WH-WEST"),
    ]


def test_an_item_read_after_it_changed_is_the_changed_one(db: Database) -> None:
    def read(conn: Connection) -> tuple[domain.Item | None, domain.Item]:
        repo = SqlInventory(conn)
        return repo.get_item(sku(2)), repo.get_items([sku(2), sku(4)])[sku(2)]

    before, _ = db.run_sync(read)  # decoded once, and kept
    assert before is not None and not before.lot_controlled
    changed = domain.Item(
        sku(2),
        "item 2, relabelled",
        lot_controlled=True,
        active=False,
        unit_price=domain.Money("EUR", Decimal("12.50")),
    )
    db.run_sync(lambda conn: SqlInventory(conn).save_item(changed))
    single, batched = db.run_sync(read)
    assert single == changed
    assert batched == changed
    listed = db.run_sync(lambda conn: SqlInventory(conn).items())
    assert [item for item in listed if item.sku == sku(2)] == [changed]


def test_a_location_read_after_it_changed_is_the_changed_one(db: Database) -> None:
    def active_locations(conn: Connection) -> list[str]:
        return [loc.location_id for loc in SqlInventory(conn).locations() if loc.active]

    assert db.run_sync(active_locations) == ["WH-EAST", "WH-WEST"]
    db.run_sync(
        lambda conn: SqlInventory(conn).save_location(
            domain.Location("WH-WEST", "West", active=False)
        )
    )
    assert db.run_sync(active_locations) == ["WH-EAST"]
    location = db.run_sync(lambda conn: SqlInventory(conn).get_location("WH-WEST"))
    assert location == domain.Location("WH-WEST", "West", active=False)
