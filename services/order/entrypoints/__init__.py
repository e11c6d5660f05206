"""Order's entrypoints: the gRPC servicer, the event consumers and the background workers."""
