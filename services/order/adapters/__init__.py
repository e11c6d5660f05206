"""Order's adapters: the store, proto ↔ domain contracts (and the event mapper), gRPC clients."""
