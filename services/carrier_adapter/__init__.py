"""carrier-adapter: talks to carriers (karrio connectors plus a built-in sandbox carrier).

See README.md. Layout: `domain` holds the canonical dataclasses, the connector port, code
tables, payload-log retention and polling rules (no I/O); `app` the use cases (rating, booking,
tracking ingest, polling, retention); `adapters` the store, the proto contracts and event
mapper, the carriers (one folder per carrier: mapping, transport, data tables), the connector
registry with its reliability guard, and metrics; `entrypoints` the gRPC servicer and workers.
"""
