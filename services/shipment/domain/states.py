"""The shipment's allowed status transitions, as data (services.kit.states).

Label booking: CREATED → MANIFESTED, or LABEL_FAILED and back by a retry. Cancellation until the
carrier has the parcels. The journey only moves forwards (tracking.PROGRESS_RANK decides which
scan moves it; this table is the outer bound), may skip milestones a carrier never scanned, and
passes through EXCEPTION and out of it. DELIVERED, RETURNED_TO_SENDER and CANCELLED are final.
"""

from __future__ import annotations

from services.kit.states import StateMachine
from services.shipment.domain.model import ShipmentStatus as S

_ON_THE_WAY = (S.MANIFESTED, S.PICKED_UP, S.IN_TRANSIT, S.OUT_FOR_DELIVERY)


def _before(status: S) -> set[S]:
    """The journey's milestones before `status`, and EXCEPTION (a later scan resolves it)."""
    return {s for s in _ON_THE_WAY if _ON_THE_WAY.index(s) < _ON_THE_WAY.index(status)} | {
        S.EXCEPTION
    }


SHIPMENT = StateMachine(
    "shipment",
    [
        ("book label", {S.CREATED}, S.MANIFESTED),
        ("fail label", {S.CREATED}, S.LABEL_FAILED),
        ("retry label", {S.LABEL_FAILED}, S.CREATED),
        ("cancel", {S.CREATED, S.MANIFESTED, S.LABEL_FAILED}, S.CANCELLED),
        ("pick up", _before(S.PICKED_UP), S.PICKED_UP),
        ("move", _before(S.IN_TRANSIT), S.IN_TRANSIT),
        ("go out for delivery", _before(S.OUT_FOR_DELIVERY), S.OUT_FOR_DELIVERY),
        ("deliver", {*_ON_THE_WAY, S.EXCEPTION}, S.DELIVERED),
        ("return to sender", {*_ON_THE_WAY, S.EXCEPTION}, S.RETURNED_TO_SENDER),
        ("fail delivery", set(_ON_THE_WAY), S.EXCEPTION),
    ],
)
