"""The order's and the return's allowed status transitions, as data (services.kit.states).

An order's status is derived from its records (progress.py): it is the earliest stage any unit is
in, so it moves forwards as units advance and backwards when some come back into play (a short
pick re-planned, a returned parcel reshipped). What the table fixes is the rest: COMPLETED and
CANCELLED are terminal, only an open order fails into EXCEPTION, an order leaves EXCEPTION by
recovering into an open status (or by completing or being cancelled), and every move has a name
the timeline records.
"""

from __future__ import annotations

from services.kit.states import StateMachine
from services.order.domain.model import OrderStatus as O
from services.order.domain.returns import RETURN_TRANSITIONS

OPEN = frozenset(
    {O.PLACED, O.BACKORDERED, O.ALLOCATED, O.RELEASED, O.PICKED, O.SHIPPED, O.DELIVERED}
)

ORDER = StateMachine(
    "order",
    [
        ("re-plan", OPEN - {O.PLACED}, O.PLACED),
        ("backorder", OPEN - {O.BACKORDERED}, O.BACKORDERED),
        ("allocate", OPEN - {O.ALLOCATED}, O.ALLOCATED),
        ("release to warehouse", OPEN - {O.RELEASED}, O.RELEASED),
        ("pick", OPEN - {O.PICKED}, O.PICKED),
        ("ship", OPEN - {O.SHIPPED}, O.SHIPPED),
        ("deliver", OPEN - {O.DELIVERED}, O.DELIVERED),
        ("complete", OPEN | {O.EXCEPTION}, O.COMPLETED),
        ("fail", OPEN, O.EXCEPTION),
        ("cancel", OPEN | {O.EXCEPTION}, O.CANCELLED),
    ]
    # Recovering from EXCEPTION lands in whatever open status the records imply.
    + [("recover", {O.EXCEPTION}, status) for status in sorted(OPEN, key=lambda s: s.value)],
)

# The return's table lives beside its status (returns.py), which checks it; repeated here so
# both tables read in one place.
RETURN = RETURN_TRANSITIONS
