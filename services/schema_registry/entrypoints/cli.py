"""`crossdock schemas list|show|check`: the registry from a terminal, and a CI gate.

    crossdock schemas list [--registry HOST:PORT | --local]    subjects and their latest version
    crossdock schemas show SUBJECT [--version N] | --id N      one schema (--descriptor-out FILE)
    crossdock schemas check (--against FILE | --registry HOST:PORT) [--mode M] [--subject S]...

`check` builds every event schema of the working tree from the generated modules (via the event
catalog) and compares it with a released descriptor set (e.g. proto/baseline.binpb, a buf image
of the contracts) or with the registry; it exits 1 and prints the reasons when a change is
incompatible. It runs the registry's own rules engine, so its verdicts are the registry's.

The kit's CLI mounts these through the `crossdock.cli` entry point (pyproject.toml) that names
`add_schema_commands(subparsers)`; each handler is an async
function stored as `run` (the kit's convention). Exit codes: 0 fine, 1 incompatible,
2 bad input, 3 registry unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from services.kit.catalog import EventType, load_catalog
from services.kit.registry_client import (
    RegistryUnavailableError,
    SchemaRegistryClient,
    SchemaRegistryError,
    SubjectNotFoundError,
    descriptor_set_of,
)
from services.schema_registry.adapters.buf import BufError, BufRunner, CompatibilityChecker
from services.schema_registry.domain.errors import InvalidSchema
from services.schema_registry.domain.model import RegisteredSchema
from services.schema_registry.domain.modes import DEFAULT_MODE, CompatibilityMode, directions_of

REGISTRY_TARGET_ENV = "CROSSDOCK_SCHEMA_REGISTRY_TARGET"
OK, INCOMPATIBLE, BAD_INPUT, UNREACHABLE = 0, 1, 2, 3


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _client(args: argparse.Namespace) -> SchemaRegistryClient:
    if not args.registry:
        raise SystemExit(f"give --registry HOST:PORT or set ${REGISTRY_TARGET_ENV}")
    return SchemaRegistryClient(args.registry, timeout_seconds=args.timeout)


def _events(subjects: Sequence[str]) -> list[EventType]:
    catalog = load_catalog()
    if not subjects:
        return list(catalog)
    known = {event.subject: event for event in catalog}
    unknown = sorted(set(subjects) - set(known))
    if unknown:
        raise SystemExit(f"not event subjects of this tree: {', '.join(unknown)}")
    return [known[subject] for subject in sorted(set(subjects))]


# ---- list / show -----------------------------------------------------------------------------


async def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]]
    if args.local:
        rows = [
            {"subject": e.subject, "message": e.full_name, "producer": e.producer}
            for e in load_catalog()
        ]
    else:
        async with _client(args) as registry:
            rows = []
            for subject in await registry.list_subjects():
                latest = await registry.get_version(subject)
                rows.append(
                    {
                        "subject": subject,
                        "version": latest.version,
                        "id": latest.schema_id,
                        "message": latest.message_name,
                    }
                )
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no subjects")
    else:
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
        print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
        for row in rows:
            print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
    return OK


async def cmd_show(args: argparse.Namespace) -> int:
    from google.protobuf import descriptor_pb2

    if args.id is None and args.subject is None:
        raise SystemExit("give a SUBJECT or --id")
    async with _client(args) as registry:
        if args.id is not None:
            schema = await registry.get_schema(args.id)
        else:
            schema = await registry.get_version(args.subject, args.version)
    files = descriptor_pb2.FileDescriptorSet.FromString(schema.file_descriptor_set).file
    view = {
        "id": schema.schema_id,
        "subject": schema.subject,
        "version": schema.version,
        "message": schema.message_name,
        "fingerprint": schema.fingerprint,
        "created": schema.create_time.ToDatetime(dt.UTC).isoformat(),
        "files": [f.name for f in files],
    }
    if args.descriptor_out:
        Path(args.descriptor_out).write_bytes(schema.file_descriptor_set)
    if args.json:
        _print_json(view)
    else:
        for key, value in view.items():
            shown = "\n  ".join(["", *value]) if isinstance(value, list) else value
            print(f"{key}: {shown}")
    return OK


# ---- check -------------------------------------------------------------------------------


def _against_file(
    events: Sequence[EventType], released: bytes, mode: CompatibilityMode
) -> list[dict[str, Any]]:
    checker = CompatibilityChecker(BufRunner())

    def check_one(event: EventType) -> dict[str, Any]:
        name = event.full_name
        candidate = checker.canonicalize(descriptor_set_of(event.message_class), name)
        try:
            old = checker.canonicalize(released, name)
        except InvalidSchema as error:
            if error.violations and error.violations[0].field == "message_name":
                return {"subject": event.subject, "status": "new", "reasons": []}
            raise
        baseline = RegisteredSchema(0, event.subject, 0, name, old.descriptor, old.fingerprint, 0)
        violations = checker.compare(candidate, baseline, directions_of(mode))
        reasons = [f"{v.rule}: {v.message}" for v in violations]
        status = "incompatible" if reasons else "compatible"
        return {"subject": event.subject, "status": status, "reasons": reasons}

    # The time is buf's (a process per comparison): run one per core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(check_one, events))


async def _against_registry(
    events: Sequence[EventType], args: argparse.Namespace
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with _client(args) as registry:
        for event in events:
            try:
                violations = await registry.check(
                    event.subject, event.full_name, descriptor_set_of(event.message_class)
                )
            except SubjectNotFoundError:
                results.append({"subject": event.subject, "status": "new", "reasons": []})
                continue
            reasons = [f"{v.rule} (version {v.against_version}): {v.message}" for v in violations]
            status = "incompatible" if reasons else "compatible"
            results.append({"subject": event.subject, "status": status, "reasons": reasons})
    return results


async def cmd_check(args: argparse.Namespace) -> int:
    events = _events(args.subject)
    if args.against:
        try:
            released = Path(args.against).read_bytes()
        except OSError as error:
            print(f"cannot read {args.against}: {error}", file=sys.stderr)
            return BAD_INPUT
        mode = CompatibilityMode(args.mode)
        results = await asyncio.to_thread(_against_file, events, released, mode)
        against = f"{args.against} ({mode})"
    elif args.registry:
        results = await _against_registry(events, args)
        against = f"registry {args.registry}"
    else:
        raise SystemExit(f"give --against FILE or --registry HOST:PORT (or ${REGISTRY_TARGET_ENV})")
    broken = [r for r in results if r["status"] == "incompatible"]
    if args.json:
        _print_json({"against": against, "results": results})
    else:
        for result in results:
            print(f"{result['status']:<13} {result['subject']}")
            for reason in result["reasons"]:
                print(f"    {reason}")
        print(f"{len(results)} event schemas checked against {against}: {len(broken)} incompatible")
    return INCOMPATIBLE if broken else OK


# ---- parser ------------------------------------------------------------------------------


async def _guarded(args: argparse.Namespace) -> int:
    """Turn the errors an operator can act on into a message and an exit code."""
    try:
        code: int = await args.schemas_run(args)
        return code
    except RegistryUnavailableError as error:
        print(
            f"crossdock schemas: cannot reach the registry at {args.registry}: {error}",
            file=sys.stderr,
        )
        return UNREACHABLE
    except (SchemaRegistryError, InvalidSchema, BufError) as error:
        print(f"crossdock schemas: {error}", file=sys.stderr)
        return BAD_INPUT


def add_schema_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `schemas list|show|check` to a CLI's subparsers; returns the `schemas` parser."""
    registry_opts = argparse.ArgumentParser(add_help=False)
    registry_opts.add_argument(
        "--registry",
        default=os.environ.get(REGISTRY_TARGET_ENV),
        help=f"registry gRPC address HOST:PORT (default: ${REGISTRY_TARGET_ENV})",
    )
    registry_opts.add_argument(
        "--timeout", type=float, default=10.0, help="deadline of each registry call, in seconds"
    )
    registry_opts.add_argument("--json", action="store_true", help="print JSON")

    schemas: argparse.ArgumentParser = subparsers.add_parser(
        "schemas",
        help="event schemas: list, show, check compatibility",
        description="Event schemas in the schema registry and in this working tree.",
    )
    actions = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "list", parents=[registry_opts], help="subjects with their latest version"
    )
    p.add_argument("--local", action="store_true", help="list this tree's events instead")
    p.set_defaults(run=_guarded, schemas_run=cmd_list)

    p = actions.add_parser("show", parents=[registry_opts], help="one registered schema")
    p.add_argument("subject", nargs="?", help="subject, e.g. crossdock.order.placed.v1")
    p.add_argument("--version", type=int, default=0, help="version (default: the latest)")
    p.add_argument("--id", type=int, help="look up a schema id instead of a subject")
    p.add_argument("--descriptor-out", help="also write the FileDescriptorSet to this file")
    p.set_defaults(run=_guarded, schemas_run=cmd_show)

    p = actions.add_parser(
        "check",
        parents=[registry_opts],
        help="check this tree's event schemas for incompatible changes",
        description="Compare this tree's event schemas with a released descriptor set or the "
        "registry; exit 1 with the reasons when a change is incompatible.",
    )
    p.add_argument(
        "--against", help="released descriptor set, e.g. proto/baseline.binpb (else: --registry)"
    )
    p.add_argument(
        "--mode",
        choices=[m.value for m in CompatibilityMode],
        default=DEFAULT_MODE.value,
        help="mode for --against (default: %(default)s; the registry uses its own)",
    )
    p.add_argument("--subject", action="append", default=[], help="only this subject (repeat)")
    p.set_defaults(run=_guarded, schemas_run=cmd_check)
    return schemas


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry without the installed entry point: `python -m ...cli schemas ...`."""
    parser = argparse.ArgumentParser(prog="crossdock")
    add_schema_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    code: int = asyncio.run(args.run(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
