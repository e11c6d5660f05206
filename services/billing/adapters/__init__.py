"""Billing's adapters: the store, and the contracts (proto <-> domain, the event mapper)."""
