"""The partner REST gateway: REST routes transcoded from the contracts' google.api.http rules.

Layout (see README.md): the REST core at the top (descriptors, templates, jsonmap + transcoder,
problems, auth, carrier_push, openapi + openapi_rules + contract_docs + openapi_examples, docs_page
(Swagger UI), metrics);
`adapters` (the gateway database in `store`, gRPC channels in `backends`); `webhooks` (the
outbound-webhook feature); `entrypoints` (partner and admin HTTP apps, consumers, the webhook
runtime, workers); config and main (wiring: `python -m gateway.main`).
"""
