"""Schema ids on events: producers register at start, consumers resolve what they receive.

Producer side: `register_produced_schemas(client, service)` registers (idempotently: the same
schema gets the same id) the schema of every event the service produces, and returns
message full name → schema id for `events.install_schema_ids`. A schema the registry refuses
(incompatible with what it holds, or invalid) is logged as one JSON line naming the subject and
the reasons, and raises SchemaRejectedError: the service refuses to start.

Consumer side: a `SchemaResolver` looks up the ids named by `ce-dataschema`. The decoder is sync
and runs per message, so the consumer calls `await resolver.prefetch(ids)` once per batch, on the
event loop, for the ids it has not seen, and then classifies the batch with `cached`. Schemas are
immutable, so a resolved id is cached for the life of the process: a known id costs no I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crossdock.registry.v1 import registry_pb2
from google.protobuf.message import Message

from services.kit import events as ev
from services.kit.catalog import load_catalog
from services.kit.registry_client import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryUnavailableError,
    SchemaRegistryClient,
    UnknownSchemaIdError,
)

log = logging.getLogger(__name__)


class SchemaRejectedError(RuntimeError):
    """The registry refused one or more of the service's event schemas: do not start."""

    def __init__(self, service: str, rejected: Mapping[str, list[str]]) -> None:
        reasons = "; ".join(
            f"{subject}: {' / '.join(why) or 'rejected'}" for subject, why in rejected.items()
        )
        super().__init__(f"{service}: the schema registry refused its event schemas: {reasons}")
        self.service = service
        self.rejected = dict(rejected)


def produced_events(service: str) -> list[type[Message]]:
    """The message classes of the catalog's events whose producer is `service`."""
    return [event.message_class for event in load_catalog() if event.producer == service]


async def register_produced_schemas(
    client: SchemaRegistryClient,
    service: str,
    *,
    events: Iterable[type[Message]] | None = None,
    wait_seconds: float = 0.0,
) -> dict[str, int]:
    """Register the schemas of the events `service` produces; message full name → schema id.

    `events` defaults to the catalog's events whose producer is `service`. While the registry is
    unreachable, registration is retried for up to `wait_seconds` (services and the registry may
    start together), then RegistryUnavailableError propagates. Every refused schema is logged;
    then SchemaRejectedError is raised.
    """
    messages = produced_events(service) if events is None else list(events)
    ids: dict[str, int] = {}
    rejected: dict[str, list[str]] = {}
    deadline = time.monotonic() + wait_seconds
    for message in messages:
        subject = ev.event_spec(message).subject
        name = str(message.DESCRIPTOR.full_name)
        while True:
            try:
                schema = await client.register_message(message, subject)
            except RegistryUnavailableError as error:
                if time.monotonic() >= deadline:
                    raise
                log.warning(
                    "schema registry unavailable; retrying",
                    extra={"subject": subject, "error": str(error)},
                )
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                continue
            except IncompatibleSchemaError as error:
                reasons = [
                    f"{v.rule} (against version {v.against_version}): {v.message}"
                    if v.against_version
                    else f"{v.rule}: {v.message}"
                    for v in error.violations
                ] or [str(error)]
                rejected[subject] = reasons
                log.error(
                    "schema of %s is incompatible with the registry; refusing to start",
                    subject,
                    extra={"subject": subject, "message_name": name, "violations": reasons},
                )
            except InvalidSchemaError as error:
                rejected[subject] = [str(error)]
                log.error(
                    "schema of %s is invalid; refusing to start",
                    subject,
                    extra={"subject": subject, "message_name": name, "violations": [str(error)]},
                )
            else:
                ids[name] = int(schema.schema_id)
                log.info(
                    "schema registered",
                    extra={
                        "subject": subject,
                        "schema_id": schema.schema_id,
                        "schema_version": schema.version,
                    },
                )
            break
    if rejected:
        raise SchemaRejectedError(service, rejected)
    return ids


@dataclass(frozen=True)
class Unresolved:
    """Why an id could not be resolved: `permanent` (the registry does not know it) or not."""

    permanent: bool
    reason: str


class SchemaResolver:
    """Resolves `ce-dataschema` ids through the registry client, which caches every schema."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client

    def cached(self, schema_id: int) -> registry_pb2.Schema | None:
        """The schema with this id if it was resolved before; never does I/O."""
        return self._client.cached(schema_id)

    async def prefetch(self, schema_ids: Iterable[int]) -> dict[int, Unresolved]:
        """Resolve the ids not cached yet, concurrently; returns the ones that failed.

        Unknown ids are not cached (an id registered a moment later resolves next time).
        """
        missing = sorted({i for i in schema_ids if self._client.cached(i) is None})
        if not missing:
            return {}
        results = await asyncio.gather(
            *(self._client.get_schema(i) for i in missing), return_exceptions=True
        )
        problems: dict[int, Unresolved] = {}
        for schema_id, result in zip(missing, results, strict=True):
            if isinstance(result, UnknownSchemaIdError):
                problems[schema_id] = Unresolved(
                    True, f"schema id {schema_id} is unknown to the schema registry"
                )
            elif isinstance(result, asyncio.CancelledError):
                raise result
            elif isinstance(result, BaseException):
                problems[schema_id] = Unresolved(
                    False, f"cannot resolve schema id {schema_id}: {result!r}"
                )
        return problems
