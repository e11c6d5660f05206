"""Helpers for the karrio connector tests: accounts, connector construction, fixture bodies."""

from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import PyPDF2

from services.carrier_adapter.adapters.carriers.guarded import CallPolicy, GuardedConnector
from services.carrier_adapter.adapters.carriers.karrio_base import KarrioConnector
from services.carrier_adapter.adapters.carriers.karrio_http import HttpRequest, HttpResponse
from services.carrier_adapter.adapters.carriers.tables import load_service_table, load_status_table
from services.carrier_adapter.adapters.metrics import CarrierMetrics
from services.carrier_adapter.adapters.reliability.retry import RetryPolicy
from services.carrier_adapter.config import CARRIER_FIELDS, CarrierAccount
from services.carrier_adapter.domain.payload_log import PayloadRecorder
from tests.carrier_adapter.fakes import ManualClock, Recorder
from tests.carrier_adapter.stub_transport import payload


@dataclass
class Harness:
    connector: KarrioConnector
    payloads: Recorder
    clock: ManualClock


def build(
    connector_class: type[KarrioConnector],
    account: CarrierAccount,
    metrics: CarrierMetrics | None = None,
) -> Harness:
    clock = ManualClock()
    payloads = Recorder()
    recorder = PayloadRecorder(
        account.carrier, account.account_id, payloads, clock.now, account.secret_values()
    )
    connector = connector_class(
        account,
        status_table=load_status_table(account.carrier),
        service_table=load_service_table(account.carrier),
        on_unmapped=metrics.count_unmapped if metrics else None,
        payloads=recorder,
        clock=clock,
    )
    return Harness(connector, payloads, clock)


def guarded(harness: Harness) -> GuardedConnector:
    """The harness's connector behind the production reliability guard, retrying at once."""
    policy = CallPolicy(retry=RetryPolicy(max_attempts=3, base_delay=0.0))
    return GuardedConnector(harness.connector, policy, harness.clock, random.Random(0))


def account(carrier: str, account_id: str, **settings: str) -> CarrierAccount:
    # The same secret flags production config uses, so redaction is tested as deployed.
    secret_names = frozenset(spec.name for spec in CARRIER_FIELDS[carrier] if spec.secret)
    return CarrierAccount(account_id, carrier, True, settings, secret_names)


def json_answer(carrier: str, name: str, status: int = 200) -> HttpResponse:
    return HttpResponse(status, payload(carrier, name), {"Content-Type": "application/json"})


def fresh_ups_token() -> HttpResponse:
    """The UPS token fixture, issued now, so karrio's token cache treats it as valid."""
    body = json.loads(payload("ups", "oauth_token.json"))
    body["issued_at"] = str(int(time.time() * 1000))
    return HttpResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def body_json(request: HttpRequest) -> Any:
    return json.loads(request.body)


def assert_pdf(document: bytes) -> PyPDF2.PdfReader:
    assert document.startswith(b"%PDF")
    reader = PyPDF2.PdfReader(io.BytesIO(document))
    assert len(reader.pages) >= 1
    return reader
