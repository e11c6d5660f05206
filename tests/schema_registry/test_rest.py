"""The Confluent-compatible REST API over real HTTP (uvicorn on a free port)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from tests.schema_registry.conftest import Served
from tests.schema_registry.protos import ADDED, BASE, REMOVED, THING, thing

SUBJECT = "regtest.thing.v1"
VND = "application/vnd.schemaregistry.v1+json"


@dataclass
class Reply:
    status: int
    content_type: str
    body: Any


def _request(method: str, url: str, body: Any, content_type: str) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    request.add_header("Accept", VND)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status, headers = response.read(), response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, headers = error.read(), error.code, error.headers
    return Reply(status, headers.get("content-type", ""), json.loads(raw) if raw else None)


async def call(
    served: Served, method: str, path: str, body: Any = None, content_type: str = VND
) -> Reply:
    return await asyncio.to_thread(_request, method, served.base_url + path, body, content_type)


def _announce_oversized_body(port: int) -> tuple[int, Any]:
    """Send only the headers of a 7 MB POST: the registry refuses before reading the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", f"/subjects/{SUBJECT}/versions")
        connection.putheader("Content-Type", VND)
        connection.putheader("Content-Length", str(7_000_000))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def schema_body(descriptor_set: bytes, message_name: str = THING) -> dict[str, str]:
    return {
        "schemaType": "PROTOBUF",
        "schema": base64.b64encode(descriptor_set).decode(),
        "messageName": message_name,
    }


async def test_register_and_read_back(served: Served) -> None:
    reply = await call(served, "POST", f"/subjects/{SUBJECT}/versions", schema_body(thing(BASE)))
    assert (reply.status, reply.content_type) == (200, VND)
    schema_id = reply.body["id"]
    again = await call(
        served,
        "POST",
        f"/subjects/{SUBJECT}/versions",
        schema_body(thing(BASE)),
        "application/json",
    )
    assert again.body == {"id": schema_id}
    second = await call(served, "POST", f"/subjects/{SUBJECT}/versions", schema_body(thing(ADDED)))
    assert second.body["id"] != schema_id

    assert (await call(served, "GET", "/subjects")).body == [SUBJECT]
    assert (await call(served, "GET", f"/subjects/{SUBJECT}/versions")).body == [1, 2]
    latest = (await call(served, "GET", f"/subjects/{SUBJECT}/versions/latest")).body
    assert (latest["version"], latest["id"], latest["subject"]) == (2, second.body["id"], SUBJECT)
    first = (await call(served, "GET", f"/subjects/{SUBJECT}/versions/1")).body
    assert (first["id"], first["schemaType"], first["messageName"]) == (
        schema_id,
        "PROTOBUF",
        THING,
    )

    by_id = await call(served, "GET", f"/schemas/ids/{schema_id}")
    stored = await served.registry.schema_by_id(schema_id)
    assert base64.b64decode(by_id.body["schema"]) == stored.descriptor
    assert by_id.body["fingerprint"] == stored.fingerprint


async def test_not_found_codes(served: Served) -> None:
    missing_subject = await call(served, "GET", f"/subjects/{SUBJECT}/versions")
    assert (missing_subject.status, missing_subject.body["error_code"]) == (404, 40401)
    assert missing_subject.content_type == VND
    await call(served, "POST", f"/subjects/{SUBJECT}/versions", schema_body(thing(BASE)))
    missing_version = await call(served, "GET", f"/subjects/{SUBJECT}/versions/9")
    assert (missing_version.status, missing_version.body["error_code"]) == (404, 40402)
    missing_id = await call(served, "GET", "/schemas/ids/777")
    assert (missing_id.status, missing_id.body["error_code"]) == (404, 40403)
    bad_version = await call(served, "GET", f"/subjects/{SUBJECT}/versions/first")
    assert (bad_version.status, bad_version.body["error_code"]) == (422, 42202)
    no_route = await call(served, "GET", "/nothing/here")
    assert (no_route.status, no_route.body["error_code"]) == (404, 404)


