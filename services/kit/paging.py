"""Keyset page tokens for List RPCs (AIP-158): opaque to callers, a row sequence to the service.

Lists are newest first; the token is the sequence of the last row served, and the next page asks
for rows below it. A token this service did not issue is INVALID_ARGUMENT on `page_token`.
"""

from __future__ import annotations

import base64

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def decode_token(token: str) -> int | None:
    """The sequence to page below, or None for the first page."""
    if not token:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "seq":
            raise ValueError(kind)
        return int(value)
    except ValueError as exc:
        raise InvalidArgument.for_field(
            "page_token", "not a token this service issued", "page_token"
        ) from exc
