"""`crossdock`: the operator CLI for the event pipeline.

    crossdock streams                              streams and their message counts
    crossdock dlq list|show|redrive|discard        dead letters
    crossdock outbox status --db-url URL           a service's outbox backlog
    crossdock replay --consumer C --from-seq N     reposition a durable consumer
    crossdock migrate --service X --db-url URL     run a service's migrations
    crossdock schemas list|show|check              event schemas (mounted by the registry)
    crossdock tower timeline REF [--partner P]     one order's events from every service
    crossdock flows [--items FLOW] [--json]        business-flow health from the control tower
    crossdock exceptions list|show|retry|redrive|resolve|map-code   the exceptions workbench
    crossdock reconcile run [--check NAME] [--report-only] | findings   reconciliation checks
    crossdock carriers map-code|mappings           carrier code mappings (from carrier-adapter)

NATS commands take --nats-url (default: $CROSSDOCK_NATS_URL); DB commands take --db-url
(default: $CROSSDOCK_DB_URL).

Command groups owned by services are mounted without the kit importing them: each is a
`crossdock.cli` entry point (pyproject.toml) naming a function `add(subparsers)` that adds its
parsers, with `run` set to an async handler returning the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import nats

from services.kit.bus import NATS_URL_ENV, nats_url_from_env
from services.kit.cli_commands import (
    NatsUnreachable,
    cmd_dlq_discard,
    cmd_dlq_list,
    cmd_dlq_redrive,
    cmd_dlq_show,
    cmd_migrate,
    cmd_outbox_status,
    cmd_replay,
    cmd_streams,
    parse_time,
)
from services.kit.cli_tower import add_tower_commands
from services.kit.migrations import DB_URL_ENV

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
PLUGIN_GROUP = "crossdock.cli"


# -- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossdock",
        description="Operate the crossdock event pipeline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    nats_opts = argparse.ArgumentParser(add_help=False)
    nats_opts.add_argument(
        "--nats-url",
        default=nats_url_from_env(),
        help=f"NATS server URL (default: ${NATS_URL_ENV} or %(default)s)",
    )
    db_opts = argparse.ArgumentParser(add_help=False)
    db_opts.add_argument(
        "--db-url",
        default=os.environ.get(DB_URL_ENV),
        required=not os.environ.get(DB_URL_ENV),
        help=f"SQLAlchemy URL of the service database (default: ${DB_URL_ENV})",
    )
    json_opt = argparse.ArgumentParser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="print JSON")

    p = commands.add_parser(
        "streams",
        parents=[nats_opts, json_opt],
        help="list streams with message counts",
        description="List JetStream streams with message counts.",
    )
    p.set_defaults(run=cmd_streams)

    p_dlq = commands.add_parser(
        "dlq",
        help="inspect, redrive or discard dead letters",
        description="Dead letters: events a consumer could not apply.",
    )
    dlq_cmds = p_dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    p = dlq_cmds.add_parser(
        "list",
        parents=[nats_opts, json_opt],
        help="list dead letters",
        description="List dead letters, oldest first.",
    )
    p.add_argument("--consumer", help="only this consumer's (e.g. billing-invoicing)")
    p.add_argument("--limit", type=int, help="at most this many")
    p.set_defaults(run=cmd_dlq_list)
    p = dlq_cmds.add_parser(
        "show",
        parents=[nats_opts],
        help="show one dead letter in full",
        description="Show a dead letter's headers and payload (hex).",
    )
    p.add_argument("seq", type=int, help="DLQ stream sequence (from `dlq list`)")
    p.set_defaults(run=cmd_dlq_show)
    for action, fn, text in (
        (
            "redrive",
            cmd_dlq_redrive,
            "Republish dead letters to their original subject, for the consumer that failed "
            "them. A new Nats-Msg-Id bypasses the duplicate window; the same ce-id keeps them "
            "exactly-once through the consumer's inbox. Redriven letters leave the DLQ. This "
            "publishes domain subjects, so it needs the admin NATS user; without it, redrive "
            "through the consuming service's own gRPC DeadLetterService (RedriveDeadLetter, "
            "DiscardDeadLetter), which applies the letter in place and publishes nothing.",
        ),
        ("discard", cmd_dlq_discard, "Delete dead letters for good."),
    ):
        p = dlq_cmds.add_parser(
            action, parents=[nats_opts], help=text.split(".")[0].lower(), description=text
        )
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("seq", type=int, nargs="*", default=[], help="DLQ sequences")
        target.add_argument("--all", action="store_true", help="every dead letter (see --consumer)")
        p.add_argument("--consumer", help="only this consumer's dead letters")
        p.set_defaults(run=fn)

    p_outbox = commands.add_parser(
        "outbox", help="a service's outbox", description="Inspect a service's transactional outbox."
    )
    outbox_cmds = p_outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    p = outbox_cmds.add_parser(
        "status",
        parents=[db_opts, json_opt],
        help="backlog, oldest pending age, last publish",
        description="Show the outbox backlog of one service database.",
    )
    p.add_argument("--show", type=int, default=5, help="list the next N pending events")
    p.set_defaults(run=cmd_outbox_status)

    p = commands.add_parser(
        "replay",
        parents=[nats_opts],
        help="redeliver a consumer's events from a point",
        description="Reposition a durable consumer so it redelivers from a stream sequence or a "
        "time. Events it already applied are skipped by its inbox; a running service picks up "
        "the new position by itself.",
    )
    p.add_argument("--consumer", required=True, help="durable name, e.g. billing-invoicing")
    p.add_argument("--stream", help="the stream (required if the consumer is on several)")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-seq", type=int, help="first stream sequence to redeliver")
    start.add_argument("--since", type=parse_time, help="RFC 3339 time, e.g. 2025-01-31T12:00Z")
    p.set_defaults(run=cmd_replay)

    p = commands.add_parser(
        "migrate",
        parents=[db_opts],
        help="upgrade a service database",
        description=(
            "Run a service's Alembic migrations (services/<service>/adapters/store/migrations)."
        ),
    )
    p.add_argument("--service", required=True, help="service name, e.g. order")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.add_argument("--script-location", help="override the migrations directory")
    p.set_defaults(run=cmd_migrate)
    add_tower_commands(commands)
    add_plugin_commands(commands)
    return parser


def add_plugin_commands(commands: Any) -> None:
    """Mount the command groups registered under the `crossdock.cli` entry-point group."""
    for entry in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            add = entry.load()
            add(commands)
        except Exception as exc:  # one broken plugin must not take the whole CLI down
            print(
                f"crossdock: cannot load the {entry.name!r} commands ({entry.value}): {exc!r}",
                file=sys.stderr,
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        return asyncio.run(run(args))
    except (NatsUnreachable, nats.errors.NoServersError, OSError) as exc:
        print(
            f"crossdock: cannot reach NATS at {getattr(args, 'nats_url', '?')}: {exc}",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
