"""Billing's gRPC api: the servicer and the value → proto mapping."""
