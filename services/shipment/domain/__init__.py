"""Shipment's pure rules: packing picks into boxes, choosing a rate, and tracking milestones."""
