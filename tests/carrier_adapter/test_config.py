"""Carrier accounts from the environment: every problem named at once, secrets never shown."""

from __future__ import annotations

import pytest

from services.carrier_adapter.config import load_accounts
from services.kit.config import ConfigError

P = "CROSSDOCK_CARRIER_ADAPTER_"


def test_loads_several_accounts_with_their_credentials() -> None:
    env = {
        f"{P}CARRIER_ACCOUNTS": "sandbox, ups_east",
        f"{P}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "whsec_1",
        f"{P}ACCOUNT_SANDBOX_TIME_SCALE": "3600",
        f"{P}ACCOUNT_UPS_EAST_CARRIER": "ups",
        f"{P}ACCOUNT_UPS_EAST_CLIENT_ID": "cid",
        f"{P}ACCOUNT_UPS_EAST_CLIENT_SECRET": "csecret",
        f"{P}ACCOUNT_UPS_EAST_ACCOUNT_NUMBER": "A1B2C3",
        f"{P}ACCOUNT_UPS_EAST_TEST_MODE": "true",
    }

    sandbox, ups = load_accounts(env)

    assert (sandbox.account_id, sandbox.carrier, sandbox.test_mode) == ("sandbox", "sandbox", False)
    assert sandbox.get("time_scale") == "3600"
    assert (ups.account_id, ups.carrier, ups.test_mode) == ("ups_east", "ups", True)
    assert ups.get("account_number") == "A1B2C3"
    assert sorted(ups.secret_values()) == ["cid", "csecret"]
    assert "csecret" not in repr(ups)


def test_every_problem_is_reported_at_once_without_secret_values() -> None:
    env = {
        f"{P}CARRIER_ACCOUNTS": "ups_east,fedex_main,acme,Bad-Id,sandbox",
        f"{P}ACCOUNT_UPS_EAST_CARRIER": "ups",
        f"{P}ACCOUNT_UPS_EAST_CLIENT_SECRET": "do-not-print-me",
        f"{P}ACCOUNT_UPS_EAST_TEST_MODE": "maybe",
        f"{P}ACCOUNT_FEDEX_MAIN_CARRIER": "fedex",
        f"{P}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "w",
        f"{P}ACCOUNT_SANDBOX_EXCEPTION_RATE": "1.5",
    }

    with pytest.raises(ConfigError) as caught:
        load_accounts(env)

    text = str(caught.value)
    for variable in (
        f"{P}ACCOUNT_UPS_EAST_CLIENT_ID",
        f"{P}ACCOUNT_UPS_EAST_ACCOUNT_NUMBER",
        f"{P}ACCOUNT_UPS_EAST_TEST_MODE",
        f"{P}ACCOUNT_FEDEX_MAIN_API_KEY",
        f"{P}ACCOUNT_ACME_CARRIER",
        f"{P}ACCOUNT_SANDBOX_EXCEPTION_RATE",
        "'Bad-Id'",
    ):
        assert variable in text
    assert "do-not-print-me" not in text


def test_account_list_is_required() -> None:
    with pytest.raises(ConfigError, match="CARRIER_ACCOUNTS"):
        load_accounts({})


def test_poll_tracking_is_optional_per_account_and_checked() -> None:
    env = {
        f"{P}CARRIER_ACCOUNTS": "sandbox,ups_east,ups_west",
        f"{P}ACCOUNT_SANDBOX_WEBHOOK_SECRET": "w",
        f"{P}ACCOUNT_SANDBOX_POLL_TRACKING": "true",
        **{
            f"{P}ACCOUNT_{region}_{name}": value
            for region in ("UPS_EAST", "UPS_WEST")
            for name, value in (
                ("CARRIER", "ups"),
                ("CLIENT_ID", "cid"),
                ("CLIENT_SECRET", "csecret"),
                ("ACCOUNT_NUMBER", "A1"),
            )
        },
        f"{P}ACCOUNT_UPS_WEST_POLL_TRACKING": "off",
    }

    sandbox, east, west = load_accounts(env)

    assert (sandbox.poll_tracking, east.poll_tracking, west.poll_tracking) == (True, None, False)
    with pytest.raises(ConfigError, match=f"{P}ACCOUNT_UPS_EAST_POLL_TRACKING"):
        load_accounts({**env, f"{P}ACCOUNT_UPS_EAST_POLL_TRACKING": "sometimes"})
