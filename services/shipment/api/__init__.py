"""Shipment's gRPC servicer and its proto mapping."""
