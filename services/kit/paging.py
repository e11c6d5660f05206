"""Keyset paging for List RPCs (AIP-158): tokens opaque to callers, a row key to the service.

The token carries the key of the last row served (an integer sequence or a string such as a
SKU); the next page asks for rows past it, in SQL, so a page costs one indexed range read however
deep the caller pages. A token this service did not issue is INVALID_ARGUMENT on `page_token`.

    query = keyset(select(items), items.c.sku, request.page_token, size, key_type=str)
    rows = conn.execute(query).all()
    page, token = next_page(rows, size, key=lambda row: row.sku)
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from sqlalchemy import ColumnElement, Select

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

R = TypeVar("R")
K = TypeVar("K", int, str)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "decode_token",
    "encode_token",
    "keyset",
    "next_page",
    "page_size",
]


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """The page size to serve: the default for 0, capped at MAX_PAGE_SIZE."""
    if requested < 0:
        raise InvalidArgument.for_field("page_size", "must not be negative", "page_size")
    return min(requested or default, MAX_PAGE_SIZE)


def encode_token(key: int | str) -> str:
    kind = "seq" if isinstance(key, int) else "key"
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


@overload
def decode_token(token: str) -> int | None: ...
@overload
def decode_token(token: str, key_type: type[K]) -> K | None: ...
def decode_token(token: str, key_type: type[Any] = int) -> Any:
    """The key to page past, or None for the first page."""
    if not token:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if key_type is int and kind == "seq":
            return int(value)
        if key_type is str and kind == "key" and value:
            return value
        raise ValueError(kind)
    except ValueError as exc:  # also binascii.Error and UnicodeDecodeError
        raise InvalidArgument.for_field(
            "page_token", "not a token this service issued", "page_token"
        ) from exc


def keyset(
    query: Select[Any],
    key: ColumnElement[Any],
    token: str,
    size: int,
    *,
    key_type: type[K] = int,  # type: ignore[assignment]
    descending: bool = False,
) -> Select[Any]:
    """`query` limited to one page past the token's key, ordered by `key`; one extra row is read
    to know whether another page follows (see `next_page`)."""
    after = decode_token(token, key_type)
    if after is not None:
        query = query.where(key < after if descending else key > after)
    return query.order_by(key.desc() if descending else key.asc()).limit(size + 1)


def next_page(rows: Sequence[R], size: int, key: Callable[[R], int | str]) -> tuple[list[R], str]:
    """The page to serve and the token of the next one ("" on the last page)."""
    if len(rows) > size:
        served = list(rows[:size])
        return served, encode_token(key(served[-1]))
    return list(rows), ""
