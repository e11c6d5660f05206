"""The operator check the console stands on: a probe route guarded by OperatorAuth.require
answers the operator for a valid key with the scope, 401 for every unusable credential (a
partner key included), 403 for a missing scope; and operator keys open nothing on the partner
API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.operator_auth import OperatorAuth
from tests.gateway.conftest import Stack, bearer
from tests.gateway.operator_helpers import ADMIN_TOKEN, KEYS, OperatorRig, operator_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[OperatorRig]:
    async with operator_rig(f"sqlite:///{tmp_path}/gateway.db") as running:
        yield running


def assert_401(response: httpx.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    problem = response.json()
    assert problem["grpc_code"] == "UNAUTHENTICATED"
    assert words in problem["detail"], problem["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="crossdock-operators"')


async def test_scopes_decide_what_a_valid_key_may_do(db_url: str) -> None:
    async with operator_rig(db_url) as rig:  # on SQLite and on PostgreSQL
        viewer = await rig.new_key(["ops:read"], operator="grace@example.com")
        actor = await rig.new_key(["ops:read", "ops:act"])

        seen = await rig.probe("ops:read", f"Bearer {viewer['operator_key']}")
        assert seen.status_code == 200, seen.text
        assert seen.json() == {
            "key_id": viewer["key_id"],
            "name": "grace@example.com",
            "scopes": ["ops:read"],
        }
        refused = await rig.probe("ops:act", f"Bearer {viewer['operator_key']}")
        assert refused.status_code == 403
        assert refused.json()["grpc_code"] == "PERMISSION_DENIED"
        assert "ops:act" in refused.json()["detail"]
        assert 'error="insufficient_scope", scope="ops:act"' in refused.headers["www-authenticate"]

        acted = await rig.probe("ops:act", f"bearer {actor['operator_key']}")  # any case
        assert acted.status_code == 200
        assert acted.json()["name"] == "ada@example.com"


async def test_missing_or_malformed_credentials_are_401(rig: OperatorRig) -> None:
    missing = await rig.probe("ops:read", None)
    assert_401(missing, "an operator key is required")
    assert "error=" not in missing.headers["www-authenticate"]  # nothing was presented
    assert_401(await rig.probe("ops:read", "Basic YWRhOnB3"), "must be `Bearer")
    assert_401(await rig.probe("ops:read", "Bearer"), "must be `Bearer")
    for malformed in (
        "hello",
        "cdo_",
        "cdo_keyonly",
        "cdo__secret",
        "xyz_a_b",
        "cdo_a_" + "s" * 300,
    ):
        response = await rig.probe("ops:read", f"Bearer {malformed}")
        assert_401(response, "malformed operator key")
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_unknown_and_forged_keys_answer_alike(rig: OperatorRig) -> None:
    real = str((await rig.new_key(["ops:read"]))["operator_key"])
    key_id = real.split("_")[1]
    forged = await rig.probe("ops:read", f"Bearer cdo_{key_id}_not-the-secret")
    unknown = await rig.probe("ops:read", "Bearer cdo_01nosuchkey00000000000000_secret")
    assert_401(forged, "unknown operator key")
    assert_401(unknown, "unknown operator key")
    assert forged.json()["detail"] == unknown.json()["detail"]


async def test_a_partner_key_or_the_admin_token_is_not_an_operator_key(
    rig: OperatorRig, stack: Stack
) -> None:
    # A real partner key, issued by the admin API of a running gateway.
    assert_401(await rig.probe("ops:read", f"Bearer {stack.key_a}"), "partner API key")
    # Even one whose id and secret are those of a real operator key, with the partner prefix.
    operator_key = str((await rig.new_key(["ops:read"]))["operator_key"])
    disguised = "cdk_" + operator_key.removeprefix("cdo_")
    assert_401(await rig.probe("ops:read", f"Bearer {disguised}"), "partner API key")
    # Nor is the admin API's token: the console takes operator keys only.
    assert_401(await rig.probe("ops:read", f"Bearer {ADMIN_TOKEN}"), "malformed operator key")


async def test_operator_keys_open_nothing_on_the_partner_api(
    rig: OperatorRig, stack: Stack
) -> None:
    operator_key = str((await rig.new_key(["ops:read", "ops:act"]))["operator_key"])
    created = await stack.admin.post(KEYS, json={"operator": "ada", "scopes": ["ops:act"]})
    assert created.status_code == 201
    for key in (operator_key, created.json()["operator_key"]):
        response = await stack.client.get("/v1/orders", headers=bearer(key))
        assert response.status_code == 401
    # Nor with the operator key's id and secret under the partner prefix.
    as_partner = "cdk_" + created.json()["operator_key"].removeprefix("cdo_")
    assert (await stack.client.get("/v1/orders", headers=bearer(as_partner))).status_code == 401


async def test_a_revoked_key_stops_working(rig: OperatorRig) -> None:
    created = await rig.new_key(["ops:read", "ops:act"])
    authorization = f"Bearer {created['operator_key']}"
    assert (await rig.probe("ops:act", authorization)).status_code == 200
    assert (await rig.admin.delete(f"{KEYS}/{created['key_id']}")).status_code == 204
    for scope in ("ops:read", "ops:act"):
        assert_401(await rig.probe(scope, authorization), "revoked")


async def test_an_expired_key_stops_working(rig: OperatorRig) -> None:
    created = await rig.new_key(["ops:read"], expires_in_seconds=60)
    authorization = f"Bearer {created['operator_key']}"
    rig.clock.shift_seconds = 59
    assert (await rig.probe("ops:read", authorization)).status_code == 200
    rig.clock.shift_seconds = 61
    assert_401(await rig.probe("ops:read", authorization), "expired")
    # A revoked and expired key says revoked: the stronger reason.
    assert (await rig.admin.delete(f"{KEYS}/{created['key_id']}")).status_code == 204
    assert_401(await rig.probe("ops:read", authorization), "revoked")


async def test_asking_for_a_scope_outside_the_closed_set_is_a_programming_error(
    rig: OperatorRig,
) -> None:
    created = await rig.new_key(["ops:read", "ops:act"])
    with pytest.raises(ValueError, match="not an operator scope"):
        await OperatorAuth(rig.db).check(str(created["operator_key"]), "orders:read")
