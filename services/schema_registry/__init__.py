"""The schema registry: versioned event schemas, compatibility checks, schema ids for events.

Inner shape as every service: `domain` (pure rules), `compat` (buf's breaking rules on stored
descriptor sets), `store` (tables, queries, migrations), `registry` (the use cases), `api` (gRPC),
`rest` (Confluent-compatible HTTP), `client` (async gRPC client the kit uses), `cli`, `main`.
"""
