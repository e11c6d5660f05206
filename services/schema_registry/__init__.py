"""The schema registry: versioned event schemas, compatibility checks, schema ids for events.

The common inner shape (see README.md): `domain` (pure rules), `app` (the use cases),
`adapters` (`store`: tables, queries, migrations; `buf`: buf's breaking rules on stored
descriptor sets; `contracts`: proto translation), `entrypoints` (`grpc`, `rest`: the
Confluent-compatible HTTP API), `cli` (the `crossdock schemas` commands), `config`, `main`.
"""
