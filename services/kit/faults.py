"""Fault-injection seam for crash and pause tests. Inert unless CROSSDOCK_FAULT is set.

`CROSSDOCK_FAULT=<point>:<action>` makes the process act when it reaches the named point:

- `kill`: SIGKILL itself, exactly like `kill -9` (no cleanup, no flush, no atexit);
- `stop`: SIGSTOP itself once, so a test can hold it frozen past `ack_wait` and then SIGCONT it.

Points in use: `relay.before_publish` (rows committed, nothing published), `relay.before_mark_sent`
(acks received, rows still pending), `consumer.before_commit` (effects applied, not committed),
`consumer.before_ack` (committed, not acked). Tests set the variable in a child process only;
production never sets it. The check is one dict lookup per batch.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "CROSSDOCK_FAULT"
_fired: set[str] = set()


def fault_point(name: str) -> None:
    """Act on CROSSDOCK_FAULT if it names this point; otherwise do nothing."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, action = spec.partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop" and name not in _fired:
        # Only once: after SIGCONT the process must run on normally.
        _fired.add(name)
        os.kill(os.getpid(), signal.SIGSTOP)
