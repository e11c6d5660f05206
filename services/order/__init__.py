"""The order service (OMS): orders, their lines, the fulfillment saga and returns.

Rooms: `domain` (pure rules and the saga state machine), `store`, `api`, `consumers`, `main`
(see DESIGN.md).
"""
