"""Every crossdock process runs on uvloop unless CROSSDOCK_EVENT_LOOP=asyncio asks otherwise."""

from __future__ import annotations

import asyncio

import pytest

from services.kit import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default_and_the_standard_loop_on_request() -> None:
    assert event_loop.run(_loop_module(), environ={}).startswith("uvloop")
    standard = event_loop.run(_loop_module(), environ={"CROSSDOCK_EVENT_LOOP": "asyncio"})
    assert standard.startswith("asyncio")


def test_an_unknown_loop_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="CROSSDOCK_EVENT_LOOP must be uvloop or asyncio"):
        event_loop.use_uvloop({"CROSSDOCK_EVENT_LOOP": "trio"})
