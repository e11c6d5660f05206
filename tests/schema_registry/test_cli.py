"""`crossdock schemas list|show|check`, run as the kit's CLI will run them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from crossdock.events.v1 import order_events_pb2

from services.kit.registry_client import SchemaRegistryClient, descriptor_set_of
from services.schema_registry.entrypoints.cli import add_schema_commands
from tests.fixtures.ports import free_port
from tests.schema_registry.conftest import Served
from tests.schema_registry.protos import with_field, without_message

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "proto" / "baseline.binpb"
PLACED, CANCELLED = "crossdock.order.placed.v1", "crossdock.order.cancelled.v1"
PLACED_MESSAGE = "crossdock.events.v1.OrderPlaced"


async def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="crossdock")
    add_schema_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["schemas", *argv])
    code: int = await args.run(args)
    return code


@pytest.mark.integration  # runs buf
async def test_the_working_tree_is_compatible_with_the_released_contracts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The CI gate beside `buf breaking`: every event of this tree against proto/baseline.binpb.
    assert await run("check", "--against", str(BASELINE)) == 0
    out = capsys.readouterr().out
    assert f"compatible    {PLACED}" in out
    assert "incompatible" not in out.replace("0 incompatible", "")


async def test_an_incompatible_change_fails_the_check_with_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A release whose OrderPlaced had a field the working tree dropped without reserving it.
    release = tmp_path / "release.binpb"
    release.write_bytes(with_field(BASELINE.read_bytes(), PLACED_MESSAGE, "legacy_note", 99))
    code = await run(
        "check", "--against", str(release), "--subject", PLACED, "--subject", CANCELLED
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"incompatible  {PLACED}" in out
    assert "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: backward:" in out and "legacy_note" in out
    assert f"compatible    {CANCELLED}" in out
    assert "2 event schemas checked" in out and "1 incompatible" in out
    # FORWARD sees the same edit as an addition: fine.
    forward = await run(
        "check", "--against", str(release), "--subject", PLACED, "--mode", "FORWARD"
    )
    assert forward == 0


async def test_an_event_missing_from_the_release_is_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = tmp_path / "release.binpb"
    release.write_bytes(without_message(BASELINE.read_bytes(), PLACED_MESSAGE))
    assert await run("check", "--against", str(release), "--subject", PLACED, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"] == [{"subject": PLACED, "status": "new", "reasons": []}]


async def test_check_against_the_registry(
    served: Served, client: SchemaRegistryClient, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = with_field(
        descriptor_set_of(order_events_pb2.OrderPlaced), PLACED_MESSAGE, "legacy_note", 99
    )
    await client.register(PLACED, PLACED_MESSAGE, registered)
    code = await run(
        "check", "--registry", served.target, "--subject", PLACED, "--subject", CANCELLED
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"incompatible  {PLACED}" in out and "(version 1)" in out
    assert f"new           {CANCELLED}" in out


async def test_list_and_show(
    served: Served, client: SchemaRegistryClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = await client.register_message(order_events_pb2.OrderPlaced, PLACED)
    assert await run("list", "--registry", served.target, "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"subject": PLACED, "version": 1, "id": schema.schema_id, "message": PLACED_MESSAGE}
    ]
    assert await run("show", PLACED, "--registry", served.target) == 0
    shown = capsys.readouterr().out
    assert f"id: {schema.schema_id}" in shown and "crossdock/events/v1/order_events.proto" in shown

    out_file = tmp_path / "placed.binpb"
    code = await run(
        "show",
        "--id",
        str(schema.schema_id),
        "--registry",
        served.target,
        "--descriptor-out",
        str(out_file),
        "--json",
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["fingerprint"] == schema.fingerprint
    assert out_file.read_bytes() == schema.file_descriptor_set

    assert await run("list", "--local") == 0
    assert PLACED in capsys.readouterr().out


async def test_errors_become_exit_codes(capsys: pytest.CaptureFixture[str], served: Served) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    assert await run("list", "--registry", nowhere, "--timeout", "1") == 3
    assert "cannot reach the registry" in capsys.readouterr().err
    assert await run("show", "crossdock.nope.v1", "--registry", served.target) == 2
    assert "not found" in capsys.readouterr().err
    assert await run("check", "--against", "/nonexistent/release.binpb") == 2
