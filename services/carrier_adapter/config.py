"""carrier-adapter's settings: `CarrierAdapterConfig`, and the carrier accounts.

`CarrierAdapterConfig` holds the fixed settings (EventServiceConfig: the service publishes
through the outbox and consumes nothing). Reading it also reads and checks the accounts, so a
broken account stops the start like any other bad setting.

The set of accounts is open-ended, so it cannot be a fixed ServiceConfig class; it follows the
kit's rules instead (one prefix, read once at start, every problem reported at once naming the
variable, secrets never echoed):

    CROSSDOCK_CARRIER_ADAPTER_CARRIER_ACCOUNTS=sandbox,ups_east
    CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CARRIER=ups
    CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CLIENT_ID=…
    CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_CLIENT_SECRET=…
    CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_ACCOUNT_NUMBER=…
    CROSSDOCK_CARRIER_ADAPTER_ACCOUNT_UPS_EAST_TEST_MODE=true

An account's CARRIER defaults to its id when the id is a carrier code (`sandbox` above).
Any account may set POLL_TRACKING=true|false; unset, the service polls exactly the accounts whose
connector cannot push scans (the karrio carriers; the sandbox pushes). false suits an account
whose carrier pushes to us some other way; true polls a pushing carrier as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Self

from services.carrier_adapter.domain.payload_log import RetentionPolicy
from services.carrier_adapter.domain.polling import PollPolicy
from services.kit.config import ConfigError, env_prefix_for, setting
from services.kit.runtime import EventServiceConfig

__all__ = [
    "CARRIER_FIELDS",
    "PREFIX",
    "CarrierAccount",
    "CarrierAdapterConfig",
    "FieldSpec",
    "load_accounts",
]

SERVICE = "carrier-adapter"
PREFIX = env_prefix_for(SERVICE)
DAY = 86_400.0
_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    required: bool = True
    secret: bool = False
    kind: str = "str"  # str, url, float, int, bool
    minimum: float | None = None
    maximum: float | None = None


def _rate(name: str) -> FieldSpec:
    return FieldSpec(name, required=False, kind="float", minimum=0.0, maximum=1.0)


CARRIER_FIELDS: Mapping[str, tuple[FieldSpec, ...]] = {
    "ups": (
        FieldSpec("client_id", secret=True),
        FieldSpec("client_secret", secret=True),
        FieldSpec("account_number"),
    ),
    "fedex": (
        FieldSpec("api_key", secret=True),
        FieldSpec("secret_key", secret=True),
        FieldSpec("account_number"),
        # FedEx may issue separate Track API credentials; absent, the shipping ones are used.
        FieldSpec("track_api_key", required=False, secret=True),
        FieldSpec("track_secret_key", required=False, secret=True),
    ),
    "dhl_express": (
        FieldSpec("site_id"),
        FieldSpec("password", secret=True),
        FieldSpec("account_number"),
    ),
    "usps": (
        FieldSpec("client_id", secret=True),
        FieldSpec("client_secret", secret=True),
        FieldSpec("account_number", required=False),
        FieldSpec("crid", required=False),
        FieldSpec("mid", required=False),
        FieldSpec("manifest_mid", required=False),
    ),
    "sandbox": (
        FieldSpec("webhook_secret", secret=True),
        FieldSpec("seed", required=False, kind="int"),
        # Simulated seconds per real second; 3600 turns a day-long lifecycle into ~30 s.
        FieldSpec("time_scale", required=False, kind="float", minimum=1.0, maximum=1e7),
        _rate("exception_rate"),
        _rate("return_rate"),
        _rate("duplicate_webhook_rate"),
        _rate("late_webhook_rate"),
        # Real seconds a label booking takes, to rehearse slow carriers and caller timeouts.
        FieldSpec("label_delay_seconds", required=False, kind="float", minimum=0.0, maximum=600.0),
        # false: the sandbox acts as a carrier that does not dedupe bookings by our key (a second
        # booking with the key is a second label), so a booking whose reply timed out is parked
        # with an unknown outcome, as with UPS or FedEx, to rehearse reconciliation.
        FieldSpec("dedupe_bookings", required=False, kind="bool"),
        # The base URL of a sandbox carrier running as its own process (tools/sandbox_carrier.py):
        # set, the account calls it over HTTP and the simulation settings above are that
        # process's (only WEBHOOK_SECRET is read here); unset, the sandbox runs in this service.
        FieldSpec("endpoint", required=False, kind="url"),
    ),
}


@dataclass(frozen=True)
class CarrierAccount:
    account_id: str
    carrier: str
    test_mode: bool = False
    settings: Mapping[str, str] = field(default_factory=dict, repr=False)
    secret_names: frozenset[str] = frozenset()
    # None: follow the connector (poll unless it pushes); see the module docstring.
    poll_tracking: bool | None = None

    def get(self, name: str, default: str = "") -> str:
        return self.settings.get(name, default)

    def secret_values(self) -> list[str]:
        """Credential values, so payload logging can blank them wherever they appear."""
        return [self.settings[name] for name in self.secret_names if self.settings.get(name)]

    def __repr__(self) -> str:
        return f"CarrierAccount({self.account_id!r}, carrier={self.carrier!r})"


def load_accounts(environ: Mapping[str, str] | None = None) -> list[CarrierAccount]:
    env = os.environ if environ is None else environ
    problems: list[str] = []
    list_var = f"{PREFIX}CARRIER_ACCOUNTS"
    ids = [part.strip() for part in env.get(list_var, "").split(",") if part.strip()]
    if not ids:
        raise ConfigError([f"{list_var} is required (comma-separated carrier account ids)"])
    accounts: list[CarrierAccount] = []
    for account_id in ids:
        if not _ACCOUNT_ID.match(account_id) or ids.count(account_id) > 1:
            problems.append(f"{list_var}: {account_id!r} is not a unique id like 'ups_east'")
            continue
        base = f"{PREFIX}ACCOUNT_{account_id.upper()}_"
        carrier = env.get(f"{base}CARRIER", "").strip() or account_id
        specs = CARRIER_FIELDS.get(carrier)
        if specs is None:
            problems.append(f"{base}CARRIER: unknown carrier {carrier!r}")
            continue
        test_mode = _flag(env, f"{base}TEST_MODE", problems)
        poll_tracking = (
            _flag(env, f"{base}POLL_TRACKING", problems)
            if env.get(f"{base}POLL_TRACKING", "").strip()
            else None
        )
        values: dict[str, str] = {}
        for spec in specs:
            variable = f"{base}{spec.name.upper()}"
            raw = env.get(variable, "").strip()
            if not raw:
                if spec.required:
                    problems.append(f"{variable} is required for a {carrier} account")
                continue
            problem = _check(spec, raw)
            if problem:
                problems.append(f"{variable} {problem}")
            values[spec.name] = raw
        secrets = frozenset(spec.name for spec in specs if spec.secret)
        accounts.append(
            CarrierAccount(account_id, carrier, test_mode, values, secrets, poll_tracking)
        )
    if problems:
        raise ConfigError(problems)
    return accounts


def _flag(env: Mapping[str, str], variable: str, problems: list[str]) -> bool:
    raw = env.get(variable, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw and raw not in _FALSE:
        problems.append(f"{variable} must be true or false")
    return False


def _check(spec: FieldSpec, raw: str) -> str:
    if spec.kind == "str":
        return ""
    if spec.kind == "bool":
        return "" if raw.lower() in _TRUE | _FALSE else "must be true or false"
    if spec.kind == "url":
        return "" if raw.startswith(("http://", "https://")) else "must be an http(s) URL"
    try:
        number = float(raw) if spec.kind == "float" else int(raw)
    except ValueError:
        return f"must be a{'n integer' if spec.kind == 'int' else ' number'}"
    if spec.minimum is not None and number < spec.minimum:
        return f"must be at least {spec.minimum:g}"
    if spec.maximum is not None and number > spec.maximum:
        return f"must be at most {spec.maximum:g}"
    return ""


class CarrierAdapterConfig(EventServiceConfig, service=SERVICE):
    quote_ttl_seconds: float = setting(
        default=DAY,
        minimum=1,
        description="how long a quote stays bookable when the carrier gives no expiry",
    )
    booking_lease_seconds: float = setting(
        default=30.0,
        minimum=1,
        description="after this long without renewal an unfinished booking (its replica died) "
        "may be taken over; a running booking renews it every third of it",
    )
    book_label_timeout_seconds: float = setting(
        default=30.0,
        minimum=0.05,
        description="how long one label booking call to a carrier may take before it counts as "
        "timed out (a carrier that does not dedupe by our key: the outcome is then unknown)",
    )
    booking_wait_seconds: float = setting(
        default=30.0,
        minimum=0,
        description="how long a BookLabel waits for another call's booking of the same key "
        "before answering ABORTED",
    )
    payload_flush_interval_seconds: float = setting(
        default=1.0, minimum=0.05, description="how often buffered carrier payloads are written"
    )
    payload_retention_days: float = setting(
        default=14.0, minimum=0.0001, description="age after which raw carrier payloads go"
    )
    payload_error_retention_days: float = setting(
        default=90.0, minimum=0.0001, description="age after which raw carrier errors go"
    )
    payload_max_records_per_account: int = setting(
        default=200_000, minimum=1, description="newest raw payloads kept per carrier account"
    )
    retention_sweep_interval_seconds: float = setting(
        default=3600.0, minimum=0.05, description="how often the payload log and quotes are swept"
    )
    sandbox_push: Literal["off", "direct", "http"] = setting(
        default="direct",
        description="how the sandbox carrier delivers webhooks: into the ingest path (direct), "
        "by POST to SANDBOX_WEBHOOK_URL (http), or not at all (off)",
    )
    sandbox_webhook_url: str = setting(
        default="", description="where the sandbox POSTs webhooks when SANDBOX_PUSH=http"
    )
    sandbox_push_interval_seconds: float = setting(
        default=1.0, minimum=0.05, description="how often the sandbox pushes new scans"
    )
    poll_interval_seconds: float = setting(
        default=60.0,
        minimum=0.05,
        description="how often the tracking poller looks for parcels due a Track call "
        "(accounts whose carrier does not push)",
    )
    poll_batch_size: int = setting(
        default=100,
        minimum=1,
        description="most Track calls per carrier in one poll sweep, the most overdue first "
        "(keeps within carrier rate limits)",
    )
    poll_interval_scale: float = setting(
        default=1.0,
        minimum=1e-6,
        maximum=100.0,
        description="multiplies every per-status poll interval (30 min out for delivery, 4 h "
        "in transit, ...); below 1 only for demos and tests",
    )
    poll_give_up_days: float = setting(
        default=30.0,
        minimum=0.0001,
        description="a polled parcel with no new scan for this long is no longer polled",
    )
    poll_lease_seconds: float = setting(
        default=120.0,
        minimum=1,
        description="how long a replica holds a parcel it polls before another may take it; "
        "must exceed the longest Track call with its retries",
    )

    def retention_policy(self) -> RetentionPolicy:
        # Errors are never kept for less time than ordinary payloads.
        return RetentionPolicy(
            max_age=timedelta(days=self.payload_retention_days),
            error_max_age=timedelta(
                days=max(self.payload_error_retention_days, self.payload_retention_days)
            ),
            max_records_per_account=self.payload_max_records_per_account,
        )

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            give_up_after=timedelta(days=self.poll_give_up_days),
            max_per_carrier=self.poll_batch_size,
        ).scaled(self.poll_interval_scale)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings; then the carrier accounts and SANDBOX_WEBHOOK_URL are checked too,
        every problem in one ConfigError."""
        config = super().from_env(environ)
        problems = []
        if config.sandbox_push == "http" and not config.sandbox_webhook_url:
            problems.append(f"{PREFIX}SANDBOX_WEBHOOK_URL is required when SANDBOX_PUSH=http")
        try:
            load_accounts(environ)
        except ConfigError as error:
            problems.extend(error.problems)
        if problems:
            raise ConfigError(problems)
        return config
