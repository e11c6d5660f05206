"""Carrier pushes (`POST /v1/carriers/{carrier}/webhooks`): no API key, a signature instead.

A carrier is not a partner, so the route takes no bearer token. The gateway forwards the raw
body and the carrier's signature headers to carrier-adapter's IngestWebhook, which verifies the
signature with the carrier account's secret and answers UNAUTHENTICATED (401 problem+json) when
it does not check out. Which headers are the signature's depends on the carrier, so every header
that could be one is forwarded: names starting `x-` or containing `signature`, minus the proxy
and tracing headers the gateway itself understands. The body limit applies as to every route,
and pushes draw on a token bucket per (carrier, client address), kept in memory by each
replica (gateway.adapters.push_buckets: with N replicas the limit is N x the policy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.jsonmap import Violation
from gateway.problems import Problem, bad_request

MAX_FORWARDED = 16  # IngestWebhookRequest.signature_headers allows 16 pairs
MAX_VALUE_LENGTH = 4096
_NOT_SIGNATURES = frozenset(
    {
        "x-correlation-id",
        "x-request-id",
        "x-real-ip",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-amzn-trace-id",
        "x-cloud-trace-context",
    }
)
PUSH_ROUTE_CLASS = "push"
_CARRIER_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")  # IngestWebhookRequest.carrier


def signature_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers to forward, lower-cased; a 400 Problem if there are too many."""
    chosen: dict[str, str] = {}
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in _NOT_SIGNATURES or name.startswith("x-forwarded-"):
            continue
        if not (name.startswith("x-") or "signature" in name):
            continue
        if len(value) > MAX_VALUE_LENGTH:
            raise bad_request(
                "a signature header is too long",
                [Violation(name, f"must be at most {MAX_VALUE_LENGTH} characters")],
            )
        chosen[name] = f"{chosen[name]},{value}" if name in chosen else value
    if len(chosen) > MAX_FORWARDED:
        raise bad_request(
            "too many x- and signature headers",
            [Violation("headers", f"at most {MAX_FORWARDED} x-* or *signature* headers")],
        )
    return chosen


def keeps_contract(carrier: str, forwarded: dict[str, str]) -> bool:
    """True when the push's IngestWebhookRequest cannot break its contract's rules, so the
    gateway may skip protovalidate: carrier-adapter checks every push of an IngestWebhooks call
    in full anyway (its kit interceptor), and the gateway's own check is there to answer a bad
    push alone with a precise 400 rather than fail the call it rides in.

    The rules (tests pin them): `carrier` matches the carrier code pattern, `body` is present
    (the gateway always sets it) and at most MAX_FORWARDED `signature_headers` (which
    `signature_headers` enforces). False sends the push through the full check.
    """
    return len(forwarded) <= MAX_FORWARDED and _CARRIER_CODE.match(carrier) is not None


def may_be_signature(raw_name: bytes) -> bool:
    """A cheap first look at a raw (latin-1) header name, before decoding: False only for names
    `signature_headers` never forwards (its tests are ASCII, where bytes.lower() and str.lower()
    agree)."""
    lowered = raw_name.lower()
    return lowered.startswith(b"x-") or b"signature" in lowered


def bucket_key(carrier: str, client_host: str) -> tuple[str, str]:
    """The rate bucket of pushes from one client address for one carrier.

    Carrier names that are not carrier codes share one bucket per address (they answer 400),
    so random names cannot mint buckets.
    """
    return (carrier if _CARRIER_CODE.match(carrier) else "-", client_host)


def rate_limited(retry_after_seconds: int, headers: dict[str, str]) -> Problem:
    import grpc

    return Problem(
        429,
        "too many webhook pushes; retry after the Retry-After delay",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        headers={**headers, "Retry-After": str(retry_after_seconds)},
    )
