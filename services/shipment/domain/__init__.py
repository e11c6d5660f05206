"""Shipment's pure rules: the shipment aggregate and its events, packing picks into boxes,
choosing a rate, and tracking milestones."""
