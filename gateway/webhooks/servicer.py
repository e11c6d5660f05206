"""crossdock.gateway.v1.WebhookService, served by the gateway itself over its own tables.

The gateway's transcoder sets partner_id from the API key and the contract requires it, so every
call is scoped to one partner (gateway.webhooks.store filters on it).
"""

from __future__ import annotations

import time
from typing import Any

from crossdock.gateway.v1 import webhook_pb2 as pb
from crossdock.gateway.v1 import webhook_service_pb2 as svc
from crossdock.gateway.v1 import webhook_service_pb2_grpc as svc_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.adapters.store.webhook_tables import DELIVERED, FAILED, PENDING
from gateway.webhooks import store
from services.kit.db import Database

SERVICE = svc.DESCRIPTOR.services_by_name["WebhookService"]
STATUS_TO_PROTO = {
    PENDING: pb.WEBHOOK_DELIVERY_STATUS_PENDING,
    DELIVERED: pb.WEBHOOK_DELIVERY_STATUS_DELIVERED,
    FAILED: pb.WEBHOOK_DELIVERY_STATUS_FAILED,
}
STATUS_FROM_PROTO = {value: key for key, value in STATUS_TO_PROTO.items()}


def _timestamp(epoch: float | None) -> Timestamp | None:
    if epoch is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def subscription_to_proto(row: dict[str, Any]) -> pb.WebhookSubscription:
    return pb.WebhookSubscription(
        subscription_id=row["id"],
        url=row["url"],
        event_types=row["event_types"].split(),
        description=row["description"],
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        consecutive_failures=row["consecutive_failures"],
        create_time=_timestamp(row["created_at"]),
        update_time=_timestamp(row["updated_at"]),
        disable_time=_timestamp(row["disabled_at"]),
    )


def delivery_to_proto(row: dict[str, Any], attempts: list[dict[str, Any]]) -> pb.WebhookDelivery:
    pending = row["status"] == PENDING
    return pb.WebhookDelivery(
        delivery_id=row["id"],
        subscription_id=row["subscription_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        status=STATUS_TO_PROTO.get(row["status"], pb.WEBHOOK_DELIVERY_STATUS_UNSPECIFIED),
        attempt_count=row["attempt_count"],
        create_time=_timestamp(row["created_at"]),
        next_attempt_time=_timestamp(row["next_attempt_at"] if pending else None),
        deliver_time=_timestamp(row["delivered_at"]),
        expire_time=_timestamp(row["expires_at"]),
        attempts=[
            pb.WebhookDeliveryAttempt(
                attempt_number=a["attempt_number"],
                attempt_time=_timestamp(a["attempted_at"]),
                response_status_code=a["status_code"],
                error=a["error"],
                duration=_duration(a["duration_seconds"]),
            )
            for a in attempts
        ],
    )


class WebhookApi(svc_grpc.WebhookServiceServicer):
    def __init__(self, db: Database, retry_seconds: float) -> None:
        self._db = db
        self._retry_seconds = retry_seconds

    async def CreateWebhookSubscription(
        self, request: svc.CreateWebhookSubscriptionRequest, context: Any
    ) -> svc.CreateWebhookSubscriptionResponse:
        given = request.subscription
        row = await self._db.run(
            store.create_subscription,
            request.partner_id,
            given.url,
            list(given.event_types),
            given.description,
            time.time(),
        )
        return svc.CreateWebhookSubscriptionResponse(
            subscription=subscription_to_proto(row), secret=row["secret"]
        )

    async def GetWebhookSubscription(
        self, request: svc.GetWebhookSubscriptionRequest, context: Any
    ) -> svc.GetWebhookSubscriptionResponse:
        row = await self._db.run(
            store.get_subscription, request.partner_id, request.subscription_id
        )
        return svc.GetWebhookSubscriptionResponse(subscription=subscription_to_proto(row))

    async def ListWebhookSubscriptions(
        self, request: svc.ListWebhookSubscriptionsRequest, context: Any
    ) -> svc.ListWebhookSubscriptionsResponse:
        rows, token = await self._db.run(
            store.list_subscriptions, request.partner_id, request.page_size, request.page_token
        )
        return svc.ListWebhookSubscriptionsResponse(
            subscriptions=[subscription_to_proto(row) for row in rows], next_page_token=token
        )

    async def UpdateWebhookSubscription(
        self, request: svc.UpdateWebhookSubscriptionRequest, context: Any
    ) -> svc.UpdateWebhookSubscriptionResponse:
        change = store.SubscriptionChange(
            url=request.url if request.HasField("url") else None,
            event_types=list(request.event_types) or None,
            description=request.description if request.HasField("description") else None,
            enabled=request.enabled if request.HasField("enabled") else None,
        )
        row = await self._db.run(
            store.update_subscription,
            request.partner_id,
            request.subscription_id,
            change,
            time.time(),
        )
        return svc.UpdateWebhookSubscriptionResponse(subscription=subscription_to_proto(row))

    async def DeleteWebhookSubscription(
        self, request: svc.DeleteWebhookSubscriptionRequest, context: Any
    ) -> svc.DeleteWebhookSubscriptionResponse:
        await self._db.run(store.delete_subscription, request.partner_id, request.subscription_id)
        return svc.DeleteWebhookSubscriptionResponse(subscription_id=request.subscription_id)

    async def RotateWebhookSecret(
        self, request: svc.RotateWebhookSecretRequest, context: Any
    ) -> svc.RotateWebhookSecretResponse:
        row = await self._db.run(
            store.rotate_secret,
            request.partner_id,
            request.subscription_id,
            request.previous_secret_ttl_seconds,
            time.time(),
        )
        return svc.RotateWebhookSecretResponse(
            subscription=subscription_to_proto(row), secret=row["secret"]
        )

    async def ListWebhookDeliveries(
        self, request: svc.ListWebhookDeliveriesRequest, context: Any
    ) -> svc.ListWebhookDeliveriesResponse:
        rows, attempts, token = await self._db.run(
            store.list_deliveries,
            request.partner_id,
            request.subscription_id,
            STATUS_FROM_PROTO.get(request.status),
            request.page_size,
            request.page_token,
        )
        return svc.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(row, attempts[row["id"]]) for row in rows],
            next_page_token=token,
        )

    async def RedriveWebhookDeliveries(
        self, request: svc.RedriveWebhookDeliveriesRequest, context: Any
    ) -> svc.RedriveWebhookDeliveriesResponse:
        row, requeued = await self._db.run(
            store.redrive,
            request.partner_id,
            request.subscription_id,
            request.delivery_id,
            time.time(),
            self._retry_seconds,
        )
        return svc.RedriveWebhookDeliveriesResponse(
            subscription=subscription_to_proto(row), requeued_count=requeued
        )
