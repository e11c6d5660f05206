"""Inventory's entrypoints: the gRPC servicer (`grpc`) and the order-event consumers."""
