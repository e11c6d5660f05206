"""An operator's action on an exception from the console: the form checked first (a bad one is
a 400 and nothing is called), then the control tower's Retry/Resolve/MapCarrierCode/Redrive
call under the operator's name, and its refusal made into a message with the page's status.

The checks are the tower's own rules for these fields (tower.proto), so what the console lets
through the tower accepts: a note or reason is one line of at most 500 characters without
control characters (surrounding spaces are dropped); resolve and map-code need a note; map-code
needs one of MAP_STATUSES. The operator's name must be what the tower records (1-64 printable
ASCII characters, no spaces): an operator key under a longer or spaced name cannot act.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from crossdock.carrier.v1 import tracking_pb2
from crossdock.tower.v1 import tower_pb2
from google.rpc import error_details_pb2

from gateway.adapters.backends import Backends
from gateway.console.exceptions import MAP_STATUSES, NOT_CONFIGURED, AuditRow, audit_row, tower_stub
from gateway.console.timeline import Refusal
from services.kit.cli_tower import explained
from services.kit.grpc_errors import details_of, status_from_error

ACTIONS = ("retry", "resolve", "map-code", "redrive")
MAX_TEXT = 500
# The tower's rule for the operator it records (tower.proto: `^[!-~]+$`, 1-64 characters).
_OPERATOR = re.compile(r"[!-~]{1,64}")
# C0 and C1 control characters and line separators: they could forge audit rows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NOTE_NEEDED = {
    "resolve": "say why this exception needs nothing more",
    "map-code": "say why the carrier's code means this status (e.g. the carrier's docs)",
}


@dataclass(frozen=True)
class ActionForm:
    """What the operator asked for: the action, its note or reason, and a status to map to."""

    action: str
    text: str
    status: str = ""  # a MAP_STATUSES name, for map-code


def read_action(action: str, form: Mapping[str, str]) -> ActionForm | Refusal:
    """The form of `action`, or a 400 naming the field that is wrong."""
    field = "note" if action in _NOTE_NEEDED else "reason"
    typed = form.get(field, "")
    # Before trimming: str.strip() would quietly drop a trailing line break or NEL.
    control = _CONTROL.search(typed)
    if control:
        return Refusal(
            f"{field}: one line of text without control characters "
            f"(found U+{ord(control.group()):04X}).",
            400,
        )
    text = typed.strip()
    if action in _NOTE_NEEDED and not text:
        return Refusal(f"note: required; {_NOTE_NEEDED[action]}.", 400)
    if len(text) > MAX_TEXT:
        return Refusal(f"{field}: at most {MAX_TEXT} characters, not {len(text)}.", 400)
    status = ""
    if action == "map-code":
        status = form.get("status", "").strip().upper().removeprefix("TRACKING_STATUS_")
        if not status:
            return Refusal("status: required; choose the status the carrier's code means.", 400)
        if status not in MAP_STATUSES:
            choices = ", ".join(MAP_STATUSES)
            return Refusal(f"status: must be one of {choices}, not {status!r}.", 400)
    return ActionForm(action, text, status)


def operator_refusal(name: str) -> Refusal | None:
    """Why an operator of this name cannot act (the tower would not record the name)."""
    if _OPERATOR.fullmatch(name):
        return None
    return Refusal(
        f"This operator key's name ({name!r}) is not one the control tower records actions "
        "under (1-64 printable characters without spaces, e.g. an e-mail address); "
        "ask for an operator key under such a name.",
        403,
    )


async def perform(
    backends: Backends,
    exception_id: int,
    operator: str,
    form: ActionForm,
    timeout_seconds: float,
) -> AuditRow | Refusal:
    """Call the tower's action; its audit entry (the owner's answer) or why it was refused."""
    stub = tower_stub(backends)
    if stub is None:
        return NOT_CONFIGURED
    try:
        # Every action answers the exception and its audit entry: the entry is the outcome.
        entry: tower_pb2.ExceptionAuditEntry
        if form.action == "retry":
            entry = (
                await stub.RetryException(
                    tower_pb2.RetryExceptionRequest(
                        exception_id=exception_id, operator=operator, reason=form.text
                    ),
                    timeout=timeout_seconds,
                )
            ).audit
        elif form.action == "resolve":
            entry = (
                await stub.ResolveException(
                    tower_pb2.ResolveExceptionRequest(
                        exception_id=exception_id, operator=operator, note=form.text
                    ),
                    timeout=timeout_seconds,
                )
            ).audit
        elif form.action == "map-code":
            status = tracking_pb2.TrackingStatus.Value(f"TRACKING_STATUS_{form.status}")
            entry = (
                await stub.MapCarrierCodeException(
                    tower_pb2.MapCarrierCodeExceptionRequest(
                        exception_id=exception_id, status=status, operator=operator, note=form.text
                    ),
                    timeout=timeout_seconds,
                )
            ).audit
        else:
            entry = (
                await stub.RedriveException(
                    tower_pb2.RedriveExceptionRequest(
                        exception_id=exception_id, operator=operator, reason=form.text
                    ),
                    timeout=timeout_seconds,
                )
            ).audit
    except grpc.aio.AioRpcError as error:
        return action_refusal(error, form.action, exception_id)
    return audit_row(entry)


def action_refusal(error: grpc.aio.AioRpcError, action: str, exception_id: int) -> Refusal:
    """The tower's refusal of an action as the page says it, with the page's HTTP status."""
    code, detail = error.code(), str(error.details() or "")
    if code is grpc.StatusCode.NOT_FOUND:
        return Refusal(f"The control tower knows no exception {exception_id}.", 404)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return Refusal(f"The control tower refused the {action}: {explained(error)}.", 400)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        # The exception is closed, or of another kind, or its owner refused (audited).
        return Refusal(f"Not done: {_precondition(error) or detail}.", 409)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Refusal(
            f"The control tower did not answer the {action} in time: it may or may not have "
            "been done; the audit trail below says whether it was recorded.",
            504,
            transient=True,
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        return Refusal(
            f"Not done: the control tower or the exception's owner did not answer ({detail}); "
            "try again in a moment.",
            503,
            transient=True,
        )
    return Refusal(f"The control tower refused the {action} ({code.name}: {detail}).", 502)


def _precondition(error: grpc.aio.AioRpcError) -> str:
    status = status_from_error(error)
    if status is None:
        return ""
    return "; ".join(
        violation.description
        for failure in details_of(status, error_details_pb2.PreconditionFailure)
        for violation in failure.violations
    )
