"""The order service (OMS): orders, their lines, the fulfillment saga and returns.

Rooms: `domain` (pure rules and the saga state machine), `app` (use cases), `adapters` (store,
contracts, clients), `entrypoints` (gRPC, consumers, workers), `config`, `main`; see README.md.
"""
