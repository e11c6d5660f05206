"""Shipment's use cases, one function per command, each run in one kit unit of work.

- intake: what the consumers keep from OrderPlaced and PickCompleted;
- shipments: packing a pick into a shipment, the label booking's outcomes, and the reads;
- tracking: carrier scans stored, de-duplicated and turned into milestones;
- booking: the async steps that call inventory and carrier-adapter, then settle in a unit of
  work.
"""
