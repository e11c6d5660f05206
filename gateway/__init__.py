"""The partner REST gateway: REST routes transcoded from the contracts' google.api.http rules.

Modules: descriptors (which RPCs), templates (path templates), jsonmap + transcoder (HTTP ↔
messages), backends (gRPC channels), problems (RFC 9457 errors), auth + store (partners, hashed
API keys, idempotency records, rate buckets), idempotency, openapi + contract_docs + docs_page
(OpenAPI 3.1 and /docs), app (the partner ASGI app), admin (the admin ASGI app), config and main
(wiring: `python -m gateway.main`).
"""
