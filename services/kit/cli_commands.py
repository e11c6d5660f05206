"""The `crossdock` CLI's commands: each takes the parsed arguments and returns an exit code.

Exit codes: 0 done, 1 partly failed (see stderr), 2 bad request (unknown consumer, missing
migrations), 3 NATS unreachable (raised as NatsUnreachable and mapped in cli.main).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from services.kit import dlq, outbox, replay
from services.kit.db import Database
from services.kit.migrations import migrate, service_script_location


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


async def _connect(args: argparse.Namespace) -> NATS:
    # An operator wants a fast, clear failure, not the services' endless reconnects.
    async def quiet(_: Exception) -> None:
        return None

    try:
        return await asyncio.wait_for(
            nats.connect(
                args.nats_url,
                name="crossdock-cli",
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=quiet,
            ),
            timeout=5,
        )
    except TimeoutError:
        raise NatsUnreachable(f"no answer within 5s from {args.nats_url}") from None


class NatsUnreachable(Exception):
    pass


# -- streams -----------------------------------------------------------------------------------


async def cmd_streams(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        infos = sorted(await nc.jetstream().streams_info(), key=lambda i: i.config.name or "")
    finally:
        await nc.close()
    rows = [
        {
            "stream": i.config.name,
            "subjects": ",".join(i.config.subjects or []),
            "messages": i.state.messages,
            "bytes": i.state.bytes,
            "first_seq": i.state.first_seq,
            "last_seq": i.state.last_seq,
            "consumers": i.state.consumer_count,
        }
        for i in infos
    ]
    if args.json:
        _print_json(rows)
        return 0
    print(
        f"{'STREAM':<12} {'MESSAGES':>10} {'BYTES':>12} {'LAST SEQ':>10} {'CONSUMERS':>9}  SUBJECTS"
    )
    for r in rows:
        print(
            f"{r['stream']:<12} {r['messages']:>10} {r['bytes']:>12} {r['last_seq']:>10} "
            f"{r['consumers']:>9}  {r['subjects']}"
        )
    return 0


# -- dlq -------------------------------------------------------------------------------------------


def _letter_row(letter: dlq.DeadLetter) -> dict[str, Any]:
    return {
        "seq": letter.seq,
        "consumer": letter.consumer,
        "subject": letter.original_subject,
        "event_id": letter.event_id,
        "stream_seq": letter.original_seq,
        "reason": letter.reason,
    }


async def cmd_dlq_list(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        letters = await dlq.list_dead_letters(nc.jetstream(), args.consumer, args.limit)
    finally:
        await nc.close()
    if args.json:
        _print_json([_letter_row(letter) for letter in letters])
        return 0
    if not letters:
        print("no dead letters")
        return 0
    print(f"{'SEQ':>6}  {'CONSUMER':<24} {'SUBJECT':<40} {'EVENT ID':<36}  REASON")
    for letter in letters:
        print(
            f"{letter.seq:>6}  {letter.consumer:<24} {letter.original_subject:<40} "
            f"{letter.event_id:<36}  {letter.reason[:80]}"
        )
    return 0


async def cmd_dlq_show(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        letter = await dlq.get_dead_letter(nc.jetstream(), args.seq)
    except NotFoundError:
        print(f"no dead letter with sequence {args.seq}", file=sys.stderr)
        return 1
    finally:
        await nc.close()
    view = _letter_row(letter) | {
        "headers": letter.headers,
        "payload_size": len(letter.data),
        "payload_hex": letter.data[:256].hex(),
    }
    _print_json(view)
    return 0


async def _selected(args: argparse.Namespace, nc: NATS) -> list[dlq.DeadLetter]:
    js = nc.jetstream()
    if not args.all and not args.seq:
        raise SystemExit("give DLQ sequences or --all")
    if args.all:
        return await dlq.list_dead_letters(js, args.consumer)
    letters = []
    for seq in args.seq:
        try:
            letter = await dlq.get_dead_letter(js, seq)
        except NotFoundError:
            print(f"no dead letter with sequence {seq}", file=sys.stderr)
            continue
        if args.consumer and letter.consumer != args.consumer:
            print(f"dead letter {seq} belongs to {letter.consumer}, skipped", file=sys.stderr)
            continue
        letters.append(letter)
    return letters


async def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    failures = 0
    try:
        for letter in await _selected(args, nc):
            try:
                ack = await dlq.redrive(nc.jetstream(), letter)
            except Exception as exc:
                failures += 1
                print(f"redrive of {letter.seq} failed: {exc}", file=sys.stderr)
                continue
            print(
                f"redrove {letter.seq} ({letter.event_id}) to {letter.original_subject} "
                f"for {letter.consumer}: {ack.stream} seq {ack.seq}"
            )
    finally:
        await nc.close()
    return 1 if failures else 0


async def cmd_dlq_discard(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        for letter in await _selected(args, nc):
            if await dlq.discard(nc.jetstream(), letter.seq):
                print(f"discarded {letter.seq} ({letter.event_id})")
    finally:
        await nc.close()
    return 0


# -- outbox, replay, migrate ----------------------------------------------------------------------


async def cmd_outbox_status(args: argparse.Namespace) -> int:
    db = Database(args.db_url, service="crossdock-cli", pool_size=1)
    try:
        stats = db.run_sync(outbox.stats)
        head = db.run_sync(outbox.fetch_pending, args.show)
    finally:
        await db.close()
    next_pending = [dict(outbox.as_mapping(row)) for row in head]
    view: dict[str, Any] = {
        "pending": stats.pending,
        "oldest_pending_age_seconds": round(stats.oldest_pending_age(time.time()), 3),
        "sent_retained": stats.sent,
        "last_sent_at": outbox.rfc3339(stats.last_sent_at) if stats.last_sent_at else None,
        "next_pending": next_pending,
    }
    if args.json:
        _print_json(view)
        return 0
    print(f"pending: {view['pending']}  (oldest {view['oldest_pending_age_seconds']}s)")
    print(f"sent (retained): {view['sent_retained']}  last sent at: {view['last_sent_at']}")
    for row in next_pending:
        print(f"  seq {row['seq']}  {row['subject']}  {row['aggregate_id']}  {row['event_id']}")
    return 0


def parse_time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 / RFC 3339 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def cmd_replay(args: argparse.Namespace) -> int:
    nc = await _connect(args)
    try:
        infos = await replay.reposition(
            nc.jetstream(),
            consumer=args.consumer,
            stream=args.stream,
            from_seq=args.from_seq,
            since=args.since,
        )
    except (LookupError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        await nc.close()
    for info in infos:
        print(
            f"{args.consumer} on {info.stream_name}: redelivering {info.num_pending} messages "
            f"from {args.from_seq if args.from_seq is not None else args.since}"
        )
    return 0


async def cmd_migrate(args: argparse.Namespace) -> int:
    location = args.script_location or service_script_location(args.service)
    try:
        await asyncio.to_thread(migrate, args.db_url, location, args.revision)
    except FileNotFoundError as exc:
        print(f"{exc} (service {args.service!r})", file=sys.stderr)
        return 2
    print(f"{args.service}: migrated to {args.revision}")
    return 0
