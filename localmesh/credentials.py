"""Secrets a local run generates once and keeps under the data dir (mode 0600).

Kept, not regenerated, so a second run reuses the same demo key, admin token and NATS passwords:
clients configured against the first run keep working.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    nats_passwords: Mapping[str, str]  # NATS user → password
    admin_token: str  # the gateway admin API's bearer token
    sandbox_webhook_secret: str  # signs the sandbox carrier's webhooks
    demo_api_key: str  # the demo partner's API key
    demo_operator_key: str = ""  # the demo operator's key (operator console, both scopes)


def new_demo_api_key() -> str:
    """A key in the gateway's own format (cdk_<key id>_<secret>)."""
    from gateway.auth import new_key_material

    return new_key_material()[1]


def new_demo_operator_key() -> str:
    """An operator key in the gateway's own format (cdo_<key id>_<secret>)."""
    from gateway.auth import new_operator_key_material

    return new_operator_key_material()[1]


def load_or_create(
    data_dir: Path, nats_users: Iterable[str], *, demo_api_key: str | None = None
) -> Credentials:
    """Read the kept secrets, add whatever is missing, write them back."""
    credentials = load(data_dir, nats_users, demo_api_key=demo_api_key)
    keep(data_dir, credentials)
    return credentials


def load(
    data_dir: Path, nats_users: Iterable[str], *, demo_api_key: str | None = None
) -> Credentials:
    """The kept secrets with whatever is missing generated; nothing is written.

    The launcher checks every setting before `keep`, so a rejected demo key is never kept.
    """
    stored = _stored(data_dir)
    raw_passwords = stored.get("nats_passwords")
    passwords = {str(k): str(v) for k, v in (raw_passwords or {}).items()}  # type: ignore[attr-defined]
    for user in nats_users:
        passwords.setdefault(user, secrets.token_hex(16))
    return Credentials(
        nats_passwords=passwords,
        admin_token=str(stored.get("admin_token") or secrets.token_urlsafe(24)),
        sandbox_webhook_secret=str(stored.get("sandbox_webhook_secret") or secrets.token_hex(24)),
        demo_api_key=demo_api_key or str(stored.get("demo_api_key") or new_demo_api_key()),
        demo_operator_key=str(stored.get("demo_operator_key") or new_demo_operator_key()),
    )


def keep(data_dir: Path, credentials: Credentials) -> None:
    """Write the secrets under the data dir (mode 0600) unless they are what is kept already."""
    values = {
        "nats_passwords": dict(credentials.nats_passwords),
        "admin_token": credentials.admin_token,
        "sandbox_webhook_secret": credentials.sandbox_webhook_secret,
        "demo_api_key": credentials.demo_api_key,
        "demo_operator_key": credentials.demo_operator_key,
    }
    if values == _stored(data_dir):
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(data_dir / FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(values, out, indent=2, sort_keys=True)


def _stored(data_dir: Path) -> dict[str, object]:
    path = data_dir / FILE_NAME
    return dict(json.loads(path.read_text())) if path.exists() else {}
