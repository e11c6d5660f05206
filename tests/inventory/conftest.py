from __future__ import annotations

import pytest

from tests.inventory.support import World


@pytest.fixture
def world() -> World:
    return World()
