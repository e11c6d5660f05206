"""Shipment: shipments, packages and every carrier scan (DESIGN.md, spine steps 6 and 7)."""
