"""Registration, lookup, idempotency and concurrency on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.kit.db import make_engine
from services.kit.migrations import current_revision, service_script_location
from services.schema_registry.adapters.buf import CompatibilityChecker
from services.schema_registry.adapters.store import migrate
from services.schema_registry.adapters.store.tables import metadata
from services.schema_registry.app import SchemaRegistry
from services.schema_registry.domain.errors import (
    IncompatibleSchema,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from services.schema_registry.domain.modes import CompatibilityMode as Mode
from tests.schema_registry.conftest import open_registry
from tests.schema_registry.protos import ADDED, BASE, THING, compile_files, thing

SUBJECT = "regtest.thing.v1"


async def test_register_and_look_up(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, THING, thing(BASE))
    assert (first.version, first.subject, first.message_name) == (1, SUBJECT, THING)
    assert first.schema_id > 0 and len(first.fingerprint) == 64

    by_id = await registry.schema_by_id(first.schema_id)
    assert by_id == first
    assert await registry.subjects() == [SUBJECT]
    assert await registry.versions(SUBJECT) == [1]
    assert await registry.version(SUBJECT, 1) == first
    assert await registry.version(SUBJECT, None) == first


async def test_the_same_schema_gets_the_same_id_and_version(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, THING, thing(BASE))
    # Same schema, built differently (source info kept): still the same schema.
    with_comments = compile_files(
        {"regtest/v1/thing.proto": f'syntax = "proto3";\npackage regtest.v1;\n{BASE}\n'},
        source_info=True,
    )
    again = await registry.register(SUBJECT, THING, with_comments)
    assert (again.schema_id, again.version) == (first.schema_id, 1)
    assert await registry.versions(SUBJECT) == [1]


async def test_the_same_schema_under_another_subject_reuses_the_id(
    registry: SchemaRegistry,
) -> None:
    first = await registry.register(SUBJECT, THING, thing(BASE))
    await registry.register(SUBJECT, THING, thing(ADDED))
    other = await registry.register("regtest.other.v1", THING, thing(BASE))
    assert (other.schema_id, other.version) == (first.schema_id, 1)
    # By id, a schema reports where it was first registered.
    assert (await registry.schema_by_id(first.schema_id)).subject == SUBJECT
    assert await registry.subjects() == ["regtest.other.v1", SUBJECT]


async def test_versions_grow_and_an_old_version_registered_again_is_found(
    registry: SchemaRegistry,
) -> None:
    v1 = await registry.register(SUBJECT, THING, thing(BASE))
    v2 = await registry.register(SUBJECT, THING, thing(ADDED))
    assert (v2.version, v2.schema_id != v1.schema_id) == (2, True)
    assert await registry.version(SUBJECT, None) == v2
    # Confluent semantics: a schema the subject already has is returned, not re-versioned.
    assert await registry.register(SUBJECT, THING, thing(BASE)) == v1
    assert await registry.versions(SUBJECT) == [1, 2]


async def test_unknown_subjects_versions_and_ids(registry: SchemaRegistry) -> None:
    with pytest.raises(SubjectNotFound):
        await registry.versions(SUBJECT)
    with pytest.raises(SubjectNotFound):
        await registry.version(SUBJECT, None)
    with pytest.raises(SubjectNotFound):
        await registry.check(SUBJECT, THING, thing(BASE))
    await registry.register(SUBJECT, THING, thing(BASE))
    with pytest.raises(VersionNotFound):
        await registry.version(SUBJECT, 2)
    with pytest.raises(VersionNotFound):
        await registry.check(SUBJECT, THING, thing(BASE), version=7)
    with pytest.raises(SchemaNotFound):
        await registry.schema_by_id(999)


async def test_modes_per_subject_fall_back_to_global(registry: SchemaRegistry) -> None:
    assert await registry.mode() is Mode.BACKWARD
    assert await registry.mode(SUBJECT) is Mode.BACKWARD
    await registry.set_mode(Mode.FULL)
    assert await registry.mode(SUBJECT) is Mode.FULL
    with pytest.raises(SubjectConfigNotFound):
        await registry.subject_mode(SUBJECT)
    await registry.set_mode(Mode.NONE, SUBJECT)
    await registry.set_mode(Mode.FORWARD, SUBJECT)  # an update, not a second row
    assert await registry.subject_mode(SUBJECT) is Mode.FORWARD
    assert await registry.mode() is Mode.FULL


# ---- concurrency: two registry instances ("replicas") on one database --------------------


@pytest.fixture
async def replicas(
    db_url: str, checker: CompatibilityChecker
) -> AsyncIterator[tuple[SchemaRegistry, SchemaRegistry]]:
    first, second = open_registry(db_url, checker), open_registry(db_url, checker)
    yield first, second
    await first.db.close()
    await second.db.close()


def _variant(n: int) -> bytes:
    """BASE plus one field of its own: each is BACKWARD-compatible with BASE, not with another."""
    return thing(BASE.replace(" }", f" string extra_{n} = {n + 10}; }}"))


async def test_concurrent_registrations_of_one_schema_agree(
    replicas: tuple[SchemaRegistry, SchemaRegistry],
) -> None:
    schema = thing(BASE)
    results = await asyncio.gather(
        *(replicas[i % 2].register(SUBJECT, THING, schema) for i in range(8))
    )
    assert {(r.schema_id, r.version) for r in results} == {(results[0].schema_id, 1)}
    assert await replicas[0].versions(SUBJECT) == [1]


async def test_concurrent_incompatible_candidates_cannot_all_pass(
    replicas: tuple[SchemaRegistry, SchemaRegistry],
) -> None:
    await replicas[0].register(SUBJECT, THING, thing(BASE))
    variants = [_variant(n) for n in range(6)]
    outcomes = await asyncio.gather(
        *(replicas[n % 2].register(SUBJECT, THING, v) for n, v in enumerate(variants)),
        return_exceptions=True,
    )
    # Each variant alone passes against v1, but they drop each other's fields: once one is v2,
    # every other must be checked against v2 and refused. Unchecked, they would all get in.
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, IncompatibleSchema)]
    assert [w.version for w in winners] == [2]
    assert len(winners) + len(losers) == len(variants)  # no other kind of failure
    assert {v.against_version for e in losers for v in e.compat_violations} == {2}
    assert await replicas[1].versions(SUBJECT) == [1, 2]


async def test_concurrent_registrations_get_distinct_consecutive_versions(
    replicas: tuple[SchemaRegistry, SchemaRegistry],
) -> None:
    await replicas[0].set_mode(Mode.NONE, SUBJECT)
    variants = [_variant(n) for n in range(6)]
    results = await asyncio.gather(
        *(replicas[n % 2].register(SUBJECT, THING, v) for n, v in enumerate(variants))
    )
    assert sorted(r.version for r in results) == [1, 2, 3, 4, 5, 6]
    assert len({r.schema_id for r in results}) == 6
    assert await replicas[0].versions(SUBJECT) == [1, 2, 3, 4, 5, 6]


async def test_one_schema_under_many_subjects_at_once_gets_one_id(
    replicas: tuple[SchemaRegistry, SchemaRegistry],
) -> None:
    schema = thing(BASE)
    subjects = [f"regtest.s{n}.v1" for n in range(6)]
    results = await asyncio.gather(
        *(replicas[n % 2].register(s, THING, schema) for n, s in enumerate(subjects))
    )
    assert len({r.schema_id for r in results}) == 1
    assert {r.version for r in results} == {1}


# ---- migrations ------------------------------------------------------------------------------


def test_migrations_are_idempotent_and_match_the_tables(db_url: str) -> None:
    migrate(db_url)  # db_url is already migrated once
    location = service_script_location("schema-registry")
    assert current_revision(db_url, location) == "0001"
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
