"""The console's sign-in cookie and its CSRF tokens.

The session cookie carries the operator key itself, with when the sign-in happened and a random
nonce: `v1.<issued at>.<nonce>.<operator key>`. So every request checks the key against the
database again (a revoked or expired key ends the session at the next request), replicas share
no session store, and the gateway keeps no secret of its own for it. The cookie is HttpOnly,
SameSite=Strict, Path=/console, and Secure over https.

CSRF: every POST carries a token (form field `csrf_token` or header `X-CSRF-Token`).
- Signed in: the token is an HMAC of the session's issue time and nonce keyed by the operator
  key, so it is per session, needs no storage, and only someone holding the cookie's contents
  (which scripts cannot read) can compute it.
- The sign-in form itself (no session yet): a random token in a short-lived cookie, repeated in
  the form (double submit), so another site cannot sign a browser in under its own key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gateway.operator_auth import unauthenticated

SESSION_COOKIE = "crossdock_console"
LOGIN_COOKIE = "crossdock_console_login"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FORM_SECONDS = 3600
_VERSION = "v1"


@dataclass(frozen=True)
class Session:
    """One sign-in: the operator key, when it was presented (epoch seconds) and a nonce."""

    operator_key: str
    issued_at: int
    nonce: str

    def encode(self) -> str:
        return f"{_VERSION}.{self.issued_at}.{self.nonce}.{self.operator_key}"

    @property
    def csrf_token(self) -> str:
        message = f"csrf\0{self.issued_at}\0{self.nonce}".encode()
        digest = hmac.new(self.operator_key.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(operator_key: str, now: float) -> Session:
    return Session(operator_key, int(now), secrets.token_urlsafe(16))


def read_session(value: str, now: float, max_age_seconds: float) -> Session:
    """The session a cookie value holds; raises the 401 Problem when it is malformed or older
    than `max_age_seconds` (its holder signs in again)."""
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit() or not parts[2]:
        raise unauthenticated("the console sign-in is not readable; sign in again")
    session = Session(operator_key=parts[3], issued_at=int(parts[1]), nonce=parts[2])
    if not session.issued_at <= now + 60 or now - session.issued_at > max_age_seconds:
        raise unauthenticated("the console sign-in has expired; sign in again")
    return session


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
