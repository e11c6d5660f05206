"""crossdock.gateway.v1.WebhookService, served by the gateway itself over its own tables.

The gateway's transcoder sets partner_id from the API key and the contract requires it, so every
call is scoped to one partner (gateway.webhooks.store filters on it).

With `filters` (the gateway's webhook runtime), a change that may add event types widens the
gateway-webhooks durables before it commits, and one that may remove some narrows them after
(gateway.webhooks.filters). Without, the durables take every milestone event.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from crossdock.gateway.v1 import webhook_pb2 as pb
from crossdock.gateway.v1 import webhook_service_pb2 as svc
from crossdock.gateway.v1 import webhook_service_pb2_grpc as svc_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection

from gateway.adapters.store.webhook_tables import DELIVERED, FAILED, PENDING
from gateway.webhooks import filters as event_filters
from gateway.webhooks import store
from gateway.webhooks.filters import SubscriptionFilters
from services.kit.db import Database

log = logging.getLogger(__name__)

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
    def __init__(
        self, db: Database, retry_seconds: float, filters: SubscriptionFilters | None = None
    ) -> None:
        self._db = db
        self._retry_seconds = retry_seconds
        self._filters = filters

    @contextlib.contextmanager
    def _widening(self, conn: Connection) -> Iterator[None]:
        """Around a write that may add event types: see gateway.webhooks.filters."""
        if self._filters is None:
            event_filters.lock(conn)  # still: intake on PostgreSQL waits for the commit
            yield
        else:
            with self._filters.widening(conn):
                yield

    async def _narrow(self) -> None:
        """After a change that may remove event types; a failure is left to the reconcile."""
        if self._filters is None:
            return
        try:
            await self._filters.sync()
        except Exception as exc:
            log.warning("webhook event filters not narrowed yet: %r", exc)

    def _create(
        self,
        conn: Connection,
        partner_id: str,
        url: str,
        event_types: Sequence[str],
        description: str,
    ) -> dict[str, Any]:
        with self._widening(conn):
            row = store.create_subscription(
                conn, partner_id, url, event_types, description, time.time()
            )
        # The effective start is taken only now that the durables take its types: a filter
        # update keeps a durable's position, so only events stored after it are delivered, and
        # an event that occurs after this instant is stored after it.
        return store.start_subscription(conn, partner_id, row["id"], time.time())

    async def CreateWebhookSubscription(
        self, request: svc.CreateWebhookSubscriptionRequest, context: Any
    ) -> svc.CreateWebhookSubscriptionResponse:
        given = request.subscription
        row = await self._db.run(
            self._create,
            request.partner_id,
            given.url,
            list(given.event_types),
            given.description,
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
        row = await self._db.run(self._update, request.partner_id, request.subscription_id, change)
        if change.event_types or change.enabled is False:
            await self._narrow()
        return svc.UpdateWebhookSubscriptionResponse(subscription=subscription_to_proto(row))

    def _update(
        self,
        conn: Connection,
        partner_id: str,
        subscription_id: str,
        change: store.SubscriptionChange,
    ) -> dict[str, Any]:
        if not change.event_types and change.enabled is not True:
            return store.update_subscription(conn, partner_id, subscription_id, change, time.time())
        with self._widening(conn):
            return store.update_subscription(conn, partner_id, subscription_id, change, time.time())

    def _redrive(
        self, conn: Connection, partner_id: str, subscription_id: str, delivery_id: str
    ) -> tuple[dict[str, Any], int]:
        with self._widening(conn):  # a redrive enables the subscription again
            return store.redrive(
                conn, partner_id, subscription_id, delivery_id, time.time(), self._retry_seconds
            )

    async def DeleteWebhookSubscription(
        self, request: svc.DeleteWebhookSubscriptionRequest, context: Any
    ) -> svc.DeleteWebhookSubscriptionResponse:
        await self._db.run(store.delete_subscription, request.partner_id, request.subscription_id)
        await self._narrow()
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
            self._redrive, request.partner_id, request.subscription_id, request.delivery_id
        )
        return svc.RedriveWebhookDeliveriesResponse(
            subscription=subscription_to_proto(row), requeued_count=requeued
        )
