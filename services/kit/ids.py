"""Sortable unique ids for events: UUIDv7 (RFC 9562).

The outbox row id is also `ce-id` and `Nats-Msg-Id`. UUIDv7 sorts by creation time, so ids are
index-friendly and readable in logs, and need no coordination between replicas.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_last_counter = 0


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7 that is strictly increasing within this process.

    Layout: 48-bit unix milliseconds, version, a 12-bit counter in `rand_a` (RFC 9562 method 1, so
    ids minted in the same millisecond still sort in creation order), variant, 62 random bits.
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


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def resource_id(prefix: str) -> str:
    """A resource id as the contracts spell them: `<prefix>_` + 26 Crockford base32 characters.

    ULID-shaped (48 bits of milliseconds, then 80 random bits), so ids roughly sort by creation
    and match patterns such as `^shp_[0-9A-HJKMNP-TV-Z]{26}$`.
    """
    value = ((time.time_ns() // 1_000_000) << 80) | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
