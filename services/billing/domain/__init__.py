"""Billing's pure rules: money, invoice and credit-note building, number formats, policy."""
