"""The inventory service: item master, locations, stock positions, reservations, picks,
adjustments and receipts. It is the system of record for what is where.

Rooms: `domain` (pure rules), `app` (use cases), `adapters` (store, contracts, ids),
`entrypoints` (gRPC servicer, consumers), `config`, `main` (see README.md).
"""
