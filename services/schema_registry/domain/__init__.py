"""The registry's pure rules: compatibility-mode semantics, canonical descriptor sets, errors."""
