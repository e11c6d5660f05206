"""Idempotent JetStream consumers: durable pull, batch-in-one-transaction, inbox, NAK, DLQ.

One `EventConsumer` is one durable pull consumer `<service>-<purpose>` on one stream. Per batch:

1. take what has arrived on the open pull request, at most `batch_size` messages;
2. classify each without touching the DB: not ours (ack), undecodable / invalid / unknown type
   (dead-letter), or to apply. With a schema resolver, the batch's `ce-dataschema` ids not seen
   before are first resolved through the registry (one call per new id, on the event loop): an id
   the registry does not know is dead-lettered, an unreachable registry NAKs the message;
3. apply the batch in ONE transaction on the DB worker: claim the inbox rows and run the handlers.
   Fast path: the whole batch under one savepoint. If any handler fails, that savepoint is rolled
   back and the batch is re-run with one savepoint per message, so one bad message costs only
   itself (a handler must therefore only write through `conn`);
4. after COMMIT: ack applied and duplicate messages, NAK transient failures with a delay growing
   with `num_delivered`, and dead-letter permanent failures (then TERM). A batch that failed
   because the database is unavailable is held instead, in progress, until it answers again
   (kit.outage_hold): an outage spends no deliveries. On the final delivery
   (`num_delivered == max_deliver`) a failure is dead-lettered instead of NAKed, because JetStream
   would otherwise drop the message silently.

Acks are sent only after commit, so a crash anywhere before leaves the message to be redelivered;
the inbox turns that redelivery into a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from services.kit import events as ev
from services.kit import inbox
from services.kit.apply import BatchApplier, HandlerScope, Item, Outcome, OutcomeRecorder
from services.kit.db import Database
from services.kit.dlq import REDRIVE_CONSUMER, Letter, publish_letters, watch_max_deliveries
from services.kit.faults import fault_point
from services.kit.handlers import (
    EventDecoder,
    HandlerRegistry,
    Headers,
    PermanentError,
    ProtobufDecoder,
)
from services.kit.metrics import ServiceMetrics
from services.kit.outage_hold import DatabaseOutage, hold_until_database, is_outage
from services.kit.pull import PullGone, PullLost, PullStream
from services.kit.schema_ids import SchemaResolver, Unresolved

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSettings:
    batch_size: int = 100
    fetch_timeout: float = 1.0
    # Seconds to wait for more messages once a batch smaller than `batch_size` arrived, so that
    # at moderate rates several events share one transaction instead of one each (0: none).
    linger: float = 0.0
    ack_wait: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 2000
    nak_base_delay: float = 1.0
    nak_max_delay: float = 60.0
    dlq_publish_timeout: float = 5.0
    # How long to wait before recreating a durable that vanished: `crossdock replay` deletes and
    # recreates it, and we must not race it with our default config.
    recreate_grace: float = 3.0
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    # Inbox rows must outlive every copy of an event that could still be delivered: longer
    # than the stream's max age (7 days) and any replay window.
    inbox_retention_seconds: float = 30 * 24 * 3600.0
    inbox_purge_interval: float = 3600.0

    def nak_delay(self, num_delivered: int) -> float:
        return min(self.nak_base_delay * 2.0 ** max(0, num_delivered - 1), self.nak_max_delay)


# Settings a running durable takes from the config besides its filter (`set_filter_subjects`).
_EDITABLE = ("ack_wait", "max_deliver", "max_ack_pending", "description")


def _filters(config: ConsumerConfig) -> list[str]:
    """The subjects a consumer config filters on, whichever field holds them."""
    return sorted(
        config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    )


def _reraise_if_cancelled() -> None:
    # nats-py turns a cancellation inside fetch() into a timeout or closed-connection error; a
    # loop that swallowed it could never be cancelled.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class EventConsumer:
    """A durable pull consumer applying events exactly once through the inbox."""

    def __init__(
        self,
        *,
        service: str,
        purpose: str,
        stream: str,
        registry: HandlerRegistry,
        db: Database,
        nc: NATS,
        settings: ConsumerSettings | None = None,
        metrics: ServiceMetrics | None = None,
        decoder: EventDecoder | None = None,
        handler_scope: HandlerScope | None = None,
        schema_resolver: SchemaResolver | None = None,
        durable_setup: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`handler_scope(subject, headers)` is entered around every handler call: the hook for
        trace-context extraction (a CONSUMER span) and log correlation. `schema_resolver`
        checks `ce-dataschema` ids against the schema registry (None: ids are not checked).
        `durable_setup` replaces `ensure()` wherever the consumer creates or updates its durable
        (at start, and when the durable is gone): for a durable whose filter someone else keeps
        (see `set_filter_subjects`), which `ensure()` would reset to every handled event."""
        self.name = f"{service}-{purpose}"
        self.stream = stream
        self.settings = settings or ConsumerSettings()
        subjects = registry.subjects_in(stream)
        if not subjects:
            raise ValueError(f"{self.name}: the registry has no handler for stream {stream}")
        self._registry = registry
        self._db = db
        self._nc = nc
        self._js = nc.jetstream()
        self._metrics = metrics
        self._decoder: EventDecoder = decoder or ProtobufDecoder()
        self._schemas = schema_resolver
        self._applier = BatchApplier(self.name, handler_scope)
        self._record = OutcomeRecorder(self.name, metrics)
        self._next_purge = 0.0
        # One filter per handled event, any version: other events of the stream never reach
        # this consumer (no delivery, no ack), and a version without a handler still arrives
        # and is dead-lettered as unknown rather than skipped unseen.
        self.filter_subjects = sorted({f"{ev.event_name_of(s)}.*" for s in subjects})
        self._durable_setup = durable_setup
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def consumer_config(self) -> ConsumerConfig:
        s = self.settings
        return ConsumerConfig(
            durable_name=self.name,
            description=f"crossdock consumer {self.name}",
            deliver_policy=s.deliver_policy,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait,
            max_deliver=s.max_deliver,
            max_ack_pending=s.max_ack_pending,
            # nats-server >= 2.10 takes several filters; one goes in the classic field.
            filter_subject=self.filter_subjects[0] if len(self.filter_subjects) == 1 else None,
            filter_subjects=self.filter_subjects if len(self.filter_subjects) > 1 else None,
        )

    async def ensure(self) -> None:
        """Create the durable, or update its editable settings; never resets its position."""
        wanted = self.consumer_config()
        try:
            info = await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            await self._js.add_consumer(self.stream, wanted)
            return
        current = info.config
        editable = (
            "ack_wait",
            "max_deliver",
            "max_ack_pending",
            "description",
            "filter_subject",
            "filter_subjects",
        )
        if _filters(current) == _filters(wanted) and all(
            getattr(current, k) == getattr(wanted, k) for k in editable[:4]
        ):
            return
        # Keep the consumer's position settings (a replay may have changed them). Filters are
        # editable from nats-server 2.10: a durable of an older release narrows in place.
        for key in editable:
            setattr(current, key, getattr(wanted, key))
        try:
            await self._js.add_consumer(self.stream, current)
        except APIError as exc:
            log.warning("could not update consumer %s: %s", self.name, exc)

    async def set_filter_subjects(self, subjects: Sequence[str]) -> None:
        """Make the durable filter on exactly `subjects` (and take this consumer's settings),
        creating it if missing.

        The filter changes in place: the durable keeps its position and its unacked messages.
        Messages stored before the change at sequences the durable has passed are not delivered
        even if the new filter matches them (nats-server keeps its position on a filter update).
        Unlike `ensure()`, every failure raises (also a server that answers with other
        filters), because a caller may promise something on the strength of the new filter.
        """
        wanted_filters = sorted(set(subjects))
        if not wanted_filters:
            raise ValueError(f"{self.name}: a durable needs at least one filter subject")
        self.filter_subjects = wanted_filters
        wanted = self.consumer_config()
        try:
            info = await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            info = await self._js.add_consumer(self.stream, wanted)
        else:
            current = info.config
            if _filters(current) == wanted_filters and all(
                getattr(current, key) == getattr(wanted, key) for key in _EDITABLE
            ):
                return
            # As `ensure()`: the position settings stay (a replay may have changed them).
            for key in (*_EDITABLE, "filter_subject", "filter_subjects"):
                setattr(current, key, getattr(wanted, key))
            info = await self._js.add_consumer(self.stream, current)
        if _filters(info.config) != wanted_filters:
            raise RuntimeError(
                f"{self.name} on {self.stream} filters on {_filters(info.config)}, "
                f"not {wanted_filters} (nats-server older than 2.10?)"
            )

    async def _setup_durable(self) -> None:
        if self._durable_setup is not None:
            await self._durable_setup()
        else:
            await self.ensure()

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"consumer-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Finish the fetch and batch in hand (commit and ack them), then stop.

        Takes at most `fetch_timeout` plus one batch; waiting (rather than cancelling the fetch)
        keeps messages the server already sent from sitting unacked until `ack_wait`.
        """
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def run(self) -> None:
        """Pull, apply, settle, until stopped.

        Strictly one batch at a time. Measured on 2 cores: fetching the next batch while this
        one is applied, or applying parts of a batch on parallel connections, was slower (the
        work on both sides is Python under one GIL), so batches stay sequential and in order.
        The open pull request keeps filling the buffer meanwhile (services/kit/pull.py), so
        the next batch is whatever arrived while this one was applied.
        """
        if not await self._ensure_until_stopped():
            return
        s = self.settings
        pull = PullStream(
            self._nc, self.stream, self.name, batch=s.batch_size, expires=s.fetch_timeout
        )
        await pull.open()
        # Safety net for the one case the in-band path cannot see: the final delivery was never
        # answered (the process died), and JetStream gives up on the message.
        watcher = await watch_max_deliveries(
            self._nc, self.stream, self.name, s.dlq_publish_timeout
        )
        try:
            while not self._stopping.is_set():
                msgs = await self._next(pull)
                if msgs is None:  # connection closed for good
                    return
                if msgs:
                    if self.settings.linger > 0:
                        msgs = await self._linger(pull, msgs)
                    await self._process_holding(pull, msgs)
                await self._purge_inbox()
            # Stopping: finish what the open request still delivers (at most `fetch_timeout`),
            # so messages the server already sent are acked now rather than after `ack_wait`.
            while msgs := await self._next(pull, request_more=False):
                await self.process(msgs)
        finally:
            with contextlib.suppress(Exception):
                left = await pull.close()
                for msg in left:  # arrived after the last batch: hand them back at once
                    await msg.nak()
            with contextlib.suppress(Exception):
                await watcher.unsubscribe()

    async def _linger(self, pull: PullStream, msgs: list[Msg]) -> list[Msg]:
        """`msgs` plus what arrives within `linger`, up to `batch_size`."""
        room = self.settings.batch_size - len(msgs)
        if room <= 0 or self._stopping.is_set():
            return msgs
        await asyncio.sleep(self.settings.linger)
        return msgs + pull.take_ready(room)

    async def _next(self, pull: PullStream, *, request_more: bool = True) -> list[Msg] | None:
        """The next batch; [] when there was nothing (or a recoverable error), None when closed."""
        if self._nc.is_closed:
            log.warning("consumer %s: NATS connection closed; stopping", self.name)
            return None
        try:
            return await pull.next_batch(request_more=request_more)
        except PullLost as exc:
            # Usually a reconnect dropped the request: carry on at once if the durable is there.
            log.info("consumer %s: %s", self.name, exc)
            if not await self._durable_exists():
                await self._recover()
            return []
        except PullGone as exc:
            # The durable is gone (deleted, or being recreated by `crossdock replay`).
            log.warning("consumer %s pull failed: %s", self.name, exc)
            await self._recover()
            return []
        except nats.errors.ConnectionClosedError:
            log.warning("consumer %s: NATS connection closed; stopping", self.name)
            return None
        except nats.errors.Error as exc:
            _reraise_if_cancelled()
            log.warning("consumer %s pull failed: %s", self.name, exc)
            await asyncio.sleep(0.5)
            return []

    async def _ensure_until_stopped(self) -> bool:
        """Create/update the durable, retrying while NATS is away; False if stopped first."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._setup_durable()
                return True
            except Exception as exc:
                _reraise_if_cancelled()
                log.warning("consumer %s: cannot set up the durable yet: %r", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, 5.0)
        return False

    async def _purge_inbox(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.settings.inbox_purge_interval
        retention = self.settings.inbox_retention_seconds
        try:
            while await self._db.run(inbox.purge, self.name, retention) > 0:
                pass
        except Exception:
            log.exception("consumer %s: inbox purge failed", self.name)

    async def _durable_exists(self) -> bool:
        try:
            await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            return False
        except Exception as exc:
            log.warning("consumer %s: cannot check the durable: %s", self.name, exc)
        return True

    async def _recover(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.settings.recreate_grace)
        if self._stopping.is_set():
            return
        try:
            await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            log.warning("consumer %s is missing; recreating it", self.name)
            with contextlib.suppress(Exception):
                await self._setup_durable()
        except Exception as exc:
            log.warning("consumer %s: cannot check the durable: %s", self.name, exc)

    # -- one batch ---------------------------------------------------------------------------

    async def _process_holding(self, pull: PullStream, msgs: list[Msg]) -> None:
        """`process`, holding the batch while the database is unavailable (kit.outage_hold)."""
        held: list[Msg] | None = msgs
        while held is not None:
            try:
                await self.process(held, hold_on_outage=True)
                return
            except DatabaseOutage as outage:
                log.warning(
                    "consumer %s: the database is unavailable; holding %d events until it is "
                    "back: %s",
                    self.name,
                    len(held),
                    outage,
                )
                held = await hold_until_database(
                    self._db,
                    pull,
                    held,
                    stopping=self._stopping,
                    batch_size=self.settings.batch_size,
                    ack_wait=self.settings.ack_wait,
                )

    async def process(self, msgs: list[Msg], *, hold_on_outage: bool = False) -> list[Outcome]:
        """Classify, apply in one transaction, then ack/NAK/dead-letter. Returns the outcomes.
        With `hold_on_outage`, a batch that fails because the database is unavailable raises
        DatabaseOutage instead, with nothing settled: the caller holds it."""
        unresolved = await self._resolve_schemas(msgs)
        items = [self._classify(msg, unresolved) for msg in msgs]
        if self._metrics is not None and msgs:
            lag = self._record.child(self._metrics.consumer_lag, self.name, self.stream)
            lag.set(msgs[-1].metadata.num_pending)
        work = [item for item in items if item.outcome is None]
        if work:
            try:
                await self._db.run(self._applier.apply, work)
                fault_point("consumer.before_ack")
            except Exception as exc:
                if hold_on_outage and is_outage(exc):
                    raise DatabaseOutage(str(exc)) from exc
                # Nothing committed (DB down, commit failed): the whole batch retries.
                log.warning("consumer %s batch failed: %r", self.name, exc)
                for item in work:
                    item.outcome, item.reason = Outcome.RETRY, f"batch failed: {exc!r}"
        for item in items:
            if item.outcome is Outcome.RETRY and item.final:
                item.outcome, item.dlq_kind = Outcome.DEAD, "max_deliver"
                item.reason = f"max_deliver ({self.settings.max_deliver}) exhausted: {item.reason}"
        await self._settle(items)
        self._record(items)
        return [item.outcome or Outcome.RETRY for item in items]

    def handles(self, subject: str) -> bool:
        """Whether this consumer has a handler for `subject` (others are acked unread)."""
        return subject in self._registry.subjects()

    async def apply_stored(self, msg: Msg, stream_seq: int, num_delivered: int) -> Item:
        """Run one message taken from the stream's store (not delivered by the durable, so
        `msg` has no reply subject) through this consumer's own path: the same classification,
        schema check, decoder, handlers and inbox, in one unit of work. Nothing is settled
        (no ack, no dead letter): the outcome is APPLIED, DUPLICATE, or DEAD with the reason it
        still cannot be applied (a transient failure included), counted in the metrics as a
        delivered message's would be. Redrives a dead letter in place (services.kit.dlq_service).

        `stream_seq` is the message's sequence in this consumer's stream. Exactly once holds
        against the running consumer and other replicas: the inbox row is claimed in the same
        transaction as the effect.
        """
        unresolved = await self._resolve_schemas([msg])
        item = self._classify_at(msg, stream_seq, num_delivered, unresolved)
        if item.outcome is None:
            try:
                await self._db.run(self._applier.apply, [item])
            except Exception as exc:
                item.outcome, item.reason = Outcome.RETRY, f"unit of work failed: {exc!r}"
        if item.outcome is Outcome.IGNORED:
            item.dead("unknown_type", f"{self.name} does not handle {msg.subject}")
        elif item.outcome not in (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.DEAD):
            item.dead("redrive", item.reason)
        self._record([item])
        return item

    async def _resolve_schemas(self, msgs: list[Msg]) -> dict[int, Unresolved]:
        """Resolve the batch's schema ids not cached yet (no I/O when all are cached)."""
        if self._schemas is None:
            return {}
        wanted: set[int] = set()
        for msg in msgs:
            try:
                schema_id = ev.schema_id_of((msg.headers or {}).get(ev.CE_DATASCHEMA))
            except ValueError:
                continue  # dead-lettered by _classify
            if schema_id is not None and self._schemas.cached(schema_id) is None:
                wanted.add(schema_id)
        if not wanted:
            return {}
        return await self._schemas.prefetch(wanted)

    def _check_schema(self, item: Item, route_type: str, unresolved: dict[int, Unresolved]) -> bool:
        """False (and the item settled) when its `ce-dataschema` id is bad or unresolved."""
        if self._schemas is None:
            return True
        try:
            schema_id = ev.schema_id_of(item.headers.get(ev.CE_DATASCHEMA))
        except ValueError as exc:
            item.dead("invalid", str(exc))
            return False
        if schema_id is None:
            return True  # the placeholder of a producer without a registry: accepted
        schema = self._schemas.cached(schema_id)
        if schema is None:
            problem = unresolved.get(schema_id) or Unresolved(
                False, f"schema id {schema_id} is not resolved yet"
            )
            if problem.permanent:
                item.dead("unknown_schema", problem.reason)
            else:
                item.outcome, item.reason = Outcome.RETRY, problem.reason
            return False
        if schema.message_name != route_type:
            item.dead(
                "unknown_schema",
                f"schema id {schema_id} describes {schema.message_name}, not {route_type}",
            )
            return False
        return True

    def headers_of(self, msg: Msg, stream_seq: int) -> Headers:
        """The headers the handlers are given for `msg`: its own. A consumer that needs a
        delivery fact beside them (the stream sequence) overrides this and returns a Headers
        mapping carrying it as an attribute, so its dead letters keep the event's own headers."""
        return dict(msg.headers or {})

    def _classify(self, msg: Msg, unresolved: dict[int, Unresolved] | None = None) -> Item:
        meta = msg.metadata
        return self._classify_at(msg, meta.sequence.stream, meta.num_delivered, unresolved)

    def _classify_at(
        self,
        msg: Msg,
        stream_seq: int,
        num_delivered: int,
        unresolved: dict[int, Unresolved] | None = None,
    ) -> Item:
        headers = self.headers_of(msg, stream_seq)
        item = Item(
            msg=msg,
            headers=headers,
            stream_seq=stream_seq,
            num_delivered=num_delivered,
            final=num_delivered >= self.settings.max_deliver,
        )
        redrive_for = headers.get(REDRIVE_CONSUMER)
        if redrive_for and redrive_for != self.name:
            item.outcome = Outcome.IGNORED  # a redrive addressed to another consumer
            return item
        route = self._registry.route(msg.subject)
        if route is None:
            if self._registry.knows_event(msg.subject):
                item.dead("unknown_type", f"no handler for {msg.subject} (unknown version)")
            else:
                item.outcome = Outcome.IGNORED  # another event in the domain wildcard
            return item
        item.route = route
        item.event_id = headers.get(ev.CE_ID, "")
        item.aggregate = headers.get(ev.CE_SUBJECT, "")
        if not item.event_id:
            item.dead("invalid", "missing ce-id header")
            return item
        ce_type = headers.get(ev.CE_TYPE)
        if ce_type != msg.subject:
            item.dead("unknown_type", f"ce-type {ce_type!r} does not match {msg.subject}")
            return item
        if self._schemas is not None and not self._check_schema(
            item, route.type_name, unresolved or {}
        ):
            return item
        try:
            item.event = self._decoder(route, headers, msg.data)
        except PermanentError as exc:
            item.dead("undecodable", str(exc))
        except Exception as exc:
            item.dead("undecodable", f"decoder failed: {exc!r}")
        return item

    async def _settle(self, items: list[Item]) -> None:
        dead = [item for item in items if item.outcome is Outcome.DEAD]
        if dead:
            letters = [
                Letter(
                    consumer=self.name,
                    subject=item.msg.subject,
                    stream=self.stream,
                    stream_seq=item.stream_seq,
                    num_delivered=item.num_delivered,
                    reason=item.reason,
                    headers=item.headers,
                    data=item.msg.data,
                )
                for item in dead
            ]
            try:
                stored = await publish_letters(self._js, letters, self.settings.dlq_publish_timeout)
            except Exception as exc:
                log.error("consumer %s could not dead-letter: %r", self.name, exc)
                stored = [False] * len(dead)
            for item, ok in zip(dead, stored, strict=True):
                if not ok:
                    # Not stored in the DLQ: keep the message alive and try again later.
                    log.error("dead-lettering %s failed; retrying later", item.event_id)
                    item.outcome = Outcome.RETRY
                    item.reason = "dead-letter publish failed"
        for item in items:
            try:
                if item.outcome in (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.IGNORED):
                    await item.msg.ack()
                elif item.outcome is Outcome.DEAD:
                    await item.msg.term()
                else:
                    await item.msg.nak(delay=self.settings.nak_delay(item.num_delivered))
            except Exception as exc:
                # Lost ack: the message is redelivered after ack_wait and the inbox skips it.
                log.warning("consumer %s could not settle a message: %r", self.name, exc)
