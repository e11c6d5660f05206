"""`crossdock carriers map-code|mappings` against the real carrier-adapter (SQLite, NATS): a
mapping made from the terminal is versioned like any, a repeat says so, a bad status code is
refused naming its field, and the list shows every version."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from services.carrier_adapter.entrypoints.cli import add_carrier_commands
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import CarrierAdapter, carrier_env, running_carrier_adapter


@pytest.fixture
async def adapter(
    tmp_path: Path, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[CarrierAdapter]:
    env = carrier_env(f"sqlite:///{tmp_path / 'carrier_adapter.db'}", nats_server.url)
    async with running_carrier_adapter(env) as service:
        yield service


async def crossdock(adapter: CarrierAdapter, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="crossdock")
    add_carrier_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["carriers", *argv, "--target", f"127.0.0.1:{adapter.server.port}"])
    code: int = await args.run(args)
    return code


async def test_map_code_from_the_terminal(
    adapter: CarrierAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    note = ["--note", "sandbox docs", "--operator", "ops@example.com"]
    assert await crossdock(adapter, "map-code", "sandbox", "XSC", "DELIVERED", *note) == 0
    assert "sandbox XSC: mapped to DELIVERED (version 1)" in capsys.readouterr().out
    assert await crossdock(adapter, "map-code", "sandbox", "XSC", "DELIVERED", *note) == 0
    assert "already mapped to DELIVERED (version 1)" in capsys.readouterr().out

    refused = await crossdock(adapter, "map-code", "sandbox", "X\tSC", "DELIVERED", *note)
    assert refused == 2
    assert "carrier_status_code:" in capsys.readouterr().err

    assert await crossdock(adapter, "mappings", "--carrier", "sandbox", "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["carrier_status_code"], listed["version"], listed["operator"]) == (
        "XSC",
        "1",  # int64 is a JSON string in the protobuf JSON mapping
        "ops@example.com",
    )


def test_unknown_statuses_are_refused_before_any_call() -> None:
    parser = argparse.ArgumentParser(prog="crossdock")
    add_carrier_commands(parser.add_subparsers(dest="command", required=True))
    for status in ("UNKNOWN", "UNSPECIFIED", "LOST"):
        with pytest.raises(SystemExit):
            parser.parse_args(["carriers", "map-code", "ups", "ZZ", status, "--note", "n"])
