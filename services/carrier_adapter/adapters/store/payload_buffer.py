"""The payload log's write buffer.

Connectors record payloads synchronously, mid-call; `PayloadBuffer` holds them and a periodic
flush (entrypoints.workers) writes them in one unit of work, so logging never adds a database
round trip to a carrier call.
"""

from __future__ import annotations

from services.carrier_adapter.adapters.store.payloads import append_payloads
from services.carrier_adapter.domain.payload_log import RawPayload
from services.kit.db import Database

__all__ = ["MAX_BUFFERED", "PayloadBuffer"]

# Beyond this many unwritten records (database down for long) the oldest are dropped: the log
# is for audit and debugging, and must never take the service's memory with it.
MAX_BUFFERED = 50_000


class PayloadBuffer:
    """A PayloadSink that keeps records until `flush` writes them."""

    def __init__(self) -> None:
        self._pending: list[RawPayload] = []
        self.dropped = 0

    def __call__(self, record: RawPayload) -> None:
        self._pending.append(record)
        if len(self._pending) > MAX_BUFFERED:
            del self._pending[0]
            self.dropped += 1

    async def flush(self, db: Database) -> int:
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            await db.run(append_payloads, batch)
        except BaseException:
            self._pending[:0] = batch  # keep them for the next flush
            raise
        return len(batch)
