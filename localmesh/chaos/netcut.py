"""Cut one process off from TCP ports on loopback for a while, and always put it back.

A chaos mesh starts each service replica with a supplementary group of its own
(`subprocess.Popen(extra_groups=[gid])`). An iptables OUTPUT rule that matches that group
(`-m owner --gid-owner GID --suppl-groups`) and the destination port resets that process's
connections to the port, new and established, and nobody else's: the other replicas, the
servers' replies and the checker's own connections pass.

Every rule carries the comment `crossdock-chaos`, so `clear_all` finds and removes what a run
that crashed left behind; `cut` removes its rules on the way out whatever happened inside.
Needs root and iptables (Debian package `iptables`; `.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

COMMENT = "crossdock-chaos"


class NetcutUnavailable(RuntimeError):
    """iptables is missing or refuses (not root, no NET_ADMIN): say so instead of pretending."""


def _rule(gid: int, port: int) -> list[str]:
    return [
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        str(port),
        "-m",
        "owner",
        "--gid-owner",
        str(gid),
        "--suppl-groups",
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("iptables")
    if binary is None:
        raise NetcutUnavailable("iptables is not installed (Debian package `iptables`)")
    return subprocess.run([binary, "-w", *args], capture_output=True, text=True, check=False)


def available() -> bool:
    """True when rules can be listed (installed, and we may use it)."""
    try:
        return _iptables("-S", "OUTPUT").returncode == 0
    except NetcutUnavailable:
        return False


def add(gid: int, ports: Sequence[int]) -> None:
    for port in ports:
        done = _iptables("-A", *_rule(gid, port))
        if done.returncode != 0:
            raise NetcutUnavailable(f"iptables -A refused: {done.stderr.strip()}")


def remove(gid: int, ports: Sequence[int]) -> None:
    for port in ports:
        # -D fails when the rule is already gone; deleting until it fails also removes a rule
        # that a retried add appended twice.
        while _iptables("-D", *_rule(gid, port)).returncode == 0:
            pass


def leftovers() -> list[str]:
    """The chaos rules in place now (as `iptables -S` prints them)."""
    listed = _iptables("-S", "OUTPUT")
    return [line for line in listed.stdout.splitlines() if COMMENT in line]


def clear_all() -> int:
    """Remove every chaos rule; how many there were."""
    rules = leftovers()
    for line in rules:
        # "-A OUTPUT ..." → "-D OUTPUT ..."; the printed form is valid input.
        _iptables("-D", *line.split()[1:])
    return len(rules)


@contextmanager
def cut(gid: int, ports: Sequence[int]) -> Iterator[None]:
    """Processes in group `gid` can't reach `ports` on loopback inside the block."""
    try:
        add(gid, ports)
        yield
    finally:
        remove(gid, ports)
