"""Fault-injection seam for crash, pause and poison tests. Inert unless CROSSDOCK_FAULT or
CROSSDOCK_FAULT_FILE is set.

`CROSSDOCK_FAULT=<point>:<action>` makes the process act when it reaches the named point:

- `kill`: SIGKILL itself, exactly like `kill -9` (no cleanup, no flush, no atexit);
- `stop`: SIGSTOP itself once, so a test can hold it frozen past `ack_wait` and then SIGCONT it;
- `poison`: the event handler at the point rejects its event for good (PermanentError), as a
  handler bug would: the event is dead-lettered.

Points in use: `relay.before_publish` (rows committed, nothing published), `relay.before_mark_sent`
(acks received, rows still pending), `consumer.before_commit` (effects applied, not committed),
`consumer.before_ack` (committed, not acked), `inventory.reserve.before_answer` (a reservation
committed, ReserveStock not answered), and `handle/<consumer>/<subject>` (one consumer's
handler of one event type; poison only).

`CROSSDOCK_FAULT_FILE=<path>` reads the same spec from a file each time instead, and no fault
while the file is absent: a test lifts the fault from a running process (the "fix is deployed")
by deleting the file. Tests set the variables in child processes only; production never sets them.
The check is one dict lookup per batch.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "CROSSDOCK_FAULT"
FAULT_FILE_ENV = "CROSSDOCK_FAULT_FILE"
_fired: set[str] = set()


def _spec() -> str:
    spec = os.environ.get(FAULT_ENV)
    if spec:
        return spec
    path = os.environ.get(FAULT_FILE_ENV)
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except FileNotFoundError:
        return ""


def poisoned_handlers() -> frozenset[str]:
    """The `handle/<consumer>/<subject>` points the spec poisons now (empty almost always)."""
    spec = _spec()
    if not spec:
        return frozenset()
    point, _, action = spec.rpartition(":")
    return (
        frozenset((point,)) if action == "poison" and point.startswith("handle/") else frozenset()
    )


def handler_point(consumer: str, subject: str) -> str:
    return f"handle/{consumer}/{subject}"


def fault_point(name: str) -> None:
    """Act on the fault spec if it names this point; otherwise do nothing."""
    spec = _spec()
    if not spec:
        return
    point, _, action = spec.rpartition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop" and name not in _fired:
        # Only once: after SIGCONT the process must run on normally.
        _fired.add(name)
        os.kill(os.getpid(), signal.SIGSTOP)
