"""POSTs with an Idempotency-Key: admitted and claimed in one unit of work.

The partner API reads and decodes such a POST before admission (`ReadAhead`), so that
authenticating, taking a rate-limit token and claiming the key (`idempotency.claim`) are one
transaction instead of two. What the client sees does not change: a problem found while reading
ahead is raised only after admission, where it was raised before, so 401/403/429 still come first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.protobuf.message import Message
from sqlalchemy import Connection

from gateway.adapters.store import idempotency
from gateway.adapters.store.idempotency import Claim
from gateway.adapters.store.queries import (
    Admission,
    BucketPolicy,
    authenticate,
    take_partner_token,
)
from gateway.jsonmap import Violation
from gateway.problems import Problem, bad_request
from gateway.transcoder import Route, finish_request, set_idempotency_key


@dataclass(frozen=True)
class ReadAhead:
    """A POST with an Idempotency-Key, read and decoded before admission."""

    key: str
    fingerprint: str  # "" when the key is not valid (the request is refused with 400)
    decoded: Message | None  # the client's message, server-owned fields unset and not validated
    problem: Problem | None  # why reading or decoding failed; raised after admission


@dataclass(frozen=True)
class Claimed:
    """What the admission's unit of work decided for an admitted POST read ahead."""

    message: Message | None = None  # finished: partner and key set, the contract's rules met
    claim: Claim | None = None
    problem: Problem | None = None  # the 400 a request that claims nothing gets


def admit_and_claim(
    conn: Connection,
    api_key: str,
    scope: str,
    route_class: str,
    policy: BucketPolicy,
    route: Route,
    ahead: ReadAhead,
    retention_seconds: float,
    lock_seconds: float,
) -> tuple[Admission, Claimed | None]:
    """Authenticate, take a token and claim the Idempotency-Key in ONE transaction.

    The request is finished here, between authentication and the claim, because its validation
    needs the partner id and a request that breaks the contract must claim nothing. It is
    finished before the token is taken, which locks the partner's bucket row (PostgreSQL) only
    for the statements after it. Its 400 is returned, not raised, so the token still commits,
    as when admission was a transaction alone.
    """
    now = time.time()
    authenticated = authenticate(conn, api_key, scope)
    if authenticated.outcome != "ok":
        return authenticated, None
    finished: Message | Problem | None = None
    if ahead.decoded is not None:
        try:
            finished = finish_request(route, ahead.decoded, authenticated.partner_id)
        except Problem as problem:
            finished = problem
    admission = take_partner_token(conn, authenticated.partner_id, route_class, policy, now)
    if admission.outcome != "ok" or finished is None:
        return admission, None
    if isinstance(finished, Problem):
        return admission, Claimed(problem=finished)
    message = finished
    if not idempotency.valid_key(ahead.key):
        return admission, Claimed(problem=invalid_key())
    set_idempotency_key(message, ahead.key)
    claim = idempotency.claim(
        conn,
        admission.partner_id,
        ahead.key,
        ahead.fingerprint,
        now,
        retention_seconds,
        lock_seconds,
    )
    return admission, Claimed(message, claim)


def invalid_key() -> Problem:
    return bad_request(
        "the Idempotency-Key header is not valid",
        [Violation("Idempotency-Key", "must be 1-255 printable ASCII characters")],
    )
