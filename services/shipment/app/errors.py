"""Facts that arrived before the facts they depend on: transient, a redelivery finds the data."""

from __future__ import annotations


class OrderNotPlacedYet(Exception):
    """A pick arrived before its OrderPlaced (another stream): transient, redelivery finds it."""


class TrackingNumberUnknown(Exception):
    """Scans for a number no shipment holds yet: the label's commit may still be in flight."""


class PickNotQueued(Exception):
    """A pick handed to the worker is not in the queue: the consumer's savepoint that queued it
    was rolled back (its redelivery queues it again), or it was packed already. Nothing to do."""
