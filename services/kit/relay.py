"""The outbox relay: publishes committed outbox rows to JetStream and marks them sent.

Delivery: at least once. A crash between publish and mark-sent republishes the same rows with the
same Nats-Msg-Id; JetStream drops them inside its duplicate window and the consumers' inbox drops
anything later. Nothing is lost, because a row only becomes "sent" after JetStream acked it.

Per-aggregate order. Within one connection the server stores messages in the order it receives
them, but a batch can still fail partially: a message written into a dying socket is lost while a
later one, buffered during the reconnect, gets through; or one subject's stream is missing or
full. If two events of one aggregate were in flight together, the later one could then land
before the earlier one, and no retry can undo that. So an event is only published once the
previous event of its aggregate was acked. A batch takes every pending row it has and publishes
it in rounds (`outbox.publish_rounds`): round 1 is the oldest pending row of each aggregate,
pipelined with `publish_async` and its acks awaited together; round 2 is the second row of each
aggregate whose first was acked; and so on. A row whose predecessor got no ack (an error, a
timeout, a dropped connection) is not published in that batch, nor is anything after it: they
stay pending, in order, and the next batch starts with them. An aggregate whose head keeps failing
blocks only itself; the others keep flowing. Then ONE transaction marks every acked row sent (for
each aggregate, a prefix of its pending rows), so two events one unit of work committed for one
order cost one batch, not two. All rounds share one deadline, `ack_timeout` from the first publish,
so a batch takes no longer than when it was a single round. Rows of different aggregates have no
order between them.

A crash cannot reorder an aggregate either. Any copy of its event e2 reaches the stream only after
a relay (this one, an earlier run, or a leader that just lost its lock) received an ack for e1, and
an ack means a copy of e1 is stored (a duplicate ack: the original, within the duplicate window).
So the first copy of e1 in the stream always precedes the first copy of e2, whatever crashed or
was republished in between, and the consumers apply first copies only. For example, a crash
between the acks of e1, e2 and their mark-sent leaves both stored and pending: the restarted relay
publishes e1, then e2 after e1's ack, again. Within the duplicate window JetStream drops both
copies; after it the stream holds e1, e2, e1', e2', and the consumers' inboxes drop e1' and e2'.
The one limit is the inbox's retention (30 days by default, against a 10-minute duplicate window):
a relay restarted later than that could have a consumer apply e1' again after e2.

On PostgreSQL `seq` is assigned at INSERT, not at COMMIT, so rows of concurrent transactions can
become visible out of seq order. For one aggregate that cannot happen as long as its unit of work
updates (locks) the aggregate's own row before appending its events, which every state change
does: the second transaction waits for the first to commit before it can even insert.

Handoff (SQLite). While the loop runs, the units of work of this process hand it the rows they
committed (`outbox.hand_off_commits`), so a relay woken by a commit publishes them without reading
them back first: the transaction marking a batch sent stays the only one per batch. This is safe
because the relay knows how far its picture of the outbox is complete: the last read saw every
row up to the highest seq then committed (SQLite draws seqs under its one write lock, so rows
commit in seq order), and a handed-off row is only taken when its seq continues that picture
without a gap. A gap is a row committed by another process (a CLI, a replica's unit of work): the
relay then reads. Any failure, a leadership change or a read that hit its limit forgets the
picture, so the next batch reads. Rows only ever wait in memory in addition to the database, so
a crash loses nothing, and the mark-sent read after every batch still finds everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from services.kit import outbox
from services.kit.db import Database
from services.kit.faults import fault_point
from services.kit.leader import Leadership, leadership_for
from services.kit.metrics import ServiceMetrics

log = logging.getLogger(__name__)

PublishScope = Callable[[str, dict[str, str]], AbstractContextManager[dict[str, str]]]


@dataclass(frozen=True)
class RelaySettings:
    batch_size: int = 500
    # Seconds to wait after a commit woke an idle relay, so that the rows other units of work
    # commit meanwhile go out in the same batch (one read, one publish flush, one mark) (0: none).
    linger: float = 0.0
    # Fallback wake-up when no commit in this process signalled (other replicas, the CLI, crashes).
    poll_interval: float = 1.0
    ack_timeout: float = 5.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    leader_check_interval: float = 5.0
    stats_interval: float = 2.0
    retention_seconds: float = 24 * 3600.0
    purge_interval: float = 60.0


@dataclass(frozen=True)
class BatchResult:
    fetched: int
    sent: int
    failed: int
    disconnected: bool = False
    # The read made while marking this batch sent found nothing pending: the loop may sleep.
    drained: bool = False

    @property
    def idle(self) -> bool:
        return self.fetched == 0 or self.drained


class OutboxRelay:
    """One per service process; only the leader (see services.kit.leader) publishes."""

    def __init__(
        self,
        db: Database,
        nc: NATS,
        *,
        settings: RelaySettings | None = None,
        metrics: ServiceMetrics | None = None,
        leadership: Leadership | None = None,
        publish_scope: PublishScope | None = None,
    ) -> None:
        """`publish_scope(subject, headers)` is entered around each publish and yields the
        headers to send: the hook for a PRODUCER span that re-points `traceparent` at itself.
        Without it the stored headers (with the request's `traceparent`) go out unchanged."""
        self._db = db
        self._nc = nc
        self._js = nc.jetstream()
        self.settings = settings or RelaySettings()
        self._metrics = metrics
        self._leadership = leadership or leadership_for(db)
        self._publish_scope = publish_scope
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._is_leader = False
        self._next_leader_check = 0.0
        self._next_stats = 0.0
        self._next_purge = 0.0
        # The rows known to be pending, in seq order: read by the last mark-sent transaction, then
        # the rows handed off since that continue them (see "Handoff" above).
        self._pending: list[outbox.OutboxRow] = []
        # Every row up to this seq was sent or is in _pending; None: unknown, the next batch reads.
        self._complete_through: int | None = None
        # Rows units of work of this process committed since the last batch began.
        self._handed_off: list[outbox.OutboxRow] = []
        self._remove_listener = db.add_outbox_listener(self.wake)

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    def wake(self) -> None:
        """Publish now (called after a commit that appended rows)."""
        self._wake.set()

    def _take_handoff(self, row: outbox.OutboxRow) -> None:
        """A row a unit of work of this process just committed (outbox.hand_off_commits)."""
        # Only the leader publishes; a replica's rows wait in the database for the leader's read.
        # Past a batch worth, the read after the next batch finds the rest.
        if self._is_leader and len(self._handed_off) < self.settings.batch_size:
            self._handed_off.append(row)

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"relay-{self._db.service}")
        return self._task

    async def stop(self, flush_timeout: float = 0.0) -> bool:
        """Stop the loop; with a flush_timeout, first try to publish the backlog (shutdown).

        Returns True when the backlog is known to be empty (or another replica owns it).
        """
        drained = True
        if flush_timeout > 0:
            drained = await self.flush(flush_timeout)
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._remove_listener()
        await self._leadership.release()
        self._is_leader = False
        return drained

    async def flush(self, timeout: float) -> bool:
        """Publish until nothing is pending or `timeout` passes; True when drained.

        A replica that is not the leader returns True at once: its rows are safe in the database
        and the leader publishes them.
        """
        deadline = time.monotonic() + timeout
        if not await self._ensure_leader():
            return True
        while time.monotonic() < deadline:
            try:
                result = await self.publish_batch()
            except Exception:
                log.exception("relay flush batch failed")
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            if result.idle and not result.disconnected:
                return True
            if result.sent == 0:
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return False

    async def run(self) -> None:
        stop_handoff = (
            outbox.hand_off_commits(self._db.engine, self._take_handoff)
            if self._db.is_sqlite
            else None
        )
        try:
            await self._loop()
        finally:
            if stop_handoff is not None:
                stop_handoff()
            self._forget_pending()

    async def _loop(self) -> None:
        backoff = self.settings.backoff_initial
        while not self._stopping.is_set():
            if self._nc.is_closed:
                log.warning("relay for %s: NATS connection closed; stopping", self._db.service)
                return
            if not await self._ensure_leader():
                await self._idle(self.settings.poll_interval)
                continue
            try:
                result = await self.publish_batch()
            except Exception:
                # A database error (or anything unforeseen): rows stay pending; retry later.
                log.exception("relay batch failed")
                result = BatchResult(fetched=1, sent=0, failed=1)
            await self._housekeeping()
            if result.disconnected or (result.failed and result.sent == 0):
                await self._idle(backoff, wakeable=False)
                backoff = min(backoff * 2, self.settings.backoff_max)
                continue
            backoff = self.settings.backoff_initial
            if result.idle:
                await self._idle(self.settings.poll_interval)
                if self.settings.linger > 0 and not self._stopping.is_set():
                    await asyncio.sleep(self.settings.linger)

    async def publish_batch(self) -> BatchResult:
        """Publish one batch (every pending row it holds, in per-aggregate order) and mark the
        acked rows sent.

        The transaction that marks the batch sent also reads the next pending rows, which the
        next call publishes without a read of its own, together with the rows handed off since:
        one transaction per batch, not two.
        """
        async with self._batch_lock:
            self._merge_handed_off()
            rows, self._pending = self._pending, []
            # Until the read after this batch, nothing is known (an error leaves it so).
            self._complete_through = None
            if not self._nc.is_connected:
                # Publishing now would only fill the client's reconnect buffer: wait for NATS.
                return BatchResult(0, 0, 0, disconnected=True)
            if not rows:
                # Clear before reading: a commit landing during the read sets it again, so the
                # loop can never sleep on rows it did not see.
                self._wake.clear()
                read = await self._db.run(outbox.read_pending, self.settings.batch_size)
                rows = read.rows
                if not rows:
                    self._complete_through = read.complete_through
                    return BatchResult(0, 0, 0)
            fault_point("relay.before_publish")
            acked, failed = await self._publish(rows)
            if failed and self._metrics is not None:
                self._metrics.publish_failures.labels("not_acked").inc(failed)
            if not acked:
                return BatchResult(len(rows), 0, failed)
            fault_point("relay.before_mark_sent")
            self._wake.clear()  # as above: the read below decides whether the loop sleeps
            read = await self._db.run(
                outbox.mark_sent_and_read, [row.seq for row in acked], self.settings.batch_size
            )
            self._pending, self._complete_through = read.rows, read.complete_through
            if self._metrics is not None:
                self._metrics.relay_batch_size.observe(len(acked))
                for subject, count in Tally(row.subject for row in acked).items():
                    self._metrics.events_published.labels(subject).inc(count)
            return BatchResult(len(rows), len(acked), failed, drained=not self._pending)

    def _merge_handed_off(self) -> None:
        """Add the rows handed off since the last batch to the known pending rows, as long as
        they continue the known seqs without a gap; otherwise forget the picture (read)."""
        arrived, self._handed_off = self._handed_off, []
        through = self._complete_through
        if through is None or not arrived:
            return
        for row in sorted(arrived, key=_seq):
            if row.seq <= through:
                continue  # committed before the last read, which saw it
            if row.seq != through + 1 or len(self._pending) >= self.settings.batch_size:
                # A row committed elsewhere (another process), or more than a batch: read.
                self._complete_through = None
                return
            self._pending.append(row)
            through = row.seq
        self._complete_through = through

    def _forget_pending(self) -> None:
        self._pending, self._handed_off, self._complete_through = [], [], None

    async def _publish(self, rows: list[outbox.OutboxRow]) -> tuple[list[outbox.OutboxRow], int]:
        """Publish `rows` (seq order) round by round, each round's row of an aggregate only after
        its previous row was acked (see "Per-aggregate order"); returns the acked rows and how
        many publishes failed (no ack, or not sent because the connection failed)."""
        deadline = time.monotonic() + self.settings.ack_timeout
        acked: list[outbox.OutboxRow] = []
        failures: list[str] = []
        stalled: set[str] = set()  # aggregates with a row that got no ack: the rest must wait
        for number, round_rows in enumerate(outbox.publish_rounds(rows)):
            if number:
                round_rows = [row for row in round_rows if row.aggregate_id not in stalled]
                # Nothing left to send (a later round only holds aggregates of this one), or
                # no connection or time left: the rest stays pending for the next batch.
                if not round_rows or not self._nc.is_connected or time.monotonic() >= deadline:
                    break
            in_flight, interrupted = await self._send(round_rows)
            for row in round_rows[len(in_flight) :]:
                failures.append(f"{row.subject}: not sent ({interrupted!r})")
                stalled.add(row.aggregate_id)
            for row, failure in await self._await_acks(in_flight, deadline):
                if failure is None:
                    acked.append(row)
                else:
                    failures.append(f"{row.subject}: {failure}")
                    stalled.add(row.aggregate_id)
            if interrupted is not None:
                break
        if failures:
            # One line per batch: a missing stream would otherwise log every row of every retry.
            log.warning(
                "relay: %d of %d publishes failed (first: %s)",
                len(failures),
                len(acked) + len(failures),
                failures[0],
            )
        return acked, len(failures)

    async def _send(
        self, rows: list[outbox.OutboxRow]
    ) -> tuple[list[tuple[outbox.OutboxRow, asyncio.Future[PubAck]]], Exception | None]:
        """Pipeline one round; returns the publishes that went out (a prefix of `rows`) and the
        error that interrupted the round, if any (the connection dropped)."""
        in_flight: list[tuple[outbox.OutboxRow, asyncio.Future[PubAck]]] = []
        try:
            for row in rows:
                # No wait_stall: it wraps every call in a task, which lets the client flush per
                # message (measured 2x slower). A batch never exceeds the client's 4000 limit.
                headers = outbox.headers_for_publish(row)
                if self._publish_scope is None:
                    future = await self._js.publish_async(row.subject, row.payload, headers=headers)
                else:
                    with self._publish_scope(row.subject, headers) as scoped:
                        future = await self._js.publish_async(
                            row.subject, row.payload, headers=scoped
                        )
                in_flight.append((row, future))
        except Exception as exc:
            # The connection dropped mid-round: await what went out, retry the rest later.
            log.warning("relay publish interrupted: %s", exc)
            return in_flight, exc
        return in_flight, None

    async def _await_acks(
        self,
        in_flight: list[tuple[outbox.OutboxRow, asyncio.Future[PubAck]]],
        deadline: float,
    ) -> list[tuple[outbox.OutboxRow, str | None]]:
        """Await a round's acks together until `deadline`; each row with None (acked) or why
        it was not acked."""
        if not in_flight:
            return []
        timeout = max(0.0, deadline - time.monotonic())
        _, pending = await asyncio.wait([future for _, future in in_flight], timeout=timeout)
        for future in pending:
            future.cancel()
        outcomes: list[tuple[outbox.OutboxRow, str | None]] = []
        for row, future in in_flight:
            if future.cancelled():
                outcomes.append((row, f"no ack within {self.settings.ack_timeout}s"))
            elif (error := future.exception()) is not None:
                outcomes.append((row, repr(error)))
            else:
                outcomes.append((row, None))
        return outcomes

    async def _ensure_leader(self) -> bool:
        now = time.monotonic()
        if self._is_leader and now < self._next_leader_check:
            return True
        self._next_leader_check = now + self.settings.leader_check_interval
        try:
            if self._is_leader:
                self._is_leader = await self._leadership.still_leader()
            else:
                self._is_leader = await self._leadership.acquire()
                if self._is_leader:
                    log.info("relay for %s is now the leader", self._db.service)
        except Exception:
            log.exception("relay leadership check failed")
            self._is_leader = False
        if not self._is_leader:
            self._forget_pending()  # another replica publishes them now
        if self._metrics is not None:
            self._metrics.relay_leader.set(1 if self._is_leader else 0)
        return self._is_leader

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._metrics is not None and now >= self._next_stats:
            self._next_stats = now + self.settings.stats_interval
            await self.refresh_backlog_metrics()
        if now >= self._next_purge:
            self._next_purge = now + self.settings.purge_interval
            try:
                while await self._db.run(outbox.purge_sent, self.settings.retention_seconds) > 0:
                    pass
            except Exception:
                log.exception("outbox retention purge failed")

    async def refresh_backlog_metrics(self) -> None:
        if self._metrics is None:
            return
        try:
            pending, oldest = await self._db.run(outbox.backlog)
        except Exception:
            log.exception("outbox backlog query failed")
            return
        self._metrics.outbox_backlog.set(pending)
        self._metrics.outbox_oldest_age.set(max(0.0, time.time() - oldest) if oldest else 0.0)

    async def _idle(self, seconds: float, *, wakeable: bool = True) -> None:
        """Sleep until woken (commit) or stopped; backoff sleeps ignore commits."""
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _seq(row: outbox.OutboxRow) -> int:
    return row.seq
