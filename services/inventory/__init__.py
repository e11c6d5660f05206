"""The inventory service: item master, locations, stock positions, reservations, picks,
adjustments and receipts. It is the system of record for what is where.

Rooms: `domain` (pure rules), `store`, `api`, `consumers`, `main` (see DESIGN.md).
"""
