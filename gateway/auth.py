"""API keys and scopes.

Key format: `cdk_<key id>_<secret>`. The key id is public (it is the row's primary key and safe to
log); the secret is 32 random bytes. Stored: a per-key random salt and SHA-256(salt + secret).
Why a fast salted hash and not bcrypt/argon2 or an HMAC pepper: the secret is 256 random bits, so
brute force is hopeless and a slow hash would only cost CPU on every request; the per-key salt
means equal secrets never share a hash, and there is no server-wide pepper to distribute, rotate
or lose (losing a pepper would invalidate every key). Lookup is by key id, then a constant-time
comparison.

Scopes follow from the route, not from a per-route table: the contract's domain names the
resource (order and shipment → orders, inventory → inventory, billing → invoices) and GET reads
while anything else writes; a whole service may name its one scope instead (WebhookService →
webhooks:manage). A scope outside SCOPES can never be granted, so a new domain's routes stay
closed until someone decides who may call them.

Operator keys (`cdo_<key id>_<secret>`, OPERATOR_SCOPES) are the same scheme under their own
prefix, for the people operating the mesh (gateway.operator_auth); never a partner's.

Signed pushes (SIGNED_PUSH_METHODS) take no API key at all: a carrier is not a partner. The
backend verifies the push's own signature, and the gateway forwards the signature headers.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from gateway.descriptors import HttpBinding, domain_of
from services.kit.ids import resource_id

SCOPES = ("orders:write", "orders:read", "inventory:read", "invoices:read", "webhooks:manage")
RESOURCE_OF_DOMAIN = {
    "order": "orders",
    "shipment": "orders",
    "inventory": "inventory",
    "billing": "invoices",
}
# Services whose every route needs one scope, whatever the HTTP method.
SCOPE_OF_SERVICE = {"crossdock.gateway.v1.WebhookService": "webhooks:manage"}
# Routes authenticated by the caller's signature (verified by the backend), not by an API key.
SIGNED_PUSH_METHODS = frozenset({"crossdock.carrier.v1.CarrierAdapterService.IngestWebhook"})
KEY_PREFIX = "cdk"


def new_partner_id() -> str:
    return resource_id("ptn")


def scope_for(binding: HttpBinding) -> str:
    if binding.service.full_name in SCOPE_OF_SERVICE:
        return SCOPE_OF_SERVICE[binding.service.full_name]
    domain = domain_of(binding.service)
    resource = RESOURCE_OF_DOMAIN.get(domain, domain)
    return f"{resource}:{'read' if binding.http_method == 'GET' else 'write'}"


def is_signed_push(binding: HttpBinding) -> bool:
    """True for routes that carry no API key (carrier webhooks): see SIGNED_PUSH_METHODS."""
    return binding.method.full_name in SIGNED_PUSH_METHODS


def route_class_of(binding: HttpBinding) -> str:
    """The rate-limit class: reads and writes have separate buckets."""
    return "read" if binding.http_method == "GET" else "write"


def new_key_material() -> tuple[str, str, bytes, bytes]:
    """(key id, the full API key to show once, salt, SHA-256 of salt+secret)."""
    # The kit's resource id without its prefix, lower-cased: 26 Crockford base32 characters.
    key_id = resource_id("key").removeprefix("key_").lower()
    secret = secrets.token_urlsafe(32)
    salt = os.urandom(16)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}", salt, hash_secret(salt, secret)


def hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def split_api_key(api_key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(salt: bytes, expected_sha256: bytes, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(salt, secret), expected_sha256)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# Operator keys: people who operate the mesh (the operator console on the admin port), never a
# partner. Their own prefix, so neither kind of key can pass for the other; the same storage
# scheme as partner keys (per-key salt + SHA-256, lookup by key id, constant-time compare).
# ops:read views the console; ops:act takes its actions (retry, resolve, redrive, map a code).
OPERATOR_KEY_PREFIX = "cdo"
OPERATOR_SCOPES = ("ops:read", "ops:act")
# Longest token worth looking up: prefix, a 26-character key id, a 43-character secret and two
# separators fit well inside; anything longer is malformed before it reaches the database.
MAX_OPERATOR_KEY_LENGTH = 200


def new_operator_key_material() -> tuple[str, str, bytes, bytes]:
    """(key id, the full operator key to show once, salt, SHA-256 of salt+secret)."""
    key_id = resource_id("key").removeprefix("key_").lower()
    secret = secrets.token_urlsafe(32)
    salt = os.urandom(16)
    return key_id, f"{OPERATOR_KEY_PREFIX}_{key_id}_{secret}", salt, hash_secret(salt, secret)


def split_operator_key(operator_key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed operator key, else None (a partner key is None too)."""
    if len(operator_key) > MAX_OPERATOR_KEY_LENGTH:
        return None
    parts = operator_key.split("_", 2)
    if len(parts) != 3 or parts[0] != OPERATOR_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]
