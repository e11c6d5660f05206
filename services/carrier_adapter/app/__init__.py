"""carrier-adapter use cases: rating, booking, tracking ingest, polling, retention."""
