"""The gateway's adapters: its database (`store`) and the gRPC channels to the backends
(`backends`)."""
