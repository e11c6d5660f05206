"""Deterministic ids for seeded histories: the services' own shape, reproducible from a seed.

Ids look like the services' ULID ids (`<prefix>_` + 26 Crockford base32 characters: 48 bits of
milliseconds, 80 bits of "randomness"), so they sort by time like real ones and pass the same
validation; the 80 bits come from a hash of (seed, prefix, counter) instead of os.urandom, so the
same seed writes the same ids. Event ids are UUIDv7-shaped the same way.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from services.inventory.domain.ids import encode_crockford


class SeededIds:
    """Mints `<prefix>_<ULID>` ids stamped with `now` (set it before each step)."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.seed = seed
        self.now = now
        self._counter = 0

    def _bits(self, kind: str, width: int) -> int:
        self._counter += 1
        digest = hashlib.blake2b(
            f"{self.seed}:{kind}:{self._counter}".encode(), digest_size=16
        ).digest()
        return int.from_bytes(digest, "big") & ((1 << width) - 1)

    def new_id(self, prefix: str) -> str:
        """An IdSource (services.inventory.domain.ids): a new id of kind `prefix`."""
        millis = int(self.now.timestamp() * 1000) & ((1 << 48) - 1)
        return f"{prefix}_{encode_crockford((millis << 80) | self._bits(prefix, 80))}"

    def event_id(self) -> str:
        """A UUIDv7-shaped event id at `now`."""
        millis = int(self.now.timestamp() * 1000) & ((1 << 48) - 1)
        value = (millis << 80) | (0x7 << 76) | (self._bits("evt", 12) << 64)
        value |= (0b10 << 62) | self._bits("evt", 62)
        return str(uuid.UUID(int=value))
