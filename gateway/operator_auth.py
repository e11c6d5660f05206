"""The operator check: who is calling the operator console, and may they do this.

The console (server-rendered pages on the admin port) authenticates people with operator keys
(`cdo_<key id>_<secret>`, gateway.auth), never partner keys. One call per request:

    operator = await operator_auth.require(request, "ops:act")

answers the Operator (key id, name, scopes; the name is who later actions are audited under)
or raises a Problem: 401 when there is no usable operator key (missing, malformed, unknown,
revoked, expired, or a partner key), 403 when a valid key lacks the scope. Both carry an RFC 6750
`WWW-Authenticate` challenge. The console renders the Problem as it likes (a page, or
problem+json through gateway.problems.problem_response).

Where the key comes from is a list of credential sources, tried in order: the bearer header
(`bearer_source`, the default) and a cookie (`cookie_source`, which the console's sign-in sets;
the console reads only its cookie). Every source answers the operator key itself, so each
request checks the key against the database again: a revoked key stops working at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from starlette.requests import HTTPConnection

from gateway.adapters.store.operator_keys import operator_key_by_id
from gateway.auth import (
    OPERATOR_SCOPES,
    bearer_token,
    secret_matches,
    split_api_key,
    split_operator_key,
)
from gateway.problems import Problem
from services.kit.db import Database

REALM = "crossdock-operators"
KEY_FORM = "cdo_<key id>_<secret>"

# A credential source answers the operator key a request presents, or None when it presents
# none through this source; a present but unusable credential raises the 401 Problem itself.
CredentialSource = Callable[[HTTPConnection], str | None]


@dataclass(frozen=True)
class Operator:
    """An authenticated operator: the key used, who holds it, and what it may do."""

    key_id: str
    name: str
    scopes: frozenset[str]


def unauthenticated(detail: str, *, invalid_token: bool = True) -> Problem:
    """A 401 with its challenge; `invalid_token` is False only when no credential came at all."""
    challenge = f'Bearer realm="{REALM}"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return Problem(
        401, detail, grpc.StatusCode.UNAUTHENTICATED, headers={"WWW-Authenticate": challenge}
    )


def insufficient_scope(scope: str) -> Problem:
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
    return Problem(
        403,
        f"this operator key lacks the scope {scope}",
        grpc.StatusCode.PERMISSION_DENIED,
        headers={"WWW-Authenticate": challenge},
    )


def bearer_source(connection: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>`; None without an Authorization header."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    token = bearer_token(header)
    if token is None:
        raise unauthenticated(f"the Authorization header must be `Bearer {KEY_FORM}`")
    return token


def cookie_source(cookie_name: str, operator_key_of: Callable[[str], str]) -> CredentialSource:
    """A source reading the cookie `cookie_name`: None without it; otherwise the operator key
    `operator_key_of` finds in its value, which raises the 401 Problem (`unauthenticated`) for
    a value it cannot use (malformed, or a sign-in past its age)."""

    def source(connection: HTTPConnection) -> str | None:
        value = connection.cookies.get(cookie_name)
        if not value:
            return None
        return operator_key_of(value)

    return source


class OperatorAuth:
    """Checks operator keys against the gateway database (one read per check)."""

    def __init__(
        self,
        db: Database,
        sources: Sequence[CredentialSource] = (bearer_source,),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._sources = tuple(sources)
        self._clock = clock

    async def require(self, connection: HTTPConnection, scope: str) -> Operator:
        """The operator behind the request if their key is valid and has `scope`; else raises
        the 401/403 Problem. Works for any starlette request or websocket."""
        for source in self._sources:
            presented = source(connection)
            if presented is not None:
                return await self.check(presented, scope)
        raise unauthenticated(
            f"an operator key is required (Authorization: Bearer {KEY_FORM})", invalid_token=False
        )

    async def check(self, operator_key: str, scope: str) -> Operator:
        """The operator holding `operator_key` if it is valid now and has `scope`."""
        if scope not in OPERATOR_SCOPES:
            # A caller's mistake, not the request's: an unknown scope could never be granted.
            raise ValueError(f"{scope!r} is not an operator scope ({', '.join(OPERATOR_SCOPES)})")
        if split_api_key(operator_key) is not None:
            raise unauthenticated("a partner API key is not an operator key")
        parts = split_operator_key(operator_key)
        if parts is None:
            raise unauthenticated(f"malformed operator key: expected {KEY_FORM}")
        key_id, secret = parts
        stored = await self._db.run(operator_key_by_id, key_id)
        # Unknown id and wrong secret answer alike: the answer never confirms a key id exists.
        if stored is None or not secret_matches(stored.salt, stored.secret_sha256, secret):
            raise unauthenticated("unknown operator key")
        # Only the key's holder (the secret matched) learns why their key stopped working.
        if stored.revoked_at is not None:
            raise unauthenticated("this operator key was revoked")
        if stored.expires_at is not None and stored.expires_at <= self._clock():
            raise unauthenticated("this operator key has expired")
        if scope not in stored.scopes:
            raise insufficient_scope(scope)
        return Operator(key_id=key_id, name=stored.operator, scopes=stored.scopes)
