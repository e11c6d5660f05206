"""The admin API's operator keys: create (shown once), list (never the secret), revoke, and
every bad request answered 400/413 problem+json with nothing stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.entrypoints.admin_api import MAX_BODY_BYTES
from tests.gateway.operator_helpers import KEYS, OperatorRig, operator_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[OperatorRig]:
    async with operator_rig(f"sqlite:///{tmp_path}/gateway.db") as running:
        yield running


async def test_create_list_revoke(rig: OperatorRig) -> None:
    created = await rig.new_key(["ops:read", "ops:act", "ops:read"], expires_in_seconds=3600)
    key_id, operator_key = created["key_id"], str(created["operator_key"])
    assert operator_key.startswith(f"cdo_{key_id}_")
    assert created["operator"] == "ada@example.com"
    assert created["scopes"] == ["ops:act", "ops:read"]
    assert created["expires_at"] == pytest.approx(float(str(created["created_at"])) + 3600)
    viewer = await rig.new_key(["ops:read"])  # no expiry
    assert viewer["expires_at"] is None

    listed = (await rig.admin.get(KEYS)).json()["keys"]
    assert [(k["key_id"], k["scopes"], k["revoked_at"]) for k in listed] == [
        (key_id, ["ops:act", "ops:read"], None),
        (viewer["key_id"], ["ops:read"], None),
    ]
    assert set(listed[0]) == {
        "key_id", "operator", "scopes", "created_at", "expires_at", "revoked_at"
    }  # fmt: skip
    assert operator_key.split("_", 2)[2] not in (await rig.admin.get(KEYS)).text

    assert (await rig.admin.delete(f"{KEYS}/{key_id}")).status_code == 204
    again = await rig.admin.delete(f"{KEYS}/{key_id}")
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    listed = (await rig.admin.get(KEYS)).json()["keys"]
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None


async def test_unknown_key_id_is_404(rig: OperatorRig) -> None:
    missing = await rig.admin.delete(f"{KEYS}/nosuchkey")
    assert missing.status_code == 404
    assert missing.json()["grpc_code"] == "NOT_FOUND"


async def test_operator_key_routes_need_the_admin_token(rig: OperatorRig) -> None:
    operator_key = str((await rig.new_key(["ops:read", "ops:act"]))["operator_key"])
    for credential in ("Bearer wrong", f"Bearer {operator_key}", None):
        headers = {"Authorization": credential} if credential else {"Authorization": ""}
        for method, path, body in [
            ("POST", KEYS, {"operator": "mallory", "scopes": ["ops:act"]}),
            ("GET", KEYS, None),
            ("DELETE", f"{KEYS}/{operator_key.split('_')[1]}", None),
        ]:
            response = await rig.admin.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (credential, method)
    assert len((await rig.admin.get(KEYS)).json()["keys"]) == 1


OK = {"operator": "ada@example.com", "scopes": ["ops:read"]}
TOO_LONG = "a" * 255
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "violations"),
    [
        ({**OK, "admin": True}, {"admin": "unknown field"}),
        ({"scopes": ["ops:read"]}, {"operator": "required"}),
        ({**OK, "operator": 42}, {"operator": "must be a string"}),
        ({**OK, "operator": ""}, {"operator": "must be 1-254 characters"}),
        ({**OK, "operator": TOO_LONG}, {"operator": "must be 1-254 characters"}),
        ({**OK, "operator": "ada\n@example.com"}, {"operator": "control or invisible"}),
        ({**OK, "operator": "ada\x00"}, {"operator": "control or invisible"}),
        ({**OK, "operator": "ada\u202e@example.com"}, {"operator": "control or invisible"}),
        ({**OK, "operator": "ada\ud800"}, {"operator": "control or invisible"}),
        ({**OK, "operator": "ada\u2028x"}, {"operator": "control or invisible"}),
        ({**OK, "operator": " ada"}, {"operator": "whitespace"}),
        ({"operator": "ada"}, {"scopes": "required"}),
        ({**OK, "scopes": "ops:read"}, {"scopes": "must be a list"}),
        ({**OK, "scopes": []}, {"scopes": "at least one"}),
        ({**OK, "scopes": ["ops:read", "orders:read"]}, {"scopes[1]": "must be one of"}),
        ({**OK, "scopes": [7]}, {"scopes[0]": "must be one of"}),
        ({**OK, "expires_in_seconds": "3600"}, {"expires_in_seconds": "integer"}),
        ({**OK, "expires_in_seconds": 3600.5}, {"expires_in_seconds": "integer"}),
        ({**OK, "expires_in_seconds": True}, {"expires_in_seconds": "integer"}),
        ({**OK, "expires_in_seconds": 59}, {"expires_in_seconds": "from 60"}),
        ({**OK, "expires_in_seconds": 10**12}, {"expires_in_seconds": "from 60"}),
        (
            {"operator": None, "scopes": None, "expires_in_seconds": -1, "x": 1},
            {
                "x": "unknown",
                "operator": "required",
                "scopes": "required",
                "expires_in_seconds": "",
            },
        ),
    ],
)
async def test_bad_create_is_400_naming_each_field_and_stores_nothing(
    rig: OperatorRig, body: dict[str, Any], violations: dict[str, str]
) -> None:
    # Sent as ASCII JSON: a lone surrogate can only arrive as an escape (\ud800).
    raw = json.dumps(body).encode()
    response = await rig.admin.post(KEYS, content=raw, headers=JSON_TYPE)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["grpc_code"] == "INVALID_ARGUMENT"
    found = {v["field"]: v["description"] for v in problem["violations"]}
    assert set(found) == set(violations)
    for field, words in violations.items():
        assert words in found[field], (field, found[field])
    assert (await rig.admin.get(KEYS)).json()["keys"] == []


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"operator": "ada", "scopes": ["ops:read"]', "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b'["ops:read"]', "must be a JSON object"),
        (b'{"operator": "ada", "scopes": ["ops:read"], "expires_in_seconds": NaN}', ""),
    ],
)
async def test_malformed_json_is_400(rig: OperatorRig, raw: bytes, detail: str) -> None:
    response = await rig.admin.post(KEYS, content=raw, headers=JSON_TYPE)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert (await rig.admin.get(KEYS)).json()["keys"] == []


async def test_an_oversized_body_is_413_and_stores_nothing(rig: OperatorRig) -> None:
    body = {**OK, "operator": "a" * MAX_BODY_BYTES}
    response = await rig.admin.post(KEYS, json=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await rig.admin.get(KEYS)).json()["keys"] == []
