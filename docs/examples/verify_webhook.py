"""Verify a crossdock webhook delivery: signature, freshness, replay. Standard library only."""

import hashlib
import hmac
import json
import time

TOLERANCE_SECONDS = 300  # reject deliveries signed more than 5 minutes ago (or ahead)


class WebhookRejected(Exception):
    """Do not trust or process this delivery (answer 400)."""


class DuplicateDelivery(WebhookRejected):
    """Already processed: answer 2xx without processing it again."""


def verify_webhook(body: bytes, signature_header: str, secret: str, seen_ids: set) -> dict:
    """Return the delivery (parsed JSON) once its signature, age and id check out."""
    fields = [part.split("=", 1) for part in signature_header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key.strip() == "t"]
    signatures = [value for key, value in fields if key.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise WebhookRejected("malformed Crossdock-Signature header")
    if abs(time.time() - int(timestamps[0])) > TOLERANCE_SECONDS:
        raise WebhookRejected("timestamp outside the tolerance window")
    signed = timestamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookRejected("signature does not match")
    delivery = json.loads(body)
    if delivery["id"] in seen_ids:  # the id is signed (it is in the body) and stable across retries
        raise DuplicateDelivery(delivery["id"])
    seen_ids.add(delivery["id"])
    return delivery
