"""The order timeline's lazy list: appends and writes need no decoding, reads see every item."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from services.order.adapters.store.lazy_list import LazyList


class Counting:
    """Decodes plain {"n": k} into ("item", k), counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, plain: Any) -> Any:
        self.calls += 1
        return ("item", plain["n"])


def _lazy(n: int = 3) -> tuple[LazyList, Counting]:
    decode = Counting()
    return LazyList([{"n": k} for k in range(n)], decode), decode


def test_appending_and_reading_the_appended_items_decode_nothing() -> None:
    items, decode = _lazy()
    items.append(("item", 3))
    items.extend([("item", 4)])
    assert len(items) == 5
    assert items[3] == ("item", 3)
    assert items[-1] == ("item", 4)
    items[4] = ("item", 40)
    assert items[4] == ("item", 40)
    assert decode.calls == 0


def test_written_back_as_the_stored_plain_data_plus_the_new_items_encoded() -> None:
    items, decode = _lazy()
    items.append(("item", 3))
    plain = items.to_plain(lambda item: {"n": item[1]})
    assert plain == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]
    assert decode.calls == 0


def test_reversed_decodes_old_items_only_as_far_as_read() -> None:
    items, decode = _lazy(5)
    items.append(("item", 5))
    walk = reversed(items)
    assert [next(walk), next(walk)] == [("item", 5), ("item", 4)]
    assert decode.calls == 1
    assert list(reversed(items)) == [("item", k) for k in (5, 4, 3, 2, 1, 0)]


def test_any_other_read_sees_every_item_in_order() -> None:
    items, decode = _lazy()
    items.append(("item", 3))
    everything = [("item", k) for k in range(4)]
    assert list(items) == everything
    assert decode.calls == 3  # decoded once, then a plain list
    assert items == everything
    assert items[0:2] == everything[0:2]
    assert items[0] == ("item", 0)
    assert ("item", 1) in items
    assert items.index(("item", 2)) == 2
    assert decode.calls == 3
    assert items.to_plain(lambda item: {"n": item[1]}) == [{"n": k} for k in range(4)]


def test_every_read_path_decodes_first() -> None:
    everything = [("item", k) for k in range(3)]
    reads = [
        lambda items: list(items),
        lambda items: tuple(items),
        lambda items: items[:],
        lambda items: items[0],
        lambda items: items == everything,
        lambda items: ("item", 2) in items,
        lambda items: items.count(("item", 1)),
        lambda items: items.copy(),
        lambda items: copy.deepcopy(items),
        lambda items: pickle.loads(pickle.dumps(items)),
        lambda items: items + [],  # noqa: RUF005 - list concatenation is what is tested
        lambda items: repr(items),
        lambda items: sorted(items),
    ]
    expected = [
        everything,
        tuple(everything),
        everything,
        ("item", 0),
        True,
        True,
        1,
        everything,
        everything,
        everything,
        everything,
        repr(everything),
        everything,
    ]
    for read, want in zip(reads, expected, strict=True):
        items, _ = _lazy()
        assert read(items) == want


def test_changes_to_old_items_apply_in_place() -> None:
    items, _ = _lazy()
    items.append(("item", 3))
    items.insert(0, ("item", -1))
    assert items.pop() == ("item", 3)
    items.remove(("item", 1))
    items.reverse()
    assert items == [("item", 2), ("item", 0), ("item", -1)]
    items.clear()
    assert len(items) == 0 and items == []


def test_an_empty_store_is_a_plain_list() -> None:
    items = LazyList([], Counting())
    items.append(("item", 0))
    assert items == [("item", 0)] and len(items) == 1
