"""Inventory's adapters: the SQL store, the contract translation (and event mapper), ids."""
