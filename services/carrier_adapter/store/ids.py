"""crossdock ids for quotes and labels: `rte_…` / `lbl_…` + 26 Crockford base32 characters.

ULID-shaped (48 bits of milliseconds, 80 random bits) so ids sort by creation time and match the
contracts' `^rte_[0-9A-HJKMNP-TV-Z]{26}$` patterns.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_label_id", "new_rate_id", "new_token"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid() -> str:
    value = ((time.time_ns() // 1_000_000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_rate_id() -> str:
    return f"rte_{_ulid()}"


def new_label_id() -> str:
    return f"lbl_{_ulid()}"


def new_token() -> str:
    """A booking claim token: who may finish an in-flight booking."""
    return _ulid()
