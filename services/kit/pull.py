"""A continuous pull from one JetStream durable: one open pull request, batches as they arrive.

Why not nats-py's `fetch()`: a fetch sends a no-wait probe and then a waiting request (two
publishes, so two socket writes), and it awaits every message through a new task with its own
timer. At the mesh's rates a batch is one or two messages, so that per-fetch cost was most of a
consumer's overhead, and NATS socket writes were 8-14% of each service's CPU.

Here one pull request (`batch` messages, `expires` seconds) stays open while the consumer
works; its messages land in a buffer through a plain subscription callback, and `next_batch()`
hands over whatever has arrived, without waiting for the batch to fill. A new request goes out
only when the open one is used up, expires (status 408), or is lost (no answer by its expiry
plus a grace, e.g. after a reconnect). Each request has its own reply subject, which the
server's status answers go to, so a late status of an old request cannot end the current one.

Protocol: `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` with `{"batch", "expires"}`; the server
answers with the messages, or a status message: 408 the request expired, 409 it was ended (for
example "Consumer Deleted"), 503 no responders (JetStream or the consumer is not there).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

log = logging.getLogger(__name__)

# Status codes the server answers a pull request with (nats-py parses them into a header).
_EXPIRED = "408"
_ENDED = "409"
_NO_RESPONDERS = "503"
_HEARTBEAT = "100"


class PullGone(Exception):
    """The server ended the pull because the durable (or JetStream) is not there."""


class PullLost(Exception):
    """No answer at all by the request's expiry plus a grace: dropped in a reconnect, or sent to
    a durable that no longer exists (the server ignores those). Worth a look at the durable."""


@dataclass
class _Request:
    reply: str
    owed: int  # messages this request may still deliver
    deadline: float  # monotonic: no answer by then means the request was lost


class PullStream:
    """One open pull request on `stream`/`durable`, refilled as it is used up or expires."""

    def __init__(self, nc: NATS, stream: str, durable: str, *, batch: int, expires: float) -> None:
        self._nc = nc
        self._api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires = expires
        # Lost requests (a reconnect drops them silently) are noticed this long after expiry.
        self._grace = max(1.0, expires)
        self._prefix = nc.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: collections.deque[Msg] = collections.deque()
        self._arrived = asyncio.Event()
        self._request: _Request | None = None
        self._sent = 0
        self._problem: str | None = None
        self._ended = False  # the open request ended without being used up

    async def open(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)

    async def close(self) -> list[Msg]:
        """Stop listening; returns the messages that arrived but were never handed over."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        left = list(self._buffer)
        self._buffer.clear()
        return left

    @property
    def requests_sent(self) -> int:
        """Pull requests sent so far (one serves many batches while messages keep coming)."""
        return self._sent

    async def next_batch(self, *, request_more: bool = True) -> list[Msg]:
        """What has arrived, at most `batch` messages; waits for the first one.

        Returns [] when the open request ended with nothing (it expired, or the server ended
        it): the caller's chance to do periodic work, and to stop. Raises `PullGone` when the
        server says the durable or JetStream is not there, `PullLost` when nothing answered.
        With `request_more=False` no new request is sent, so [] means the open request is over
        (draining before a stop).
        """
        while True:
            if self._buffer:
                return self._take()
            if self._problem is not None:
                problem, self._problem = self._problem, None
                raise PullGone(problem)
            if self._ended:
                self._ended = False
                return []
            if self._request is None:
                if not request_more:
                    return []
                await self._send_request()
            assert self._request is not None
            self._arrived.clear()
            wait = self._request.deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(wait, 0.0))
            except TimeoutError:
                self._request = None
                raise PullLost(f"no answer to a pull on {self._api_subject}") from None

    def take_ready(self, limit: int) -> list[Msg]:
        """What has arrived since, at most `limit` messages; never waits."""
        count = min(len(self._buffer), limit)
        return [self._buffer.popleft() for _ in range(count)]

    def _take(self) -> list[Msg]:
        return self.take_ready(self._batch)

    async def _send_request(self) -> None:
        self._sent += 1
        reply = f"{self._prefix}.{self._sent}"
        self._request = _Request(
            reply=reply,
            owed=self._batch,
            deadline=time.monotonic() + self._expires + self._grace,
        )
        body = {"batch": self._batch, "expires": int(self._expires * 1_000_000_000)}
        await self._nc.publish(self._api_subject, json.dumps(body).encode(), reply=reply)

    async def _on_msg(self, msg: Msg) -> None:
        current = self._request
        status = msg.headers.get(api.Header.STATUS) if msg.headers else None
        if not status:
            # Messages keep their stream subject, so they cannot name their request; only one
            # request is open at a time, so they are counted against it.
            self._buffer.append(msg)
            if current is not None:
                current.owed -= 1
                if current.owed <= 0:
                    self._request = None  # used up: the next look sends a new one
            self._arrived.set()
            return
        if status == _HEARTBEAT or current is None or msg.subject != current.reply:
            return  # a heartbeat, or the late status of a request already given up
        self._request = None
        description = (msg.headers or {}).get(api.Header.DESCRIPTION, "")
        if status == _NO_RESPONDERS or (status == _ENDED and "deleted" in description.lower()):
            self._problem = f"{status} {description}".strip()
        else:
            self._ended = True
            if status != _EXPIRED:
                log.info("pull on %s ended: %s %s", self._api_subject, status, description)
        self._arrived.set()
