"""Billing's pure rules: invoice and credit-note building, number formats, policy, events."""
