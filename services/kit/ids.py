"""Ids: UUIDv7 for events, ULIDs (python-ulid, monotonic) for resources.

- The outbox row id is also `ce-id` and `Nats-Msg-Id`: a UUIDv7 (RFC 9562), which sorts by
  creation time and is the form CloudEvents consumers expect of an id.
- Resource ids are spelled as the contracts' patterns want, `<prefix>_` + a 26-character ULID
  (`^shp_[0-9A-HJKMNP-TV-Z]{26}$`). python-ulid's default generator is monotonic: ids minted in
  the same millisecond still sort in creation order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from ulid import ULID

__all__ = ["new_event_id", "resource_id", "uuid7"]

_lock = threading.Lock()
_last_ms = 0
_last_counter = 0


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7 that is strictly increasing within this process.

    Layout: 48-bit unix milliseconds, version, a 12-bit counter in `rand_a` (RFC 9562 method 1, so
    ids minted in the same millisecond still sort in creation order), variant, 62 random bits.
    Python 3.11's uuid module has no uuid7 (3.14 does); this is the kit's only hand-written id.
    """
    global _last_ms, _last_counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _last_counter = int.from_bytes(os.urandom(2), "big") & 0x1FF  # leave room to count up
        else:
            # Same millisecond (or the clock stepped back): keep the last timestamp and count on.
            _last_counter += 1
            if _last_counter > 0xFFF:
                _last_ms += 1
                _last_counter = 0
        ms, counter = _last_ms, _last_counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def new_event_id() -> str:
    """A new event id as the canonical 36-character string."""
    return str(uuid7())


def resource_id(prefix: str) -> str:
    """`<prefix>_` + a new monotonic ULID (26 Crockford base32 characters)."""
    return f"{prefix}_{ULID()}"
