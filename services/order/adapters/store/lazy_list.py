"""A list whose stored items stay in their plain (JSON) form until something reads them.

Why: an order's timeline is ~70% of its document and only grows, yet a saga step only appends
to it. Decoding every entry into dataclasses on each load and encoding them back on each save
was most of the order codec's cost. A `LazyList` keeps the loaded entries as the plain data the
JSON parser gave, takes appends as real items, and is written back as that plain data plus the
new items encoded. Reading an old entry decodes them all once; from then on it is a plain list.

What stays cheap without decoding: `append`, `len`, indexing and assigning the items appended
since the load (the domain fixes up the entries it just wrote), and `reversed()`, which decodes
old entries one at a time only as far as the caller iterates. Everything else decodes first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, SupportsIndex

Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


class LazyList(list[Any]):
    """A list of items whose first `len(stored)` are still plain data, decoded on first read."""

    __slots__ = ("_decode", "_stored")

    def __init__(self, stored: list[Any], decode: Decode) -> None:
        super().__init__()
        self._stored: list[Any] | None = stored if stored else None
        self._decode = decode

    # -- what needs no decoding ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._stored or ()) + super().__len__()

    def append(self, item: Any) -> None:
        super().append(item)

    def __getitem__(self, index: Any) -> Any:
        new = self._new_index(index)
        if new is not None:
            return super().__getitem__(new)
        self._materialize()
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        new = self._new_index(index)
        if new is not None:
            super().__setitem__(new, value)
            return
        self._materialize()
        super().__setitem__(index, value)

    def __reversed__(self) -> Iterator[Any]:
        if self._stored is None:
            yield from super().__reversed__()
            return
        stored = self._stored
        yield from super().__reversed__()
        for plain in reversed(stored):
            yield self._decode(plain)

    def to_plain(self, encode: Encode) -> list[Any]:
        """The plain form to store: the loaded data as it was, then the new items encoded."""
        head = self._stored or []
        return [*head, *(encode(item) for item in super().__iter__())]

    def _new_index(self, index: Any) -> int | None:
        """The position among the appended items of a plain int index, None otherwise."""
        if self._stored is None or type(index) is not int:
            return None
        stored = len(self._stored)
        position = index + len(self) if index < 0 else index
        return position - stored if stored <= position < len(self) else None

    def _materialize(self) -> None:
        stored, self._stored = self._stored, None
        if stored:
            super().__setitem__(slice(0, 0), [self._decode(plain) for plain in stored])

    # -- everything else reads the whole list: decode first ---------------------------------

    def __iter__(self) -> Iterator[Any]:
        self._materialize()
        return super().__iter__()

    def __contains__(self, item: object) -> bool:
        self._materialize()
        return super().__contains__(item)

    def __eq__(self, other: object) -> bool:
        self._materialize()
        if isinstance(other, LazyList):
            other._materialize()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        self._materialize()
        return super().__repr__()

    def __delitem__(self, index: Any) -> None:
        self._materialize()
        super().__delitem__(index)

    def __add__(self, other: Any) -> Any:
        self._materialize()
        return list(super().__iter__()) + list(other)

    def __iadd__(self, other: Any) -> Any:
        self._materialize()
        return super().__iadd__(other)

    def __mul__(self, count: SupportsIndex) -> Any:
        self._materialize()
        return list(super().__iter__()) * count

    __rmul__ = __mul__

    def __imul__(self, count: SupportsIndex) -> Any:
        self._materialize()
        return super().__imul__(count)

    def __lt__(self, other: Any) -> bool:
        self._materialize()
        return super().__lt__(other)

    def __le__(self, other: Any) -> bool:
        self._materialize()
        return super().__le__(other)

    def __gt__(self, other: Any) -> bool:
        self._materialize()
        return super().__gt__(other)

    def __ge__(self, other: Any) -> bool:
        self._materialize()
        return super().__ge__(other)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        # copy and pickle see a plain list of decoded items.
        self._materialize()
        return (list, (list(super().__iter__()),))

    def copy(self) -> list[Any]:
        self._materialize()
        return list(super().__iter__())

    def count(self, item: Any) -> int:
        self._materialize()
        return super().count(item)

    def index(self, item: Any, *args: Any) -> int:
        self._materialize()
        return super().index(item, *args)

    def extend(self, items: Any) -> None:
        super().extend(items)  # appends: the stored items stay first

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._materialize()
        super().insert(index, item)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._materialize()
        return super().pop(index)

    def remove(self, item: Any) -> None:
        self._materialize()
        super().remove(item)

    def reverse(self) -> None:
        self._materialize()
        super().reverse()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._materialize()
        super().sort(*args, **kwargs)

    def clear(self) -> None:
        self._stored = None
        super().clear()