async def test_incompatible_is_409_and_verbose_compatibility_gives_reasons(
    served: Served,
) -> None:
    await call(served, "POST", f"/subjects/{SUBJECT}/versions", schema_body(thing(BASE)))
    refused = await call(
        served, "POST", f"/subjects/{SUBJECT}/versions", schema_body(thing(REMOVED))
    )
    assert (refused.status, refused.body["error_code"]) == (409, 409)
    assert "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED" in refused.body["message"]

    path = f"/compatibility/subjects/{SUBJECT}/versions/latest?verbose=true"
    verbose = await call(served, "POST", path, schema_body(thing(REMOVED)))
    assert verbose.status == 200 and verbose.body["is_compatible"] is False
    assert any(
        m.startswith("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED (version 1) backward:")
        for m in verbose.body["messages"]
    )
    terse = await call(
        served, "POST", f"/compatibility/subjects/{SUBJECT}/versions/1", schema_body(thing(ADDED))
    )
    assert terse.body == {"is_compatible": True}
    by_mode = await call(
        served, "POST", f"/compatibility/subjects/{SUBJECT}/versions", schema_body(thing(ADDED))
    )
    assert by_mode.body == {"is_compatible": True}
    unknown = await call(
        served,
        "POST",
        "/compatibility/subjects/regtest.nope.v1/versions/latest",
        schema_body(thing(BASE)),
    )
    assert (unknown.status, unknown.body["error_code"]) == (404, 40401)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(schema_body(b"garbage bytes, not a descriptor set"), id="garbage bytes"),
        pytest.param({**schema_body(thing(BASE)), "schema": "%%not base64%%"}, id="not base64"),
        pytest.param({**schema_body(thing(BASE)), "schemaType": "AVRO"}, id="avro"),
        pytest.param({"schema": schema_body(thing(BASE))["schema"]}, id="no message name"),
        pytest.param(schema_body(thing(BASE), "regtest.v1.Missing"), id="message not in set"),
    ],
)
async def test_invalid_schemas_are_42201(served: Served, body: dict[str, str]) -> None:
    reply = await call(served, "POST", f"/subjects/{SUBJECT}/versions", body)
    assert (reply.status, reply.body["error_code"]) == (422, 42201)
    assert reply.body["message"]


async def test_compatibility_levels(served: Served) -> None:
    assert (await call(served, "GET", "/config")).body == {"compatibilityLevel": "BACKWARD"}
    bad = await call(served, "PUT", "/config", {"compatibility": "SIDEWAYS"})
    assert (bad.status, bad.body["error_code"]) == (422, 42203)
    missing = await call(served, "PUT", "/config", {})
    assert missing.body["error_code"] == 42203
    put = await call(served, "PUT", "/config", {"compatibility": "FULL"})
    assert put.body == {"compatibility": "FULL"}
    assert (await call(served, "GET", "/config")).body == {"compatibilityLevel": "FULL"}

    unset = await call(served, "GET", f"/config/{SUBJECT}")
    assert (unset.status, unset.body["error_code"]) == (404, 40408)
    inherited = await call(served, "GET", f"/config/{SUBJECT}?defaultToGlobal=true")
    assert inherited.body == {"compatibilityLevel": "FULL"}
    await call(served, "PUT", f"/config/{SUBJECT}", {"compatibility": "none"})
    assert (await call(served, "GET", f"/config/{SUBJECT}")).body == {"compatibilityLevel": "NONE"}
    assert await served.registry.mode(SUBJECT) == "NONE"


async def test_request_format_errors(served: Served) -> None:
    wrong_type = await call(
        served, "PUT", "/config", {"compatibility": "FULL"}, content_type="text/plain"
    )
    assert (wrong_type.status, wrong_type.body["error_code"]) == (415, 415)
    bad_subject = await call(
        served, "POST", "/subjects/Not%20A%20Subject/versions", schema_body(thing(BASE))
    )
    assert (bad_subject.status, bad_subject.body["error_code"]) == (422, 422)
    status, body = await asyncio.to_thread(_announce_oversized_body, served.http.port)
    assert (status, body["error_code"]) == (413, 413)
    assert (await call(served, "GET", "/")).body == {}
