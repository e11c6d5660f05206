"""Unit tests of the local mesh launcher's pure parts (and its nats config on a real server)."""
