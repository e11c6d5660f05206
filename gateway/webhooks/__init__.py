"""Outbound webhooks: subscriptions (the WebhookService the gateway serves itself), the intake
that turns milestone events into deliveries, and the sender that signs and POSTs them.

- `tables`: subscriptions, deliveries and attempts in the gateway database;
- `store`: the units of work on them, every one scoped by partner;
- `servicer`: crossdock.gateway.v1.WebhookService over `store`;
- `payload`: the delivery body, the `Crossdock-Signature` header, the owner of an event;
- `intake`: the handler the `gateway-webhooks` consumers run (gateway.consumers);
- `sender`: claims due deliveries, POSTs them, records attempts, backs off, disables;
- `runtime`: wires them into the gateway process.
"""
