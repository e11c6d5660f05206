"""DeadLetterService: a consuming service redrives or discards its own consumers' dead letters.

Why in place: the admin redrive (`crossdock dlq redrive`, services.kit.dlq.redrive) republishes
the event to its domain subject, which only the admin NATS user may publish. Here the service
that owns the consumer reads the letter from the DLQ stream by sequence and applies it through
that consumer's own path (EventConsumer.apply_stored: classification, schema check, decoder,
handlers and inbox in one unit of work). An operator tool (the control tower) then needs no
publish right at all, and the inbox keeps the event exactly-once even when the running consumer
or another replica applies the same event at the same time.

The letter is deleted from the DLQ only after the unit of work committed. A crash between the
two leaves the letter behind; its next redrive finds the inbox row, answers DUPLICATE and
deletes it. A letter that fails again stays where it is (same sequence), and the answer carries
the new reason. Every call is logged with operator, consumer, sequence and outcome; the audit
trail of the operator action is the caller's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import nats.errors
from crossdock.common.v1 import dead_letters_pb2 as pb
from crossdock.common.v1 import dead_letters_pb2_grpc as pb_grpc
from google.protobuf.descriptor import ServiceDescriptor
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from services.kit.apply import Outcome
from services.kit.consumer import EventConsumer
from services.kit.dlq import DeadLetter, discard, get_dead_letter
from services.kit.errors import (
    DomainError,
    FailedPrecondition,
    NotFound,
    PreconditionViolation,
    Unavailable,
)

log = logging.getLogger(__name__)

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["DeadLetterService"]

_Request = pb.RedriveDeadLetterRequest | pb.DiscardDeadLetterRequest


class ServicerRegistry(Protocol):
    """The part of ServiceServer that registers a servicer."""

    def add_servicer(self, add_to_server: Any, servicer: Any, service: ServiceDescriptor) -> None:
        """Register `servicer` with the generated `add_to_server` function."""


def add_dead_letter_service(
    server: ServicerRegistry, service: str, nc: NATS, consumers: Sequence[EventConsumer]
) -> DeadLetterApi:
    """Serve DeadLetterService for `consumers` (the runtime's list, read at every call)."""
    api = DeadLetterApi(service, nc, consumers)
    server.add_servicer(pb_grpc.add_DeadLetterServiceServicer_to_server, api, SERVICE)
    return api


class DeadLetterApi(pb_grpc.DeadLetterServiceServicer):
    """Redrive and discard, for the dead letters of this service's own consumers only."""

    def __init__(self, service: str, nc: NATS, consumers: Sequence[EventConsumer]) -> None:
        self._service = service
        self._nc = nc
        self._js = nc.jetstream()
        # Read at call time, not copied: a service may start consumers after start_events
        # (the control tower's projections are added to the runtime's list).
        self._consumers = consumers

    async def RedriveDeadLetter(self, request: pb.RedriveDeadLetterRequest, context: Any) -> Any:
        letter, consumer = await self._own_letter("redrive", request)
        msg = Msg(
            self._nc,
            subject=letter.original_subject,
            data=letter.data,
            headers=letter.delivered_headers,
        )
        item = await consumer.apply_stored(msg, letter.original_seq, letter.num_delivered)
        if item.outcome is Outcome.APPLIED:
            outcome, reason = pb.REDRIVE_OUTCOME_APPLIED, f"applied by {consumer.name}"
        elif item.outcome is Outcome.DUPLICATE:
            outcome = pb.REDRIVE_OUTCOME_DUPLICATE
            reason = f"{consumer.name} had already applied the event; nothing was applied again"
        else:  # the consumer still cannot apply it: the letter stays where it is
            outcome, reason = pb.REDRIVE_OUTCOME_FAILED_AGAIN, item.reason
        if outcome != pb.REDRIVE_OUTCOME_FAILED_AGAIN:
            reason += await self._remove_after_commit(letter)
        log.info(
            "dead letter %d of %s redriven by %s: %s",
            letter.seq,
            consumer.name,
            request.operator,
            pb.RedriveOutcome.Name(outcome),
            extra={
                "operator": request.operator,
                "consumer": consumer.name,
                "sequence": letter.seq,
                "outcome": pb.RedriveOutcome.Name(outcome),
                "event_id": letter.event_id,
                "operator_reason": request.reason,
                "outcome_reason": reason,
            },
        )
        return pb.RedriveDeadLetterResponse(
            outcome=outcome,
            event_id=letter.event_id,
            subject=letter.original_subject,
            reason=reason,
        )

    async def DiscardDeadLetter(self, request: pb.DiscardDeadLetterRequest, context: Any) -> Any:
        letter, consumer = await self._own_letter("discard", request)
        if not await self._delete(letter.seq):
            raise _gone(letter.seq)  # a concurrent redrive or discard took it first
        log.warning(
            "dead letter %d of %s discarded by %s: %s",
            letter.seq,
            consumer.name,
            request.operator,
            request.reason,
            extra={
                "operator": request.operator,
                "consumer": consumer.name,
                "sequence": letter.seq,
                "outcome": "DISCARDED",
                "event_id": letter.event_id,
                "operator_reason": request.reason,
            },
        )
        return pb.DiscardDeadLetterResponse(
            event_id=letter.event_id,
            subject=letter.original_subject,
            dead_letter_reason=letter.reason,
        )

    # -- helpers ---------------------------------------------------------------------------

    async def _own_letter(self, action: str, request: _Request) -> tuple[DeadLetter, EventConsumer]:
        """The letter the request names and the consumer of ours it was dead-lettered from;
        a refusal is logged like every other answer."""
        try:
            return await self._find(request.sequence, request.consumer)
        except DomainError as error:
            log.warning(
                "%s of dead letter %d by %s refused: %s",
                action,
                request.sequence,
                request.operator,
                error.message,
                extra={
                    "operator": request.operator,
                    "consumer": request.consumer,
                    "sequence": request.sequence,
                    "outcome": error.code.value,
                    "operator_reason": request.reason,
                },
            )
            raise

    async def _find(self, sequence: int, consumer_name: str) -> tuple[DeadLetter, EventConsumer]:
        ours = sorted({consumer.name for consumer in self._consumers})
        if consumer_name not in ours:
            raise _not_ours(
                consumer_name,
                f"{consumer_name} is not a consumer of {self._service} "
                f"(its consumers: {', '.join(ours) or 'none'})",
            )
        try:
            letter = await get_dead_letter(self._js, sequence)
        except NotFoundError:
            raise _gone(sequence) from None
        except nats.errors.Error as exc:
            raise Unavailable(f"the DLQ stream cannot be read: {exc!r}") from exc
        if letter.consumer != consumer_name:
            raise _not_ours(
                letter.consumer,
                f"dead letter {sequence} was dead-lettered from {letter.consumer or '?'}, "
                f"not from {consumer_name}",
            )
        for consumer in self._consumers:
            if consumer.name == consumer_name and consumer.stream == letter.original_stream:
                return letter, consumer
        raise _not_ours(
            letter.consumer,
            f"dead letter {sequence} came from stream {letter.original_stream or '?'}, which "
            f"{consumer_name} does not read",
        )

    async def _remove_after_commit(self, letter: DeadLetter) -> str:
        """Delete the applied letter; '' or a note when it could not be deleted now."""
        try:
            await self._delete(letter.seq)
        except nats.errors.Error as exc:
            # The effect is committed; a later redrive answers DUPLICATE and deletes it.
            log.warning("dead letter %d applied but not deleted: %r", letter.seq, exc)
            return "; the letter could not be removed yet (redrive it again to remove it)"
        return ""

    async def _delete(self, sequence: int) -> bool:
        return await discard(self._js, sequence)


def _gone(sequence: int) -> NotFound:
    return NotFound(
        f"dead letter {sequence} is not in the DLQ: it was already redriven or discarded",
        resource_type="dead letter",
        resource_name=str(sequence),
    )


def _not_ours(consumer: str, message: str) -> FailedPrecondition:
    return FailedPrecondition(
        message,
        violations=[PreconditionViolation("DEAD_LETTER_CONSUMER", consumer, message)],
        reason="DEAD_LETTER_OF_ANOTHER_CONSUMER",
        metadata={"consumer": consumer},
    )
