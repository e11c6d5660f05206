"""Outbound webhooks: subscriptions (the WebhookService the gateway serves itself), the intake
that turns milestone events into deliveries, and the sender that signs and POSTs them.

The tables (subscriptions, deliveries, attempts) are in gateway.adapters.store.webhook_tables;
this package holds the feature's queries and logic, and gateway.entrypoints runs it.

- `store`: the units of work on subscriptions and the delivery log, every one scoped by partner;
- `delivery_store`: the sender's units of work: claim due deliveries (kit lease), record attempts;
- `servicer`: crossdock.gateway.v1.WebhookService over `store`;
- `payload`: the delivery body, the `Crossdock-Signature` header, the owner of an event;
- `intake`: the handler the `gateway-webhooks` consumers run (gateway.entrypoints.consumers);
- `sender`: claims due deliveries, POSTs them, records attempts, backs off, disables (a kit
  PollingWorker);

gateway.entrypoints.webhook_runtime wires them into the gateway process.
"""
