"""Shipment: shipments, packages and every carrier scan (README.md, "Order to cash")."""
