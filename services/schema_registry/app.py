"""The registry's use cases, shared by the gRPC API, the REST API and tests.

Registration is optimistic: read the subject (one unit of work), run the compatibility check
outside any transaction (buf takes tens of milliseconds; holding SQLite's single writer or a
PostgreSQL lock that long would serialize every service's start), then write in a second unit
of work that succeeds only if the subject still has the latest version the check saw. A lost
race re-reads and re-checks, so a version is never registered unchecked against its
predecessor.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from services.kit.db import Database
from services.schema_registry.adapters.buf import CompatibilityChecker
from services.schema_registry.adapters.store import queries
from services.schema_registry.adapters.store.tables import GLOBAL_SUBJECT
from services.schema_registry.domain.errors import (
    IncompatibleSchema,
    RegistrationConflict,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from services.schema_registry.domain.model import CanonicalSchema, RegisteredSchema, Violation
from services.schema_registry.domain.modes import (
    DEFAULT_MODE,
    Comparison,
    CompatibilityMode,
    Direction,
    comparison_with,
    comparisons_for,
)

Pairs = Sequence[tuple[RegisteredSchema, tuple[Direction, ...]]]


@dataclass(frozen=True)
class _Snapshot:
    """What a registration read: the existing registration, or what to compare with."""

    existing: RegisteredSchema | None
    latest: int | None = None
    pairs: Pairs = field(default_factory=tuple)


class SchemaRegistry:
    """Register, look up and check schemas; configure compatibility modes."""

    def __init__(
        self,
        db: Database,
        checker: CompatibilityChecker,
        *,
        default_mode: CompatibilityMode = DEFAULT_MODE,
        max_attempts: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.checker = checker
        self.default_mode = default_mode
        self._max_attempts = max_attempts
        self._clock = clock

    # ---- registration and checks ---------------------------------------------------------

    async def canonicalize(self, descriptor_set: bytes, message_name: str) -> CanonicalSchema:
        return await asyncio.to_thread(self.checker.canonicalize, descriptor_set, message_name)

    async def register(
        self, subject: str, message_name: str, descriptor_set: bytes
    ) -> RegisteredSchema:
        """Add the schema to the subject, or return it if the subject already has it.

        Raises InvalidSchema (42201) or IncompatibleSchema (409).
        """
        candidate = await self.canonicalize(descriptor_set, message_name)
        for attempt in range(self._max_attempts):
            snapshot = await self.db.run(self._registration_snapshot, subject, candidate)
            if snapshot.existing is not None:
                return snapshot.existing
            violations = await self._violations(candidate, snapshot.pairs)
            if violations:
                raise IncompatibleSchema(subject, violations)
            try:
                return await self.db.run(
                    queries.insert_version, subject, candidate, snapshot.latest, self._clock()
                )
            except (queries.StaleSnapshot, IntegrityError):
                # Someone registered on this subject meanwhile: back off a little, re-check.
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise RegistrationConflict(subject)

    async def check(
        self, subject: str, message_name: str, descriptor_set: bytes, version: int | None = None
    ) -> list[Violation]:
        """Why the schema may not be registered (empty when it may).

        `version` None compares with what the subject's mode requires; a number compares with
        that version only, in the mode's directions.
        """
        candidate = await self.canonicalize(descriptor_set, message_name)
        pairs = await self.db.run(self._check_snapshot, subject, version)
        return await self._violations(candidate, pairs)

    async def _violations(self, candidate: CanonicalSchema, pairs: Pairs) -> list[Violation]:
        def run() -> list[Violation]:
            found: list[Violation] = []
            for against, directions in pairs:
                found += self.checker.compare(candidate, against, directions)
            return found

        return await asyncio.to_thread(run) if pairs else []

    def _registration_snapshot(
        self, conn: Connection, subject: str, candidate: CanonicalSchema
    ) -> _Snapshot:
        existing = queries.registered(conn, subject, candidate.fingerprint)
        if existing is not None:
            return _Snapshot(existing)
        numbers = queries.version_numbers(conn, subject)
        mode = queries.effective_mode(conn, subject, self.default_mode)
        return _Snapshot(
            None,
            latest=numbers[-1] if numbers else None,
            pairs=self._pairs(conn, subject, comparisons_for(mode, numbers)),
        )

    def _check_snapshot(self, conn: Connection, subject: str, version: int | None) -> Pairs:
        numbers = queries.version_numbers(conn, subject)
        if not numbers:
            raise SubjectNotFound(subject)
        mode = queries.effective_mode(conn, subject, self.default_mode)
        if version is None:
            return self._pairs(conn, subject, comparisons_for(mode, numbers))
        if version not in numbers:
            raise VersionNotFound(subject, version)
        return self._pairs(conn, subject, comparison_with(mode, version))

    @staticmethod
    def _pairs(conn: Connection, subject: str, plan: Sequence[Comparison]) -> Pairs:
        by_version = {
            schema.version: schema
            for schema in queries.versions(conn, subject, [c.version for c in plan])
        }
        return tuple((by_version[c.version], c.directions) for c in plan)

    # ---- lookups -----------------------------------------------------------------------------

    async def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """A schema by id, with the subject and version it was first registered under."""
        schema = await self.db.run(queries.schema_by_id, schema_id)
        if schema is None:
            raise SchemaNotFound(schema_id)
        return schema

    async def subjects(self) -> list[str]:
        return await self.db.run(queries.subjects)

    async def versions(self, subject: str) -> list[int]:
        numbers = await self.db.run(queries.version_numbers, subject)
        if not numbers:
            raise SubjectNotFound(subject)
        return numbers

    async def version(self, subject: str, version: int | None) -> RegisteredSchema:
        """One version of a subject (None: the latest)."""

        def read(conn: Connection) -> RegisteredSchema:
            found = queries.subject_version(conn, subject, version)
            if found is not None:
                return found
            if not queries.version_numbers(conn, subject):
                raise SubjectNotFound(subject)
            raise VersionNotFound(subject, version or 0)

        return await self.db.run(read)

    # ---- configuration -----------------------------------------------------------------------

    async def mode(self, subject: str = GLOBAL_SUBJECT) -> CompatibilityMode:
        """The mode in force for a subject (its own, else the global), or the global mode."""
        return await self.db.run(queries.effective_mode, subject, self.default_mode)

    async def subject_mode(self, subject: str) -> CompatibilityMode:
        """The mode set on the subject itself; 40408 when it has none."""
        mode = await self.db.run(queries.subject_mode, subject)
        if mode is None:
            raise SubjectConfigNotFound(subject)
        return mode

    async def set_mode(
        self, mode: CompatibilityMode, subject: str = GLOBAL_SUBJECT
    ) -> CompatibilityMode:
        await self.db.run(queries.set_mode, subject, mode, self._clock())
        return mode
