"""The registry's adapters: the store, buf (the compatibility engine) and contract translation."""
