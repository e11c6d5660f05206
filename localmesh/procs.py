"""Child processes of the supervisor: own log file, own process group, die with the supervisor.

Each child runs in its own session, so a terminal's Ctrl-C reaches only the supervisor, which
then stops the children in reverse start order. If the supervisor itself is killed (kill -9),
the kernel sends each child SIGTERM (PR_SET_PDEATHSIG), so nothing is left behind.

The death signal (and, for PostgreSQL, the user) is set by `setpriv` in the child, not by a
`preexec_fn`: a preexec_fn or a user change forces a real fork(), which runs gRPC's fork
handlers, and those can block for ever in a process that has used gRPC (the supervisor probes
health over gRPC). Without them Popen uses vfork, which runs no fork handlers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunAs:
    """Run a child as another user (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


def dying_with_parent(
    command: Sequence[str], run_as: RunAs | None = None, groups: Sequence[int] = ()
) -> list[str]:
    """`command` run through setpriv: SIGTERM when the parent thread dies, as `run_as` if given,
    with `groups` as its supplementary groups if given (needs root).

    Linux only; elsewhere (or without util-linux's setpriv) the command runs as it is.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        if run_as is not None or groups:
            raise RuntimeError("a child's user or groups need setpriv (util-linux)")
        return list(command)
    prefix = [setpriv, "--pdeathsig", "TERM"]
    if run_as is not None:
        prefix += [f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups"]
    elif groups:
        prefix += ["--groups", ",".join(str(gid) for gid in groups)]
    return [*prefix, "--", *command]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def signal_stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)

    def kill_group(self) -> None:
        """SIGKILL the child and anything it started in its process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def wait(self, timeout: float) -> bool:
        """True when the child exited within `timeout` seconds."""
        try:
            self.process.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def log_tail(self, chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]


def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
    run_as: RunAs | None = None,
    stop_signal: int = signal.SIGTERM,
    extra_groups: Sequence[int] = (),
) -> Child:
    """Start `command` with stdout and stderr appended to `log_path` (with `extra_groups` as its
    supplementary groups, when given: needs root; set by setpriv, see above)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n---- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        log.flush()
        process = subprocess.Popen(
            dying_with_parent(command, run_as, extra_groups),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path, stop_signal)


def stop_together(children: Sequence[Child], timeout: float) -> list[str]:
    """Signal every child, wait for all up to `timeout`, SIGKILL the rest; names of those killed."""
    for child in children:
        child.signal_stop()
    deadline = time.monotonic() + timeout
    killed = []
    for child in children:
        if not child.wait(deadline - time.monotonic()):
            killed.append(child.name)
            child.kill_group()
            child.wait(5.0)
    return killed
