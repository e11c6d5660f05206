"""netcut cuts exactly one process group off a loopback port, and always heals."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from localmesh.chaos import netcut

pytestmark = pytest.mark.skipif(not netcut.available(), reason="needs iptables as root")

GROUP = 45_917  # a supplementary group no real user has

PROBE = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    print("connected")
except OSError as error:
    print(type(error).__name__)
"""


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def probe(port: int, *, grouped: bool) -> str:
    extra = {"extra_groups": [GROUP]} if grouped else {}
    command = [sys.executable, "-c", PROBE, str(port)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, **extra)
    return done.stdout.strip()


def test_only_the_grouped_process_is_cut_and_the_rule_goes_away(listening_port: int) -> None:
    with netcut.cut(GROUP, [listening_port]):
        assert probe(listening_port, grouped=True) == "ConnectionRefusedError"
        assert probe(listening_port, grouped=False) == "connected"
        assert any(str(listening_port) in rule for rule in netcut.leftovers())
    assert probe(listening_port, grouped=True) == "connected"
    assert not any(str(listening_port) in rule for rule in netcut.leftovers())


def test_the_rule_is_removed_when_the_block_fails(listening_port: int) -> None:
    with pytest.raises(RuntimeError), netcut.cut(GROUP, [listening_port]):
        raise RuntimeError("the run broke")
    assert probe(listening_port, grouped=True) == "connected"


def test_clear_all_removes_what_a_crashed_run_left(listening_port: int) -> None:
    netcut.add(GROUP, [listening_port])
    assert netcut.clear_all() >= 1
    assert netcut.leftovers() == []
    assert probe(listening_port, grouped=True) == "connected"
