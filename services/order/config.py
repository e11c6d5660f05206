"""Order's settings, read once at start from CROSSDOCK_ORDER_* environment variables."""

from __future__ import annotations

import re
from datetime import timedelta

from services.kit.config import setting
from services.kit.runtime import ConsumingServiceConfig
from services.order.adapters.store import SERVICE
from services.order.domain import StepTimeouts
from services.order.domain.return_rules import ReturnPolicy, load_reason_codes

_PARTNER_ID = re.compile(r"^ptn_[0-9A-HJKMNP-TV-Z]{26}$")


def partner_return_windows(text: str) -> dict[str, int]:
    """`ptn_A=60,ptn_B=14` → {partner id: days}; ValueError("<the form expected>") otherwise."""
    windows: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        partner_id, _, days = (piece.strip() for piece in item.partition("="))
        well_formed = _PARTNER_ID.fullmatch(partner_id) and days.isdigit()
        if not well_formed or int(days) > 3650 or partner_id in windows:
            raise ValueError(
                "comma-separated <partner id>=<days 0-3650> pairs, each partner once, "
                "e.g. ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P=60"
            )
        windows[partner_id] = int(days)
    return windows


def _check_partner_return_windows(text: str) -> None:
    partner_return_windows(text)


class OrderConfig(ConsumingServiceConfig, service=SERVICE):
    inventory_target: str = setting(description="host:port of the inventory gRPC service")
    shipment_target: str = setting(
        description="host:port of the shipment service: a cancel asks it to cancel the order's "
        "shipments first, and an operator's retry asks it to book a failed label again",
    )
    reserve_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long reservation may take before EXCEPTION"
    )
    release_timeout_seconds: float = setting(
        default=300.0, minimum=0.01, description="how long release to the warehouse may take"
    )
    pick_timeout_seconds: float = setting(
        default=4 * 3600.0, minimum=0.01, description="how long a pick may stay unconfirmed"
    )
    sweep_interval_seconds: float = setting(
        default=5.0, minimum=0.01, description="how often overdue steps are looked for"
    )
    command_poll_interval_seconds: float = setting(
        default=0.5, minimum=0.01, description="saga command worker fallback poll interval"
    )
    return_window_days: int = setting(
        default=30,
        minimum=0,
        maximum=3650,
        description="days after an order's last delivery during which a return may be authorized",
    )
    return_window_days_by_partner: str = setting(
        default="",
        check=_check_partner_return_windows,
        description="per-partner return windows overriding RETURN_WINDOW_DAYS, as "
        "comma-separated PARTNER_ID=DAYS pairs (e.g. ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P=60)",
    )

    def step_timeouts(self) -> StepTimeouts:
        """The saga's step timeouts (steps without a setting keep the domain's defaults)."""
        return StepTimeouts(
            reserve=timedelta(seconds=self.reserve_timeout_seconds),
            release_to_warehouse=timedelta(seconds=self.release_timeout_seconds),
            pick=timedelta(seconds=self.pick_timeout_seconds),
        )

    def return_policy(self) -> ReturnPolicy:
        """The return rules' settings; reads and checks the reason codes file (fails the start
        when it is broken)."""
        return ReturnPolicy(
            reason_codes=load_reason_codes(),
            window=timedelta(days=self.return_window_days),
            partner_windows={
                partner_id: timedelta(days=days)
                for partner_id, days in partner_return_windows(
                    self.return_window_days_by_partner
                ).items()
            },
        )
