"""The event loop every crossdock process runs on: uvloop, unless CROSSDOCK_EVENT_LOOP=asyncio.

Why uvloop: the services are asyncio programs whose gRPC, NATS and HTTP work is mostly event-loop
overhead (callbacks, socket reads and writes). Measured on the 2-core machine, a grpc.aio unary
call cost 282 µs of client CPU on the standard loop and 208 µs on uvloop, at 1.6x the QPS. The
standard loop stays one setting away for debugging (asyncio's debug mode, tools that patch it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_LOOP_VARIABLE = "CROSSDOCK_EVENT_LOOP"


def use_uvloop(environ: Mapping[str, str] | None = None) -> bool:
    """True unless the environment asks for the standard loop."""
    env = os.environ if environ is None else environ
    choice = env.get(EVENT_LOOP_VARIABLE, "uvloop").strip().lower() or "uvloop"
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"{EVENT_LOOP_VARIABLE} must be uvloop or asyncio, not {choice!r}")
    return choice == "uvloop"


def run(main: Coroutine[Any, Any, T], environ: Mapping[str, str] | None = None) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    if use_uvloop(environ):
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
