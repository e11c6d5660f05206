"""What the kit knows about the call being served: its correlation id and its deadline.

Both live in contextvars, so they follow the handler into every coroutine it awaits and into the
tasks it starts, without being passed around. The gRPC interceptor sets them for each call; the
event consumer sets the correlation id for each event. The outbox reads the correlation id, the
client interceptor reads both, and the JSON log formatter reads the correlation id.

This module imports neither grpc nor anything else heavy, so domain and store code may use it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The metadata key (gRPC) and header name (NATS, HTTP) that carries the correlation id.
CORRELATION_ID_KEY = "x-correlation-id"

# Incoming ids longer than this are replaced: the id is echoed and logged, so it must stay small.
MAX_CORRELATION_ID_LENGTH = 128

# Printable ASCII without spaces, 1..MAX_CORRELATION_ID_LENGTH characters. A compiled pattern:
# every call and every consumed event checks an id, and a per-character loop cost ~3 µs of it.
_USABLE_CORRELATION_ID = re.compile(f"[!-~]{{1,{MAX_CORRELATION_ID_LENGTH}}}")

# See outgoing_timeout.
_MIN_TIMEOUT_SECONDS = 0.001

_correlation_id: ContextVar[str | None] = ContextVar("crossdock_correlation_id", default=None)
# An absolute time.monotonic() instant; None when the call has no deadline.
_deadline: ContextVar[float | None] = ContextVar("crossdock_deadline", default=None)


def new_correlation_id() -> str:
    """A fresh correlation id (32 hex characters)."""
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    """The caller's correlation id if it is usable, otherwise a fresh one.

    Usable means non-empty, at most MAX_CORRELATION_ID_LENGTH characters and printable ASCII
    without spaces, so a caller cannot inject newlines or huge values into our logs and headers.
    """
    if candidate and _USABLE_CORRELATION_ID.fullmatch(candidate):
        return candidate
    return new_correlation_id()


def current_correlation_id() -> str | None:
    """The correlation id of the call or event being handled, or None outside one."""
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[str]:
    """Bind a correlation id for the duration of the block (a call, an event, a job)."""
    token = _correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation_id.reset(token)


@contextmanager
def deadline_scope(seconds_remaining: float | None) -> Iterator[None]:
    """Bind the deadline of the incoming call, given as seconds from now (None: no deadline)."""
    deadline = None if seconds_remaining is None else time.monotonic() + seconds_remaining
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_time() -> float | None:
    """Seconds left before the incoming call's deadline (never negative); None if it has none."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def outgoing_timeout(default_seconds: float, requested_seconds: float | None = None) -> float:
    """The timeout an outgoing call should use.

    The tightest of what the caller asked for and what is left of the incoming call's deadline;
    `default_seconds` when neither is known, so that no outgoing call ever waits forever.
    """
    candidates = [t for t in (requested_seconds, remaining_time()) if t is not None]
    timeout = min(candidates) if candidates else default_seconds
    # An expired deadline still becomes a tiny positive timeout: the call then fails with
    # DEADLINE_EXCEEDED at once, whereas some code paths read a zero timeout as "none".
    return max(timeout, _MIN_TIMEOUT_SECONDS)
