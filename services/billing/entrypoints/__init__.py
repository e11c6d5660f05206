"""Billing's entrypoints: the gRPC servicer and the event consumers."""
