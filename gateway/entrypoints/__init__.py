"""What drives the gateway: the partner and admin HTTP apps, the webhook consumers, the loopback
WebhookService and the delivery/purge workers."""
