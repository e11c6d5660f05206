"""Where new ids come from: an injected source, so the domain stays deterministic in tests.

Ids have the contract's shape, a kind prefix, "_" and 26 Crockford base32 characters
(e.g. "rsv_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"). The service wires a ULID source; tests use
`SequentialIds`, whose ids sort in creation order just like ULIDs.
"""

from __future__ import annotations

from typing import Protocol

CROCKFORD32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

RESERVATION = "rsv"
PICK = "pck"
ADJUSTMENT = "adj"
RECEIPT = "rcp"


class IdSource(Protocol):
    """Mints a new unique id with the given kind prefix."""

    def new_id(self, prefix: str) -> str: ...


def encode_crockford(value: int, width: int = 26) -> str:
    """`value` in Crockford base32, left-padded with zeros to `width` characters."""
    if value < 0:
        raise ValueError("value must not be negative")
    digits: list[str] = []
    while value:
        value, digit = divmod(value, 32)
        digits.append(CROCKFORD32[digit])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise ValueError(f"value does not fit in {width} base32 characters")
    return text.rjust(width, "0")


class SequentialIds:
    """A deterministic IdSource: rsv_000…001, then …002; one counter across prefixes."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def new_id(self, prefix: str) -> str:
        value = self._next
        self._next += 1
        return f"{prefix}_{encode_crockford(value)}"
