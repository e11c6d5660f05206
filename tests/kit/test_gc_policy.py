"""settle_heap(): what is alive at start leaves every later collection; cycles made later are
still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.kit import gc_policy


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_objects_alive_at_start_are_frozen() -> None:
    startup_object = _Node()
    gc_policy.settle_heap()

    assert gc.get_freeze_count() > 0
    assert not any(o is startup_object for o in gc.get_objects())  # no generation holds it


@pytest.mark.usefixtures("restored_gc")
def test_a_cycle_made_after_settling_is_still_freed() -> None:
    gc_policy.settle_heap()
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second

    gc.collect()

    assert alive() is None
